package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/tokenizer/bpetrain"
)

// tokenizerCmd is the `masque tokenizer` command family.
func (e *env) tokenizerCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "tokenizer",
		Short: "Train tokenizers",
	}
	c.AddCommand(e.tokenizerTrainCmd())
	return c
}

func (e *env) tokenizerTrainCmd() *cobra.Command {
	var cfg bpetrain.Config
	c := &cobra.Command{
		Use:   "train --data PATH... --out DIR [--vocab-size 8192] [--pattern llama3|gpt2|qwen2] [--min-frequency N]",
		Short: "Train a byte-level BPE tokenizer and write it as Hugging Face tokenizer.json + tokenizer_config.json",
		Long: `train learns a byte-level BPE vocabulary (GPT-2 / Llama 3 style) from text and
writes OUT/tokenizer.json and OUT/tokenizer_config.json (ChatML chat template,
eos <|im_end|>, pad <|endoftext|>, no BOS), loadable by masque, transformers and
transformers.js.

--data takes files or folders, several times or comma-separated:
  FILE.jsonl   rows with "text" and/or "messages" (each distinct content counted)
  FILE         any other file is plain text
  DIR          a corpus folder: every DIR/*/train.jsonl (the train split only)

The vocabulary holds the 256 byte tokens, the learned merges and the special
tokens <|endoftext|>, <|im_start|>, <|im_end|> (at the end).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(cfg.Data) == 0 {
				return usagef("--data is required")
			}
			if cfg.Out == "" {
				return usagef("--out is required")
			}
			var bar *meter
			stage := ""
			cfg.Progress = func(s string, done, total int64) {
				if s != stage {
					if bar != nil {
						bar.end()
					}
					stage = s
					if s == "merge" {
						bar = e.meter("merging", "merges")
					} else {
						bar = e.meter("reading", "bytes")
					}
				}
				bar.set(done, total)
			}
			res, err := bpetrain.Run(cmd.Context(), cfg)
			if bar != nil {
				bar.end()
			}
			if err != nil {
				return err
			}
			m := res.Model
			fmt.Fprintf(e.stdout, "read %d files, %.1f MB, %d texts, %d pre-tokens (%d distinct) in %.1fs\n",
				len(res.Files), float64(res.Bytes)/1e6, res.Texts, res.Pieces, res.Words, res.ReadTime.Seconds())
			fmt.Fprintf(e.stdout, "learned %d merges in %.1fs: vocabulary %d (256 bytes, %d merged, %d special)\n",
				len(m.Merges), res.TrainTime.Seconds(), m.VocabSize(), len(m.Tokens)-256, len(m.SpecialTokens))
			if want := cfg.VocabSize; want > 0 && m.VocabSize() < want {
				fmt.Fprintf(e.stdout, "note: stopped below --vocab-size %d (no pair left at the minimum frequency)\n", want)
			}
			fmt.Fprintf(e.stdout, "wrote %s and %s\n", res.Tokenizer, res.ConfigFile)
			return nil
		},
	}
	c.Flags().StringSliceVar(&cfg.Data, "data", nil, "training data: JSONL or text files, or corpus folders (their */train.jsonl)")
	c.Flags().StringVar(&cfg.Out, "out", "", "output folder for tokenizer.json and tokenizer_config.json")
	c.Flags().IntVar(&cfg.VocabSize, "vocab-size", 8192, "vocabulary size, including the 256 byte tokens and the 3 special tokens")
	c.Flags().StringVar(&cfg.Pattern, "pattern", "llama3", "pre-tokenizer split regex: llama3 (digits in runs of up to 3), gpt2 or qwen2 (single digits)")
	c.Flags().IntVar(&cfg.MinFrequency, "min-frequency", 0, "stop when the most frequent pair occurs fewer times than this")
	e.quietFlag(c)
	return c
}
