package cli

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/finetune"
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
	lrVar(fl, &f.lr, "lr", "peak learning rate (default 2e-4 for LoRA, 2e-5 for --full; must be positive)")
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
	e.quietFlag(c)
	return c
}

func (e *env) runFinetune(cmd *cobra.Command, mf *modelFlags, f *finetuneFlags) error {
	cfg, err := f.job(cmd)
	if err != nil {
		return err
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
	cfg.Model, cfg.ModelPath, cfg.LoRA.BaseModel, cfg.Read.MaxLen = m, ck.Path, ck.Path, maxLen
	cfg.Encoder = sft.NewEncoder(ck.Template, ck.Tokenizer, ck.TemplateConfig, ck.HasTemplate)
	cfg.Encoder.LastTurnOnly = f.lastTurn
	cfg.Llama2CTokenizer = func() ([]byte, error) {
		_, b, err := ck.Llama2CTokenizer(mf.tokenizer)
		return b, err
	}
	cfg.Logf = e.logf
	bar := e.trainBar("training")
	cfg.Progress = bar.update
	res, err := finetune.RunJob(cmd.Context(), cfg)
	bar.done()
	if res != nil && res.Interrupted {
		return fmt.Errorf("%v; continue with the same flags plus --resume", err)
	}
	if err != nil {
		return err
	}
	e.printSummary(res.Trainer, res.InitialEval, res.LastEval(), f, res.Adapter != nil)
	return nil
}

// job checks the flags and fills the job's settings (the model and its
// encoder come later).
func (f *finetuneFlags) job(cmd *cobra.Command) (finetune.JobConfig, error) {
	var cfg finetune.JobConfig
	switch {
	case f.data == "":
		return cfg, usagef("--data is required")
	case f.out == "":
		return cfg, usagef("--out is required")
	case f.steps > 0 && f.epochs > 0:
		return cfg, usagef("give --steps or --epochs, not both")
	case f.steps < 0 || f.epochs < 0 || f.batchTokens <= 0 || f.accum <= 0:
		return cfg, usagef("--steps, --epochs, --batch-tokens and --accum must be positive")
	case f.onBadRow != chatdata.SkipBadRows && f.onBadRow != chatdata.FailOnBadRow:
		return cfg, usagef("--on-bad-row must be skip or fail, not %q", f.onBadRow)
	case f.evalFraction < 0 || f.evalFraction >= 1:
		return cfg, usagef("--eval-fraction must be in [0, 1)")
	}
	if f.full {
		for _, name := range []string{"lora-rank", "lora-alpha", "lora-dropout", "targets", "merge"} {
			if cmd.Flags().Changed(name) {
				return cfg, usagef("--%s is for LoRA training; it cannot be combined with --full", name)
			}
		}
	}
	kind, err := train.ParseSchedule(f.schedule)
	if err != nil {
		return cfg, usagef("--schedule: %v", err)
	}
	var targets []model.Proj
	if !f.full {
		if targets, err = lora.ParseTargets(f.targets); err != nil {
			return cfg, usagef("--targets: %v", err)
		}
	}
	if f.lr == 0 {
		f.lr = finetune.DefaultLoRALR
		if f.full {
			f.lr = finetune.DefaultFullLR
		}
	}
	lc := lora.Config{Rank: f.loraRank, Alpha: f.loraAlpha, Dropout: f.loraDropout, Targets: targets}
	if !f.full {
		if err := lc.Validate(); err != nil {
			return cfg, usagef("%v", err)
		}
	}
	cfg.Config = finetune.Config{Full: f.full, LoRA: lc, Warmup: f.warmup, Resume: f.resume, Recompute: f.recompute, Threads: f.threads,
		Train: train.Config{Steps: f.steps, Epochs: f.epochs, BatchTokens: f.batchTokens, Accum: f.accum, LR: f.lr,
			Schedule: train.Schedule{Kind: kind, MinRatio: f.minLR}, WeightDecay: f.weightDecay, ClipNorm: f.clip, Seed: f.seed,
			EvalEvery: f.evalEvery, CheckpointEvery: f.ckptEvery}}
	cfg.Targets, cfg.Data, cfg.EvalData, cfg.Out, cfg.Merge, cfg.DType = f.targets, f.data, f.evalData, f.out, f.merge, f.dtype
	cfg.Read = sft.Options{Read: chatdata.ReadOptions{Format: f.format, System: f.system}, Truncate: f.truncate,
		OnBadRow: f.onBadRow, EvalFraction: f.evalFraction, Seed: f.seed}
	return cfg, nil
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
