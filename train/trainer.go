package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/safetensors"
)

// ErrInterrupted is returned by Trainer.Run when its context is cancelled;
// a checkpoint was saved first if the trainer has a checkpoint folder.
var ErrInterrupted = errors.New("training interrupted")

// Config is the recipe of a training run.
type Config struct {
	// Steps is the number of optimiser steps; 0 means Epochs passes over the
	// training data.
	Steps int
	// Epochs is used when Steps is 0 (default 1).
	Epochs float64
	// BatchTokens is the token budget of one micro-batch: sequences are
	// packed in shuffled order until the next would exceed it (a longer
	// sequence goes alone). Default 4096.
	BatchTokens int
	// Accum is the number of micro-batches per optimiser step (gradient
	// accumulation; default 1). The loss of a step is the mean over all
	// counted tokens of its micro-batches.
	Accum int
	// LR is the peak learning rate; Schedule shapes it (Total is filled in).
	LR       float64
	Schedule Schedule
	// AdamW settings (zero: PyTorch's defaults; WeightDecay 0 is none).
	Beta1, Beta2, Eps, WeightDecay float64
	// ClipNorm clips the global gradient norm (≤ 0: no clipping).
	ClipNorm float64
	// Seed fixes the data order and the dropout masks.
	Seed uint64
	// EvalEvery evaluates the held-out set every so many steps (0: at the
	// end only).
	EvalEvery int
	// CheckpointEvery saves a checkpoint every so many steps (0: only when
	// interrupted); needs CheckpointDir.
	CheckpointEvery int
	// CheckpointDir is where checkpoints go ("" = none).
	CheckpointDir string
}

// Point is one entry of the loss history.
type Point struct {
	Step      int      `json:"step"`
	TrainLoss float64  `json:"train_loss"`
	EvalLoss  *float64 `json:"eval_loss,omitempty"`
	// EvalGroups holds the held-out loss of each named evaluation set
	// (Trainer.EvalSets) where it was measured.
	EvalGroups map[string]float64 `json:"eval_groups,omitempty"`
	LR         float64            `json:"lr"`
	GradNorm   float64            `json:"grad_norm"`
	Tokens     int64              `json:"tokens"`
	Seconds    float64            `json:"seconds"`
}

// State is the resumable progress of a run (state.json of a checkpoint).
type State struct {
	Step        int     `json:"step"`
	Epoch       int     `json:"epoch"`
	Batch       int     `json:"batch"`
	Counter     uint64  `json:"dropout_counter"`
	Tokens      int64   `json:"tokens"`
	AdamSteps   int64   `json:"adam_steps"`
	TotalSteps  int     `json:"total_steps"`
	Seconds     float64 `json:"seconds"`
	Fingerprint string  `json:"fingerprint"`
	History     []Point `json:"history"`
}

// Progress is reported after every optimiser step.
type Progress struct {
	Step, Total int
	Loss        float64 // mean train loss of the step
	EvalLoss    float64 // NaN unless evaluated at this step
	// EvalGroups is the loss of each named evaluation set when evaluated at
	// this step (nil otherwise).
	EvalGroups   map[string]float64
	LR, GradNorm float64
	Tokens       int64   // tokens processed so far
	TokensPerSec float64 // over this run (not counting resumed time)
	Elapsed      time.Duration
	// StepTime is the time of this optimiser step alone (forward, backward,
	// update), without evaluation or checkpointing.
	StepTime time.Duration
}

// EvalSet is a named held-out set (one voice, one domain, …).
type EvalSet struct {
	Name string
	Seqs []Sequence
}

// Trainer runs the optimisation loop over a Net.
type Trainer struct {
	Net   *Net
	Opt   *AdamW
	Cfg   Config
	Train []Sequence
	Eval  []Sequence
	// EvalSets, if set, are evaluated instead of Eval, each on its own: the
	// history records each set's loss (Point.EvalGroups) and, as EvalLoss,
	// the loss over all their counted tokens together.
	EvalSets []EvalSet
	State    State

	epochBatches [][]Sequence
	epochOf      int
}

