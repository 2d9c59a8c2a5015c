// Package subnet finds persona subnetworks: training-free masks over a
// model's linear layers (q, k, v, o, gate, up, down) scored from activation
// statistics (package stats), following masque's METHODS §2.
//
// Scorers:
//   - magnitude: S = |W|;
//   - wanda: S_ij = |W_ij|·A[j], A the mean over calibration samples of each
//     input channel's per-sample L2 norm;
//   - sparsegpt: real SparseGPT (Frantar & Alistarh 2023): column-by-column
//     OBS pruning with weight updates from the inverse Hessian of XᵀX
//     (dampening λ·mean(diag), upper Cholesky factor of H⁻¹, blocks of 128
//     columns with lazy batch updates); it returns updated weights as well
//     as the mask;
//   - contrastive masks for opposing personas (Contrast): per-sample-norm
//     z-scores with φ = ReLU or softplus(·/2), or the pooled-activation
//     variant.
//
// Granularities: per-row unstructured (every output row keeps exactly
// k = floor(in·(1−ρ)) entries), N:M (in every group of M consecutive inputs
// of a row, N are kept) and structured FFN channels (whole intermediate
// channels: rows of gate and up and the matching column of down). Sparsity is
// uniform or given per layer; MLP-only and attention-only masks are
// supported, and a soft gate γ can be recorded in the mask.
package subnet

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/masque-ai/masque/internal/workers"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/stats"
)

// Method names a single-persona scorer.
type Method string

// The scorers.
const (
	Magnitude Method = "magnitude" // S = |W|
	Wanda     Method = "wanda"     // S = |W|·A
	SparseGPT Method = "sparsegpt" // OBS pruning with weight updates
)

// ParseMethod parses magnitude, wanda or sparsegpt.
func ParseMethod(s string) (Method, error) {
	switch m := Method(strings.ToLower(s)); m {
	case Magnitude, Wanda, SparseGPT:
		return m, nil
	}
	return "", fmt.Errorf("unknown method %q (want magnitude, wanda or sparsegpt)", s)
}

// ParseMethods parses a comma-separated list of methods (at least one;
// empty entries are skipped).
func ParseMethods(s string) ([]Method, error) {
	var out []Method
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		mm, err := ParseMethod(m)
		if err != nil {
			return nil, err
		}
		out = append(out, mm)
	}
	if len(out) == 0 {
		return nil, errors.New("no method")
	}
	return out, nil
}

// Targets selects which projections are masked.
type Targets int

// The target sets.
const (
	AllLinear Targets = iota // q, k, v, o, gate, up, down
	MLPOnly                  // gate, up, down
	AttnOnly                 // q, k, v, o
)

// ParseTargets parses all, mlp or attn.
func ParseTargets(s string) (Targets, error) {
	switch strings.ToLower(s) {
	case "", "all":
		return AllLinear, nil
	case "mlp", "ffn":
		return MLPOnly, nil
	case "attn", "attention":
		return AttnOnly, nil
	}
	return 0, fmt.Errorf("unknown target set %q (want all, mlp or attn)", s)
}

// String returns all, mlp or attn.
func (t Targets) String() string { return [...]string{"all", "mlp", "attn"}[t] }

// Has reports whether p is in the set.
func (t Targets) Has(p model.Proj) bool {
	switch t {
	case MLPOnly:
		return p >= model.ProjGate
	case AttnOnly:
		return p <= model.ProjO
	}
	return true
}

