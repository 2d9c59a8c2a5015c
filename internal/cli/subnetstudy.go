package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/subnet"
	"github.com/masque-ai/masque/subnet/study"
)

// studyFlags are the options of `masque subnet study`.
type studyFlags struct {
	preset, corpus, voices, methods, sparsities, granularities, pairs, variant, phi, split, out string
	sculptSparsities                                                                            string
	calibSamples, calibMax, evalLimit, evalMax, pplRows, pplMax, sftRank, sftSteps, workers     int
	sculptSteps                                                                                 int
	temperature                                                                                 float32
	seed                                                                                        uint64
	sftLR                                                                                       float64
	calibSystem, sft, sculpt, asJSON                                                            bool
}

func (e *env) studyCmd() *cobra.Command {
	mf := &modelFlags{}
	f := &studyFlags{}
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
passages, and --sculpt a Persona-Pruner mask (masque sculpt's learned FFN
channels) per voice at each ffn sparsity. Mask overlaps between voices and between the two sides of each pair
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
  masque subnet study --out study-voices --sft --sculpt --sculpt-sparsity 0.5
  masque serve --model builtin:voices --personas study-voices/registry.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runStudy(cmd, mf, f) },
	}
	mf.register(c)
	f.register(c)
	e.quietFlag(c)
	return c
}

func (f *studyFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.out, "out", "", "output folder (also the cache: rerun to resume)")
	fl.StringVar(&f.preset, "preset", "full", "full or quick (2 voices, Wanda, one sparsity, few prompts)")
	fl.StringVar(&f.corpus, "corpus", "", "voices corpus folder (default: the evaluation kit embedded with builtin:voices)")
	fl.StringVar(&f.voices, "voices", "", "comma-separated voices (default: every voice of the corpus)")
	fl.StringVar(&f.methods, "methods", "magnitude,wanda,sparsegpt", "single-persona scorers")
	fl.StringVar(&f.sparsities, "sparsity", "0.3,0.5,0.7", "sparsities, each in (0, 1)")
	fl.StringVar(&f.granularities, "granularity", "unstructured,2:4,ffn", "mask granularities: unstructured, ffn (whole FFN channels) and N:M patterns")
	fl.StringVar(&f.pairs, "pairs", "kjv:web,webster:wordnet,devil:wordnet", "contrastive pairs pos:neg (only pairs of studied voices by default), or none")
	fl.StringVar(&f.variant, "variant", "wanda", "contrastive variant: wanda (per-sample norm z-scores) or pooled")
	fl.StringVar(&f.phi, "phi", "relu", "φ of the wanda contrastive variant: relu or softplus")
	fl.StringVar(&f.split, "calib-split", "", "split calibrating the masks: train or valid (default: train when the corpus has it, else valid)")
	fl.IntVar(&f.calibSamples, "calib-samples", 64, "passages per voice for calibration (and SFT)")
	fl.IntVar(&f.calibMax, "calib-max-tokens", 512, "truncate each calibration passage at this many tokens")
	fl.BoolVar(&f.calibSystem, "calib-system", false, "keep the persona's system prompt in the calibration passages")
	fl.IntVar(&f.evalLimit, "eval-limit", 12, "test prompts per voice")
	fl.IntVar(&f.evalMax, "eval-max-tokens", 64, "tokens per answer")
	fl.Float32Var(&f.temperature, "temperature", 0.8, "temperature of the sampled answers")
	fl.Uint64Var(&f.seed, "seed", 0, "sampling seed")
	fl.IntVar(&f.pplRows, "ppl-rows", 4, "held-out test passages per voice for perplexity")
	fl.IntVar(&f.pplMax, "ppl-max-tokens", 256, "cut every scored conversation (held-out perplexity, and the benchmark's scoring under every persona) at this many tokens")
	fl.BoolVar(&f.sft, "sft", false, "also fine-tune a LoRA adapter per voice on the calibration passages and evaluate it")
	fl.IntVar(&f.sftRank, "sft-rank", 8, "LoRA rank of --sft")
	fl.IntVar(&f.sftSteps, "sft-steps", 80, "optimiser steps of --sft")
	f.sftLR = 2e-4
	lrVar(fl, &f.sftLR, "sft-lr", "learning rate of --sft (must be positive)")
	fl.BoolVar(&f.sculpt, "sculpt", false, "also learn a Persona-Pruner mask per voice on the calibration passages (at every ffn sparsity) and evaluate it")
	fl.StringVar(&f.sculptSparsities, "sculpt-sparsity", "", "sparsities of --sculpt (default: those of the ffn patterns)")
	fl.IntVar(&f.sculptSteps, "sculpt-steps", study.DefaultSculptSteps, "optimiser steps of --sculpt")
	fl.IntVar(&f.workers, "workers", 0, "worker goroutines for masks and training (0: all cores)")
	fl.BoolVar(&f.asJSON, "json", false, "print results.json")
}

