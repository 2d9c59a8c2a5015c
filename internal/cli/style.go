package cli

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/style"
)

func (e *env) styleCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "style",
		Short: "Structured style profiles (keywords, syntax, pragmatic tags) and style scores",
		Long: `A character's style in three explicit parts (METHODS.md §3): a lexical signature
(PMI keywords against a background), a syntactic profile (grammar rules from
part-of-speech tags and phrase chunks mapped onto 14 named dimensions) and
pragmatic tags (prototype centroids over sentence embeddings).`,
	}
	c.AddCommand(e.styleProfileCmd(), e.styleReportCmd(), e.styleScoreCmd(), e.styleClassifyCmd(), e.styleTagsCmd())
	return c
}

func (e *env) styleProfileCmd() *cobra.Command {
	st := &styleProfileRun{}
	c := &cobra.Command{
		Use:   "profile --data LINES [--background BG] --out profile.json",
		Short: "Build style profiles of one or more characters",
		Long: `Build the style profile of each character in --data: a plain-text file (one
line per utterance, one character: --name), a JSONL file with a character field
(many characters), or a voices corpus folder (every voice, --split train).
Each character's background for PMI is the other characters plus --background
(neutral text: lines, or a JSONL file's text fields). With --model or
--embed-url the profiles get their pragmatic part (tags from --tags, default
the built-in set, see masque style tags, and the style centroid).`,
		Example: `  masque style profile --data /work/corpus/voices --model ./voices-base --out voices.json
  masque style profile --data lines.txt --name alice --background neutral.txt --out alice.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runStyleProfile(cmd, st) },
	}
	fl := c.Flags()
	fl.StringVar(&st.data, "data", "", "the characters' lines: text file, JSONL with a character field, or a voices corpus folder")
	fl.StringVar(&st.background, "background", "", "neutral text (one line each, or JSONL text fields)")
	fl.StringVar(&st.out, "out", "", "profile file to write (JSON)")
	fl.StringVar(&st.name, "name", "", "the character of a plain-text --data file (or of JSONL rows without the character field)")
	fl.StringVar(&st.charField, "character-field", "character", "JSONL field naming the character")
	fl.StringVar(&st.textField, "text-field", "text", "JSONL field holding the line (rows without it contribute their assistant messages)")
	fl.StringVar(&st.split, "split", "train", "split read from a voices corpus folder")
	fl.StringVar(&st.tags, "tags", "", "pragmatic tag set file (YAML; default: the built-in set)")
	fl.IntVar(&st.minCount, "min-count", 5, "least uses of a word for the lexicon and keywords")
	fl.IntVar(&st.top, "top", 25, "keywords per character")
	fl.IntVar(&st.chunkWords, "chunk-words", 100, "chunk size (words) over which syntactic spread is measured")
	fl.IntVar(&st.embedLines, "embed-lines", 200, "most lines per character embedded for the pragmatic part")
	fl.IntVar(&st.maxWords, "max-words", 0, "keep about this many words of each character (lines chosen evenly; 0: all)")
	st.ef.register(c)
	e.quietFlag(c)
	return c
}

// styleProfileRun holds the flags of styleProfileCmd.
type styleProfileRun struct {
	data, background, out, name, charField, textField, split, tags string
	minCount, top, chunkWords, embedLines, maxWords                int
	ef                                                             embedderFlags
}

func (e *env) runStyleProfile(cmd *cobra.Command, st *styleProfileRun) error {
	if st.data == "" || st.out == "" {
		return usagef("--data and --out are required")
	}
	chars, err := style.LoadCharacters(st.data, style.DataOptions{Name: st.name, CharacterField: st.charField, TextField: st.textField, Split: st.split, MaxWords: st.maxWords})
	if err != nil {
		return err
	}
	var bg []string
	if st.background != "" {
		if bg, err = style.ReadLines(st.background); err != nil {
			return err
		}
	}
	ts, err := style.LoadTagSet(st.tags)
	if err != nil {
		return err
	}
	emb, err := st.ef.open()
	if err != nil {
		return err
	}
	defer st.ef.close()
	start := time.Now()
	set, err := style.Run(cmd.Context(), style.Config{Characters: chars, Background: bg, MinCount: st.minCount, TopK: st.top,
		ChunkWords: st.chunkWords, Embedder: emb, TagSet: ts, EmbedLines: st.embedLines, Progress: e.stages("")})
	if err != nil {
		return err
	}
	if err := set.Save(st.out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "character\tlines\twords\ttop keywords\ttags on")
	for _, p := range set.Characters {
		var kw, on []string
		for _, k := range p.Keywords[:min(6, len(p.Keywords))] {
			kw = append(kw, k.Word)
		}
		for _, t := range p.Tags {
			if t.On {
				on = append(on, t.Name)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", p.Name, p.Lines, p.Words, strings.Join(kw, " "), strings.Join(on, " "))
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "wrote %s (%d characters, %.1fs)\n", st.out, len(set.Characters), time.Since(start).Seconds())
	return nil
}

func (e *env) styleReportCmd() *cobra.Command {
	var profile, out string
	c := &cobra.Command{
		Use:   "report --profile P --out report.html",
		Short: "Render an HTML page comparing characters' styles (keywords, radar of the 14 dimensions, tags)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if profile == "" || out == "" {
				return usagef("--profile and --out are required")
			}
			set, err := style.Load(profile)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, func(w io.Writer) error { return style.WriteReport(w, set) }); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s\n", out)
			return nil
		},
	}
	c.Flags().StringVar(&profile, "profile", "", "profile file (masque style profile)")
	c.Flags().StringVar(&out, "out", "", "HTML file to write")
	return c
}

// scoreRow is a batch row of masque style score.
func (e *env) styleScoreCmd() *cobra.Command {
	st := &styleScoreRun{}
	c := &cobra.Command{
		Use:   "score --profile P [--character C] --input NEUTRAL --output REPLY",
		Short: "Score a reply: semantic fidelity to its neutral input, style similarity to a character, VSS and H",
		Long: `semantic = cosine of the embeddings of input and output; style = the mean of
the lexical, syntactic and pragmatic similarities of the output to the
character's profile (see the style package); VSS = style if semantic > --gate
(0.75) else 0; H = the harmonic mean of semantic and style. The embedder must
be the one the profile was built with. --batch FILE.jsonl scores rows
{"character":...,"input":...,"output":...} (character optional when the profile
has one); with --json one object per row.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runStyleScore(cmd, st) },
	}
	fl := c.Flags()
	fl.StringVar(&st.profile, "profile", "", "profile file (masque style profile)")
	fl.StringVar(&st.character, "character", "", "the character whose style the output should have (default: the profile's only one)")
	fl.StringVar(&st.input, "input", "", "the neutral input text")
	fl.StringVar(&st.output, "output", "", "the styled reply")
	fl.StringVar(&st.batch, "batch", "", `JSONL of {"character","input","output"} rows to score`)
	fl.StringVar(&st.tags, "tags", "", "tag set file to check the profile against (refused when the profile was built with another)")
	fl.Float64Var(&st.gate, "gate", style.SemanticGate, "semantic fidelity above which style counts (VSS)")
	fl.BoolVar(&st.asJSON, "json", false, `print {"semantic","style","vss","h"} per row`)
	st.ef.register(c)
	return c
}

