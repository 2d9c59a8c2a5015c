package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/subnet"
	"github.com/masque-ai/masque/subnet/study"
)

func (e *env) studyCmd() *cobra.Command {
	var mf modelFlags
	var preset, corpus, voicesFlag, methods, sparsities, granularities, pairs, variant, phi, split, out string
	var calibSamples, calibMax, evalLimit, evalMax, pplRows, pplMax, sftRank, sftSteps, workers int
	var temperature float32
	var seed uint64
	var sftLR float64
	var calibSystem, sft, asJSON bool
	c := &cobra.Command{
		Use:   "study --out DIR [--preset quick]",
		Short: "Do the masks carry the persona? Persona masks of every voice of a voices model, measured",
		Long: `Run the study of issue #19 on a model trained on the voices corpus (default
builtin:voices, with its embedded evaluation kit): for every voice, build persona
masks from that voice's passages (the train split of --corpus, or the valid
split of the kit) with each --methods scorer over the --sparsity × --granularity
grid (SparseGPT has no ffn variant), and contrastive masks for each --pairs pair;
then measure, for every mask, the voice's fidelity (eval voices) with an empty
system prompt (does the mask alone bring the voice?) and with the voice's own
prompt, the conditioning ratio, and held-out perplexity on every voice under its
own prompt (general ability). The unmasked model with and without the persona
prompt is the baseline; --sft adds a LoRA fine-tune per voice on the same
passages. Mask overlaps between voices and between the two sides of each pair
are compared with the voices' text similarity.

DIR receives results.json, report.html (inline SVG), registry.yaml (for masque
serve: each voice prompted, masked, and masked + prompted, side by side), the
masks, statistics, and one eval-voices folder per evaluation (with run.json for
masque eval compare). Everything is cached by a key of its inputs: rerunning
the same command after Ctrl-C or SIGTERM resumes, and a finished study is only
read back. --preset quick is a reduced study (2 voices, Wanda, one sparsity, few
prompts); other flags override the preset's values.`,
		Example: `  masque subnet study --out study-quick --preset quick
  masque subnet study --out study-voices
  masque subnet study --out study-kw --voices kjv,web --methods wanda,sparsegpt --granularity unstructured,2:4 --sft
  masque serve --model builtin:voices --personas study-voices/registry.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out is required")
			}
			cfg, err := study.Preset(preset)
			if err != nil {
				return usagef("--preset: %v", err)
			}
			fl := cmd.Flags()
			set := fl.Changed
			list := func(s string) []string {
				var o []string
				for _, x := range strings.Split(s, ",") {
					if x = strings.TrimSpace(x); x != "" {
						o = append(o, x)
					}
				}
				return o
			}
			if set("voices") {
				cfg.Voices = list(voicesFlag)
			}
			if set("methods") {
				cfg.Methods = nil
				for _, m := range list(methods) {
					mm, err := subnet.ParseMethod(m)
					if err != nil {
						return usagef("--methods: %v", err)
					}
					cfg.Methods = append(cfg.Methods, mm)
				}
				if len(cfg.Methods) == 0 {
					return usagef("--methods: no method")
				}
			}
			if set("sparsity") {
				if cfg.Sparsities, err = study.ParseFloats(sparsities); err != nil {
					return usagef("--sparsity: %v", err)
				}
			}
			if set("granularity") {
				cfg.Granularities = list(granularities)
			}
			if set("pairs") {
				cfg.Pairs = [][2]string{}
				if pairs != "none" {
					for _, p := range list(pairs) {
						pp, err := study.ParsePair(p)
						if err != nil {
							return usagef("--pairs: %v", err)
						}
						cfg.Pairs = append(cfg.Pairs, pp)
					}
				}
			}
			if cfg.Variant, err = subnet.ParseVariant(variant); err != nil {
				return usagef("--variant: %v", err)
			}
			if cfg.Phi, err = subnet.ParsePhi(phi); err != nil {
				return usagef("--phi: %v", err)
			}
			ints := []struct {
				name string
				v    int
				dst  *int
			}{{"calib-samples", calibSamples, &cfg.CalibSamples}, {"calib-max-tokens", calibMax, &cfg.CalibMaxTokens},
				{"eval-limit", evalLimit, &cfg.EvalLimit}, {"eval-max-tokens", evalMax, &cfg.EvalMaxTokens},
				{"ppl-rows", pplRows, &cfg.PPLRows}, {"ppl-max-tokens", pplMax, &cfg.PPLMaxTokens},
				{"sft-rank", sftRank, &cfg.SFTRank}, {"sft-steps", sftSteps, &cfg.SFTSteps}}
			for _, x := range ints {
				if set(x.name) {
					if x.v <= 0 {
						return usagef("--%s must be positive", x.name)
					}
					*x.dst = x.v
				}
			}
			if set("temperature") {
				if temperature <= 0 {
					return usagef("--temperature must be positive")
				}
				cfg.Temperature = temperature
			}
			if set("sft-lr") {
				cfg.SFTLR = sftLR
			}
			if set("sft") {
				cfg.SFT = sft
			}
			if set("calib-system") {
				cfg.CalibSystem = calibSystem
			}
			cfg.Corpus, cfg.CalibSplit, cfg.Seed, cfg.Workers, cfg.Out = corpus, split, seed, workers, out
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			cfg.Checkpoint = ck
			cfg.Logf = func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }
			cfg.Progress = e.studyProgress()
			res, err := study.Run(cmd.Context(), cfg)
			fmt.Fprintln(e.stderr)
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("interrupted; what is done is kept in %s: run the same command again to resume", out)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, res)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "voice\tunmasked, empty\tunmasked, prompted\tbest mask, empty\tbest mask, prompted\tcost others\tbest mask")
			for _, v := range res.Voices {
				d := res.Dense
				fmt.Fprintf(tw, "%s\t%.3f\t%.3f", v, float64(d.Empty[v].Fidelity), float64(d.Prompted[v].Fidelity))
				if b := res.Best(v); b != nil {
					fmt.Fprintf(tw, "\t%.3f\t%.3f\t%.3f\t%s\n", float64(b.Empty[v].Fidelity), float64(b.Prompted[v].Fidelity), float64(b.CostOthers), b.ID)
				} else {
					fmt.Fprintln(tw, "\t-\t-\t-\t-")
				}
			}
			tw.Flush()
			fmt.Fprintf(e.stdout, "\n%d jobs computed, %d read from the cache, %.0f s\nreport: %s\nresults: %s\nregistry: masque serve --model %s --personas %s\n",
				res.Computed, res.Cached, res.Seconds, filepath.Join(out, study.ReportFile), filepath.Join(out, study.ResultsFile),
				ck.Path, filepath.Join(out, study.RegistryFile))
			return nil
		},
	}
	mf.register(c)
	fl := c.Flags()
	fl.StringVar(&out, "out", "", "output folder (also the cache: rerun to resume)")
	fl.StringVar(&preset, "preset", "full", "full or quick (2 voices, Wanda, one sparsity, few prompts)")
	fl.StringVar(&corpus, "corpus", "", "voices corpus folder (default: the evaluation kit embedded with builtin:voices)")
	fl.StringVar(&voicesFlag, "voices", "", "comma-separated voices (default: every voice of the corpus)")
	fl.StringVar(&methods, "methods", "magnitude,wanda,sparsegpt", "single-persona scorers")
	fl.StringVar(&sparsities, "sparsity", "0.3,0.5,0.7", "sparsities, each in (0, 1)")
	fl.StringVar(&granularities, "granularity", "unstructured,2:4,ffn", "mask granularities: unstructured, ffn (whole FFN channels) and N:M patterns")
	fl.StringVar(&pairs, "pairs", "kjv:web,webster:wordnet,devil:wordnet", "contrastive pairs pos:neg (only pairs of studied voices by default), or none")
	fl.StringVar(&variant, "variant", "wanda", "contrastive variant: wanda (per-sample norm z-scores) or pooled")
	fl.StringVar(&phi, "phi", "relu", "φ of the wanda contrastive variant: relu or softplus")
	fl.StringVar(&split, "calib-split", "", "split calibrating the masks: train or valid (default: train when the corpus has it, else valid)")
	fl.IntVar(&calibSamples, "calib-samples", 64, "passages per voice for calibration (and SFT)")
	fl.IntVar(&calibMax, "calib-max-tokens", 512, "truncate each calibration passage at this many tokens")
	fl.BoolVar(&calibSystem, "calib-system", false, "keep the persona's system prompt in the calibration passages")
	fl.IntVar(&evalLimit, "eval-limit", 12, "test prompts per voice")
	fl.IntVar(&evalMax, "eval-max-tokens", 64, "tokens per answer")
	fl.Float32Var(&temperature, "temperature", 0.8, "temperature of the sampled answers")
	fl.Uint64Var(&seed, "seed", 0, "sampling seed")
	fl.IntVar(&pplRows, "ppl-rows", 4, "held-out test passages per voice for perplexity")
	fl.IntVar(&pplMax, "ppl-max-tokens", 256, "cut every scored conversation (held-out perplexity, and the benchmark's scoring under every persona) at this many tokens")
	fl.BoolVar(&sft, "sft", false, "also fine-tune a LoRA adapter per voice on the calibration passages and evaluate it")
	fl.IntVar(&sftRank, "sft-rank", 8, "LoRA rank of --sft")
	fl.IntVar(&sftSteps, "sft-steps", 80, "optimiser steps of --sft")
	sftLR = 2e-4
	lrVar(fl, &sftLR, "sft-lr", "learning rate of --sft (must be positive)")
	fl.IntVar(&workers, "workers", 0, "worker goroutines for masks and training (0: all cores)")
	fl.BoolVar(&asJSON, "json", false, "print results.json")
	return c
}

// studyProgress prints the study's progress: one line redrawn on a
// terminal, else a line per job started and every 30 s.
func (e *env) studyProgress() func(study.Progress) {
	tty := isTerminal(e.stderr)
	var last time.Time
	var lastItem string
	return func(p study.Progress) {
		now := time.Now()
		newJob := p.Job+p.Item != lastItem
		if !tty && !newJob && now.Sub(last) < 30*time.Second {
			return
		}
		if tty && !newJob && now.Sub(last) < 200*time.Millisecond {
			return
		}
		last, lastItem = now, p.Job+p.Item
		eta := "ETA ?"
		if p.ETA >= 0 {
			eta = "ETA " + p.ETA.Round(time.Second).String()
		}
		line := fmt.Sprintf("[%d/%d jobs, %d cached, %s, %s] %s %s", p.Done, p.Total, p.Cached, p.Elapsed.Round(time.Second), eta, p.Job, p.Item)
		if p.Step != "" {
			line += fmt.Sprintf(": %s %d/%d", p.Step, p.StepDone, p.StepTotal)
		}
		if tty {
			if len(line) > 150 {
				line = line[:150]
			}
			fmt.Fprintf(e.stderr, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(e.stderr, line)
		}
	}
}
