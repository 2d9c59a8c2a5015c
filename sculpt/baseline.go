package sculpt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
	"github.com/masque-ai/masque/train"
)

// Methods: Persona-Pruner, the global mask and the baselines.
const (
	MethodPersonaPruner = "persona-pruner"
	MethodGlobal        = "global"
	MethodMagnitude     = "magnitude"
	MethodWanda         = "wanda"
	MethodTaylor        = "taylor"
	MethodDepth         = "depth"
	MethodDepthAngular  = "depth-angular"
)

// BaselineMethods lists the baselines RunBaseline computes.
var BaselineMethods = []string{MethodMagnitude, MethodWanda, MethodTaylor, MethodDepth, MethodDepthAngular}

// ParseBaseline checks a baseline name.
func ParseBaseline(s string) (string, error) {
	if slices.Contains(BaselineMethods, s) {
		return s, nil
	}
	return "", fmt.Errorf("sculpt: unknown baseline %q (want %s; the global mask is `sculpt` on pooled data)", s, strings.Join(BaselineMethods, ", "))
}

// MagnitudeScores is the structured magnitude score of every FFN channel:
// ‖gate_i‖₂² + ‖up_i‖₂² + ‖down_{:,i}‖₂².
func MagnitudeScores(m *model.Model) [][]float64 {
	out := make([][]float64, m.Config.Layers)
	for l := range out {
		ly := &m.Layers[l]
		s := make([]float64, m.Config.Intermediate)
		for _, w := range []*[]float32{ptr(ly.Gate.Float32s()), ptr(ly.Up.Float32s())} {
			cols := ly.Gate.Cols
			for i := range s {
				for _, v := range (*w)[i*cols : (i+1)*cols] {
					s[i] += float64(v) * float64(v)
				}
			}
		}
		d := ly.Down.Float32s()
		for r := 0; r < ly.Down.Rows; r++ {
			for i, v := range d[r*ly.Down.Cols : (r+1)*ly.Down.Cols] {
				s[i] += float64(v) * float64(v)
			}
		}
		out[l] = s
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// CollectFFNStats collects the FFN input (mlp_in) and intermediate
// (down_in) activation statistics of m over samples.
func CollectFFNStats(m *model.Model, samples [][]int) (*stats.Stats, error) {
	if len(samples) == 0 {
		return nil, errors.New("sculpt: no calibration samples")
	}
	var in [stats.NumInputs]bool
	in[stats.MLPIn], in[stats.DownIn] = true, true
	col := stats.NewCollector(m, stats.Options{Inputs: in})
	for _, s := range samples {
		if err := col.AddSample(s); err != nil {
			return nil, fmt.Errorf("sculpt: activation statistics: %w", err)
		}
	}
	return col.Stats(stats.Manifest{}), nil
}

// tokenNorms is ‖X_j‖₂ over all calibration tokens of each channel.
func tokenNorms(ch *stats.Channel) []float64 {
	out := make([]float64, ch.Dim)
	for j, v := range ch.SumSq {
		out[j] = math.Sqrt(v)
	}
	return out
}

// WandaScores is the structured Wanda score of every FFN channel:
// Σ_j |gate_ij|·‖X_j‖ + Σ_j |up_ij|·‖X_j‖ + ‖H_i‖·Σ_r |down_ri|, X the FFN
// input and H_i the i-th intermediate activation (down_proj's input), norms
// over all calibration tokens (st from CollectFFNStats).
func WandaScores(m *model.Model, st *stats.Stats) ([][]float64, error) {
	out := make([][]float64, m.Config.Layers)
	for l := range out {
		x, h := st.In[l][stats.MLPIn], st.In[l][stats.DownIn]
		if x == nil || h == nil {
			return nil, fmt.Errorf("sculpt: layer %d: FFN statistics were not collected", l)
		}
		xn, hn := tokenNorms(x), tokenNorms(h)
		ly := &m.Layers[l]
		s := make([]float64, m.Config.Intermediate)
		cols := ly.Gate.Cols
		for _, w := range [][]float32{ly.Gate.Float32s(), ly.Up.Float32s()} {
			for i := range s {
				for j, v := range w[i*cols : (i+1)*cols] {
					s[i] += math.Abs(float64(v)) * xn[j]
				}
			}
		}
		d := ly.Down.Float32s()
		abs := make([]float64, len(s))
		for r := 0; r < ly.Down.Rows; r++ {
			for i, v := range d[r*ly.Down.Cols : (r+1)*ly.Down.Cols] {
				abs[i] += math.Abs(float64(v))
			}
		}
		for i := range s {
			s[i] += hn[i] * abs[i]
		}
		out[l] = s
	}
	return out, nil
}

// TaylorScores is the LLM-Pruner-style first-order Taylor importance of
// every FFN channel, element-wise variant: Σ |w·∂L/∂w| over the channel's
// group (row i of gate_proj and up_proj, column i of down_proj), with ∂L/∂w
// the gradient of the mean cross-entropy on the calibration sequences'
// trained tokens (batches of batchTokens, gradients summed with each
// batch's share of the tokens, i.e. the gradient of the overall mean).
// m is not modified (the gradients are taken on a copy of its FFN weights).
func TaylorScores(m *model.Model, seqs []train.Sequence, batchTokens int) ([][]float64, error) {
	if len(seqs) == 0 {
		return nil, errors.New("sculpt: no calibration sequences")
	}
	if batchTokens <= 0 {
		batchTokens = DefaultBatchTokens
	}
	cp := *m
	cp.Layers = slices.Clone(m.Layers)
	net, err := train.New(&cp, train.Options{Full: true, Select: func(name string) bool {
		return strings.HasSuffix(name, "mlp.gate_proj.weight") || strings.HasSuffix(name, "mlp.up_proj.weight") || strings.HasSuffix(name, "mlp.down_proj.weight")
	}})
	if err != nil {
		return nil, err
	}
	counted := 0
	for _, s := range seqs {
		for _, t := range s.Targets {
			if t != train.IgnoreIndex {
				counted++
			}
		}
	}
	if counted == 0 {
		return nil, errors.New("sculpt: the calibration sequences have no trained tokens")
	}
	net.ZeroGrad()
	scale := float32(1 / float64(counted))
	for _, b := range train.Batches(seqs, batchTokens, 0, 0) {
		if _, err := net.ForwardBackward(b, scale); err != nil {
			return nil, err
		}
	}
	out := make([][]float64, m.Config.Layers)
	dff := m.Config.Intermediate
	for l := range out {
		pre := model.HFLayerPrefix(l)
		s := make([]float64, dff)
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			prm := net.Param(pre + p.HFName() + ".weight")
			if prm == nil {
				return nil, fmt.Errorf("sculpt: no gradient for layer %d %s", l, p)
			}
			rows, cols := prm.Shape[0], prm.Shape[1]
			for r := 0; r < rows; r++ {
				for c := 0; c < cols; c++ {
					v := math.Abs(float64(prm.Data[r*cols+c]) * float64(prm.Grad[r*cols+c]))
					if p == model.ProjDown {
						s[c] += v
					} else {
						s[r] += v
					}
				}
			}
		}
		out[l] = s
	}
	return out, nil
}

// hiddenCos returns, for every pair of layer boundaries (a, b) with a < b,
// the sum over calibration tokens of cos(x_a, x_b), x_l the residual stream
// entering layer l (x_L leaves the last layer), and the token count.
func hiddenCos(m *model.Model, samples [][]int) ([][]float64, int, error) {
	L := m.Config.Layers
	sum := make([][]float64, L+1)
	for i := range sum {
		sum[i] = make([]float64, L+1)
	}
	tokens := 0
	for _, s := range samples {
		if len(s) == 0 {
			continue
		}
		xs := make([][]float32, L+1)
		h := &model.Hooks{Hidden: func(l int, x []float32, rows, cols int) {
			if l <= L {
				xs[l] = append(xs[l], x[:rows*cols]...)
			}
		}}
		if _, err := m.ForwardHooks(m.NewCache(len(s)), s, false, h); err != nil {
			return nil, 0, err
		}
		H := m.Config.Hidden
		for a := 0; a <= L; a++ {
			for b := a + 1; b <= L; b++ {
				for t := 0; t < len(s); t++ {
					sum[a][b] += cosine(xs[a][t*H:(t+1)*H], xs[b][t*H:(t+1)*H])
				}
			}
		}
		tokens += len(s)
	}
	if tokens == 0 {
		return nil, 0, errors.New("sculpt: no calibration tokens")
	}
	return sum, tokens, nil
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// BlockInfluence is ShortGPT's BI_l = 1 − mean over tokens of cos(x_l,
// x_{l+1}) for every block l.
func BlockInfluence(m *model.Model, samples [][]int) ([]float64, error) {
	sum, n, err := hiddenCos(m, samples)
	if err != nil {
		return nil, err
	}
	out := make([]float64, m.Config.Layers)
	for l := range out {
		out[l] = 1 - sum[l][l+1]/float64(n)
	}
	return out, nil
}

// AngularDistances returns, for every start l of a run of n consecutive
// blocks, the angular distance arccos(cos(x_l, x_{l+n}))/π (Gromov et al.),
// with the cosine averaged over all calibration tokens.
func AngularDistances(m *model.Model, samples [][]int, n int) ([]float64, error) {
	L := m.Config.Layers
	if n <= 0 || n >= L {
		return nil, fmt.Errorf("sculpt: cannot drop %d of %d consecutive blocks", n, L)
	}
	sum, cnt, err := hiddenCos(m, samples)
	if err != nil {
		return nil, err
	}
	out := make([]float64, L-n+1)
	for l := range out {
		c := math.Max(-1, math.Min(1, sum[l][l+n]/float64(cnt)))
		out[l] = math.Acos(c) / math.Pi
	}
	return out, nil
}

// blockParams counts the parameters of decoder block l.
func blockParams(m *model.Model, l int) int64 {
	ly := &m.Layers[l]
	n := int64(len(ly.AttnNorm) + len(ly.MLPNorm) + len(ly.QNorm) + len(ly.KNorm))
	for p := model.Proj(0); p < model.NumProj; p++ {
		w := ly.Weight(p)
		n += int64(w.Rows*w.Cols + len(ly.Bias(p)))
	}
	return n
}

// DepthBlocks is the number of blocks depth pruning drops to remove at
// least as many parameters as keeping k FFN channels per layer does (the
// closest count not below it).
func DepthBlocks(m *model.Model, k int) (int, error) {
	target := m.NumParams() - PrunedParams(m, k)
	per := blockParams(m, 0)
	n := int((target + per - 1) / per)
	if n >= m.Config.Layers {
		return 0, fmt.Errorf("sculpt: depth pruning would drop %d of %d blocks to match the channel budget", n, m.Config.Layers)
	}
	return max(n, 1), nil
}

// DepthDrop chooses the blocks to drop: the n with the lowest block
// influence (MethodDepth; ties to the smaller index), or the n consecutive
// blocks whose input and output are closest in angle (MethodDepthAngular;
// ties to the earlier run). scores are the BI values or the angular
// distances by start block.
func DepthDrop(m *model.Model, method string, n int, samples [][]int) (drop []int, scores []float64, err error) {
	switch method {
	case MethodDepth:
		if scores, err = BlockInfluence(m, samples); err != nil {
			return nil, nil, err
		}
		neg := make([]float64, len(scores))
		for i, v := range scores {
			neg[i] = -v
		}
		return TopK(neg, n), scores, nil
	case MethodDepthAngular:
		if scores, err = AngularDistances(m, samples, n); err != nil {
			return nil, nil, err
		}
		best := 0
		for l, v := range scores {
			if v < scores[best] {
				best = l
			}
		}
		for i := 0; i < n; i++ {
			drop = append(drop, best+i)
		}
		return drop, scores, nil
	}
	return nil, nil, fmt.Errorf("sculpt: %q is not a depth-pruning method", method)
}

// BaselineConfig is one baseline run.
type BaselineConfig struct {
	// Checkpoint is the model (required).
	Checkpoint *checkpoint.Checkpoint
	// Method is one of BaselineMethods.
	Method string
	// Ratio sets k exactly as for Persona-Pruner.
	Ratio float64
	// Calib is the calibration data (not needed for magnitude): the
	// persona's data or generic text; CalibName says which (recorded).
	Calib     *Data
	CalibName string
	// CalibSamples bounds the sequences used for statistics (default
	// DefaultCalibSamples; Taylor uses them too); BatchTokens batches the
	// Taylor gradients.
	CalibSamples, BatchTokens int
	// Out is the run folder (required unless NoWrite).
	Out string
	// NoWrite keeps everything in memory (Compare evaluates the model).
	NoWrite bool
	// NoExport skips model/ and model.gguf.
	NoExport bool
	Export   ExportOptions
}

// BaselineResult is a baseline's choice.
type BaselineResult struct {
	Method string `json:"method"`
	// Keep (channel methods) or Drop (depth methods).
	Keep [][]int `json:"keep_indices,omitempty"`
	Drop []int   `json:"dropped_layers,omitempty"`
	// Scores are the channel scores [L][d_ff] or the depth scores.
	Scores      [][]float64 `json:"-"`
	DepthScores []float64   `json:"depth_scores,omitempty"`
	K           int         `json:"k"`
	Params      int64       `json:"params"`
	DenseParams int64       `json:"params_dense"`
	Calibration string      `json:"calibration,omitempty"`
	Seconds     float64     `json:"seconds"`
	Export      *ExportInfo `json:"export,omitempty"`
	// Model is the pruned model in memory (shares weights with the
	// checkpoint's model).
	Model *model.Model `json:"-"`
}

// BaselineRecord is run.json of a baseline run.
type BaselineRecord struct {
	Format           string          `json:"format"`
	Model            string          `json:"model"`
	ModelFingerprint string          `json:"model_fingerprint"`
	Ratio            float64         `json:"ratio"`
	Definition       string          `json:"definition"`
	Result           *BaselineResult `json:"result"`
	Finished         time.Time       `json:"finished"`
}

var definitions = map[string]string{
	MethodMagnitude:    "score_i = ‖gate_i‖₂² + ‖up_i‖₂² + ‖down[:,i]‖₂²; top k per layer, ties to the smaller index",
	MethodWanda:        "score_i = Σ_j |gate_ij|·‖X_j‖ + Σ_j |up_ij|·‖X_j‖ + ‖H_i‖·Σ_r |down_ri|, X the FFN input, H_i the intermediate activation, L2 norms over all calibration tokens; top k per layer",
	MethodTaylor:       "LLM-Pruner first-order Taylor, element-wise: score_i = Σ over gate row i, up row i, down column i of |w·∂L/∂w|, L the mean cross-entropy on the calibration data's trained tokens; top k in every layer (not LLM-Pruner's middle-layer schedule)",
	MethodDepth:        "ShortGPT: BI_l = 1 − mean_t cos(x_l, x_{l+1}); drop the n blocks of lowest BI, n the fewest blocks whose parameters are at least those the channel methods remove",
	MethodDepthAngular: "Gromov et al.: drop the n consecutive blocks with the smallest arccos(mean_t cos(x_l, x_{l+n}))/π (cosine averaged over all tokens), n as for depth",
}

// RunBaseline computes one baseline, and (unless NoWrite) writes its run
// folder: run.json, keep_indices.json (channel methods) and the exported
// model.
func RunBaseline(ctx context.Context, cfg BaselineConfig) (*BaselineResult, error) {
	if cfg.Checkpoint == nil || cfg.Checkpoint.Model == nil {
		return nil, errors.New("sculpt: no model")
	}
	method, err := ParseBaseline(cfg.Method)
	if err != nil {
		return nil, err
	}
	m := cfg.Checkpoint.Model
	k, err := KeepCount(m.Config.Intermediate, cfg.Ratio)
	if err != nil {
		return nil, err
	}
	if method != MethodMagnitude && (cfg.Calib == nil || len(cfg.Calib.Train) == 0) {
		return nil, fmt.Errorf("sculpt: the %s baseline needs calibration data", method)
	}
	if !cfg.NoWrite && cfg.Out == "" {
		return nil, errors.New("sculpt: no output folder")
	}
	if cfg.CalibSamples <= 0 {
		cfg.CalibSamples = DefaultCalibSamples
	}
	start := time.Now()
	res := &BaselineResult{Method: method, K: k, DenseParams: m.NumParams(), Calibration: cfg.CalibName}
	var samples [][]int
	var seqs []train.Sequence
	if cfg.Calib != nil {
		samples = samplesOf(cfg.Calib.Train, cfg.CalibSamples)
		for i := 0; i < len(samples); i++ {
			seqs = append(seqs, cfg.Calib.Train[i*len(cfg.Calib.Train)/len(samples)])
		}
	}
	switch method {
	case MethodMagnitude:
		res.Scores = MagnitudeScores(m)
	case MethodWanda:
		st, err := CollectFFNStats(m, samples)
		if err != nil {
			return nil, err
		}
		if res.Scores, err = WandaScores(m, st); err != nil {
			return nil, err
		}
	case MethodTaylor:
		if res.Scores, err = TaylorScores(m, seqs, cfg.BatchTokens); err != nil {
			return nil, err
		}
	case MethodDepth, MethodDepthAngular:
		n, err := DepthBlocks(m, k)
		if err != nil {
			return nil, err
		}
		if res.Drop, res.DepthScores, err = DepthDrop(m, method, n, samples); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if res.Drop != nil {
		res.Model, err = DropLayers(m, res.Drop)
	} else {
		res.Keep = KeepTop(res.Scores, k)
		res.Model, err = Slice(m, res.Keep)
	}
	if err != nil {
		return nil, err
	}
	res.Params = res.Model.NumParams()
	res.Seconds = time.Since(start).Seconds()
	if cfg.NoWrite {
		return res, nil
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	if res.Keep != nil {
		if err := SaveKeep(filepath.Join(cfg.Out, KeepFile), res.Keep); err != nil {
			return nil, err
		}
	}
	if !cfg.NoExport {
		info := &ExportInfo{Model: filepath.Join(cfg.Out, ModelDir), Intermediate: res.Model.Config.Intermediate, Params: res.Params, DenseParams: res.DenseParams}
		if res.Keep != nil {
			info.Keep = filepath.Join(cfg.Out, KeepFile)
		}
		if err := SaveModel(cfg.Checkpoint, res.Model, info.Model, cfg.Export); err != nil {
			return nil, err
		}
		if !cfg.Export.NoGGUF {
			p := filepath.Join(cfg.Out, GGUFFile)
			if err := SaveGGUF(cfg.Checkpoint, res.Model, p, cfg.Export.GGUFType); err != nil {
				info.GGUFSkipped = err.Error()
			} else {
				info.GGUF = p
			}
		}
		res.Export = info
	}
	rec := BaselineRecord{Format: "masque-sculpt-baseline/1", Model: cfg.Checkpoint.Path, ModelFingerprint: m.Fingerprint(), Ratio: cfg.Ratio,
		Definition: definitions[method], Result: res, Finished: time.Now().UTC()}
	if err := writeJSONFile(filepath.Join(cfg.Out, RunFile), rec); err != nil {
		return nil, err
	}
	return res, nil
}
