package cli

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/sculpt"
	"github.com/masque-ai/masque/train"
)

// sculptFlags are the options of `masque sculpt` shared by its subcommands.
type sculptFlags struct {
	data, evalData, persona, corpus, out string
	ratio                                float64
	maxLen, maxRows                      int
	seed                                 uint64
	threads                              int
	dtype, ggufType                      string
	noExport, noGGUF                     bool
}

func (f *sculptFlags) registerData(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.data, "data", "", "chat data, JSONL (messages, system/question/answer or Alpaca rows); the loss is on the assistant tokens")
	fl.StringVar(&f.evalData, "eval-data", "", "held-out chat data for the validation loss (default: 5% of --data)")
	fl.StringVar(&f.persona, "persona", "", "a voice of the --corpus voices corpus: its train split is the data, its valid split the held-out data")
	fl.StringVar(&f.corpus, "corpus", "", "voices corpus folder (masque corpus voices --out DIR), with --persona (default: the evaluation kit built into builtin:voices: learning on its valid splits)")
	fl.Float64Var(&f.ratio, "ratio", 0.25, "share of FFN channels removed in every layer, in (0, 1): k = round((1 − ratio)·d_ff) are kept")
	fl.StringVar(&f.out, "out", "", "output folder (required)")
	fl.IntVar(&f.maxLen, "max-len", 0, "cut conversations to this many tokens (default: the model's context)")
	fl.IntVar(&f.maxRows, "max-rows", 0, "use only the first N training rows (0: all)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the data order, the held-out split and the score noise")
	fl.IntVar(&f.threads, "threads", 0, "threads (default: all CPUs)")
	fl.StringVar(&f.dtype, "dtype", "", "element type of the exported Hugging Face model: f32, bf16 or f16 (default: the model's)")
	fl.StringVar(&f.ggufType, "gguf-type", "", "matrix type of model.gguf: f32, f16, bf16 or q8_0 (default: as the model)")
	fl.BoolVar(&f.noExport, "no-export", false, "do not write the smaller model (model/, model.gguf); keep_indices.json is still written")
	fl.BoolVar(&f.noGGUF, "no-gguf", false, "do not write model.gguf")
}

func (f *sculptFlags) exportOptions() sculpt.ExportOptions {
	return sculpt.ExportOptions{DType: f.dtype, GGUFType: f.ggufType, NoGGUF: f.noGGUF}
}

// source is the data --persona/--corpus or --data name.
func (f *sculptFlags) source() sculpt.DataSource {
	return sculpt.DataSource{Persona: f.persona, Corpus: f.corpus, Data: f.data, EvalData: f.evalData}
}

// defaultCorpus sets --corpus, when not given, to the evaluation kit built
// into builtin:voices (its personas' valid and test splits).
func (f *sculptFlags) defaultCorpus() (err error) {
	f.corpus, err = f.source().CorpusDir()
	return err
}

// loadData reads --persona/--corpus or --data.
func (f *sculptFlags) loadData(e *env, ck *checkpoint.Checkpoint, needData bool) (*sculpt.Data, error) {
	d, err := f.source().Load(ck, sculpt.DataOptions{MaxLen: f.maxLen, Seed: f.seed, MaxRows: f.maxRows})
	if errors.Is(err, sculpt.ErrTwoSources) {
		return nil, usagef("give --persona (with --corpus) or --data, not both")
	}
	if err != nil {
		return nil, err
	}
	if d == nil {
		if needData {
			return nil, usagef("give --data FILE.jsonl, or --persona NAME with --corpus DIR")
		}
		return nil, nil
	}
	fmt.Fprintf(e.stderr, "data: %d training rows (%d tokens, %d trained on), %d held out, %d skipped\n",
		len(d.Train), d.Tokens, d.Targets, len(d.Valid), len(d.Skipped))
	return d, nil
}

