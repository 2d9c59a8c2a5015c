package sculpt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
	"github.com/masque-ai/masque/stats"
	"github.com/masque-ai/masque/train"
)

// Estimators: how the gradient reaches the scores z.
const (
	// EstimatorSTE: hard top-k mask forward, d loss/d M passed to z as is
	// (the paper's method and the default).
	EstimatorSTE = "ste"
	// EstimatorGumbel: hard top-k of z + τ·g (g standard Gumbel noise,
	// drawn anew each step) forward; backward through the relaxation
	// σ((z_i + τ·g_i − t)/τ), t halfway between the k-th and (k+1)-th
	// perturbed score (straight-through Gumbel).
	EstimatorGumbel = "gumbel"
	// EstimatorSoftTopK: the forward mask is the soft top-k σ((z_i − t)/τ),
	// t halfway between the k-th and (k+1)-th score, and the backward pass
	// is its exact derivative (t's dependence on z included). The exported
	// mask is the hard top-k.
	EstimatorSoftTopK = "soft-topk"
)

// Defaults of Config.
const (
	DefaultSteps        = 200
	DefaultLR           = 0.02
	DefaultBatchTokens  = 2048
	DefaultInitNoise    = 1e-3
	DefaultCalibSamples = 64
	DefaultTemperature  = 0.1
	DefaultCkptEvery    = 50
)

// ErrInterrupted is returned by Run when its context is cancelled; the
// checkpoint was saved first (when Out is set).
var ErrInterrupted = errors.New("sculpt: interrupted")

// Config is a mask-learning run.
type Config struct {
	// Checkpoint is the model to sculpt (its weights are not changed), with
	// its tokenizer and chat template (for the export). Required.
	Checkpoint *checkpoint.Checkpoint
	// Data is the training data (LoadChat, LoadPersona, LoadPooled).
	// Required; Valid may be empty (no validation loss then).
	Data *Data
	// Persona and Method are recorded in run.json (Method defaults to
	// "persona-pruner").
	Persona, Method string

	// Ratio is the share of FFN channels removed in every layer, in (0, 1).
	Ratio float64
	// Steps of Adam on z (default DefaultSteps). A resumed run may be
	// extended by asking for more.
	Steps int
	// LR is Adam's learning rate on z (default DefaultLR; z is normalised
	// to mean 1 per layer at the start). Schedule is constant (default),
	// linear or cosine (to 10 % of LR).
	LR       float64
	Schedule string
	// BatchTokens is the token budget of one step's batch (default
	// DefaultBatchTokens); sequences are packed in an order shuffled per
	// epoch with Seed.
	BatchTokens int
	// Seed seeds the data order, the initial noise and the Gumbel noise.
	Seed uint64
	// InitNoise is the standard deviation of the Gaussian noise added to
	// the normalised initial scores (default DefaultInitNoise; < 0: none).
	InitNoise float64
	// CalibSamples training sequences (spread over the set) give the
	// activation statistics of the initial scores (default
	// DefaultCalibSamples).
	CalibSamples int
	// InitScores, if set ([L][d_ff]), replaces the data-driven
	// initialisation (noise is still added).
	InitScores [][]float64

	// Estimator is EstimatorSTE (default), EstimatorGumbel or
	// EstimatorSoftTopK; Temperature is their τ (default
	// DefaultTemperature).
	Estimator   string
	Temperature float64

	// EvalEvery measures the validation loss every so many steps (0: ten
	// times a run; < 0: only at the start and the end).
	EvalEvery int
	// CheckpointEvery saves a checkpoint every so many steps (default
	// DefaultCkptEvery; < 0: only when interrupted).
	CheckpointEvery int

	// Out is the run folder (required). Resume continues from
	// Out/checkpoint; without it an existing checkpoint is an error.
	Out    string
	Resume bool
	// NoExport skips writing the smaller model (model/, model.gguf).
	NoExport bool
	// Export tunes the export.
	Export ExportOptions
	// Recover, if set, fine-tunes the exported model on Data after the
	// export (recovery fine-tuning, LoRA or full) and writes it whole to
	// Out/recovered; RecoverProgress reports its steps.
	Recover         *RecoverConfig
	RecoverProgress func(train.Progress)

	// Threads bounds the engine's goroutines (≤ 0: GOMAXPROCS).
	Threads int
	// Progress, if set, is called after every step.
	Progress func(Progress)
	// Logf, if set, receives one-line notes.
	Logf func(format string, a ...any)
}