func (e *env) runStudy(cmd *cobra.Command, mf *modelFlags, f *studyFlags) error {
	cfg, err := f.config(cmd)
	if err != nil {
		return err
	}
	ck, err := mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	cfg.Checkpoint = ck
	cfg.Logf = e.logf
	cfg.Progress = e.studyProgress()
	res, err := study.Run(cmd.Context(), cfg)
	fmt.Fprintln(e.stderr)
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; what is done is kept in %s: run the same command again to resume", f.out)
	}
	if err != nil {
		return err
	}
	if f.asJSON {
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
	out := f.out
	fmt.Fprintf(e.stdout, "\n%d jobs computed, %d read from the cache, %.0f s\nreport: %s\nresults: %s\nregistry: masque serve --model %s --personas %s\n",
		res.Computed, res.Cached, res.Seconds, filepath.Join(out, study.ReportFile), filepath.Join(out, study.ResultsFile),
		ck.Path, filepath.Join(out, study.RegistryFile))
	return nil
}

// config turns the flags into the study's configuration: the preset's, with
// every flag given on the command line overriding it.
func (f *studyFlags) config(cmd *cobra.Command) (study.Config, error) {
	if f.out == "" {
		return study.Config{}, usagef("--out is required")
	}
	cfg, err := study.Preset(f.preset)
	if err != nil {
		return cfg, usagef("--preset: %v", err)
	}
	set := cmd.Flags().Changed
	if set("voices") {
		cfg.Voices = study.SplitList(f.voices)
	}
	if set("methods") {
		if cfg.Methods, err = subnet.ParseMethods(f.methods); err != nil {
			return cfg, usagef("--methods: %v", err)
		}
	}
	if set("sparsity") {
		if cfg.Sparsities, err = subnet.ParseFloats(f.sparsities); err != nil {
			return cfg, usagef("--sparsity: %v", err)
		}
	}
	if set("granularity") {
		cfg.Granularities = study.SplitList(f.granularities)
	}
	if set("pairs") {
		if cfg.Pairs, err = study.ParsePairs(f.pairs); err != nil {
			return cfg, usagef("--pairs: %v", err)
		}
	}
	if cfg.Variant, err = subnet.ParseVariant(f.variant); err != nil {
		return cfg, usagef("--variant: %v", err)
	}
	if cfg.Phi, err = subnet.ParsePhi(f.phi); err != nil {
		return cfg, usagef("--phi: %v", err)
	}
	ints := []struct {
		name string
		v    int
		dst  *int
	}{{"calib-samples", f.calibSamples, &cfg.CalibSamples}, {"calib-max-tokens", f.calibMax, &cfg.CalibMaxTokens},
		{"eval-limit", f.evalLimit, &cfg.EvalLimit}, {"eval-max-tokens", f.evalMax, &cfg.EvalMaxTokens},
		{"ppl-rows", f.pplRows, &cfg.PPLRows}, {"ppl-max-tokens", f.pplMax, &cfg.PPLMaxTokens},
		{"sft-rank", f.sftRank, &cfg.SFTRank}, {"sft-steps", f.sftSteps, &cfg.SFTSteps}, {"sculpt-steps", f.sculptSteps, &cfg.SculptSteps}}
	for _, x := range ints {
		if set(x.name) {
			if x.v <= 0 {
				return cfg, usagef("--%s must be positive", x.name)
			}
			*x.dst = x.v
		}
	}
	if set("temperature") {
		if f.temperature <= 0 {
			return cfg, usagef("--temperature must be positive")
		}
		cfg.Temperature = f.temperature
	}
	if set("sft-lr") {
		cfg.SFTLR = f.sftLR
	}
	if set("sft") {
		cfg.SFT = f.sft
	}
	if set("sculpt") {
		cfg.Sculpt = f.sculpt
	}
	if set("sculpt-sparsity") {
		if cfg.SculptSparsities, err = subnet.ParseFloats(f.sculptSparsities); err != nil {
			return cfg, usagef("--sculpt-sparsity: %v", err)
		}
		if !cfg.Sculpt {
			return cfg, usagef("--sculpt-sparsity needs --sculpt")
		}
	}
	if set("calib-system") {
		cfg.CalibSystem = f.calibSystem
	}
	cfg.Corpus, cfg.CalibSplit, cfg.Seed, cfg.Workers, cfg.Out = f.corpus, f.split, f.seed, f.workers, f.out
	return cfg, nil
}

// studyProgress prints the study's progress: one line redrawn on a
// terminal, else a line per job started and every 30 s.
func (e *env) studyProgress() func(study.Progress) {
	tty := isTerminal(e.stderr)
	var last time.Time
	var lastItem string
	return func(p study.Progress) {
		if e.quiet {
			return
		}
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