func (e *env) sculptCmd() *cobra.Command {
	s := &sculptRun{}
	c := &cobra.Command{
		Use:   "sculpt --model M (--persona NAME --corpus DIR | --data FILE.jsonl) --ratio R --out DIR",
		Short: "Persona-Pruner: learn which FFN channels a persona needs and export the smaller model",
		Long: `sculpt learns, on a frozen model, which FFN channels one persona needs
(Persona-Pruner): a score vector z per layer, the forward mask TopK(z, k) with the
same k = round((1 − ratio)·d_ff) in every layer, the straight-through gradient of
the cross-entropy on the assistant tokens to z, Adam on z. z starts from the
channel's RMS activation times the norm of its down_proj column, plus noise.

It writes DIR/model (an ordinary Hugging Face folder with intermediate_size = k),
DIR/model.gguf, DIR/keep_indices.json ([L][k]), DIR/scores.json, DIR/run.json (every
choice, the curves) and DIR/report.html (loss and mask-churn curves).
Checkpoints go to DIR/checkpoint; --resume continues an interrupted run exactly.

--recover lora|full fine-tunes the exported model on the same data afterwards
(recovery fine-tuning, with the finetune pipeline: a LoRA adapter on every
projection, merged, or every parameter; cosine schedule, 3% warm-up) and writes
it whole to DIR/recovered/model (and DIR/recovered/model.gguf); DIR/model stays
the pruned model without recovery.

Subcommands: baseline (magnitude, Wanda, Taylor, depth pruning at equal size),
compare (Persona-Pruner vs every baseline on one persona), report (the
comparisons of every persona and ratio in one table, with the headline and the
mask analyses), analyze (mask overlap across seeds and personas), export (apply
a keep_indices.json to a model).`,
		Example: `  masque sculpt --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/kjv-25
  masque sculpt --model builtin:voices --data persona.jsonl --ratio 0.5 --steps 400 --out runs/p50
  masque sculpt --model builtin:voices --global --corpus corpus/voices --ratio 0.25 --out runs/global-25
  masque sculpt --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.5 --recover lora --recover-steps 200 --out runs/kjv-50-rec`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runSculpt(cmd, s) },
	}
	s.mf.register(c)
	s.f.registerData(c)
	registerLearnFlags(c, &s.cfg)
	registerRecoverFlags(c, &s.rc, &s.recoverMode)
	c.Flags().BoolVar(&s.global, "global", false, "learn one global mask on every voice of --corpus pooled (--max-rows per voice)")
	c.AddCommand(e.sculptBaselineCmd(), e.sculptCompareCmd(), e.sculptReportCmd(), e.sculptAnalyzeCmd(), e.sculptExportCmd())
	e.quietFlag(c)
	return c
}

// sculptRun holds the flags of `masque sculpt`.
type sculptRun struct {
	mf          modelFlags
	f           sculptFlags
	cfg         sculpt.Config
	global      bool
	rc          sculpt.RecoverConfig
	recoverMode string
}

func (e *env) runSculpt(cmd *cobra.Command, s *sculptRun) error {
	if s.f.out == "" {
		return usagef("--out is required")
	}
	if s.global && (s.f.persona != "" || s.f.data != "") {
		return usagef("--global pools every voice of --corpus; it takes no --persona or --data")
	}
	if s.global {
		if err := s.f.defaultCorpus(); err != nil {
			return err
		}
	}
	if _, err := sculpt.KeepCount(1000, s.f.ratio); err != nil {
		return usagef("--ratio: %v", err)
	}
	var err error
	if s.cfg.Recover, err = recoverFromFlags(cmd, s.recoverMode, s.rc, s.f.noExport); err != nil {
		return err
	}
	ck, err := s.mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	if _, err := sculpt.KeepCount(ck.Model.Config.Intermediate, s.f.ratio); err != nil {
		return usagef("--ratio: %v", err)
	}
	if s.global {
		s.cfg.Data, err = sculpt.LoadPooled(ck, s.f.corpus, nil, s.f.maxRows, sculpt.DataOptions{MaxLen: s.f.maxLen, Seed: s.f.seed})
		s.cfg.Method = sculpt.MethodGlobal
	} else {
		s.cfg.Data, err = s.f.loadData(e, ck, true)
		s.cfg.Persona = s.f.persona
	}
	if err != nil {
		return err
	}
	s.cfg.Checkpoint, s.cfg.Ratio, s.cfg.Out, s.cfg.Seed, s.cfg.Threads = ck, s.f.ratio, s.f.out, s.f.seed, s.f.threads
	s.cfg.NoExport, s.cfg.Export = s.f.noExport, s.f.exportOptions()
	s.cfg.Logf = func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pb := e.stepBar("learning the mask")
	s.cfg.Progress = func(p sculpt.Progress) {
		pb.update(p)
		if p.Step == p.Total {
			pb.done()
		}
	}
	rb := e.trainBar("recovery")
	s.cfg.RecoverProgress = rb.update
	res, err := sculpt.Run(ctx, s.cfg)
	pb.done()
	rb.done()
	if errors.Is(err, sculpt.ErrInterrupted) {
		return fmt.Errorf("%v; continue with the same flags plus --resume", err)
	}
	if err != nil {
		return err
	}
	e.printSculpt(res, s.f.out)
	return nil
}

