package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/finetune"
	"github.com/masque-ai/masque/train/hfsave"
	"github.com/masque-ai/masque/train/sft"
)

// finetuneFlags are the options of `masque finetune`.
type finetuneFlags struct {
	data, evalData, out, format, system, onBadRow string
	evalFraction                                  float64
	full, merge, resume, truncate, lastTurn       bool
	recompute                                     bool
	loraRank                                      int
	loraAlpha, loraDropout                        float64
	targets                                       string
	epochs                                        float64
	steps, batchTokens, accum, maxLen, warmup     int
	lr, minLR, weightDecay, clip                  float64
	schedule, dtype                               string
	seed                                          uint64
	evalEvery, ckptEvery, threads                 int
}

func (e *env) finetuneCmd() *cobra.Command {
	var mf modelFlags
	var f finetuneFlags
	c := &cobra.Command{
		Use:   "finetune --model PATH --data FILE.jsonl --out DIR [flags]",
		Short: "Supervised fine-tuning (LoRA or full) on chat data, loss on assistant tokens",
		Long: `finetune trains a model on chat conversations (JSONL), rendered with the model's
chat template; the loss covers the assistant turns only (and their end-of-turn token).

Data rows (--format auto picks per row):
  {"messages":[{"role":"system","content":...},{"role":"user",...},{"role":"assistant",...}]}
  {"system":...,"question":...,"answer":...}          (OpenCharacter style; --format qa)
  {"instruction":...,"input":...,"output":...}       (Alpaca; --format alpaca)
Bad rows (malformed JSON, no assistant turn, longer than --max-len without
--truncate) are reported as FILE:LINE and skipped, or stop the run with
--on-bad-row fail.

By default a LoRA adapter is trained (rank --lora-rank on --targets) and written to
--out as adapter_model.safetensors + adapter_config.json (PEFT format; use it with
generate --lora DIR, or --merge to also write the merged model to DIR/merged).
--full trains every parameter and writes a Hugging Face folder to --out.

Checkpoints go to DIR/checkpoint every --checkpoint-every steps and when the run
is interrupted (Ctrl-C); --resume continues from there with the same flags.
DIR/training.json records the run and DIR/loss.svg plots the loss curves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.runFinetune(cmd, &mf, &f)
		},
	}
	mf.register(c)
	fl := c.Flags()
	fl.StringVar(&f.data, "data", "", "training data, JSONL (required)")
	fl.StringVar(&f.evalData, "eval-data", "", "held-out data, JSONL (default: --eval-fraction of --data)")
	fl.Float64Var(&f.evalFraction, "eval-fraction", 0.05, "fraction of --data held out for evaluation when there is no --eval-data (0: none)")
	fl.StringVar(&f.out, "out", "", "output folder (required)")
	fl.StringVar(&f.format, "format", "auto", "data format: auto, messages, qa (system/question/answer) or alpaca")
	fl.StringVar(&f.system, "system", "", "system prompt for rows that have none")
	fl.StringVar(&f.onBadRow, "on-bad-row", "skip", "what to do with a bad row: skip (report it and go on) or fail")
	fl.BoolVar(&f.truncate, "truncate", false, "cut rows longer than --max-len instead of treating them as bad rows")
	fl.IntVar(&f.maxLen, "max-len", 0, "longest sequence in tokens (default: the model's context)")
	fl.BoolVar(&f.lastTurn, "last-turn-only", false, "train on the last assistant turn of each conversation only")
	fl.BoolVar(&f.full, "full", false, "train every parameter instead of a LoRA adapter")
	fl.IntVar(&f.loraRank, "lora-rank", 16, "LoRA rank r")
	fl.Float64Var(&f.loraAlpha, "lora-alpha", 16, "LoRA alpha (scale alpha/r)")
	fl.Float64Var(&f.loraDropout, "lora-dropout", 0.05, "dropout on the adapters' inputs")
	fl.StringVar(&f.targets, "targets", "q,k,v,o,gate,up,down", "projections that get adapters (q,k,v,o,gate,up,down or all)")
	fl.BoolVar(&f.merge, "merge", false, "also write the base model with the adapter merged in to DIR/merged (Hugging Face folder)")
	fl.StringVar(&f.dtype, "dtype", "", "element type of saved models: f32, bf16 or f16 (default: the base model's)")
	fl.Float64Var(&f.epochs, "epochs", 0, "passes over the training data (default 1 when --steps is not given)")
	fl.IntVar(&f.steps, "steps", 0, "optimiser steps (instead of --epochs)")
	fl.Float64Var(&f.lr, "lr", 0, "peak learning rate (default 2e-4 for LoRA, 2e-5 for --full)")
	fl.StringVar(&f.schedule, "schedule", "cosine", "learning-rate schedule: constant, linear or cosine")
	fl.IntVar(&f.warmup, "warmup", -1, "warm-up steps (default: 3% of the steps)")
	fl.Float64Var(&f.minLR, "min-lr-ratio", 0.1, "final learning rate as a fraction of --lr (linear, cosine)")
	fl.Float64Var(&f.weightDecay, "weight-decay", 0, "AdamW decoupled weight decay (matrices only)")
	fl.Float64Var(&f.clip, "clip", 1, "clip the global gradient norm to this (0: off)")
	fl.IntVar(&f.batchTokens, "batch-tokens", 4096, "token budget of one micro-batch")
	fl.IntVar(&f.accum, "accum", 1, "micro-batches per optimiser step (gradient accumulation)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the data order, the held-out split, the adapter init and dropout")
	fl.IntVar(&f.evalEvery, "eval-every", 0, "evaluate the held-out set every N steps (0: at the end)")
	fl.IntVar(&f.ckptEvery, "checkpoint-every", 100, "save a resumable checkpoint every N steps (0: only on interrupt)")
	fl.BoolVar(&f.resume, "resume", false, "continue from the checkpoint in DIR/checkpoint")
	fl.BoolVar(&f.recompute, "recompute", false, "recompute activations in the backward pass (less memory, ~30% more time)")
	fl.IntVar(&f.threads, "threads", 0, "threads (default: all CPUs)")
	return c
}

func (e *env) runFinetune(cmd *cobra.Command, mf *modelFlags, f *finetuneFlags) error {
	switch {
	case f.data == "":
		return usagef("--data is required")
	case f.out == "":
		return usagef("--out is required")
	case f.steps > 0 && f.epochs > 0:
		return usagef("give --steps or --epochs, not both")
	case f.steps < 0 || f.epochs < 0 || f.batchTokens <= 0 || f.accum <= 0:
		return usagef("--steps, --epochs, --batch-tokens and --accum must be positive")
	case f.onBadRow != chatdata.SkipBadRows && f.onBadRow != chatdata.FailOnBadRow:
		return usagef("--on-bad-row must be skip or fail, not %q", f.onBadRow)
	case f.evalFraction < 0 || f.evalFraction >= 1:
		return usagef("--eval-fraction must be in [0, 1)")
	}
	fl := cmd.Flags()
	if f.full {
		for _, name := range []string{"lora-rank", "lora-alpha", "lora-dropout", "targets", "merge"} {
			if fl.Changed(name) {
				return usagef("--%s is for LoRA training; it cannot be combined with --full", name)
			}
		}
	}
	kind, err := train.ParseSchedule(f.schedule)
	if err != nil {
		return usagef("--schedule: %v", err)
	}
	var targets []model.Proj
	if !f.full {
		if targets, err = lora.ParseTargets(f.targets); err != nil {
			return usagef("--targets: %v", err)
		}
	}
	if f.lr == 0 {
		f.lr = finetune.DefaultLoRALR
		if f.full {
			f.lr = finetune.DefaultFullLR
		}
	}
	ckptDir := filepath.Join(f.out, "checkpoint")
	if f.resume && !train.HasCheckpoint(ckptDir) {
		return fmt.Errorf("--resume: no checkpoint in %s", ckptDir)
	}
	if !f.resume && train.HasCheckpoint(ckptDir) {
		return fmt.Errorf("%s already holds a checkpoint: pass --resume to continue that run, or choose another --out", ckptDir)
	}
	if f.threads > 0 {
		kernels.SetThreads(f.threads)
	}
	ck, err := mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	m := ck.Model
	maxLen := m.Config.MaxSeq
	if f.maxLen > 0 {
		if maxLen > 0 && f.maxLen > maxLen {
			return usagef("--max-len %d exceeds the model's context of %d", f.maxLen, maxLen)
		}
		maxLen = f.maxLen
	}

	// Data.
	enc := sft.NewEncoder(ck.Template, ck.Tokenizer, ck.TemplateConfig, ck.HasTemplate)
	enc.LastTurnOnly = f.lastTurn
	skipped := 0
	warn := func(p chatdata.Problem) {
		skipped++
		if skipped <= 20 {
			fmt.Fprintf(e.stderr, "masque: skipping %v\n", p)
		} else if skipped == 21 {
			fmt.Fprintln(e.stderr, "masque: (further skipped rows are counted in training.json)")
		}
	}
	opts := sft.Options{Read: chatdata.ReadOptions{Format: f.format, System: f.system}, MaxLen: maxLen, Truncate: f.truncate,
		OnBadRow: f.onBadRow, EvalFraction: f.evalFraction, Seed: f.seed, Warn: warn}
	if f.evalData != "" {
		opts.EvalFraction = 0
	}
	ds, err := sft.Load(f.data, enc, opts)
	if err != nil {
		return err
	}
	evalSet := ds.Eval
	var evalSkipped []chatdata.Problem
	if f.evalData != "" {
		eo := opts
		eo.EvalFraction = 0
		eds, err := sft.Load(f.evalData, enc, eo)
		if err != nil {
			return err
		}
		evalSet, evalSkipped = eds.Train, eds.Skipped
	}
	fmt.Fprintf(e.stderr, "data: %d training rows, %d held out, %d skipped; %d tokens, %d trained on\n",
		len(ds.Train), len(evalSet), len(ds.Skipped)+len(evalSkipped), ds.Tokens, ds.Targets)

	// Train.
	cfg := train.Config{Steps: f.steps, Epochs: f.epochs, BatchTokens: f.batchTokens, Accum: f.accum, LR: f.lr,
		Schedule: train.Schedule{Kind: kind, MinRatio: f.minLR}, WeightDecay: f.weightDecay, ClipNorm: f.clip, Seed: f.seed,
		EvalEvery: f.evalEvery, CheckpointEvery: f.ckptEvery, CheckpointDir: ckptDir}
	lc := lora.Config{Rank: f.loraRank, Alpha: f.loraAlpha, Dropout: f.loraDropout, Targets: targets, BaseModel: ck.Path}
	if !f.full {
		if err := lc.Validate(); err != nil {
			return usagef("%v", err)
		}
	}
	var bar *progressbar.ProgressBar
	fc := finetune.Config{Model: m, Data: ds.Train, Eval: evalSet, Full: f.full, Train: cfg, Warmup: f.warmup, Resume: f.resume,
		Recompute: f.recompute, Threads: f.threads,
		LoRA: lc,
		Progress: func(p train.Progress) {
			if bar == nil {
				bar = progressbar.NewOptions(p.Total,
					progressbar.OptionSetWriter(e.stderr),
					progressbar.OptionSetDescription("training"),
					progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionSetElapsedTime(true),
					progressbar.OptionSetWidth(24),
					progressbar.OptionThrottle(200*time.Millisecond),
					progressbar.OptionShowDescriptionAtLineEnd(),
				)
			}
			desc := fmt.Sprintf("step %d/%d loss %.4f lr %.2e %.0f tok/s", p.Step, p.Total, p.Loss, p.LR, p.TokensPerSec)
			if !math.IsNaN(p.EvalLoss) {
				desc += fmt.Sprintf(" eval %.4f", p.EvalLoss)
			}
			bar.Describe(desc)
			_ = bar.Set(p.Step)
		}}
	mode := "full fine-tuning"
	if !f.full {
		mode = fmt.Sprintf("LoRA r=%d alpha=%g on %s", f.loraRank, f.loraAlpha, f.targets)
	}
	fc.Started = func(r *finetune.Result) {
		if f.resume {
			fmt.Fprintf(e.stderr, "resuming at step %d of %d\n", r.ResumedAt, r.Trainer.State.TotalSteps)
		}
		fmt.Fprintf(e.stderr, "%s: %d trainable parameters of %d; %d steps\n", mode, r.Net.NumTrainable(), m.NumParams(), r.Trainer.State.TotalSteps)
	}
	res, runErr := finetune.Run(cmd.Context(), fc)
	if bar != nil {
		if runErr == nil {
			_ = bar.Finish()
		} else {
			_ = bar.Exit()
		}
		fmt.Fprintln(e.stderr)
	}
	interrupted := res != nil && res.Interrupted
	if runErr != nil && !interrupted {
		return runErr
	}
	tr, net, adapter, initialEval, warm := res.Trainer, res.Net, res.Adapter, res.InitialEval, res.Warmup
	cfg.LR = res.LR

	// Outputs.
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	summary := map[string]any{
		"model": ck.Path, "data": f.data, "eval_data": f.evalData, "mode": mode,
		"trainable_parameters": net.NumTrainable(), "total_parameters": m.NumParams(),
		"rows": ds.Rows, "train_rows": len(ds.Train), "eval_rows": len(evalSet), "skipped_rows": problemsJSON(append(ds.Skipped, evalSkipped...)),
		"truncated_rows": ds.Truncated, "tokens": ds.Tokens, "trained_tokens": ds.Targets,
		"config": cfg, "warmup": warm, "lr": f.lr, "steps_done": tr.State.Step, "total_steps": tr.State.TotalSteps,
		"seconds": tr.State.Seconds, "history": tr.State.History, "interrupted": interrupted,
	}
	if initialEval != nil {
		summary["initial_eval_loss"] = *initialEval
	}
	var finalEval float64 = math.NaN()
	for _, p := range tr.State.History {
		if p.EvalLoss != nil {
			finalEval = *p.EvalLoss
		}
	}
	if !math.IsNaN(finalEval) {
		summary["eval_loss"] = finalEval
		summary["eval_perplexity"] = math.Exp(finalEval)
	}
	if !interrupted {
		if adapter != nil {
			if err := adapter.Save(f.out, map[string]any{"steps": tr.State.Step, "data": f.data}); err != nil {
				return err
			}
			summary["adapter"] = f.out
			if f.merge {
				mdir := filepath.Join(f.out, "merged")
				if err := hfsave.SaveMerged(adapter, m, mdir, hfsave.Options{DType: f.dtype}); err != nil {
					return err
				}
				summary["merged_model"] = mdir
				if m.Config.Arch == "llama2.c" {
					merged, err := adapter.Merged(m)
					if err != nil {
						return err
					}
					if err := saveLlama2C(merged, mdir, mf); err != nil {
						return err
					}
					summary["merged_model"] = filepath.Join(mdir, "model.bin")
				}
			}
		} else {
			if err := hfsave.Save(m, f.out, hfsave.Options{DType: f.dtype}); err != nil {
				return err
			}
			summary["model_out"] = f.out
			if m.Config.Arch == "llama2.c" {
				if err := saveLlama2C(m, f.out, mf); err != nil {
					return err
				}
				summary["model_out"] = filepath.Join(f.out, "model.bin")
			}
		}
	}
	js, err := json.MarshalIndent(summary, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(f.out, "training.json"), js); err != nil {
		return err
	}
	hist := tr.State.History
	if initialEval != nil {
		hist = append([]train.Point{{Step: 0, TrainLoss: math.NaN(), EvalLoss: initialEval}}, hist...)
	}
	if err := writeFileAtomic(filepath.Join(f.out, "loss.svg"), train.LossSVG(hist, "masque finetune: "+filepath.Base(f.data))); err != nil {
		return err
	}
	if interrupted {
		return fmt.Errorf("%v; continue with the same flags plus --resume", runErr)
	}
	e.printSummary(tr, initialEval, finalEval, f, adapter != nil)
	return nil
}

func (e *env) printSummary(tr *train.Trainer, initialEval *float64, finalEval float64, f *finetuneFlags, isLoRA bool) {
	h := tr.State.History
	w := e.stderr
	fmt.Fprintf(w, "done: %d steps in %s", tr.State.Step, (time.Duration(tr.State.Seconds) * time.Second).String())
	if tr.State.Seconds > 0 {
		fmt.Fprintf(w, " (%.0f tokens/s)", float64(tr.State.Tokens)/tr.State.Seconds)
	}
	fmt.Fprintln(w)
	if len(h) > 0 {
		fmt.Fprintf(w, "train loss: %.4f (step 1) → %.4f (step %d)\n", h[0].TrainLoss, h[len(h)-1].TrainLoss, h[len(h)-1].Step)
	}
	if !math.IsNaN(finalEval) {
		if initialEval != nil {
			fmt.Fprintf(w, "held-out loss: %.4f → %.4f (perplexity %.2f → %.2f)\n", *initialEval, finalEval, math.Exp(*initialEval), math.Exp(finalEval))
		} else {
			fmt.Fprintf(w, "held-out loss: %.4f (perplexity %.2f)\n", finalEval, math.Exp(finalEval))
		}
	}
	what := "model"
	if isLoRA {
		what = "adapter"
	}
	fmt.Fprintf(w, "%s written to %s; curves in %s\n", what, f.out, strings.Join([]string{filepath.Join(f.out, "loss.svg"), filepath.Join(f.out, "training.json")}, ", "))
}

// saveLlama2C also writes a model that came from a llama2.c checkpoint in
// that format (dir/model.bin) with its tokenizer (dir/tokenizer.bin), since
// its tokenizer has no Hugging Face form: `--model dir/model.bin` then loads it.
func saveLlama2C(m *model.Model, dir string, mf *modelFlags) error {
	if err := hfsave.SaveLlama2C(m, filepath.Join(dir, "model.bin")); err != nil {
		return err
	}
	var tok []byte
	switch {
	case mf.tokenizer != "":
		b, err := os.ReadFile(mf.tokenizer)
		if err != nil {
			return err
		}
		tok = b
	case mf.model == builtin.Stories:
		tok = builtin.Tokenizer
	default:
		b, err := os.ReadFile(filepath.Join(filepath.Dir(mf.model), "tokenizer.bin"))
		if err != nil {
			return err
		}
		tok = b
	}
	return writeFileAtomic(filepath.Join(dir, "tokenizer.bin"), tok)
}

func problemsJSON(ps []chatdata.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Error()
	}
	return out
}

func writeFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
