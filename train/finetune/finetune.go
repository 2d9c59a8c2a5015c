// Package finetune is supervised fine-tuning on encoded chat sequences: a
// LoRA adapter on a frozen model, or every parameter (full fine-tuning),
// trained with the training engine's Trainer (AdamW, warm-up and schedule,
// gradient accumulation, held-out evaluation, resumable checkpoints).
//
// It is the pipeline behind `masque finetune` and sculpt's recovery
// fine-tuning; reading the data (train/sft) and writing the results
// (adapter, merged or full model) stay with the caller, which knows its
// formats.
package finetune

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
)

// Config is one fine-tuning run.
type Config struct {
	// Model is trained: with Full its parameters are replaced by the
	// trained float32 copies (memory-mapped or shared weights are never
	// written to); otherwise it stays frozen and an adapter is trained.
	Model *model.Model
	// Data are the training sequences (targets on the assistant tokens),
	// Eval the held-out ones (may be empty).
	Data, Eval []train.Sequence
	// Full trains every parameter; otherwise a LoRA adapter with LoRA's
	// settings (its Targets must be set) seeded with Train.Seed.
	Full bool
	LoRA lora.Config
	// Train holds the steps or epochs, batching, learning rate and
	// schedule, AdamW, clipping, seed, evaluation and checkpoint settings.
	// Train.LR 0 means 2e-4 for LoRA and 2e-5 for full fine-tuning.
	Train train.Config
	// Warmup steps of the schedule (< 0: 3 % of the steps, rounded up).
	Warmup int
	// Resume continues from the checkpoint in Train.CheckpointDir (an
	// error when there is none); without it an existing checkpoint there
	// is an error too.
	Resume bool
	// Recompute trades a third more compute for less activation memory;
	// Threads bounds the engine's goroutines (≤ 0: GOMAXPROCS).
	Recompute bool
	Threads   int
	// Started, if set, is called once the trainer is ready (and resumed or
	// evaluated), before the first step; Progress after every step.
	Started  func(*Result)
	Progress func(train.Progress)
}

// Default learning rates.
const (
	DefaultLoRALR = 2e-4
	DefaultFullLR = 2e-5
)

// Result is a finished (or interrupted) run.
type Result struct {
	Trainer *train.Trainer
	Net     *train.Net
	// Adapter is the trained LoRA adapter (nil for full fine-tuning).
	Adapter *lora.Adapter
	// LR and Warmup are the values used.
	LR     float64
	Warmup int
	// ResumedAt is the step the run resumed at (0 for a fresh run).
	ResumedAt int
	// InitialEval is the held-out loss before training (nil when resumed
	// or without held-out data); FinalEval the last one measured (NaN if
	// none).
	InitialEval *float64
	FinalEval   float64
	// Interrupted is set when the context was cancelled; the checkpoint
	// (if a folder was given) holds the progress.
	Interrupted bool
}

// Mode describes the run ("full fine-tuning" or "LoRA r=… alpha=…").
func (r *Result) Mode() string {
	if r.Adapter == nil {
		return "full fine-tuning"
	}
	c := r.Adapter.Config
	return fmt.Sprintf("LoRA r=%d alpha=%g", c.Rank, c.Alpha)
}

// Model returns the fine-tuned model: the trained model itself (full), or
// a copy with the adapter merged in (LoRA; the base stays unchanged).
func (r *Result) Model() (*model.Model, error) {
	if r.Adapter == nil {
		return r.Net.Model, nil
	}
	return r.Adapter.Merged(r.Net.Model)
}

// Run fine-tunes cfg.Model. When ctx is cancelled it saves the checkpoint
// (if Train.CheckpointDir is set) and returns the partial result with
// Interrupted set and an error wrapping train.ErrInterrupted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Model == nil {
		return nil, errors.New("finetune: no model")
	}
	if len(cfg.Data) == 0 {
		return nil, errors.New("finetune: no training sequences with assistant tokens")
	}
	tc := cfg.Train
	if tc.Steps < 0 || tc.Epochs < 0 || tc.BatchTokens < 0 || tc.Accum < 0 {
		return nil, fmt.Errorf("finetune: steps, epochs, batch tokens and accumulation must not be negative")
	}
	if tc.LR == 0 {
		tc.LR = DefaultLoRALR
		if cfg.Full {
			tc.LR = DefaultFullLR
		}
	}
	ckDir := tc.CheckpointDir
	has := ckDir != "" && train.HasCheckpoint(ckDir)
	switch {
	case cfg.Resume && !has:
		return nil, fmt.Errorf("finetune: resume: no checkpoint in %s", ckDir)
	case !cfg.Resume && has:
		return nil, fmt.Errorf("finetune: %s already holds a checkpoint: resume that run, or choose another output folder", ckDir)
	}
	res := &Result{LR: tc.LR, FinalEval: math.NaN()}
	opts := train.Options{Full: cfg.Full, Recompute: cfg.Recompute, Threads: cfg.Threads}
	if !cfg.Full {
		a, err := lora.New(cfg.Model, cfg.LoRA, tc.Seed)
		if err != nil {
			return nil, fmt.Errorf("finetune: %w", err)
		}
		res.Adapter, opts.Adapter = a, a
	}
	net, err := train.New(cfg.Model, opts)
	if err != nil {
		return nil, err
	}
	res.Net = net
	tr, err := train.NewTrainer(net, tc, cfg.Data, cfg.Eval)
	if err != nil {
		return nil, err
	}
	res.Trainer = tr
	res.Warmup = cfg.Warmup
	if res.Warmup < 0 {
		res.Warmup = int(math.Ceil(0.03 * float64(tr.State.TotalSteps)))
	}
	tr.Cfg.Schedule.Warmup = res.Warmup
	if cfg.Resume {
		if err := tr.LoadCheckpoint(ckDir); err != nil {
			return nil, err
		}
		res.ResumedAt = tr.State.Step
	} else if len(cfg.Eval) > 0 {
		r, err := tr.Evaluate()
		if err != nil {
			return nil, err
		}
		v := r.Mean()
		res.InitialEval = &v
	}
	if cfg.Started != nil {
		cfg.Started(res)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(train.Progress) {}
	}
	runErr := tr.Run(ctx, progress)
	for _, p := range tr.State.History {
		if p.EvalLoss != nil {
			res.FinalEval = *p.EvalLoss
		}
	}
	if errors.Is(runErr, train.ErrInterrupted) {
		res.Interrupted = true
		return res, runErr
	}
	if runErr != nil {
		return nil, runErr
	}
	return res, nil
}