// printSculpt reports a finished sculpt run.
func (e *env) printSculpt(res *sculpt.Result, out string) {
	fmt.Fprintf(e.stderr, "done: %d steps in %.1f s (%.2f steps/s, %.0f tokens/s); k = %d of %d channels per layer\n",
		res.Steps, res.Seconds, res.StepsPerSec, res.TokensPerSec, res.K, res.DFF)
	if !math.IsNaN(res.ValidLoss) {
		fmt.Fprintf(e.stderr, "held-out perplexity: dense %.3f, initial mask %.3f, learned mask %.3f\n",
			math.Exp(res.DenseValidLoss), math.Exp(res.InitValidLoss), math.Exp(res.ValidLoss))
	}
	if res.Export != nil {
		fmt.Fprintf(e.stderr, "smaller model (%d → %d parameters): %s", res.Export.DenseParams, res.Export.Params, res.Export.Model)
		if res.Export.GGUF != "" {
			fmt.Fprintf(e.stderr, ", %s", res.Export.GGUF)
		} else if res.Export.GGUFSkipped != "" {
			fmt.Fprintf(e.stderr, " (no GGUF: %s)", res.Export.GGUFSkipped)
		}
		fmt.Fprintln(e.stderr)
	}
	if rv := res.Recovery; rv != nil {
		fmt.Fprintf(e.stderr, "recovery (%s, %d steps, %.1f s): train loss %.4f → %.4f", rv.Mode, rv.Steps, rv.Seconds, rv.FirstTrainLoss, rv.LastTrainLoss)
		if rv.InitValidPPL != nil && rv.ValidPPL != nil {
			fmt.Fprintf(e.stderr, ", held-out perplexity %.3f → %.3f", *rv.InitValidPPL, *rv.ValidPPL)
		}
		fmt.Fprintf(e.stderr, "\nrecovered model: %s", rv.Model)
		if rv.GGUF != "" {
			fmt.Fprintf(e.stderr, ", %s", rv.GGUF)
		}
		fmt.Fprintln(e.stderr)
	}
	fmt.Fprintf(e.stderr, "report: %s\n", filepath.Join(out, sculpt.ReportFile))
}

func registerRecoverFlags(c *cobra.Command, rc *sculpt.RecoverConfig, mode *string) {
	fl := c.Flags()
	fl.StringVar(mode, "recover", "", "after the export, fine-tune the smaller model on the same data: lora or full (recovery fine-tuning; default none)")
	fl.IntVar(&rc.Steps, "recover-steps", sculpt.DefaultRecoverSteps, "steps of the recovery fine-tuning")
	lrVar(fl, &rc.LR, "recover-lr", "peak learning rate of the recovery (default 2e-4 for lora, 2e-5 for full; must be positive)")
	fl.IntVar(&rc.LoRARank, "recover-rank", sculpt.DefaultRecoverLoRARank, "LoRA rank of --recover lora (alpha = rank)")
}

// recoverFromFlags returns the recovery settings (nil without --recover).
func recoverFromFlags(cmd *cobra.Command, mode string, rc sculpt.RecoverConfig, noExport bool) (*sculpt.RecoverConfig, error) {
	m, err := sculpt.ParseRecover(mode)
	if err != nil {
		return nil, usagef("--recover: %v", err)
	}
	if m == "" {
		for _, name := range []string{"recover-steps", "recover-lr", "recover-rank"} {
			if cmd.Flags().Changed(name) {
				return nil, usagef("--%s needs --recover lora or --recover full", name)
			}
		}
		return nil, nil
	}
	if noExport {
		return nil, usagef("--recover fine-tunes the exported model; it cannot be combined with --no-export")
	}
	rc.Mode = m
	return &rc, nil
}