// Progress is reported after every step.
type Progress struct {
	Step, Total int
	// Loss is the step's training loss under the forward mask; EvalLoss the
	// validation loss under the hard mask (NaN unless measured this step).
	Loss, EvalLoss float64
	// Churn is the number of channels (over all layers) that entered the
	// hard mask TopK(z) at this step (as many left it).
	Churn        int
	Tokens       int64
	TokensPerSec float64
	StepsPerSec  float64
	Elapsed, ETA time.Duration
}

// Point is one step of the history.
type Point struct {
	Step     int      `json:"step"`
	Loss     float64  `json:"loss"`
	EvalLoss *float64 `json:"eval_loss,omitempty"`
	Churn    int      `json:"churn"`
	// ChurnLayers is the churn of each layer.
	ChurnLayers []int   `json:"churn_layers"`
	LR          float64 `json:"lr"`
	Seconds     float64 `json:"seconds"`
}

// Result is the outcome of Run.
type Result struct {
	// Keep holds the kept channels of every layer, ascending ([L][k]).
	Keep [][]int
	// Scores are the learned z ([L][d_ff]).
	Scores [][]float32
	K, DFF int
	// DenseValidLoss, InitValidLoss and ValidLoss are the mean validation
	// losses of the dense model, of the initial mask and of the learned
	// mask (NaN without validation data).
	DenseValidLoss, InitValidLoss, ValidLoss float64
	History                                  []Point
	Steps                                    int
	Seconds                                  float64
	// StepsPerSec and TokensPerSec are the learning speed of this process
	// (resumed time not counted).
	StepsPerSec, TokensPerSec float64
	Export                    *ExportInfo
	Fingerprint               string
	// Recovery is the recovery fine-tuning's outcome (nil without one).
	Recovery *RecoverInfo
}

// File names in a run folder.
const (
	RunFile     = "run.json"
	ReportFile  = "report.html"
	KeepFile    = "keep_indices.json"
	ScoresFile  = "scores.json"
	ModelDir    = "model"
	GGUFFile    = "model.gguf"
	CkptDir     = "checkpoint"
	ckptState   = "state.json"
	ckptTensors = "scores.safetensors"
)

// state is the resumable progress (checkpoint/state.json).
type state struct {
	Step        int     `json:"step"`
	Epoch       int     `json:"epoch"`
	Batch       int     `json:"batch"`
	AdamSteps   int64   `json:"adam_steps"`
	Tokens      int64   `json:"tokens"`
	Seconds     float64 `json:"seconds"`
	Fingerprint string  `json:"fingerprint"`
	History     []Point `json:"history"`
	InitValid   float64 `json:"init_valid_loss"`
	DenseValid  float64 `json:"dense_valid_loss"`
}

type learner struct {
	cfg   *Config
	net   *train.Net
	m     *model.Model
	k     int
	z     []*train.Param
	opt   *train.AdamW
	st    state
	keep  [][]int // TopK(z) after the last update
	pert  [][]float64
	soft  [][]float32
	pair  [][2]int // soft-topk: the k-th and (k+1)-th channel
	batch [][]train.Sequence
	epoch int
	// this process's steps, tokens and seconds (the speed figures)
	runSteps, runTokens int64
	runSeconds          float64
}

func (c *Config) defaults() error {
	if c.Checkpoint == nil || c.Checkpoint.Model == nil {
		return errors.New("sculpt: no model")
	}
	if c.Data == nil || len(c.Data.Train) == 0 {
		return errors.New("sculpt: no training data with assistant tokens")
	}
	if c.Out == "" {
		return errors.New("sculpt: no output folder")
	}
	if c.Method == "" {
		c.Method = "persona-pruner"
	}
	if c.Steps == 0 {
		c.Steps = DefaultSteps
	}
	if c.Steps < 0 {
		return fmt.Errorf("sculpt: steps %d must be positive", c.Steps)
	}
	if c.LR == 0 {
		c.LR = DefaultLR
	}
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		return fmt.Errorf("sculpt: learning rate %v must be positive", c.LR)
	}
	kind, err := train.ParseSchedule(c.Schedule)
	if err != nil {
		return fmt.Errorf("sculpt: %v", err)
	}
	c.Schedule = kind
	if c.BatchTokens == 0 {
		c.BatchTokens = DefaultBatchTokens
	}
	if c.BatchTokens < 0 {
		return fmt.Errorf("sculpt: batch tokens %d must be positive", c.BatchTokens)
	}
	if c.InitNoise == 0 {
		c.InitNoise = DefaultInitNoise
	}
	if c.InitNoise < 0 {
		c.InitNoise = 0
	}
	if c.CalibSamples <= 0 {
		c.CalibSamples = DefaultCalibSamples
	}
	switch c.Estimator {
	case "":
		c.Estimator = EstimatorSTE
	case EstimatorSTE, EstimatorGumbel, EstimatorSoftTopK:
	default:
		return fmt.Errorf("sculpt: unknown estimator %q (want %s, %s or %s)", c.Estimator, EstimatorSTE, EstimatorGumbel, EstimatorSoftTopK)
	}
	if c.Temperature == 0 {
		c.Temperature = DefaultTemperature
	}
	if !(c.Temperature > 0) || math.IsInf(c.Temperature, 0) {
		return fmt.Errorf("sculpt: temperature %v must be positive", c.Temperature)
	}
	if c.EvalEvery == 0 {
		c.EvalEvery = max(1, c.Steps/10)
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = DefaultCkptEvery
	}
	if c.Recover != nil {
		if c.NoExport {
			return errors.New("sculpt: recovery fine-tuning trains the exported model; it cannot be combined with no export")
		}
		rc := *c.Recover
		if err := rc.defaults(c.BatchTokens); err != nil {
			return err
		}
		c.Recover = &rc
	}
	return nil
}

