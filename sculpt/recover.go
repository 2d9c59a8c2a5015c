package sculpt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/finetune"
)

// Recovery modes (METHODS.md §1: "optional recovery fine-tuning on the
// same data"; the recipe is unpublished).
const (
	RecoverLoRA = "lora"
	RecoverFull = "full"
)

// Recovery defaults.
const (
	DefaultRecoverSteps    = 100
	DefaultRecoverLoRARank = 16
)

// RecoverConfig is the optional recovery fine-tuning of the exported
// model, on the run's training data (held-out loss on its Valid rows),
// with package finetune.
type RecoverConfig struct {
	// Mode is RecoverLoRA (an adapter on every projection, merged into
	// the recovered model) or RecoverFull (every parameter).
	Mode string
	// Steps of AdamW (default DefaultRecoverSteps); LR is the peak rate
	// (default finetune's: 2e-4 LoRA, 2e-5 full), cosine to 10 % after a
	// 3 % warm-up.
	Steps int
	LR    float64
	// BatchTokens per step (default the mask learning's).
	BatchTokens int
	// LoRARank and LoRAAlpha (defaults DefaultRecoverLoRARank and the
	// rank).
	LoRARank  int
	LoRAAlpha float64
}

// RecoverInfo is what the recovery did (run.json's "recovery").
type RecoverInfo struct {
	Mode        string  `json:"mode"`
	Steps       int     `json:"steps"`
	LR          float64 `json:"lr"`
	BatchTokens int     `json:"batch_tokens"`
	LoRARank    int     `json:"lora_rank,omitempty"`
	LoRAAlpha   float64 `json:"lora_alpha,omitempty"`
	Trainable   int64   `json:"trainable_parameters"`
	// ValidLoss before and after the recovery (nil without held-out
	// rows); TrainLoss of the first and the last step.
	InitValidLoss  *float64      `json:"init_valid_loss"`
	ValidLoss      *float64      `json:"valid_loss"`
	InitValidPPL   *float64      `json:"init_valid_ppl"`
	ValidPPL       *float64      `json:"valid_ppl"`
	FirstTrainLoss float64       `json:"first_train_loss"`
	LastTrainLoss  float64       `json:"last_train_loss"`
	Seconds        float64       `json:"seconds"`
	Model          string        `json:"model"`
	GGUF           string        `json:"gguf,omitempty"`
	GGUFSkipped    string        `json:"gguf_skipped,omitempty"`
	History        []train.Point `json:"history"`
}

// Recovery files in a run folder: the recovered model, whole (written
// beside it, then moved in), and the recovery's checkpoint.
const (
	RecoveredDir    = "recovered"
	recoverCkptDir  = "recover-checkpoint"
	recoveredGGUF   = "model.gguf"
	recoveredHFPart = "model"
)

func (rc *RecoverConfig) defaults(batchTokens int) error {
	switch rc.Mode {
	case RecoverLoRA, RecoverFull:
	default:
		return fmt.Errorf("sculpt: recovery mode %q (want %s or %s)", rc.Mode, RecoverLoRA, RecoverFull)
	}
	if rc.Steps == 0 {
		rc.Steps = DefaultRecoverSteps
	}
	if rc.Steps < 0 {
		return fmt.Errorf("sculpt: recovery steps %d must be positive", rc.Steps)
	}
	if rc.LR < 0 || math.IsNaN(rc.LR) || math.IsInf(rc.LR, 0) {
		return fmt.Errorf("sculpt: recovery learning rate %v must be positive", rc.LR)
	}
	if rc.BatchTokens <= 0 {
		rc.BatchTokens = batchTokens
	}
	if rc.LoRARank == 0 {
		rc.LoRARank = DefaultRecoverLoRARank
	}
	if rc.LoRAAlpha == 0 {
		rc.LoRAAlpha = float64(rc.LoRARank)
	}
	return nil
}