func registerLearnFlags(c *cobra.Command, cfg *sculpt.Config) {
	fl := c.Flags()
	fl.IntVar(&cfg.Steps, "steps", sculpt.DefaultSteps, "Adam steps on the scores")
	cfg.LR = sculpt.DefaultLR
	lrVar(fl, &cfg.LR, "lr", "learning rate of the scores (normalised to mean 1 per layer at the start; must be positive)")
	fl.StringVar(&cfg.Schedule, "schedule", "constant", "learning-rate schedule: constant, linear or cosine (to 10%)")
	fl.IntVar(&cfg.BatchTokens, "batch-tokens", sculpt.DefaultBatchTokens, "token budget of one step's batch")
	fl.Float64Var(&cfg.InitNoise, "init-noise", sculpt.DefaultInitNoise, "standard deviation of the noise added to the initial scores (negative: none)")
	fl.IntVar(&cfg.CalibSamples, "calib-samples", sculpt.DefaultCalibSamples, "training conversations whose activations set the initial scores")
	fl.StringVar(&cfg.Estimator, "estimator", sculpt.EstimatorSTE, "gradient to the scores: ste (straight-through), gumbel (straight-through Gumbel top-k) or soft-topk (ablations)")
	fl.Float64Var(&cfg.Temperature, "temperature", sculpt.DefaultTemperature, "τ of the gumbel and soft-topk estimators")
	fl.IntVar(&cfg.EvalEvery, "eval-every", 0, "validation loss every N steps (0: ten times a run)")
	fl.IntVar(&cfg.CheckpointEvery, "checkpoint-every", sculpt.DefaultCkptEvery, "checkpoint every N steps (negative: only when interrupted)")
	fl.BoolVar(&cfg.Resume, "resume", false, "continue the interrupted run in --out (same flags; --steps may grow)")
}

// stepBar shows the steps of a mask learning (see meter).
type stepBar struct{ m *meter }

func (e *env) stepBar(what string) *stepBar { return &stepBar{e.meter(what, "")} }

func (s *stepBar) update(p sculpt.Progress) {
	desc := fmt.Sprintf("step %d/%d loss %.4f churn %d %.2f steps/s %.0f tok/s ETA %s", p.Step, p.Total, p.Loss, p.Churn, p.StepsPerSec,
		p.TokensPerSec, p.ETA.Round(time.Second))
	if !math.IsNaN(p.EvalLoss) {
		desc += fmt.Sprintf(" valid %.4f", p.EvalLoss)
	}
	s.m.describe(desc)
	s.m.set(int64(p.Step), int64(p.Total))
}

func (s *stepBar) done() { s.m.end() }

// trainBar shows the steps of a fine-tuning (see meter).
type trainBar struct{ m *meter }

func (e *env) trainBar(what string) *trainBar { return &trainBar{e.meter(what, "")} }

func (s *trainBar) update(p train.Progress) {
	desc := fmt.Sprintf("step %d/%d loss %.4f lr %.2e %.0f tok/s", p.Step, p.Total, p.Loss, p.LR, p.TokensPerSec)
	if !math.IsNaN(p.EvalLoss) {
		desc += fmt.Sprintf(" eval %.4f", p.EvalLoss)
	}
	s.m.describe(desc)
	s.m.set(int64(p.Step), int64(p.Total))
}

func (s *trainBar) done() { s.m.end() }