// fingerprint identifies what a checkpoint may be resumed with: the model,
// the data and every setting that changes the trajectory (not Steps).
func (c *Config) fingerprint(modelFP string) string {
	h := fmt.Sprintf("%s|%s|%v|%v|%s|%d|%d|%v|%d|%s|%v|%v", modelFP, seqHash(c.Data.Train), c.Ratio, c.LR, c.Schedule, c.BatchTokens,
		c.Seed, c.InitNoise, c.CalibSamples, c.Estimator, c.Temperature, c.InitScores != nil)
	return shortHash([]byte(h))
}

// Run learns the mask, writes the run folder and exports the model.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c := &cfg
	m := c.Checkpoint.Model
	k, err := KeepCount(m.Config.Intermediate, c.Ratio)
	if err != nil {
		return nil, err
	}
	logf := c.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ckDir := filepath.Join(c.Out, CkptDir)
	has := hasCheckpoint(ckDir)
	switch {
	case c.Resume && !has:
		return nil, fmt.Errorf("sculpt: --resume: no checkpoint in %s", ckDir)
	case !c.Resume && has:
		return nil, fmt.Errorf("sculpt: %s already holds a checkpoint: resume that run, or choose another output folder", ckDir)
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	modelFP := m.Fingerprint()
	net, err := train.New(m, train.Options{Threads: c.Threads})
	if err != nil {
		return nil, err
	}
	L, dff := m.Config.Layers, m.Config.Intermediate
	lr := &learner{cfg: c, net: net, m: m, k: k, epoch: -1}
	lr.st.Fingerprint = c.fingerprint(modelFP)
	for l := 0; l < L; l++ {
		lr.z = append(lr.z, &train.Param{Name: fmt.Sprintf("scores.%d", l), Shape: []int{dff}, Data: make([]float32, dff), Grad: make([]float32, dff)})
		net.FFNMask[l] = make([]float32, dff)
		net.FFNMaskGrad[l] = make([]float32, dff)
	}
	lr.opt = train.NewAdamW(lr.z, 0.9, 0.999, 1e-8, 0)
	if c.Resume {
		if err := lr.load(ckDir); err != nil {
			return nil, err
		}
		logf("resuming at step %d of %d", lr.st.Step, c.Steps)
	} else {
		init := c.InitScores
		if init == nil {
			logf("initial scores from %d calibration samples", min(c.CalibSamples, len(c.Data.Train)))
			if init, err = InitScores(m, samplesOf(c.Data.Train, c.CalibSamples)); err != nil {
				return nil, err
			}
		}
		if err := lr.initZ(init); err != nil {
			return nil, err
		}
		lr.st.DenseValid, lr.st.InitValid = math.NaN(), math.NaN()
		if len(c.Data.Valid) > 0 {
			lr.clearMasks()
			if lr.st.DenseValid, err = lr.validLoss(nil); err != nil {
				return nil, err
			}
			if lr.st.InitValid, err = lr.validLoss(lr.currentKeep()); err != nil {
				return nil, err
			}
		}
	}
	lr.keep = lr.currentKeep()
	if err := lr.loop(ctx, ckDir); err != nil {
		return nil, err
	}
	res := &Result{Keep: lr.currentKeep(), K: k, DFF: dff, DenseValidLoss: lr.st.DenseValid, InitValidLoss: lr.st.InitValid,
		ValidLoss: math.NaN(), History: lr.st.History, Steps: lr.st.Step, Seconds: lr.st.Seconds, Fingerprint: modelFP}
	for _, p := range lr.z {
		res.Scores = append(res.Scores, append([]float32(nil), p.Data...))
	}
	if len(c.Data.Valid) > 0 {
		if res.ValidLoss, err = lr.validLoss(res.Keep); err != nil {
			return nil, err
		}
	}
	res.StepsPerSec, res.TokensPerSec = lr.speed()
	lr.clearMasks()
	if !c.NoExport {
		logf("exporting the model with intermediate_size %d", k)
		if res.Export, err = Export(c.Checkpoint, res.Keep, c.Out, c.Export); err != nil {
			return nil, err
		}
		if c.Recover != nil {
			// The mask checkpoint stays until the recovery is done, so that
			// an interrupted recovery resumes with the same flags.
			if err := lr.save(ckDir); err != nil {
				return nil, err
			}
			sm, err := Slice(m, res.Keep)
			if err != nil {
				return nil, err
			}
			logf("recovery fine-tuning (%s, %d steps) of the exported model", c.Recover.Mode, c.Recover.Steps)
			if res.Recovery, err = Recover(ctx, c.Checkpoint, sm, c.Data, *c.Recover, c.Out, c.Resume, c.Export, c.Threads, c.RecoverProgress); err != nil {
				return nil, err
			}
		}
	} else if err := SaveKeep(filepath.Join(c.Out, KeepFile), res.Keep); err != nil {
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(c.Out, ScoresFile), res.Scores); err != nil {
		return nil, err
	}
	if err := lr.writeRun(res, modelFP); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(ckDir); err != nil {
		return nil, err
	}
	return res, nil
}