// styleScoreRun holds the flags of styleScoreCmd.
type styleScoreRun struct {
	profile, character, input, output, batch, tags string
	gate                                           float64
	asJSON                                         bool
	ef                                             embedderFlags
}

func (e *env) runStyleScore(cmd *cobra.Command, st *styleScoreRun) error {
	if st.profile == "" {
		return usagef("--profile is required")
	}
	if st.batch == "" && (st.input == "" || st.output == "") {
		return usagef("give --input and --output, or --batch")
	}
	set, err := style.Load(st.profile)
	if err != nil {
		return err
	}
	var ts *style.TagSet
	if st.tags != "" {
		if ts, err = style.LoadTagSet(st.tags); err != nil {
			return err
		}
	}
	emb, err := st.ef.open()
	if err != nil {
		return err
	}
	defer st.ef.close()
	if emb == nil {
		return usagef("scoring needs the embedder the profile was built with (--model or --embed-url)")
	}
	sc, err := style.NewScorer(set, nil, emb, ts)
	if err != nil {
		return fmt.Errorf("%s: %v", st.profile, err)
	}
	var rows []style.ScoreRow
	if st.batch != "" {
		if rows, err = style.ReadScoreRows(st.batch); err != nil {
			return err
		}
	} else {
		rows = []style.ScoreRow{{Character: st.character, Input: st.input, Output: st.output}}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	if !st.asJSON {
		fmt.Fprintln(tw, "row\tcharacter\tsemantic\tstyle\tlexical\tsyntactic\tpragmatic\tvss\th")
	}
	for i, r := range rows {
		p, err := set.Pick(r.Character, st.character)
		if errors.Is(err, style.ErrWhichCharacter) {
			return usagef("the profile has %d characters: give --character (or a character field in each row)", len(set.Characters))
		}
		if err != nil {
			return fmt.Errorf("row %d: %v", i+1, err)
		}
		name := p.Name
		s, err := sc.ScorePair(cmd.Context(), p, r.Input, r.Output, st.gate)
		if err != nil {
			return fmt.Errorf("row %d: %v", i+1, err)
		}
		if st.asJSON {
			if err := writeJSON(e.stdout, map[string]float64{"semantic": s.Semantic, "style": s.Style, "vss": s.VSS, "h": s.H}); err != nil {
				return err
			}
			continue
		}
		prag := "-"
		if !math.IsNaN(s.Parts.Pragmatic) {
			prag = fmt.Sprintf("%.3f", s.Parts.Pragmatic)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t%.3f\t%.3f\n", i+1, name, s.Semantic, s.Style, s.Parts.Lexical, s.Parts.Syntactic, prag, s.VSS, s.H)
	}
	return tw.Flush()
}

func (e *env) styleClassifyCmd() *cobra.Command {
	var profile, corpus, split string
	var chunkWords, perVoice int
	var asJSON bool
	var ef embedderFlags
	c := &cobra.Command{
		Use:   "classify --profile P --corpus VOICES",
		Short: "Nearest-profile classification of a voices corpus's held-out passages, per style part",
		Long: `Cut the held-out documents of a voices corpus into passages of about
--chunk-words words, assign each to the most similar profile by each part alone
(lexical, syntactic, pragmatic) and by all three (style similarity), and print
the accuracies. The pragmatic part needs the profile's embedder.`,
		Example: `  masque style profile --data /work/corpus/voices --model builtin --out voices.json
  masque style classify --profile voices.json --corpus /work/corpus/voices --model builtin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if profile == "" || corpus == "" {
				return usagef("--profile and --corpus are required")
			}
			set, err := style.Load(profile)
			if err != nil {
				return err
			}
			emb, err := ef.open()
			if err != nil {
				return err
			}
			defer ef.close()
			sc, err := style.NewScorer(set, nil, emb, nil)
			if err != nil {
				return fmt.Errorf("%s: %v", profile, err)
			}
			bar := e.stages("")
			res, err := style.Classify(cmd.Context(), style.ClassifyConfig{Scorer: sc, Corpus: corpus, Split: split, ChunkWords: chunkWords, PerVoice: perVoice,
				Progress: func(d, t int) { bar("classify", d, t) }})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, res)
			}
			parts := []string{}
			for _, p := range style.ClassifyParts {
				if _, ok := res.Accuracy[p]; ok {
					parts = append(parts, p)
				}
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "voice\t%s\n", strings.Join(parts, "\t"))
			for _, v := range res.Voices {
				fmt.Fprint(tw, v)
				for _, p := range parts {
					fmt.Fprintf(tw, "\t%.1f%%", 100*res.PerVoice[p][v])
				}
				fmt.Fprintln(tw)
			}
			fmt.Fprint(tw, "all voices")
			for _, p := range parts {
				fmt.Fprintf(tw, "\t%.1f%%", 100*res.Accuracy[p])
			}
			fmt.Fprintf(tw, "\n%d passages, %d words\n", res.Chunks, res.Words)
			return tw.Flush()
		},
	}
	fl := c.Flags()
	fl.StringVar(&profile, "profile", "", "profile file with one character per voice")
	fl.StringVar(&corpus, "corpus", "", "voices corpus folder")
	fl.StringVar(&split, "split", "test", "held-out split")
	fl.IntVar(&chunkWords, "chunk-words", 100, "passage size in words")
	fl.IntVar(&perVoice, "per-voice", 50, "most passages per voice")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	ef.register(c)
	e.quietFlag(c)
	return c
}

func (e *env) styleTagsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tags",
		Short: "Print the built-in pragmatic tag set (YAML), a starting point for --tags",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := e.stdout.Write(style.DefaultTagSetYAML())
			return err
		},
	}
}