func (e *env) sculptBaselineCmd() *cobra.Command {
	st := &sculptBaselineRun{}
	c := &cobra.Command{
		Use:   "baseline --method M --ratio R --out DIR [--persona NAME --corpus DIR | --data FILE.jsonl] [--calib persona|generic]",
		Short: "A pruning baseline at Persona-Pruner's size: magnitude, wanda, taylor, depth or depth-angular",
		Long: `baseline prunes the model with one of Persona-Pruner's baselines, keeping the same
k = round((1 − ratio)·d_ff) FFN channels in every layer (depth methods: the fewest
whole blocks whose parameters are at least as many), and writes DIR/run.json,
DIR/keep_indices.json (channel methods) and the smaller model (DIR/model, DIR/model.gguf).

  magnitude      ‖gate_i‖² + ‖up_i‖² + ‖down[:,i]‖² (no data)
  wanda          Σ_j |gate_ij|·‖X_j‖ + Σ_j |up_ij|·‖X_j‖ + ‖H_i‖·Σ_r |down_ri|
  taylor         LLM-Pruner first order, Σ |w·∂L/∂w| over gate row, up row, down column
  depth          ShortGPT: drop the blocks of lowest block influence 1 − cos(x_l, x_l+1)
  depth-angular  Gromov et al.: drop the consecutive blocks of smallest angular distance

The data (--persona/--corpus or --data) calibrates wanda, taylor and the depth
methods; --calib generic uses the corpus's other voices instead of the persona's.
The global mask is "masque sculpt --global --corpus DIR".`,
		Example: `  masque sculpt baseline --method magnitude --ratio 0.25 --out runs/mag-25
  masque sculpt baseline --model builtin:voices --method wanda --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/wanda-kjv-25
  masque sculpt baseline --model builtin:voices --method taylor --calib generic --persona kjv --corpus corpus/voices --ratio 0.5 --out runs/taylor-gen-50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runSculptBaseline(cmd, st) },
	}
	st.mf.register(c)
	st.f.registerData(c)
	c.Flags().StringVar(&st.cfg.Method, "method", "", "magnitude, wanda, taylor, depth or depth-angular (required)")
	c.Flags().StringVar(&st.calib, "calib", "persona", "calibration data: persona (the --persona/--data rows) or generic (the corpus's other voices)")
	c.Flags().IntVar(&st.cfg.CalibSamples, "calib-samples", sculpt.DefaultCalibSamples, "calibration conversations used")
	c.Flags().IntVar(&st.cfg.BatchTokens, "batch-tokens", sculpt.DefaultBatchTokens, "token budget of one batch of Taylor gradients")
	return c
}

// sculptBaselineRun holds the flags of sculptBaselineCmd.
type sculptBaselineRun struct {
	mf    modelFlags
	f     sculptFlags
	cfg   sculpt.BaselineConfig
	calib string
}

func (e *env) runSculptBaseline(cmd *cobra.Command, st *sculptBaselineRun) error {
	if st.f.out == "" {
		return usagef("--out is required")
	}
	method, err := sculpt.ParseBaseline(st.cfg.Method)
	if err != nil {
		return usagef("--method: %v", err)
	}
	if _, err := sculpt.KeepCount(1000, st.f.ratio); err != nil {
		return usagef("--ratio: %v", err)
	}
	if st.calib != "persona" && st.calib != "generic" {
		return usagef("--calib must be persona or generic, not %q", st.calib)
	}
	if st.calib == "generic" {
		if st.f.persona == "" {
			return usagef("--calib generic needs --persona (the corpus's other voices are the generic data)")
		}
		if err := st.f.defaultCorpus(); err != nil {
			return err
		}
	}
	ck, err := st.mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	if st.calib == "generic" {
		if st.cfg.Calib, st.cfg.CalibName, err = st.f.source().LoadGeneric(ck, st.f.maxRows, sculpt.DataOptions{MaxLen: st.f.maxLen}); err != nil {
			return err
		}
	} else {
		if st.cfg.Calib, err = st.f.loadData(e, ck, method != sculpt.MethodMagnitude); err != nil {
			return err
		}
		if st.cfg.Calib != nil {
			st.cfg.CalibName = st.cfg.Calib.Source
		}
	}
	st.cfg.Checkpoint, st.cfg.Method, st.cfg.Ratio, st.cfg.Out = ck, method, st.f.ratio, st.f.out
	st.cfg.NoExport, st.cfg.Export = st.f.noExport, st.f.exportOptions()
	res, err := sculpt.RunBaseline(cmd.Context(), st.cfg)
	if err != nil {
		return err
	}
	if res.Drop != nil {
		fmt.Fprintf(e.stderr, "%s: drop layers %v; ", method, res.Drop)
	} else {
		fmt.Fprintf(e.stderr, "%s: keep %d channels per layer; ", method, res.K)
	}
	fmt.Fprintf(e.stderr, "%d → %d parameters in %.1f s; written to %s\n", res.DenseParams, res.Params, res.Seconds, st.f.out)
	return nil
}

func (e *env) sculptCompareCmd() *cobra.Command {
	st := &sculptCompareRun{}
	c := &cobra.Command{
		Use:   "compare --persona NAME --corpus DIR --ratio R --out DIR [--json]",
		Short: "Persona-Pruner vs the global mask and every baseline on one persona: perplexity, fidelity, parameters",
		Long: `compare runs Persona-Pruner, the global mask (all voices pooled) and every
baseline (magnitude, wanda and taylor with persona and with generic calibration,
depth, depth-angular) at the same ratio, and measures each model and the dense
one: perplexity of the persona's held-out (valid) split and of the other voices',
persona fidelity and conditioning ratio (eval voices on the persona's test prompts),
parameters. The headline is the share of the best baseline's perplexity increase
that Persona-Pruner avoids, 1 − (ppl_PP − ppl_dense)/(ppl_best − ppl_dense).

With --recover lora|full, Persona-Pruner's model is also fine-tuned on the
persona's train split after the export and measured as "persona-pruner+recovery"
(not a baseline). Generic perplexity uses the first --generic-rows held-out rows
of each other voice.

Each method's run folder is DIR/<method>; DIR/compare.json and DIR/compare.html hold
the table. An interrupted comparison resumes with the same command.
--json prints {"persona", "ratio", "dense": {"ppl", "fidelity", …},
"methods": {NAME: {"ppl", "fidelity", "params", …}}, "drop_avoided_vs_best_baseline", …}.`,
		Example: `  masque sculpt compare --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/cmp-kjv-25 --json
  masque sculpt compare --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.5 --methods magnitude,wanda,depth --out runs/cmp-kjv-50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runSculptCompare(cmd, st) },
	}
	st.mf.register(c)
	st.f.registerData(c)
	registerLearnFlags(c, &st.cfg.Learn)
	registerRecoverFlags(c, &st.rc, &st.recoverMode)
	fl := c.Flags()
	fl.BoolVar(&st.asJSON, "json", false, "print the comparison as JSON on stdout")
	fl.StringVar(&st.methods, "methods", "", "comma-separated methods to run (default all: "+strings.Join(sculpt.CompareMethods, ",")+")")
	fl.IntVar(&st.cfg.GenericValidRows, "generic-rows", sculpt.DefaultGenericValidRows, "held-out rows of each other voice in the generic perplexity (negative: all)")
	fl.IntVar(&st.cfg.GlobalPerVoice, "global-rows", 0, "training rows per voice in the global mask's pooled data (0: as many as the persona has)")
	fl.StringVar(&st.cfg.GlobalRun, "global-run", "", "a finished global-mask run (masque sculpt --global) of the same model and ratio to use instead of learning one per comparison")
	fl.BoolVar(&st.cfg.NoFidelity, "no-fidelity", false, "skip the persona-fidelity benchmark")
	fl.IntVar(&st.cfg.FidelityLimit, "fidelity-limit", 20, "test prompts of the persona answered for the fidelity")
	fl.IntVar(&st.cfg.FidelityMaxTokens, "fidelity-max-tokens", 0, "longest answer in tokens (default: eval voices's)")
	e.quietFlag(c)
	return c
}