func (lr *learner) speed() (float64, float64) {
	s := lr.runSteps
	if lr.runSeconds <= 0 {
		return 0, 0
	}
	return float64(s) / lr.runSeconds, float64(lr.runTokens) / lr.runSeconds
}

// InitScores is the data-driven channel importance of every layer: the
// root-mean-square over the calibration tokens of channel i's activation
// (the input of down_proj, silu(gate)·up) times the L2 norm of down_proj's
// column i.
func InitScores(m *model.Model, samples [][]int) ([][]float64, error) {
	if len(samples) == 0 {
		return nil, errors.New("sculpt: no calibration samples")
	}
	var in [stats.NumInputs]bool
	in[stats.DownIn] = true
	col := stats.NewCollector(m, stats.Options{Inputs: in})
	for _, s := range samples {
		if len(s) == 0 {
			continue
		}
		if err := col.AddSample(s); err != nil {
			return nil, fmt.Errorf("sculpt: activation statistics: %w", err)
		}
	}
	st := col.Stats(stats.Manifest{})
	out := make([][]float64, m.Config.Layers)
	for l := range out {
		ch := st.In[l][stats.DownIn]
		norms := downColumnNorms(m, l)
		out[l] = make([]float64, len(norms))
		for i := range norms {
			rms := 0.0
			if ch.Tokens > 0 {
				rms = math.Sqrt(ch.SumSq[i] / float64(ch.Tokens))
			}
			out[l][i] = rms * norms[i]
		}
	}
	return out, nil
}

// downColumnNorms returns ‖down_proj[:, i]‖₂ for every channel i of layer l.
func downColumnNorms(m *model.Model, l int) []float64 {
	d := m.Layers[l].Down
	w := d.Float32s()
	out := make([]float64, d.Cols)
	for r := 0; r < d.Rows; r++ {
		row := w[r*d.Cols : (r+1)*d.Cols]
		for i, v := range row {
			out[i] += float64(v) * float64(v)
		}
	}
	for i := range out {
		out[i] = math.Sqrt(out[i])
	}
	return out
}

// initZ sets z_l = s_l / mean(s_l) + noise·N(0, 1).
func (lr *learner) initZ(init [][]float64) error {
	c := lr.cfg
	L, dff := len(lr.z), len(lr.z[0].Data)
	if len(init) != L {
		return fmt.Errorf("sculpt: initial scores for %d layers, the model has %d", len(init), L)
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x73636f726573)) // "scores"
	for l, s := range init {
		if len(s) != dff {
			return fmt.Errorf("sculpt: initial scores of layer %d have %d values, want %d", l, len(s), dff)
		}
		var mean float64
		for _, v := range s {
			mean += v
		}
		mean /= float64(dff)
		if !(mean > 0) || math.IsInf(mean, 0) {
			mean = 1
		}
		for i, v := range s {
			if math.IsNaN(v) {
				v = 0
			}
			lr.z[l].Data[i] = float32(v/mean + c.InitNoise*rng.NormFloat64())
		}
	}
	return nil
}

func (lr *learner) currentKeep() [][]int {
	out := make([][]int, len(lr.z))
	for l, p := range lr.z {
		out[l] = TopK32(p.Data, lr.k)
	}
	return out
}