// NewTrainer checks cfg, fills in its defaults and makes the optimiser.
func NewTrainer(n *Net, cfg Config, trainSet, evalSet []Sequence) (*Trainer, error) {
	if len(trainSet) == 0 {
		return nil, fmt.Errorf("train: no training sequences")
	}
	if len(n.Params()) == 0 {
		return nil, fmt.Errorf("train: nothing to train (no trainable parameters or adapters)")
	}
	if cfg.BatchTokens <= 0 {
		cfg.BatchTokens = 4096
	}
	if cfg.Accum <= 0 {
		cfg.Accum = 1
	}
	if cfg.Epochs <= 0 {
		cfg.Epochs = 1
	}
	if !(cfg.LR > 0) || math.IsInf(cfg.LR, 0) {
		return nil, fmt.Errorf("train: learning rate %g must be positive", cfg.LR)
	}
	kind, err := ParseSchedule(cfg.Schedule.Kind)
	if err != nil {
		return nil, err
	}
	cfg.Schedule.Kind = kind
	t := &Trainer{Net: n, Cfg: cfg, Train: trainSet, Eval: evalSet, epochOf: -1}
	t.Opt = NewAdamW(n.Params(), cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay)
	// Cfg records the values in use, not the zeros that asked for defaults.
	t.Cfg.Beta1, t.Cfg.Beta2, t.Cfg.Eps = t.Opt.Beta1, t.Opt.Beta2, t.Opt.Eps
	if cfg.Steps > 0 {
		t.State.TotalSteps = cfg.Steps
	} else {
		perEpoch := (len(t.batches(0)) + cfg.Accum - 1) / cfg.Accum
		t.State.TotalSteps = max(1, int(math.Ceil(cfg.Epochs*float64(perEpoch))))
	}
	t.Cfg.Schedule.Total = t.State.TotalSteps
	t.State.Fingerprint = t.fingerprint()
	n.Seed = cfg.Seed
	return t, nil
}

// fingerprint identifies the data and batching, so a checkpoint is not
// resumed on a different run.
func (t *Trainer) fingerprint() string {
	h := sha256.New()
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	put(uint64(t.Cfg.BatchTokens))
	put(uint64(t.Cfg.Accum))
	put(t.Cfg.Seed)
	put(uint64(len(t.Train)))
	for _, s := range t.Train {
		put(uint64(len(s.Tokens)))
		for i, tok := range s.Tokens {
			put(uint64(tok)<<32 | uint64(uint32(s.Targets[i])))
		}
	}
	for _, p := range t.Net.Params() {
		h.Write([]byte(p.Name))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Batches packs seqs into micro-batches of at most budget tokens, in the
// order given by a shuffle seeded with (seed, epoch). A sequence longer than
// the budget forms a batch of its own.
func Batches(seqs []Sequence, budget int, seed uint64, epoch int) [][]Sequence {
	order := make([]int, len(seqs))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)+0x5eed))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var out [][]Sequence
	var cur []Sequence
	tokens := 0
	for _, i := range order {
		s := seqs[i]
		if len(cur) > 0 && tokens+len(s.Tokens) > budget {
			out = append(out, cur)
			cur, tokens = nil, 0
		}
		cur = append(cur, s)
		tokens += len(s.Tokens)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (t *Trainer) batches(epoch int) [][]Sequence {
	if t.epochOf != epoch {
		t.epochBatches = Batches(t.Train, t.Cfg.BatchTokens, t.Cfg.Seed, epoch)
		t.epochOf = epoch
	}
	return t.epochBatches
}

// nextBatch returns the next micro-batch and advances the data position.
func (t *Trainer) nextBatch() []Sequence {
	bs := t.batches(t.State.Epoch)
	if t.State.Batch >= len(bs) {
		t.State.Epoch++
		t.State.Batch = 0
		bs = t.batches(t.State.Epoch)
	}
	b := bs[t.State.Batch]
	t.State.Batch++
	return b
}

// Evaluate returns the held-out loss over Eval (sum, count), in
// micro-batches of the configured token budget.
func (t *Trainer) Evaluate() (Result, error) {
	return EvaluateSet(t.Net, t.Eval, t.Cfg.BatchTokens)
}

// EvaluateGroups returns the loss of each EvalSets entry, by name, and
// their sum.
func (t *Trainer) EvaluateGroups() (map[string]float64, Result, error) {
	out := make(map[string]float64, len(t.EvalSets))
	var total Result
	for _, es := range t.EvalSets {
		r, err := EvaluateSet(t.Net, es.Seqs, t.Cfg.BatchTokens)
		if err != nil {
			return nil, total, fmt.Errorf("evaluating %s: %w", es.Name, err)
		}
		out[es.Name] = r.Mean()
		total.Add(r)
	}
	return out, total, nil
}

func (t *Trainer) hasEval() bool { return len(t.Eval) > 0 || len(t.EvalSets) > 0 }

// EvaluateSet returns the summed loss of seqs, run in batches of at most
// budget tokens.
func EvaluateSet(n *Net, seqs []Sequence, budget int) (Result, error) {
	var total Result
	var cur []Sequence
	tokens := 0
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		r, err := n.Loss(cur)
		if err != nil {
			return err
		}
		total.Add(r)
		cur, tokens = nil, 0
		return nil
	}
	for _, s := range seqs {
		if len(cur) > 0 && tokens+len(s.Tokens) > budget {
			if err := flush(); err != nil {
				return total, err
			}
		}
		cur = append(cur, s)
		tokens += len(s.Tokens)
	}
	err := flush()
	return total, err
}