// sculptCompareRun holds the flags of sculptCompareCmd.
type sculptCompareRun struct {
	mf          modelFlags
	f           sculptFlags
	cfg         sculpt.CompareConfig
	asJSON      bool
	methods     string
	rc          sculpt.RecoverConfig
	recoverMode string
}

func (e *env) runSculptCompare(cmd *cobra.Command, st *sculptCompareRun) error {
	switch {
	case st.f.out == "":
		return usagef("--out is required")
	case st.f.persona == "":
		return usagef("compare needs --persona NAME (a voice of --corpus, default the evaluation kit built into builtin:voices)")
	case st.f.data != "":
		return usagef("compare takes its data from --persona/--corpus, not --data")
	}
	if err := st.f.defaultCorpus(); err != nil {
		return err
	}
	if _, err := sculpt.KeepCount(1000, st.f.ratio); err != nil {
		return usagef("--ratio: %v", err)
	}
	if st.methods != "" {
		st.cfg.Methods = strings.Split(st.methods, ",")
	}
	var err error
	if st.cfg.Recover, err = recoverFromFlags(cmd, st.recoverMode, st.rc, st.f.noExport); err != nil {
		return err
	}
	ck, err := st.mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	st.cfg.Checkpoint, st.cfg.Corpus, st.cfg.Persona, st.cfg.Ratio, st.cfg.Out = ck, st.f.corpus, st.f.persona, st.f.ratio, st.f.out
	st.cfg.Learn.Seed, st.cfg.Learn.Threads, st.cfg.NoExport = st.f.seed, st.f.threads, st.f.noExport
	st.cfg.MaxLen, st.cfg.MaxRows = st.f.maxLen, st.f.maxRows
	st.cfg.CalibSamples = st.cfg.Learn.CalibSamples
	st.cfg.Learn.Export = st.f.exportOptions()
	st.cfg.Stage = func(format string, a ...any) { fmt.Fprintf(e.stderr, "compare: "+format+"\n", a...) }
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pb := e.stepBar("learning")
	st.cfg.Learn.Progress = func(p sculpt.Progress) {
		pb.update(p)
		if p.Step == p.Total {
			pb.done()
		}
	}
	res, err := sculpt.Compare(ctx, st.cfg)
	pb.done()
	if err != nil {
		return err
	}
	if st.asJSON {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "%-24s %10s %10s %9s %12s\n", "method", "ppl", "generic", "fidelity", "params")
	line := func(name string, fg *sculpt.Figures) {
		fmt.Fprintf(e.stdout, "%-24s %10.3f %10.3f %9.3f %12d\n", name, fg.PPL, fg.GenericPPL, fg.Fidelity, fg.Params)
	}
	line("dense", &res.Dense)
	for _, m := range append([]string{sculpt.MethodPersonaPruner, sculpt.MethodRecovered}, sculpt.CompareMethods[1:]...) {
		if fg := res.Methods[m]; fg != nil {
			line(m, fg)
		}
	}
	if res.DropAvoided != nil {
		fmt.Fprintf(e.stdout, "drop avoided vs the best baseline (%s): %.1f%%\n", res.BestBaseline, 100**res.DropAvoided)
	}
	fmt.Fprintf(e.stderr, "written to %s\n", filepath.Join(st.f.out, sculpt.CompareFile))
	return nil
}