func (lr *learner) clearMasks() {
	for l := range lr.net.FFNMask {
		lr.net.FFNMask[l] = nil
	}
}

func (lr *learner) setHard(keep [][]int) {
	for l := range keep {
		if len(lr.net.FFNMask[l]) != len(lr.z[l].Data) {
			lr.net.FFNMask[l] = make([]float32, len(lr.z[l].Data))
		}
		maskOf(lr.net.FFNMask[l], keep[l])
	}
}

// validLoss is the mean validation loss under the hard mask keep (nil:
// dense).
func (lr *learner) validLoss(keep [][]int) (float64, error) {
	if keep == nil {
		lr.clearMasks()
	} else {
		lr.setHard(keep)
	}
	r, err := train.EvaluateSet(lr.net, lr.cfg.Data.Valid, lr.cfg.BatchTokens)
	if err != nil {
		return 0, err
	}
	return r.Mean(), nil
}

func (lr *learner) nextBatch() []train.Sequence {
	c := lr.cfg
	if lr.epoch != lr.st.Epoch {
		lr.batch = train.Batches(c.Data.Train, c.BatchTokens, c.Seed, lr.st.Epoch)
		lr.epoch = lr.st.Epoch
	}
	if lr.st.Batch >= len(lr.batch) {
		lr.st.Epoch++
		lr.st.Batch = 0
		lr.batch = train.Batches(c.Data.Train, c.BatchTokens, c.Seed, lr.st.Epoch)
		lr.epoch = lr.st.Epoch
	}
	b := lr.batch[lr.st.Batch]
	lr.st.Batch++
	return b
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// forwardMasks sets the Net's masks for the coming step (0-based step).
func (lr *learner) forwardMasks(step int) {
	c := lr.cfg
	tau := c.Temperature
	L := len(lr.z)
	switch c.Estimator {
	case EstimatorSTE:
		for l := 0; l < L; l++ {
			maskOf(lr.net.FFNMask[l], lr.keep[l])
		}
	case EstimatorGumbel:
		if lr.pert == nil {
			lr.pert = make([][]float64, L)
		}
		for l, p := range lr.z {
			rng := rand.New(rand.NewPCG(c.Seed^0x67756d62656c, uint64(step)<<16|uint64(l)))
			pp := make([]float64, len(p.Data))
			for i, v := range p.Data {
				u := rng.Float64()
				for u == 0 {
					u = rng.Float64()
				}
				pp[i] = float64(v) + tau*(-math.Log(-math.Log(u)))
			}
			lr.pert[l] = pp
			maskOf(lr.net.FFNMask[l], TopK(pp, lr.k))
		}
	case EstimatorSoftTopK:
		if lr.soft == nil {
			lr.soft = make([][]float32, L)
			lr.pair = make([][2]int, L)
		}
		for l, p := range lr.z {
			s := make([]float64, len(p.Data))
			for i, v := range p.Data {
				s[i] = float64(v)
			}
			sm, a, b := softTopK(s, lr.k, tau)
			lr.pair[l] = [2]int{a, b}
			m := lr.net.FFNMask[l]
			for i, v := range sm {
				m[i] = float32(v)
			}
		}
	}
}

// softTopK is the soft top-k mask σ((z_i − t)/τ) with t halfway between
// the k-th and (k+1)-th largest score (channels a and b).
func softTopK(z []float64, k int, tau float64) (m []float64, a, b int) {
	ord := rankOrder(z)
	a, b = ord[k-1], ord[k]
	t := (z[a] + z[b]) / 2
	m = make([]float64, len(z))
	for i, v := range z {
		m[i] = sigmoid((v - t) / tau)
	}
	return m, a, b
}

// softTopKBack returns d loss/d z from g = d loss/d m for m = softTopK(z):
// ∂m_i/∂z_j = m_i(1 − m_i)/τ·(δ_ij − ∂t/∂z_j), ∂t/∂z_j = ½ for j ∈ {a, b}.
func softTopKBack(g, m []float64, a, b int, tau float64) []float64 {
	out := make([]float64, len(g))
	var sum float64
	for i := range g {
		d := g[i] * m[i] * (1 - m[i]) / tau
		out[i] = d
		sum += d
	}
	out[a] -= sum / 2
	out[b] -= sum / 2
	return out
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// backwardScores turns d loss/d mask into d loss/d z.
func (lr *learner) backwardScores() {
	c := lr.cfg
	tau := c.Temperature
	for l, p := range lr.z {
		g := lr.net.FFNMaskGrad[l]
		switch c.Estimator {
		case EstimatorSTE:
			copy(p.Grad, g)
		case EstimatorGumbel:
			pp := lr.pert[l]
			ord := rankOrder(pp)
			t := (pp[ord[lr.k-1]] + pp[ord[lr.k]]) / 2
			for i, v := range pp {
				s := sigmoid((v - t) / tau)
				p.Grad[i] = float32(float64(g[i]) * s * (1 - s) / tau)
			}
		case EstimatorSoftTopK:
			m := lr.net.FFNMask[l]
			gz := softTopKBack(f64(g), f64(m), lr.pair[l][0], lr.pair[l][1], tau)
			for i, v := range gz {
				p.Grad[i] = float32(v)
			}
		}
	}
}

// step runs one optimiser step.
func (lr *learner) step() (loss float64, tokens int, churn []int, lrate float64, err error) {
	c := lr.cfg
	batch := lr.nextBatch()
	lr.forwardMasks(lr.st.Step)
	lr.net.ZeroGrad()
	res, err := lr.net.ForwardBackward(batch, 0)
	if err != nil {
		return 0, 0, nil, 0, err
	}
	if math.IsNaN(res.Mean()) || math.IsInf(res.Mean(), 0) {
		return 0, 0, nil, 0, fmt.Errorf("sculpt: step %d: the loss is %v", lr.st.Step+1, res.Mean())
	}
	lr.backwardScores()
	sched := train.Schedule{Kind: c.Schedule, Total: c.Steps, MinRatio: 0.1}
	lrate = sched.LR(c.LR, lr.st.Step)
	lr.opt.Update(lrate)
	lr.st.AdamSteps = lr.opt.Steps
	lr.st.Step++
	lr.st.Tokens += int64(res.Tokens)
	next := lr.currentKeep()
	churn = make([]int, len(next))
	for l := range next {
		churn[l] = len(next[l]) - overlapCount(next[l], lr.keep[l])
	}
	lr.keep = next
	return res.Mean(), res.Tokens, churn, lrate, nil
}

// overlapCount counts the common elements of two ascending index lists.
func overlapCount(a, b []int) int {
	n, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			n++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return n
}

func (lr *learner) loop(ctx context.Context, ckDir string) error {
	c := lr.cfg
	start := time.Now()
	base := lr.st.Seconds
	for lr.st.Step < c.Steps {
		if ctx.Err() != nil {
			lr.st.Seconds = base + time.Since(start).Seconds()
			if err := lr.save(ckDir); err != nil {
				return fmt.Errorf("%w; saving the checkpoint failed: %v", ErrInterrupted, err)
			}
			return fmt.Errorf("%w at step %d of %d; checkpoint saved in %s (resume to continue)", ErrInterrupted, lr.st.Step, c.Steps, ckDir)
		}
		loss, tok, churn, lrate, err := lr.step()
		if err != nil {
			return err
		}
		el := time.Since(start)
		lr.runSteps++
		lr.runTokens += int64(tok)
		lr.runSeconds = el.Seconds()
		lr.st.Seconds = base + el.Seconds()
		total := 0
		for _, v := range churn {
			total += v
		}
		pt := Point{Step: lr.st.Step, Loss: loss, Churn: total, ChurnLayers: churn, LR: lrate, Seconds: lr.st.Seconds}
		pr := Progress{Step: lr.st.Step, Total: c.Steps, Loss: loss, EvalLoss: math.NaN(), Churn: total, Tokens: lr.st.Tokens,
			Elapsed: el}
		if el > 0 {
			pr.StepsPerSec = float64(lr.runSteps) / el.Seconds()
			pr.TokensPerSec = float64(lr.runTokens) / el.Seconds()
			pr.ETA = time.Duration(float64(c.Steps-lr.st.Step) / pr.StepsPerSec * float64(time.Second))
		}
		last := lr.st.Step == c.Steps
		if len(c.Data.Valid) > 0 && (last || (c.EvalEvery > 0 && lr.st.Step%c.EvalEvery == 0)) {
			v, err := lr.validLoss(lr.keep)
			if err != nil {
				return err
			}
			lr.restoreMasks()
			pt.EvalLoss, pr.EvalLoss = &v, v
		}
		lr.st.History = append(lr.st.History, pt)
		if c.Progress != nil {
			c.Progress(pr)
		}
		if c.CheckpointEvery > 0 && lr.st.Step%c.CheckpointEvery == 0 && !last {
			if err := lr.save(ckDir); err != nil {
				return err
			}
		}
	}
	lr.st.Seconds = base + time.Since(start).Seconds()
	return nil
}

// restoreMasks gives every layer a mask buffer again after an evaluation.
func (lr *learner) restoreMasks() {
	for l := range lr.net.FFNMask {
		if len(lr.net.FFNMask[l]) != len(lr.z[l].Data) {
			lr.net.FFNMask[l] = make([]float32, len(lr.z[l].Data))
		}
	}
}

func hasCheckpoint(dir string) bool {
	for _, d := range []string{dir, filepath.Clean(dir) + ".old"} {
		if _, err := os.Stat(filepath.Join(d, ckptState)); err == nil {
			return true
		}
	}
	return false
}

// save writes z, the Adam moments and the state to dir, replacing an
// earlier checkpoint as a whole (built beside it, then swapped in).
func (lr *learner) save(dir string) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("sculpt: saving checkpoint: %w", err)
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("sculpt: saving checkpoint: %w", err)
	}
	defer os.RemoveAll(stage)
	var ts []safetensors.WriteTensor
	for _, p := range lr.z {
		ts = append(ts, safetensors.WriteTensor{Name: p.Name, DType: "F32", Shape: p.Shape, Data: safetensors.F32Bytes(p.Data)})
	}
	ts = append(ts, lr.opt.StateTensors()...)
	if err := safetensors.Write(filepath.Join(stage, ckptTensors), ts, nil); err != nil {
		return err
	}
	if err := writeJSONFile(filepath.Join(stage, ckptState), lr.st); err != nil {
		return err
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("sculpt: saving checkpoint: %w", err)
		}
	}
	if err := os.Rename(stage, dir); err != nil {
		return fmt.Errorf("sculpt: saving checkpoint: %w", err)
	}
	os.RemoveAll(old)
	return nil
}