// Step runs one optimiser step (Accum micro-batches) and returns the mean
// loss, the gradient norm before clipping, and the learning rate used.
func (t *Trainer) Step() (loss, gradNorm, lr float64, tokens int, err error) {
	n := t.Net
	micro := make([][]Sequence, t.Cfg.Accum)
	counted := 0
	for i := range micro {
		micro[i] = t.nextBatch()
		for _, s := range micro[i] {
			for _, tg := range s.Targets {
				if tg != IgnoreIndex {
					counted++
				}
			}
		}
	}
	n.ZeroGrad()
	n.Training = true
	n.Counter = t.State.Counter
	var res Result
	scale := float32(1 / float64(max(1, counted)))
	for _, b := range micro {
		r, err := n.ForwardBackward(b, scale)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		res.Add(r)
	}
	n.Training = false
	t.State.Counter = n.Counter
	gradNorm = ClipGradNorm(n.Params(), t.Cfg.ClipNorm)
	if math.IsNaN(gradNorm) || math.IsInf(gradNorm, 0) {
		return 0, gradNorm, 0, res.Tokens, fmt.Errorf("train: step %d: gradient norm is %v (loss %v); lower the learning rate", t.State.Step+1, gradNorm, res.Mean())
	}
	lr = t.Cfg.Schedule.LR(t.Cfg.LR, t.State.Step)
	t.Opt.Update(lr)
	t.State.AdamSteps = t.Opt.Steps
	t.State.Step++
	t.State.Tokens += int64(res.Tokens)
	return res.Mean(), gradNorm, lr, res.Tokens, nil
}

// Run trains until State.Step reaches the total, evaluating and
// checkpointing as configured, and calls onStep (may be nil) after each
// step. When ctx is cancelled it stops after the current step, saves a
// checkpoint (if CheckpointDir is set) and returns ErrInterrupted.
func (t *Trainer) Run(ctx context.Context, onStep func(Progress)) error {
	start := time.Now()
	base := t.State.Seconds
	var runTokens int64
	for t.State.Step < t.State.TotalSteps {
		if ctx.Err() != nil {
			return t.interrupted(start, base)
		}
		t0 := time.Now()
		loss, gn, lr, tok, err := t.Step()
		if err != nil {
			return err
		}
		stepTime := time.Since(t0)
		runTokens += int64(tok)
		el := time.Since(start)
		t.State.Seconds = base + el.Seconds()
		pt := Point{Step: t.State.Step, TrainLoss: loss, LR: lr, GradNorm: gn, Tokens: t.State.Tokens, Seconds: t.State.Seconds}
		pr := Progress{Step: t.State.Step, Total: t.State.TotalSteps, Loss: loss, EvalLoss: math.NaN(), LR: lr, GradNorm: gn,
			Tokens: t.State.Tokens, TokensPerSec: float64(runTokens) / el.Seconds(), Elapsed: el, StepTime: stepTime}
		last := t.State.Step == t.State.TotalSteps
		if t.hasEval() && (last || (t.Cfg.EvalEvery > 0 && t.State.Step%t.Cfg.EvalEvery == 0)) {
			var r Result
			var err error
			if len(t.EvalSets) > 0 {
				pt.EvalGroups, r, err = t.EvaluateGroups()
				pr.EvalGroups = pt.EvalGroups
			} else {
				r, err = t.Evaluate()
			}
			if err != nil {
				return err
			}
			ev := r.Mean()
			pt.EvalLoss, pr.EvalLoss = &ev, ev
		}
		t.State.History = append(t.State.History, pt)
		if onStep != nil {
			onStep(pr)
		}
		if t.Cfg.CheckpointDir != "" && t.Cfg.CheckpointEvery > 0 && t.State.Step%t.Cfg.CheckpointEvery == 0 && !last {
			if err := t.SaveCheckpoint(t.Cfg.CheckpointDir); err != nil {
				return err
			}
		}
	}
	t.State.Seconds = base + time.Since(start).Seconds()
	return nil
}