// ParseNM parses "N:M" (e.g. 2:4).
func ParseNM(s string) (n, m int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		n, err = strconv.Atoi(a)
		if err == nil {
			m, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || n <= 0 || m <= 0 || n > m || m > 64 {
		return 0, 0, fmt.Errorf("bad N:M pattern %q (want e.g. 2:4 or 4:8, M ≤ 64)", s)
	}
	return n, m, nil
}

// Options control mask construction.
type Options struct {
	Method Method
	// Sparsity ρ is the share of entries pruned in every row (or of FFN
	// channels when Structured); k = floor(in·(1−ρ)) entries are kept.
	Sparsity float64
	// LayerSparsity, when non-nil, gives ρ per layer (one value per block)
	// and overrides Sparsity.
	LayerSparsity []float64
	// N and M select N:M sparsity (keep N of every M consecutive inputs of
	// a row) when M > 0; Sparsity is then ignored.
	N, M int
	// Structured prunes whole FFN intermediate channels (MLP only).
	Structured bool
	// Targets selects the masked projections.
	Targets Targets
	// Gamma is the soft gate recorded in the mask (0: prune).
	Gamma float64
	// Workers is the number of goroutines (≤ 0: GOMAXPROCS).
	Workers int
	// Progress, if set, is called after each matrix.
	Progress func(done, total int)

	// Damp is SparseGPT's relative dampening λ (0: 0.01).
	Damp float64
	// BlockSize is SparseGPT's column block size (0: 128).
	BlockSize int
	// WholeBlock makes SparseGPT choose each block's pruned entries with one
	// threshold over the whole block (the paper's selection) rather than the
	// same count per row (see SparseGPTOptions.WholeBlock).
	WholeBlock bool
}

func (o *Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// SparsityOf returns ρ for layer l.
func (o *Options) SparsityOf(l int) float64 {
	if o.LayerSparsity != nil && l < len(o.LayerSparsity) {
		return o.LayerSparsity[l]
	}
	return o.Sparsity
}

// Granularity describes the pattern: "row", "N:M" or "ffn-channels".
func (o *Options) Granularity() string {
	switch {
	case o.Structured:
		return "ffn-channels"
	case o.M > 0:
		return fmt.Sprintf("%d:%d", o.N, o.M)
	}
	return "row"
}

// Validate checks the options against a model configuration (also done by
// Prune, SparseGPTSequential and Contrast).
func (o *Options) Validate(c *model.Config) error { return o.validate(c) }

func (o *Options) validate(c *model.Config) error {
	check := func(what string, r float64) error {
		if math.IsNaN(r) || r < 0 || r >= 1 {
			return fmt.Errorf("subnet: %s %g must be in [0, 1)", what, r)
		}
		return nil
	}
	if o.M <= 0 {
		if err := check("sparsity", o.Sparsity); err != nil {
			return err
		}
	}
	if o.LayerSparsity != nil {
		if len(o.LayerSparsity) != c.Layers {
			return fmt.Errorf("subnet: %d per-layer sparsities for a %d-layer model", len(o.LayerSparsity), c.Layers)
		}
		for l, r := range o.LayerSparsity {
			if err := check(fmt.Sprintf("layer %d sparsity", l), r); err != nil {
				return err
			}
		}
	}
	if o.M > 0 {
		if o.N <= 0 || o.N > o.M || o.M > 64 {
			return fmt.Errorf("subnet: bad N:M pattern %d:%d", o.N, o.M)
		}
		if o.Structured {
			return errors.New("subnet: N:M and structured FFN-channel pruning exclude each other")
		}
		if o.LayerSparsity != nil {
			return errors.New("subnet: per-layer sparsity does not apply to N:M patterns")
		}
		for p := model.Proj(0); p < model.NumProj; p++ {
			if cols := mask.ProjShapes(c)[p][1]; o.Targets.Has(p) && cols%o.M != 0 {
				return fmt.Errorf("subnet: %s has %d inputs, not a multiple of M=%d", p, cols, o.M)
			}
		}
	}
	if o.Structured && o.Method == SparseGPT {
		return errors.New("subnet: SparseGPT does not support structured FFN-channel pruning")
	}
	if o.Structured && o.Targets == AttnOnly {
		return errors.New("subnet: structured pruning removes FFN channels; it cannot target attention only")
	}
	if math.IsNaN(o.Gamma) || o.Gamma < 0 || o.Gamma > 1 {
		return fmt.Errorf("subnet: soft gate γ %g must be in [0, 1]", o.Gamma)
	}
	if o.Damp < 0 || o.BlockSize < 0 {
		return errors.New("subnet: negative dampening or block size")
	}
	if o.Method != SparseGPT && (o.Damp != 0 || o.BlockSize != 0 || o.WholeBlock) {
		return fmt.Errorf("subnet: dampening, block size and the whole-block threshold are SparseGPT's settings, not %s's", o.Method)
	}
	if o.WholeBlock && o.M > 0 {
		return errors.New("subnet: the whole-block threshold does not apply to N:M sparsity (every group of M keeps N)")
	}
	return nil
}

// keepCount returns k = floor(n·(1−ρ)).
func keepCount(n int, rho float64) int {
	k := int(math.Floor(float64(n)*(1-rho) + 1e-9))
	return min(max(k, 0), n)
}

// Result is a mask and, for SparseGPT, the updated weights to use with it.
type Result struct {
	Mask    *mask.Mask
	Weights mask.Weights
}

// Prune builds a single-persona mask for m with the magnitude, Wanda or
// SparseGPT scorer. st supplies the activation statistics (unused by
// magnitude, which accepts nil); for SparseGPT it must hold the Gram matrix
// of every targeted input (collect with stats.Options.Gram), otherwise use
// SparseGPTSequential. st must have been collected on m.
func Prune(m *model.Model, st *stats.Stats, o Options) (*Result, error) {
	if err := o.validate(&m.Config); err != nil {
		return nil, err
	}
	if o.Method != Magnitude {
		if st == nil {
			return nil, fmt.Errorf("subnet: %s needs activation statistics", o.Method)
		}
		if err := st.Check(m); err != nil {
			return nil, err
		}
	}
	mk := newMask(m, &o, o.Method)
	if st != nil {
		mk.Info.Calibration = calibString(st)
	}
	switch o.Method {
	case Magnitude, Wanda:
		sc := func(l int, p model.Proj) ([]float64, error) {
			if o.Method == Magnitude {
				return nil, nil
			}
			ch := st.Channel(l, p)
			if ch == nil {
				return nil, fmt.Errorf("subnet: the statistics lack layer %d %s input (%s)", l, p, stats.InputOf(p))
			}
			return ch.MeanNorm(), nil
		}
		if err := buildMasks(m, mk, &o, func(l int, p model.Proj) (colScorer, error) {
			a, err := sc(l, p)
			if err != nil {
				return nil, err
			}
			return wandaScorer(a), nil
		}, 0); err != nil {
			return nil, err
		}
		return &Result{Mask: mk}, nil
	case SparseGPT:
		res := &Result{Mask: mk, Weights: mask.Weights{}}
		keys := targetKeys(m, &o)
		for i, k := range keys {
			ch := st.Channel(k.Layer, k.Proj)
			if ch == nil || ch.Gram == nil {
				return nil, fmt.Errorf("subnet: SparseGPT needs the Gram matrix of layer %d %s input (%s): collect statistics with Gram matrices, or use the sequential pipeline", k.Layer, k.Proj, stats.InputOf(k.Proj))
			}
			if err := sparseGPTKey(m, k, ch.Gram, &o, res); err != nil {
				return nil, err
			}
			if o.Progress != nil {
				o.Progress(i+1, len(keys))
			}
		}
		return res, nil
	}
	return nil, fmt.Errorf("subnet: unknown method %q", o.Method)
}

func calibString(st *stats.Stats) string {
	c := st.Manifest.Calibration
	s := c.Name
	if c.SHA256 != "" {
		s += " sha256:" + c.SHA256[:min(16, len(c.SHA256))]
	}
	return fmt.Sprintf("%s (%d samples, %d tokens)", s, st.Manifest.Samples, st.Manifest.Tokens)
}

func newMask(m *model.Model, o *Options, method Method) *mask.Mask {
	mk := mask.New(m)
	mk.Gamma = o.Gamma
	mk.Info = mask.Info{Method: string(method), Sparsity: o.Sparsity, Granularity: o.Granularity(), Targets: o.Targets.String(), Model: m.Source()}
	if o.M > 0 {
		mk.Info.Sparsity = 1 - float64(o.N)/float64(o.M)
	}
	if o.LayerSparsity != nil {
		parts := make([]string, len(o.LayerSparsity))
		for i, r := range o.LayerSparsity {
			parts[i] = strconv.FormatFloat(r, 'g', 4, 64)
		}
		mk.Info.Extra = map[string]string{"layer_sparsity": strings.Join(parts, ",")}
	}
	if method == SparseGPT {
		// The settings in use (the initial λ: a matrix whose dampened
		// Hessian is not positive definite retries with 10λ, 100λ, …).
		if mk.Info.Extra == nil {
			mk.Info.Extra = map[string]string{}
		}
		damp, bs, sel := o.Damp, o.BlockSize, "row"
		if damp == 0 {
			damp = 0.01
		}
		if bs <= 0 {
			bs = 128
		}
		if o.M > 0 {
			bs = max(o.M, bs-bs%o.M)
			sel = fmt.Sprintf("%d:%d", o.N, o.M)
		} else if o.WholeBlock {
			sel = "block"
		}
		mk.Info.Extra["sparsegpt_damp"] = strconv.FormatFloat(damp, 'g', -1, 64)
		mk.Info.Extra["sparsegpt_block"] = strconv.Itoa(bs)
		mk.Info.Extra["sparsegpt_select"] = sel
	}
	return mk
}

// targetKeys lists the masked projections in order.
func targetKeys(m *model.Model, o *Options) []mask.Key {
	var ks []mask.Key
	for l := 0; l < m.Config.Layers; l++ {
		for p := model.Proj(0); p < model.NumProj; p++ {
			if o.Targets.Has(p) && (!o.Structured || p >= model.ProjGate) {
				ks = append(ks, mask.Key{Layer: l, Proj: p})
			}
		}
	}
	return ks
}

// colScorer fills the scores of one row: primary (and optionally secondary,
// a tie-break) from the row's weights w.
type colScorer interface {
	score(w []float32, primary, secondary []float64) (hasSecondary bool)
}

// wandaScorer scores |W_ij|·a[j] (|W_ij| when a is nil).
type wandaScorer []float64

func (a wandaScorer) score(w []float32, p, _ []float64) bool {
	for j, x := range w {
		v := math.Abs(float64(x))
		if a != nil {
			v *= a[j]
		}
		p[j] = v
	}
	return false
}

// rowOf decodes row r of w into dst.
func rowOf(w *kernels.Matrix, r int, dst []float32) {
	if f := w.F32(); f != nil {
		copy(dst, f[r*w.Cols:(r+1)*w.Cols])
		return
	}
	_ = quant.DequantizeRow(w.Type, w.RowData(r), dst)
}

// buildMasks scores and selects every targeted matrix. rankOffset > 0
// keeps the entries ranked [offset·k, (offset+1)·k) instead of the top k
// (the second side of the pooled contrastive variant).
func buildMasks(m *model.Model, mk *mask.Mask, o *Options, scorer func(l int, p model.Proj) (colScorer, error), rankOffset int) error {
	if o.Structured {
		return buildStructured(m, mk, o, scorer, rankOffset)
	}
	keys := targetKeys(m, o)
	for i, k := range keys {
		sc, err := scorer(k.Layer, k.Proj)
		if err != nil {
			return err
		}
		w := m.Layers[k.Layer].Weight(k.Proj)
		b := mask.NewBits(w.Rows, w.Cols)
		kk := keepCount(w.Cols, o.SparsityOf(k.Layer))
		parallelRows(w.Rows, o.workers(), func(r0, r1 int) {
			row := make([]float32, w.Cols)
			p := make([]float64, w.Cols)
			s := make([]float64, w.Cols)
			keep := make([]bool, w.Cols)
			idx := make([]int, w.Cols)
			for r := r0; r < r1; r++ {
				rowOf(w, r, row)
				rk := ranker{p: p}
				if sc.score(row, p, s) {
					rk.s = s
					sanitize(s)
				}
				sanitize(p)
				if o.M > 0 {
					rk.keepNM(keep, rankOffset*o.N, (rankOffset+1)*o.N, o.M)
				} else {
					rk.keepRanks(keep, idx, rankOffset*kk, (rankOffset+1)*kk)
				}
				b.SetRow(r, keep)
			}
		})
		if err := mk.Set(k, b); err != nil {
			return err
		}
		if o.Progress != nil {
			o.Progress(i+1, len(keys))
		}
	}
	return nil
}

// buildStructured keeps whole FFN channels per layer: channel c scores the
// sum of the scores of row c of gate and up and column c of down.
func buildStructured(m *model.Model, mk *mask.Mask, o *Options, scorer func(l int, p model.Proj) (colScorer, error), rankOffset int) error {
	ff := m.Config.Intermediate
	for l := 0; l < m.Config.Layers; l++ {
		prim := make([]float64, ff)
		sec := make([]float64, ff)
		hasSec := false
		var mu sync.Mutex
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			sc, err := scorer(l, p)
			if err != nil {
				return err
			}
			w := m.Layers[l].Weight(p)
			parallelRows(w.Rows, o.workers(), func(r0, r1 int) {
				row := make([]float32, w.Cols)
				ps := make([]float64, w.Cols)
				ss := make([]float64, w.Cols)
				lp := make([]float64, ff)
				ls := make([]float64, ff)
				lsec := false
				for r := r0; r < r1; r++ {
					rowOf(w, r, row)
					clear(ss)
					h := sc.score(row, ps, ss)
					lsec = lsec || h
					if p == model.ProjDown { // column c of down
						for c := range ps {
							lp[c] += ps[c]
							ls[c] += ss[c]
						}
					} else { // row r of gate/up is channel r
						for j := range ps {
							lp[r] += ps[j]
							ls[r] += ss[j]
						}
					}
				}
				mu.Lock()
				for c := range lp {
					prim[c] += lp[c]
					sec[c] += ls[c]
				}
				hasSec = hasSec || lsec
				mu.Unlock()
			})
		}
		sanitize(prim)
		sanitize(sec)
		rk := ranker{p: prim}
		if hasSec {
			rk.s = sec
		}
		keep := make([]bool, ff)
		kk := keepCount(ff, o.SparsityOf(l))
		rk.keepRanks(keep, make([]int, ff), rankOffset*kk, (rankOffset+1)*kk)
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			if !o.Targets.Has(p) {
				continue
			}
			if err := mk.SetChannels(l, p, keep); err != nil {
				return err
			}
		}
		if o.Progress != nil {
			o.Progress(l+1, m.Config.Layers)
		}
	}
	return nil
}

// parallelRows runs f over [0, rows) split into contiguous chunks, on n
// goroutines at most (n ≤ 1: in the caller's).
func parallelRows(rows, n int, f func(r0, r1 int)) { workers.Ranges(rows, max(n, 1), f) }