// Recover fine-tunes sm (the exported smaller model of ck's model) on
// data and writes the recovered model whole to dir/recovered (a Hugging
// Face folder under model/, and model.gguf when the architecture allows).
// An interrupted recovery saves its checkpoint in dir/recover-checkpoint
// and returns an error wrapping ErrInterrupted; resume continues it.
func Recover(ctx context.Context, ck *checkpoint.Checkpoint, sm *model.Model, data *Data, rc RecoverConfig, dir string, resume bool,
	o ExportOptions, threads int, progress func(train.Progress)) (*RecoverInfo, error) {
	if data == nil || len(data.Train) == 0 {
		return nil, errors.New("sculpt: recovery: no training data")
	}
	if err := rc.defaults(DefaultBatchTokens); err != nil {
		return nil, err
	}
	start := time.Now()
	ckDir := filepath.Join(dir, recoverCkptDir)
	cfg := finetune.Config{Model: sm, Data: data.Train, Eval: data.Valid, Full: rc.Mode == RecoverFull, Warmup: -1, Threads: threads,
		Resume: resume && train.HasCheckpoint(ckDir), Progress: progress,
		LoRA: lora.Config{Rank: rc.LoRARank, Alpha: rc.LoRAAlpha, BaseModel: "sculpt export of " + ck.Path,
			Targets: []model.Proj{model.ProjQ, model.ProjK, model.ProjV, model.ProjO, model.ProjGate, model.ProjUp, model.ProjDown}},
		Train: train.Config{Steps: rc.Steps, LR: rc.LR, BatchTokens: rc.BatchTokens, Schedule: train.Schedule{Kind: "cosine", MinRatio: 0.1},
			ClipNorm: 1, Seed: 1, EvalEvery: max(1, rc.Steps/10), CheckpointDir: ckDir}}
	res, err := finetune.Run(ctx, cfg)
	if err != nil {
		if res != nil && res.Interrupted {
			return nil, fmt.Errorf("%w: recovery fine-tuning %v; resume to continue", ErrInterrupted, err)
		}
		return nil, fmt.Errorf("sculpt: recovery: %w", err)
	}
	tuned, err := res.Model()
	if err != nil {
		return nil, fmt.Errorf("sculpt: recovery: %w", err)
	}
	info := &RecoverInfo{Mode: rc.Mode, Steps: res.Trainer.State.Step, LR: res.LR, BatchTokens: rc.BatchTokens, Trainable: res.Net.NumTrainable(),
		ValidLoss: nanNil(res.FinalEval), ValidPPL: expNil(res.FinalEval), History: res.Trainer.State.History}
	if rc.Mode == RecoverLoRA {
		info.LoRARank, info.LoRAAlpha = rc.LoRARank, rc.LoRAAlpha
	}
	if res.InitialEval != nil {
		info.InitValidLoss, info.InitValidPPL = nanNil(*res.InitialEval), expNil(*res.InitialEval)
	}
	if h := res.Trainer.State.History; len(h) > 0 {
		info.FirstTrainLoss, info.LastTrainLoss = h[0].TrainLoss, h[len(h)-1].TrainLoss
	}
	// Write the recovered model beside its place, then move it in, so that
	// dir/recovered is either the whole recovered model or absent.
	final := filepath.Join(dir, RecoveredDir)
	stage, err := os.MkdirTemp(dir, "."+RecoveredDir+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("sculpt: recovery: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := SaveModel(ck, tuned, filepath.Join(stage, recoveredHFPart), o); err != nil {
		return nil, err
	}
	if !o.NoGGUF {
		if err := SaveGGUF(ck, tuned, filepath.Join(stage, recoveredGGUF), o.GGUFType); err != nil {
			info.GGUFSkipped = err.Error()
		} else {
			info.GGUF = filepath.Join(final, recoveredGGUF)
		}
	}
	info.Model = filepath.Join(final, recoveredHFPart)
	if err := os.RemoveAll(final); err != nil {
		return nil, fmt.Errorf("sculpt: recovery: %w", err)
	}
	if err := os.Rename(stage, final); err != nil {
		return nil, fmt.Errorf("sculpt: recovery: %w", err)
	}
	if err := os.RemoveAll(ckDir); err != nil {
		return nil, fmt.Errorf("sculpt: recovery: %w", err)
	}
	info.Seconds = time.Since(start).Seconds()
	return info, nil
}

// ParseRecover checks a recovery mode name ("" is none).
func ParseRecover(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return "", nil
	case RecoverLoRA:
		return RecoverLoRA, nil
	case RecoverFull:
		return RecoverFull, nil
	}
	return "", fmt.Errorf("unknown recovery %q (want %s or %s)", s, RecoverLoRA, RecoverFull)
}