func (t *Trainer) interrupted(start time.Time, base float64) error {
	t.State.Seconds = base + time.Since(start).Seconds()
	if t.Cfg.CheckpointDir != "" {
		if err := t.SaveCheckpoint(t.Cfg.CheckpointDir); err != nil {
			return fmt.Errorf("%w; saving the checkpoint failed: %v", ErrInterrupted, err)
		}
		return fmt.Errorf("%w at step %d; checkpoint saved in %s", ErrInterrupted, t.State.Step, t.Cfg.CheckpointDir)
	}
	return fmt.Errorf("%w at step %d", ErrInterrupted, t.State.Step)
}

// Checkpoint file names inside a checkpoint folder.
const (
	ckptParams = "params.safetensors"
	ckptOptim  = "optimizer.safetensors"
	ckptState  = "state.json"
)

// SaveCheckpoint writes the trainable parameters, the optimiser moments and
// the state to dir, replacing an earlier checkpoint there as a whole: the
// new one is built in a sibling folder and swapped in, so a crash leaves
// either the old or the new checkpoint (LoadCheckpoint also finds the old
// one if the swap was cut short).
func (t *Trainer) SaveCheckpoint(dir string) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	atomicfile.CleanStale(dir) // stages that killed saves left (reported; only old ones)
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	var ps []safetensors.WriteTensor
	for _, p := range t.Net.Params() {
		ps = append(ps, safetensors.WriteTensor{Name: p.Name, DType: "F32", Shape: p.Shape, Data: safetensors.F32Bytes(p.Data)})
	}
	if err := safetensors.Write(filepath.Join(stage, ckptParams), ps, nil); err != nil {
		return err
	}
	if err := safetensors.Write(filepath.Join(stage, ckptOptim), t.Opt.StateTensors(), nil); err != nil {
		return err
	}
	st, err := json.MarshalIndent(t.State, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(stage, ckptState), func(w io.Writer) error {
		_, err := w.Write(st)
		return err
	}); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("saving checkpoint: %w", err)
		}
	}
	if err := os.Rename(stage, dir); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	os.RemoveAll(old)
	return nil
}

// HasCheckpoint reports whether dir (or its ".old" twin left by an
// interrupted save) holds a checkpoint.
func HasCheckpoint(dir string) bool {
	for _, d := range []string{dir, filepath.Clean(dir) + ".old"} {
		if _, err := os.Stat(filepath.Join(d, ckptState)); err == nil {
			return true
		}
	}
	return false
}

// LoadCheckpoint restores parameters, optimiser and state from dir. The
// checkpoint must come from the same data, batching and parameter set.
func (t *Trainer) LoadCheckpoint(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ckptState)); errors.Is(err, fs.ErrNotExist) {
		if old := filepath.Clean(dir) + ".old"; HasCheckpoint(old) {
			dir = old
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, ckptState))
	if err != nil {
		return fmt.Errorf("loading checkpoint: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: malformed JSON: %v", filepath.Join(dir, ckptState), err)
	}
	if st.Fingerprint != t.State.Fingerprint {
		return fmt.Errorf("%s: the checkpoint was made with different data, batching, seed or trainable parameters (fingerprint %s, this run %s)",
			dir, st.Fingerprint, t.State.Fingerprint)
	}
	pf, err := safetensors.Open(filepath.Join(dir, ckptParams))
	if err != nil {
		return err
	}
	defer pf.Close()
	for _, p := range t.Net.Params() {
		tt, ok := pf.Tensor(p.Name)
		if !ok {
			return fmt.Errorf("%s: parameter %s is missing", pf.Path(), p.Name)
		}
		v, err := tt.Float32s()
		if err != nil {
			return err
		}
		if len(v) != len(p.Data) {
			return fmt.Errorf("%s: parameter %s has %d values, want %d", pf.Path(), p.Name, len(v), len(p.Data))
		}
		copy(p.Data, v)
		p.Changed()
	}
	of, err := safetensors.Open(filepath.Join(dir, ckptOptim))
	if err != nil {
		return err
	}
	defer of.Close()
	if err := t.Opt.LoadState(of); err != nil {
		return err
	}
	t.Opt.Steps = st.AdamSteps
	total := t.State.TotalSteps
	t.State = st
	if t.Cfg.Steps > 0 {
		t.State.TotalSteps = total // a resumed run may be extended
		t.Cfg.Schedule.Total = total
	}
	t.Net.Counter = st.Counter
	return nil
}