func (lr *learner) load(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ckptState)); errors.Is(err, fs.ErrNotExist) {
		dir = filepath.Clean(dir) + ".old"
	}
	data, err := os.ReadFile(filepath.Join(dir, ckptState))
	if err != nil {
		return fmt.Errorf("sculpt: loading checkpoint: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("sculpt: %s: malformed JSON: %v", filepath.Join(dir, ckptState), err)
	}
	if st.Fingerprint != lr.st.Fingerprint {
		return fmt.Errorf("sculpt: %s: the checkpoint was made with another model, data or settings (fingerprint %s, this run %s); only --steps may change on resume",
			dir, st.Fingerprint, lr.st.Fingerprint)
	}
	f, err := safetensors.Open(filepath.Join(dir, ckptTensors))
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range lr.z {
		t, ok := f.Tensor(p.Name)
		if !ok {
			return fmt.Errorf("sculpt: %s: %s is missing", f.Path(), p.Name)
		}
		v, err := t.Float32s()
		if err != nil {
			return err
		}
		if len(v) != len(p.Data) {
			return fmt.Errorf("sculpt: %s: %s has %d values, want %d", f.Path(), p.Name, len(v), len(p.Data))
		}
		copy(p.Data, v)
	}
	if err := lr.opt.LoadState(f); err != nil {
		return err
	}
	lr.opt.Steps = st.AdamSteps
	if st.Step > lr.cfg.Steps {
		return fmt.Errorf("sculpt: the checkpoint is at step %d, beyond the %d steps asked for", st.Step, lr.cfg.Steps)
	}
	lr.st = st
	return nil
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}