func (e *env) sculptReportCmd() *cobra.Command {
	var cfg sculpt.ReportConfig
	var asJSON bool
	c := &cobra.Command{
		Use:   "report --out DIR COMPARE_DIR... [RUN_DIR...]",
		Short: "One report over the comparisons of every persona and ratio: the headline, the tables and the mask analyses",
		Long: `report reads finished comparisons (the --out folders of "masque sculpt compare")
and writes DIR/summary.json and DIR/summary.html:
  - per ratio, the headline: the share of the best baseline's drop from the dense
    model that Persona-Pruner avoids, 1 − drop_PP / drop_best, averaged over the
    personas (persona perplexity, and persona fidelity where measured), and the
    number of personas where Persona-Pruner beats every baseline and the global mask;
  - per persona and ratio, dense vs Persona-Pruner vs every baseline: persona and
    generic perplexity, fidelity, conditioning ratio, parameters;
  - per ratio, the analyses of the Persona-Pruner masks: across seeds (give further
    sculpt run folders of a compared persona with another --seed), mask overlap
    against persona similarity (the corpus's word-frequency cosine), and the
    per-layer overlap heat maps.`,
		Example: `  masque sculpt report --out runs/report runs/cmp-kjv-25 runs/cmp-kjv-50 runs/cmp-web-25 runs/cmp-web-50
  masque sculpt report --corpus corpus/voices --out runs/report runs/cmp-*-25 runs/kjv-25-seed2`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Out == "" {
				return usagef("--out is required")
			}
			cfg.Dirs = args
			rep, err := sculpt.BuildReport(cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, rep)
			}
			pct := func(v *float64) string {
				if v == nil {
					return "–"
				}
				return fmt.Sprintf("%.1f%%", 100**v)
			}
			for _, rs := range rep.Ratios {
				n := len(rs.Personas)
				fmt.Fprintf(e.stdout, "ratio %g, %d personas: drop avoided vs the best baseline %s (ppl, %d defined), %s (fidelity, %d defined); "+
					"beats every baseline on ppl %d/%d, on fidelity %d/%d; beats the global mask %d/%d\n",
					rs.Ratio, n, pct(rs.MeanDropAvoided), rs.Defined, pct(rs.MeanDropAvoidedFidelity), rs.DefinedFidelity,
					rs.BeatsPPL, n, rs.BeatsFidelity, rs.FidelityCompared, rs.BeatsGlobal, rs.GlobalCompared)
				if a := rs.Analysis; a != nil {
					for _, p := range a.Seeds {
						fmt.Fprintf(e.stdout, "  seeds %s: mask r %.3f, overlap %.3f\n", p.Persona, p.MaskCorr, p.Overlap)
					}
					if a.SimilarityCorrelation != nil {
						fmt.Fprintf(e.stdout, "  mask overlap vs persona similarity over %d pairs: r = %.3f\n", a.Pairs, *a.SimilarityCorrelation)
					}
				}
			}
			for _, n := range rep.Notes {
				fmt.Fprintf(e.stderr, "note: %s\n", n)
			}
			fmt.Fprintf(e.stderr, "written to %s\n", filepath.Join(cfg.Out, "summary.html"))
			return nil
		},
	}
	c.Flags().StringVar(&cfg.Out, "out", "", "output folder (required)")
	c.Flags().StringVar(&cfg.Corpus, "corpus", "", "voices corpus for the persona similarity (default: the one the comparisons recorded)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
	return c
}

