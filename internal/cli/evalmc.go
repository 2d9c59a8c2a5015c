package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/mc"
	"github.com/masque-ai/masque/eval/ppl"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/internal/textarg"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
)

// evalCmd is the parent of the evaluation subcommands (mc, ppl, …).
func (e *env) evalCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a model (optionally with a mask): persona tests, perplexity, …",
	}
	c.AddCommand(e.evalMCCmd(), e.evalPPLCmd(), e.evalRunCmd(), e.evalRolebenchCmd(), e.evalCompareCmd(), e.evalVoicesCmd())
	return c
}

// maskedModel returns the checkpoint's model, with the mask at maskPath
// (if set) applied per sequence (persona.MaskedModel; nothing is copied).
// A warning about the mask (made on another encoding of the model, see
// mask.Compat) goes to warn.
func maskedModel(ck *checkpoint.Checkpoint, maskPath string, warn io.Writer) (*model.Model, error) {
	if maskPath == "" {
		return ck.Model, nil
	}
	mk, err := mask.Load(maskPath)
	if err != nil {
		return nil, err
	}
	w, err := mk.Compat(ck.Model)
	if err != nil {
		return nil, err
	}
	if w != "" {
		fmt.Fprintln(warn, "masque: warning:", w)
	}
	return persona.MaskedModel(ck.Model, mk)
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFileAll(path, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}

// emit writes result as JSON to the file out (if set) and prints it: as
// JSON, or with table.
func (e *env) emit(result any, out string, asJSON bool, table func() error) error {
	if out != "" {
		if err := writeJSONFile(out, result); err != nil {
			return err
		}
	}
	if asJSON {
		return writeJSON(e.stdout, result)
	}
	return table()
}

func (e *env) evalMCCmd() *cobra.Command {
	var mf modelFlags
	var tests []string
	var persona, maskPath, format, out string
	var opposing, keepSpace, asJSON bool
	var limit int
	c := &cobra.Command{
		Use:   "mc --tests FILE [--persona TEXT] [--opposing] [--mask MASK]",
		Short: "Multiple-choice persona tests scored by answer log-likelihood",
		Long: `Score multiple-choice persona tests: each answer's summed token log-probability
after the question (rendered with the chat template, after the optional persona
system prompt); an item is correct when the matching answer scores higher, or,
with --opposing, the non-matching one.

Test files: CSV or JSONL rows question,A,B,matching (matching = A or B), or
Anthropic model-written-evals persona JSONL (question/statement,
answer_matching_behavior, answer_not_matching_behavior).

--format plain uses "Human: …\n\nAssistant:" without a chat template (the default
for models without one). A table is printed; --out writes the full results as JSON.`,
		Example: `  masque eval mc --model ./Qwen2.5-0.5B-Instruct --tests testdata/persona-evals/extraversion.jsonl --mask extro.safetensors --out extro.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(tests) == 0 {
				return usagef("--tests is required")
			}
			sys, err := textarg.Read(persona)
			if err != nil {
				return fmt.Errorf("--persona: %w", err)
			}
			mf.basedOn(mask.ReadBase, maskPath)
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			m, err := maskedModel(ck, maskPath, e.stderr)
			if err != nil {
				return err
			}
			p, err := prompterFor(ck, format)
			if err != nil {
				return err
			}
			if cp, ok := p.(mc.ChatPrompter); ok {
				cp.KeepSpace = keepSpace
				p = cp
			}
			reports, err := mc.EvaluateFiles(cmd.Context(), m, p, tests, mc.Options{System: sys, Opposing: opposing, Limit: limit}, e.progress)
			if err != nil {
				return err
			}
			result := map[string]any{"model": ck.Path, "mask": maskPath, "reports": reports}
			return e.emit(result, out, asJSON, func() error { return mc.WriteTable(e.stdout, reports...) })
		},
	}
	mf.register(c)
	fl := c.Flags()
	fl.StringArrayVar(&tests, "tests", nil, "test file (.csv or .jsonl); repeatable")
	fl.StringVar(&persona, "persona", "", "persona system prompt (or @FILE)")
	fl.BoolVar(&opposing, "opposing", false, "score for the opposing persona: the non-matching answer is correct")
	fl.StringVar(&maskPath, "mask", "", "apply this mask in memory first (without --model, on the base it records)")
	fl.StringVar(&format, "format", "", "chat or plain (default: chat when the model has a chat template)")
	fl.BoolVar(&keepSpace, "keep-space", false, "chat format: keep the answers' leading spaces")
	fl.IntVar(&limit, "limit", 0, "evaluate only the first N items of each file")
	fl.StringVar(&out, "out", "", "write the results as JSON to this file")
	fl.BoolVar(&asJSON, "json", false, "print JSON instead of the table")
	e.quietFlag(c)
	return c
}

func (e *env) evalPPLCmd() *cobra.Command {
	var mf modelFlags
	var data []string
	var maskPath, out string
	var maxTokens int
	var asJSON bool
	c := &cobra.Command{
		Use:   "ppl --data FILE [--mask MASK]",
		Short: "Perplexity on a text file (one sample per line) or a chat JSONL file (assistant tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(data) == 0 {
				return usagef("--data is required")
			}
			mf.basedOn(mask.ReadBase, maskPath)
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			m, err := maskedModel(ck, maskPath, e.stderr)
			if err != nil {
				return err
			}
			results, err := ppl.EvaluateFiles(cmd.Context(), ck, m, data, maxTokens, e.progress)
			if err != nil {
				return err
			}
			result := map[string]any{"model": ck.Path, "mask": maskPath, "results": results}
			return e.emit(result, out, asJSON, func() error { return ppl.WriteTable(e.stdout, results...) })
		},
	}
	mf.register(c)
	fl := c.Flags()
	fl.StringArrayVar(&data, "data", nil, "text file (one sample per line) or chat .jsonl; repeatable")
	fl.StringVar(&maskPath, "mask", "", "apply this mask in memory first (without --model, on the base it records)")
	fl.IntVar(&maxTokens, "max-tokens", 512, "truncate every sample at this many tokens")
	fl.StringVar(&out, "out", "", "write the results as JSON to this file")
	fl.BoolVar(&asJSON, "json", false, "print JSON instead of the table")
	e.quietFlag(c)
	return c
}