// writeReport writes v as dir/name.json and its HTML rendering as
// dir/name.html, each atomically.
func writeReport(dir, name string, v any, render func() ([]byte, error)) error {
	if err := writeJSONFile(filepath.Join(dir, name+".json"), v); err != nil {
		return err
	}
	html, err := render()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, name+".html"), func(w io.Writer) error {
		_, err := w.Write(html)
		return err
	})
}

// nanNil turns NaN into nil for JSON.
func nanNil(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// RunRecord is the content of run.json.
type RunRecord struct {
	Format           string `json:"format"`
	Method           string `json:"method"`
	Persona          string `json:"persona,omitempty"`
	Model            string `json:"model"`
	ModelFingerprint string `json:"model_fingerprint"`
	// Base opens the model again (checkpoint.Checkpoint.Ref: a built-in
	// name, a hub id or an absolute path); absent in older runs.
	Base          string   `json:"base,omitempty"`
	Data          string   `json:"data"`
	TrainRows     int      `json:"train_rows"`
	ValidRows     int      `json:"valid_rows"`
	SkippedRows   []string `json:"skipped_rows,omitempty"`
	TrainTokens   int      `json:"train_tokens"`
	TrainedTokens int      `json:"trained_tokens"`

	Ratio        float64 `json:"ratio"`
	Layers       int     `json:"layers"`
	DFF          int     `json:"intermediate_size"`
	K            int     `json:"k"`
	Params       int64   `json:"params_dense"`
	ParamsPruned int64   `json:"params_pruned"`

	Choices map[string]any `json:"choices"`

	DenseValidLoss *float64 `json:"dense_valid_loss"`
	InitValidLoss  *float64 `json:"init_valid_loss"`
	ValidLoss      *float64 `json:"valid_loss"`
	DensePPL       *float64 `json:"dense_valid_ppl"`
	PPL            *float64 `json:"valid_ppl"`

	Steps        int          `json:"steps"`
	Seconds      float64      `json:"seconds"`
	StepsPerSec  float64      `json:"steps_per_second"`
	TokensPerSec float64      `json:"tokens_per_second"`
	Threads      int          `json:"threads"`
	Export       *ExportInfo  `json:"export,omitempty"`
	Recovery     *RecoverInfo `json:"recovery,omitempty"`
	Files        []string     `json:"files"`
	History      []Point      `json:"history"`
	Finished     time.Time    `json:"finished"`
}

// RunFormat names the format of run.json.
const RunFormat = "masque-sculpt-run/1"

func expNil(v float64) *float64 { return nanNil(math.Exp(v)) }

func (lr *learner) writeRun(res *Result, modelFP string) error {
	c := lr.cfg
	m := lr.m
	threads := c.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	rec := RunRecord{Format: RunFormat, Method: c.Method, Persona: c.Persona, Model: c.Checkpoint.Path, ModelFingerprint: modelFP, Base: c.Checkpoint.Ref,
		Data: c.Data.Source, TrainRows: len(c.Data.Train), ValidRows: len(c.Data.Valid), SkippedRows: c.Data.Skipped,
		TrainTokens: c.Data.Tokens, TrainedTokens: c.Data.Targets,
		Ratio: c.Ratio, Layers: m.Config.Layers, DFF: m.Config.Intermediate, K: lr.k,
		Params: m.NumParams(), ParamsPruned: PrunedParams(m, lr.k),
		Choices: map[string]any{
			"estimator":           c.Estimator,
			"temperature":         c.Temperature,
			"loss":                "next-token cross-entropy on assistant tokens (and their end-of-turn token), mean over the batch's trained tokens",
			"mask":                "TopK(z_l, k) as 0/1 on silu(gate)·up, the same k in every layer; ties to the smaller channel index",
			"gradient":            map[string]string{EstimatorSTE: "straight-through: dL/dz = dL/dM", EstimatorGumbel: "hard top-k of z+τ·Gumbel forward, σ((z+τg−t)/τ) backward", EstimatorSoftTopK: "soft top-k σ((z−t)/τ) forward and backward, t halfway between the k-th and (k+1)-th score"}[c.Estimator],
			"optimizer":           "Adam on z (β1 0.9, β2 0.999, ε 1e-8, no weight decay, no clipping)",
			"lr":                  c.LR,
			"schedule":            c.Schedule,
			"steps":               c.Steps,
			"batch_tokens":        c.BatchTokens,
			"seed":                c.Seed,
			"init":                "z_l,i = s_l,i / mean_i(s_l,i) + noise·N(0,1), s = RMS over calibration tokens of the down_proj input channel × ‖down_proj[:,i]‖₂ (stats package)",
			"init_noise":          c.InitNoise,
			"calibration_samples": min(c.CalibSamples, len(c.Data.Train)),
			"init_given":          c.InitScores != nil,
			"weights":             "frozen",
			"eval_every":          c.EvalEvery,
			"checkpoint_every":    c.CheckpointEvery,
		},
		DenseValidLoss: nanNil(res.DenseValidLoss), InitValidLoss: nanNil(res.InitValidLoss), ValidLoss: nanNil(res.ValidLoss),
		DensePPL: expNil(res.DenseValidLoss), PPL: expNil(res.ValidLoss),
		Steps: res.Steps, Seconds: res.Seconds, StepsPerSec: res.StepsPerSec, TokensPerSec: res.TokensPerSec, Threads: threads,
		Export: res.Export, Recovery: res.Recovery, History: res.History, Finished: time.Now().UTC(),
		Files: []string{RunFile, ReportFile, KeepFile, ScoresFile}}
	if res.Export != nil {
		rec.Files = append(rec.Files, ModelDir)
		if res.Export.GGUF != "" {
			rec.Files = append(rec.Files, GGUFFile)
		}
	}
	if res.Recovery != nil {
		rec.Files = append(rec.Files, RecoveredDir)
	}
	if err := writeJSONFile(filepath.Join(c.Out, RunFile), rec); err != nil {
		return err
	}
	html, err := RunReportHTML(&rec)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.Out, ReportFile), func(w io.Writer) error {
		_, err := w.Write(html)
		return err
	})
}
