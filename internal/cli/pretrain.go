package cli

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/train/pretrain"
)

func (e *env) pretrainCmd() *cobra.Command {
	cfg := pretrain.DefaultConfig()
	var steps int
	c := &cobra.Command{
		Use:   "pretrain --corpus DIR --tokenizer DIR --out DIR [flags]",
		Short: "Train a new Llama-family model from scratch on a corpus",
		Long: `pretrain initialises a new Llama model (grouped-query attention, tied embeddings,
RoPE, RMSNorm, SiLU MLP) and trains it from scratch.

Data: --corpus is a voices corpus folder (personas.json, VOICE/train.jsonl,
VOICE/valid.jsonl; see masque corpus voices); --data adds JSONL rows ("text"
and/or "messages") or .txt files (documents separated by lines holding only
<|endoftext|>). Rows that have both views are trained as chat (the chat
template of --tokenizer; loss on the assistant turns and their <|im_end|>) with
probability --chat-ratio, otherwise as plain text (<|endoftext|> + the text;
loss on every token). Documents longer than --seq-len are split; a micro-batch
packs whole documents up to --batch-tokens, each attending only to itself.

Model: --preset (voices-tiny, voices-small ≈ 5M, voices-base ≈ 12.6M parameters
with an 8k vocabulary) or --config config.json (a Hugging Face LlamaForCausalLM
config); the vocabulary is the tokenizer's. Weights start from N(0, 0.02), the
residual output projections (o_proj, down_proj) from N(0, 0.02/√(2·layers)).

Training: AdamW (β 0.9/0.95, weight decay on matrices), linear warm-up then a
cosine decay that reaches --min-lr on the last step, gradient clipping and
accumulation. Every --eval-every steps each voice's validation loss is measured.
DIR/checkpoint is saved every --checkpoint-every steps, on Ctrl-C or SIGTERM and
at the end; --resume continues a run (after a crash, kill -9 included) with the
same result bit for bit as if it had not stopped.

Output: DIR is a Hugging Face folder (config.json, model.safetensors in bf16 or
f32, tokenizer files, generation_config.json) plus run.json (recipe, data, losses,
throughput with model FLOPs utilisation) and loss.svg (train and per-voice
validation curves).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Steps = steps
			return e.runPretrain(cmd, cfg)
		},
	}
	fl := c.Flags()
	fl.StringVar(&cfg.CorpusDir, "corpus", "", "voices corpus folder (VOICE/train.jsonl, VOICE/valid.jsonl)")
	fl.StringSliceVar(&cfg.DataFiles, "data", nil, "more training files: JSONL (text and/or messages) or .txt (repeatable)")
	fl.StringSliceVar(&cfg.ValidFiles, "valid", nil, "more validation files, each its own curve (repeatable)")
	fl.StringVar(&cfg.TokenizerDir, "tokenizer", "", "tokenizer folder: tokenizer.json + tokenizer_config.json with a chat_template (required)")
	fl.StringVar(&cfg.Preset, "preset", cfg.Preset, "model shape: "+strings.Join(pretrain.PresetNames(), ", "))
	fl.StringVar(&cfg.ModelConfig, "config", "", "a Hugging Face config.json for the model's shape (instead of --preset)")
	fl.StringVar(&cfg.OutDir, "out", "", "output folder (required)")
	fl.IntVar(&cfg.SeqLen, "seq-len", cfg.SeqLen, "longest document in tokens (longer ones are split) and the model's context")
	fl.IntVar(&cfg.BatchTokens, "batch-tokens", 0, "token budget of one micro-batch (default 8 × --seq-len)")
	fl.IntVar(&cfg.Accum, "accum", cfg.Accum, "micro-batches per optimiser step")
	fl.IntVar(&steps, "steps", 0, "optimiser steps (default: one pass over the data)")
	lrVar(fl, &cfg.LR, "lr", "peak learning rate (must be positive)")
	fl.Float64Var(&cfg.MinLR, "min-lr", 0, "final learning rate, reached on the last step (default --lr/10)")
	fl.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "warm-up steps (negative: 2% of the steps)")
	fl.Float64Var(&cfg.WeightDecay, "weight-decay", cfg.WeightDecay, "AdamW decoupled weight decay on the matrices (0: none)")
	fl.Float64Var(&cfg.Beta2, "beta2", cfg.Beta2, "AdamW β2")
	fl.Float64Var(&cfg.ClipNorm, "clip", cfg.ClipNorm, "clip the global gradient norm to this (0: off)")
	fl.Float64Var(&cfg.ChatRatio, "chat-ratio", cfg.ChatRatio, "fraction of rows trained as chat (the rest as plain text)")
	fl.IntVar(&cfg.EvalEvery, "eval-every", 100, "validation loss per voice every N steps (0: at the end only)")
	fl.IntVar(&cfg.EvalTokens, "eval-tokens", cfg.EvalTokens, "validation tokens per voice (a seeded sample; -1: all)")
	fl.IntVar(&cfg.CheckpointEvery, "checkpoint-every", 100, "save DIR/checkpoint every N steps (0: only on interrupt and at the end)")
	fl.BoolVar(&cfg.Resume, "resume", false, "continue the run in DIR/checkpoint (same flags; --steps may grow)")
	fl.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the initialisation, the chat/text choice, the data order and the validation samples")
	fl.IntVar(&cfg.Threads, "threads", 0, "threads (default: all CPUs)")
	fl.StringVar(&cfg.DType, "dtype", cfg.DType, "element type of the written model: bf16 or f32")
	e.quietFlag(c)
	return c
}

func (e *env) runPretrain(cmd *cobra.Command, cfg pretrain.Config) error {
	switch {
	case cfg.CorpusDir == "" && len(cfg.DataFiles) == 0:
		return usagef("--corpus or --data is required")
	case cfg.TokenizerDir == "":
		return usagef("--tokenizer is required")
	case cfg.OutDir == "":
		return usagef("--out is required")
	}
	fl := cmd.Flags()
	if fl.Changed("config") && !fl.Changed("preset") {
		cfg.Preset = ""
	}
	if fl.Changed("weight-decay") && cfg.WeightDecay == 0 {
		cfg.WeightDecay = -1 // none
	}
	if fl.Changed("clip") && cfg.ClipNorm == 0 {
		cfg.ClipNorm = -1 // off
	}
	if cfg.EvalTokens < 0 {
		cfg.EvalTokens = -1
	}
	cfg.Command = "masque " + strings.Join(os.Args[1:], " ")
	cfg.Log = e.stderr
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bar := e.meter("training", "")
	bar.every = 30 * time.Second
	cfg.Progress = func(p pretrain.Progress) {
		desc := fmt.Sprintf("step %d/%d loss %.4f lr %.2e %.0f tok/s MFU %.1f%% (CPU time %.1f%%) ETA %s", p.Step, p.Total, p.Loss, p.LR,
			p.TrainTokensPerSec, 100*p.MFU, 100*p.MFUCPU, p.ETA.Round(time.Second))
		bar.describe(desc)
		bar.set(int64(p.Step), int64(p.Total))
		if !math.IsNaN(p.EvalLoss) {
			bar.logf("%s", desc+fmt.Sprintf(" | valid %.4f:", p.EvalLoss)+groupLosses(p.EvalGroups))
		}
	}
	res, err := pretrain.Run(ctx, cfg)
	bar.end()
	if errors.Is(err, pretrain.ErrInterrupted) {
		return fmt.Errorf("%v; continue with the same flags plus --resume", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "done: %d steps, %d tokens; %.0f tokens/s, MFU %.1f%% (by CPU time %.1f%%; %.2f MFLOP/token, peak %.1f GFLOP/s)\n",
		res.Steps, res.Tokens, res.TokensPerSec, 100*res.MFU, 100*res.MFUCPU, res.FlopsPerToken/1e6, res.PeakFLOPS/1e9)
	if res.EvalLoss != nil {
		fmt.Fprintf(e.stderr, "validation loss %.4f:%s\n", res.EvalLossAll, groupLosses(res.EvalLoss))
	}
	fmt.Fprintf(e.stderr, "model written to %s; run.json and loss.svg there, checkpoint in %s\n", res.OutDir, filepath.Join(res.OutDir, "checkpoint"))
	return nil
}

func groupLosses(m map[string]float64) string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, " %s %.3f", k, m[k])
	}
	return b.String()
}