func (e *env) sculptAnalyzeCmd() *cobra.Command {
	var cfg sculpt.AnalyzeConfig
	var asJSON bool
	c := &cobra.Command{
		Use:   "analyze --out DIR [--corpus DIR] RUN_DIR...",
		Short: "Mask overlap of sculpt runs: across seeds of a persona, between personas against persona similarity, per layer",
		Long: `analyze reads finished sculpt run folders (keep_indices.json, scores.json, run.json)
and reports, as DIR/analysis.json and DIR/analysis.html:
  - for runs of the same persona (different seeds): kept-channel overlap, the
    correlation of the 0/1 masks and of the learned scores;
  - between personas: mean kept-channel overlap against persona similarity (the
    cosine of the word-frequency vectors of their train splits, --corpus), and the
    Pearson correlation of the two over persona pairs;
  - a heat map per layer of the kept-channel overlap between personas.`,
		Example: `  masque sculpt analyze --corpus corpus/voices --out runs/analysis runs/kjv-25 runs/kjv-25-seed2 runs/web-25 runs/jargon-25`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Out == "" {
				return usagef("--out is required")
			}
			cfg.Runs = args
			a, err := sculpt.Analyze(cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, a)
			}
			for _, p := range a.Seeds {
				fmt.Fprintf(e.stdout, "seeds %s: %s vs %s: overlap %.3f, mask r %.3f, score r %.3f\n", p.Persona, p.A, p.B, p.Overlap, p.MaskCorr, p.ScoreCorr)
			}
			if a.SimilarityCorrelation != nil {
				fmt.Fprintf(e.stdout, "mask overlap vs persona similarity over %d pairs: r = %.3f\n", a.Pairs, *a.SimilarityCorrelation)
			}
			fmt.Fprintf(e.stderr, "written to %s\n", cfg.Out)
			return nil
		},
	}
	c.Flags().StringVar(&cfg.Out, "out", "", "output folder (required)")
	c.Flags().StringVar(&cfg.Corpus, "corpus", "", "voices corpus, for persona similarity")
	c.Flags().BoolVar(&asJSON, "json", false, "print the analysis as JSON on stdout")
	return c
}

func (e *env) sculptExportCmd() *cobra.Command {
	var mf modelFlags
	var f sculptFlags
	var keep string
	c := &cobra.Command{
		Use:   "export --keep keep_indices.json --out DIR [--model M]",
		Short: "Apply keep indices ([L][k]) to a model and write the smaller model",
		Long: `export slices a model by a keep_indices.json (Persona-Pruner's [L][k] layout: the
kept FFN channels of every layer) and writes DIR/model, DIR/model.gguf and
DIR/keep_indices.json. Indices from a sculpt run folder are checked against the
fingerprint of the model they were made for; without --model, the run's
recorded base (run.json) is used.`,
		Example: `  masque sculpt export --model builtin:voices --keep runs/kjv-25/keep_indices.json --out runs/kjv-25-again`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keep == "" || f.out == "" {
				return usagef("--keep and --out are required")
			}
			mf.basedOn(sculpt.ReadBase, keep)
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			info, err := sculpt.ExportKeep(ck, keep, f.out, f.exportOptions())
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "%d → %d parameters (intermediate_size %d): %s\n", info.DenseParams, info.Params, info.Intermediate, info.Model)
			return nil
		},
	}
	mf.register(c)
	c.Flags().StringVar(&keep, "keep", "", "keep_indices.json (required)")
	c.Flags().StringVar(&f.out, "out", "", "output folder (required)")
	c.Flags().StringVar(&f.dtype, "dtype", "", "element type of the Hugging Face model: f32, bf16 or f16")
	c.Flags().StringVar(&f.ggufType, "gguf-type", "", "matrix type of model.gguf")
	c.Flags().BoolVar(&f.noGGUF, "no-gguf", false, "do not write model.gguf")
	return c
}
