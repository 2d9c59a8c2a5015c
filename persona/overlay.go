package persona

// An Overlay turns a persona's weight mask or LoRA adapter into
// per-sequence corrections for model.ForwardBatch, so that many personas run
// over one copy of the base weights:
//
//   - an FFN channel mask (whole intermediate channels pruned, as
//     `masque subnet --granularity ffn-channels` makes) becomes a vector
//     that multiplies the sequence's FFN activations (model.Hooks.FFNMask);
//   - any other mask is applied as the projection runs: the sequence's rows
//     are multiplied by the masked weights with kernels.MatMulMasked, which
//     masks a few shared weight rows at a time in scratch memory from the
//     bit-packed mask, and the output is replaced by (with a soft mask's γ)
//     γ·x·Wᵀ + (1−γ)·x·(W⊙M)ᵀ + b;
//   - a LoRA adapter adds scale·(x·Aᵀ)·Bᵀ to the projections it adapts.
//
// A persona then costs its bit-packed mask (or its adapter's A and B), not a
// copy of the model.

import (
	"fmt"
	"sync"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
)

// Overlay is what a persona carries over its base model in a batched
// forward pass: a model.Adapter for its linear corrections and optional
// per-sequence hooks (FFN channel masks). An *Overlay is comparable, so the
// sequences of one persona are adapted together.
type Overlay struct {
	base *model.Model

	// Mask part.
	gamma  float32
	ffn    [][]float32              // per layer: channel multipliers, or nil
	sparse [][model.NumProj]*sparse // per layer and projection, or nil

	// LoRA part.
	lora  *lora.Adapter
	scale float32
	mats  [][model.NumProj][2]*kernels.Matrix

	bytes int64
}

// sparse is the unstructured mask of one projection.
type sparse struct {
	w    *kernels.Matrix
	bias []float32 // the projection's bias, nil for none
	bits *mask.Bits
	pre  *kernels.Premasked // its masked rows made once (Premask), or nil
}

// MaskOverlay prepares mk, which must have been made for base, for batched
// serving. FFN blocks whose masks prune whole channels become channel
// multipliers; every other masked projection is multiplied by its masked
// weights (see the package comment).
// Nothing of base is copied.
func MaskOverlay(base *model.Model, mk *mask.Mask) (*Overlay, error) {
	if err := mk.Check(base); err != nil {
		return nil, err
	}
	p := &Overlay{base: base, gamma: float32(mk.Gamma)}
	return p, p.addMask(mk)
}

// LoRAOverlay prepares a LoRA adapter over base for batched serving. The
// adapter's A and B are shared, not copied.
func LoRAOverlay(base *model.Model, a *lora.Adapter) (*Overlay, error) {
	p := &Overlay{base: base}
	return p, p.addLoRA(a)
}

// NewOverlay returns an overlay with both a mask and a LoRA adapter (either may
// be nil): the adapter's correction is added to the masked projection.
func NewOverlay(base *model.Model, mk *mask.Mask, a *lora.Adapter) (*Overlay, error) {
	p := &Overlay{base: base}
	if mk != nil {
		if err := mk.Check(base); err != nil {
			return nil, err
		}
		p.gamma = float32(mk.Gamma)
		if err := p.addMask(mk); err != nil {
			return nil, err
		}
	}
	if a != nil {
		if err := p.addLoRA(a); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Overlay) addMask(mk *mask.Mask) error {
	cfg := &p.base.Config
	L := cfg.Layers
	p.ffn = make([][]float32, L)
	p.sparse = make([][model.NumProj]*sparse, L)
	for l := 0; l < L; l++ {
		ly := &p.base.Layers[l]
		g, u, d := mk.Get(mask.Key{Layer: l, Proj: model.ProjGate}), mk.Get(mask.Key{Layer: l, Proj: model.ProjUp}), mk.Get(mask.Key{Layer: l, Proj: model.ProjDown})
		if vec := channelVector(g, u, d, mk.Gamma, ly.GateBias == nil && ly.UpBias == nil, cfg.Intermediate); vec != nil {
			p.ffn[l] = vec
			p.bytes += int64(len(vec)) * 4
		}
		for pr := model.Proj(0); pr < model.NumProj; pr++ {
			if p.ffn[l] != nil && (pr == model.ProjGate || pr == model.ProjUp || pr == model.ProjDown) {
				continue
			}
			b := mk.Get(mask.Key{Layer: l, Proj: pr})
			if b == nil {
				continue
			}
			w := ly.Weight(pr)
			if b.Rows != w.Rows || b.Cols != w.Cols {
				return fmt.Errorf("persona: layer %d %s: mask %d×%d, weight %d×%d", l, pr.HFName(), b.Rows, b.Cols, w.Rows, w.Cols)
			}
			any := false
			for r := 0; r < b.Rows && !any; r++ {
				any = b.RowCount(r) < b.Cols
			}
			if !any || p.gamma == 1 {
				continue
			}
			if w.Type.Quantized() {
				// Masked products need F32, F16 or BF16 weights: a mask over
				// a quantised encoding of its base (mask.Compat) runs on an
				// F16 copy of the decoded projection.
				var err error
				if w, err = decodedF16(w); err != nil {
					return fmt.Errorf("persona: layer %d %s: %v", l, pr.HFName(), err)
				}
				p.bytes += int64(len(w.Data))
			}
			p.sparse[l][pr] = &sparse{w: w, bias: ly.Bias(pr), bits: b}
			p.bytes += int64(len(b.Data))
		}
	}
	return nil
}

// decodedF16 returns the block-quantised matrix w decoded to F16.
func decodedF16(w *kernels.Matrix) (*kernels.Matrix, error) {
	out := make([]byte, 2*w.Rows*w.Cols)
	row := make([]float32, w.Cols)
	for r := 0; r < w.Rows; r++ {
		if err := quant.DequantizeRow(w.Type, w.RowData(r), row); err != nil {
			return nil, err
		}
		if err := quant.QuantizeRow(quant.F16, row, out[2*r*w.Cols:2*(r+1)*w.Cols]); err != nil {
			return nil, err
		}
	}
	return kernels.NewMatrix(quant.F16, w.Rows, w.Cols, out)
}

// channelVector returns the FFN channel multipliers equivalent to masking
// gate and up rows and down columns, or nil when the masks are not whole
// channels (or nothing is masked). Gate or up rows can only become a
// multiplier when pruning them zeroes the channel: γ = 0 and no biases.
func channelVector(g, u, d *mask.Bits, gamma float64, noBias bool, ff int) []float32 {
	if g == nil && u == nil && d == nil {
		return nil
	}
	if (g != nil || u != nil) && (gamma != 0 || !noBias) {
		return nil
	}
	keep := make([]bool, ff)
	for i := range keep {
		keep[i] = true
	}
	for _, b := range []*mask.Bits{g, u} {
		if b == nil {
			continue
		}
		for r := 0; r < b.Rows; r++ {
			switch b.RowCount(r) {
			case b.Cols:
			case 0:
				keep[r] = false
			default:
				return nil
			}
		}
	}
	if d != nil {
		for c := 0; c < d.Cols; c++ {
			n := 0
			for r := 0; r < d.Rows; r++ {
				if d.Get(r, c) {
					n++
				}
			}
			switch n {
			case d.Rows:
			case 0:
				keep[c] = false
			default:
				return nil
			}
		}
	}
	vec := make([]float32, ff)
	dropped := false
	for i, k := range keep {
		switch {
		case k:
			vec[i] = 1
		case g != nil && !g.Get(i, 0), u != nil && !u.Get(i, 0):
			vec[i] = 0 // gate or up row pruned: the channel is zero
			dropped = true
		default:
			vec[i] = float32(gamma) // only the down column pruned, scaled by γ
			dropped = true
		}
	}
	if !dropped {
		return nil
	}
	return vec
}

func (p *Overlay) addLoRA(a *lora.Adapter) error {
	if err := a.Check(p.base); err != nil {
		return err
	}
	p.lora = a
	p.scale = a.Scale()
	p.mats = make([][model.NumProj][2]*kernels.Matrix, p.base.Config.Layers)
	r := a.Config.Rank
	for _, pr := range a.All() {
		p.mats[pr.Layer][pr.Proj] = [2]*kernels.Matrix{kernels.FromF32(r, pr.In, pr.A), kernels.FromF32(pr.Out, r, pr.B)}
	}
	p.bytes += a.NumParams() * 4
	return nil
}

// Bytes is the memory the persona holds beyond the shared base model: its
// bit-packed masks, channel vectors and LoRA weights.
func (p *Overlay) Bytes() int64 {
	if p == nil {
		return 0
	}
	return p.bytes
}

// Channels reports how many layers use an FFN channel vector and how many
// projections its masked weights (unstructured masks).
func (p *Overlay) Channels() (ffnLayers, sparseProjs int) {
	if p == nil {
		return 0, 0
	}
	for l := range p.ffn {
		if p.ffn[l] != nil {
			ffnLayers++
		}
		for _, s := range p.sparse[l] {
			if s != nil {
				sparseProjs++
			}
		}
	}
	return
}

// Hooks returns the per-sequence hooks (the FFN channel mask), or nil when
// the persona has none (or p is nil).
func (p *Overlay) Hooks() *model.Hooks {
	if p == nil {
		return nil
	}
	for _, v := range p.ffn {
		if v != nil {
			return &model.Hooks{FFNMask: p.FFNMask}
		}
	}
	return nil
}

// FFNMask returns layer l's FFN channel multipliers, or nil.
func (p *Overlay) FFNMask(l int) []float32 {
	if l < 0 || l >= len(p.ffn) {
		return nil
	}
	return p.ffn[l]
}

// Adapter returns p as a model.Adapter, or nil when p has no linear
// corrections (base model or channel masks only).
func (p *Overlay) Adapter() model.Adapter {
	if p == nil {
		return nil
	}
	if p.lora == nil {
		has := false
		for l := range p.sparse {
			for _, s := range p.sparse[l] {
				has = has || s != nil
			}
		}
		if !has {
			return nil
		}
	}
	return p
}

// Replaces implements model.Replacer: a projection under a hard
// unstructured mask (γ = 0) is computed from the masked weights alone, so
// the batch leaves the persona's rows out of the shared product.
func (p *Overlay) Replaces(layer int, pr model.Proj) bool {
	return p.gamma == 0 && layer < len(p.sparse) && p.sparse[layer][pr] != nil
}

// AdaptLinear implements model.Adapter.
func (p *Overlay) AdaptLinear(layer int, pr model.Proj, y, x []float32, rows int) {
	if layer < len(p.sparse) {
		if s := p.sparse[layer][pr]; s != nil {
			s.apply(p.base.K, y, x, rows, 1-p.gamma)
		}
	}
	if p.mats != nil {
		if m := p.mats[layer][pr]; m[0] != nil {
			k := p.base.K
			r := m[0].Rows
			tp, dp := scratch.Get().(*[]float32), scratch.Get().(*[]float32)
			defer scratch.Put(tp)
			defer scratch.Put(dp)
			t, d := grow(tp, rows*r), grow(dp, rows*m[1].Rows) // written whole by MatMul
			k.MatMul(t, x, m[0], rows)
			k.MatMul(d, t, m[1], rows)
			k.Axpy(p.scale, d, y[:len(d)])
		}
	}
}

// scratch holds the masked products' outputs between calls (a forward pass
// of a masked persona makes one per projection and layer).
var scratch = sync.Pool{New: func() any { return new([]float32) }}

// grow returns the first n elements of *bp, enlarged first when needed
// (their values are left over from earlier use).
func grow(bp *[]float32, n int) []float32 {
	if cap(*bp) < n {
		*bp = make([]float32, n)
	}
	return (*bp)[:n]
}

// apply replaces y = x·Wᵀ + b (rows rows) by the output of the masked
// weights W⊙M + γ·W⊙(1−M) = W − f·W⊙(1−M), f = 1−γ: it computes
// ym = x·(W⊙M)ᵀ with kernels.MatMulMasked (a few masked rows at a time,
// nothing of W copied) and sets y ← y − f·(y − b − ym).
func (s *sparse) apply(k kernels.Kernels, y, x []float32, rows int, f float32) {
	N := s.w.Rows
	bp := scratch.Get().(*[]float32)
	defer scratch.Put(bp)
	ym := grow(bp, rows*N) // every element is written by MatMulMasked
	if s.pre != nil {
		kernels.MatMulPremasked(k, ym, x, s.pre, rows)
	} else {
		kernels.MatMulMasked(k, ym, x, s.w, s.bits.Data, s.bits.Stride(), rows)
	}
	for i := 0; i < rows; i++ {
		yi, mi := y[i*N:(i+1)*N], ym[i*N:(i+1)*N]
		for r, v := range mi {
			if s.bias != nil {
				v += s.bias[r]
			}
			yi[r] -= f * (yi[r] - v)
		}
	}
}

// Model returns a view of the base model that applies the overlay to every
// sequence it runs (model.Model.With): for decoding and evaluation, which
// take one model. Nothing is copied. A nil overlay gives nil.
func (p *Overlay) Model() *model.Model {
	if p == nil {
		return nil
	}
	return p.base.With(p.Adapter(), p.Hooks())
}

// PremaskBudget bounds the memory MaskedModel spends on masked rows made
// once (Overlay.Premask): 1 GiB, float32 rows of every unstructured-masked
// projection (a 12.6M-parameter model takes about 40 MiB; a 0.5B one 1.7
// GiB, so its passes mask as they go).
var PremaskBudget int64 = 1 << 30

// Premask makes the masked rows of every projection under an unstructured
// mask once, when they take at most maxBytes in all (kernels.Premask), so
// that every later pass skips the masking; the products are the same bit
// for bit. It returns the bytes spent (0 when over budget or nothing is
// masked). For a model that runs many passes under one mask (evaluation,
// decoding); a server, which keeps many personas, does not call it.
func (p *Overlay) Premask(maxBytes int64) int64 {
	var need int64
	for l := range p.sparse {
		for _, sp := range p.sparse[l] {
			if sp != nil && sp.pre == nil {
				need += int64(sp.w.Rows) * int64(sp.w.Cols) * 4
			}
		}
	}
	if need == 0 || need > maxBytes {
		return 0
	}
	var spent int64
	for l := range p.sparse {
		for _, sp := range p.sparse[l] {
			if sp != nil && sp.pre == nil {
				sp.pre = kernels.Premask(p.base.K, sp.w, sp.bits.Data, sp.bits.Stride())
				spent += sp.pre.Bytes()
			}
		}
	}
	p.bytes += spent
	return spent
}

// MaskedModel returns base with the mask mk applied per sequence (a view,
// see Overlay.Model): the run-time way to evaluate or decode with a mask.
// Its masked rows are made once when they fit PremaskBudget (Premask).
// It computes what mask.Masked(base, mk, nil), the masked copy that `masque
// mask apply` exports, computes: the same logits bit for bit over float32
// weights; over BF16 weights the masked products block their sums slightly
// differently (about 1e-6), which rounding the activations to bf16 (the
// default, see kernels.RoundsBF16) can turn into one bf16 step (logits about
// 1e-3 apart on builtin:voices). mask.FingerprintMasked gives the masked
// copy's fingerprint. mk must have been made for base.
func MaskedModel(base *model.Model, mk *mask.Mask) (*model.Model, error) {
	p, err := MaskOverlay(base, mk)
	if err != nil {
		return nil, err
	}
	p.Premask(PremaskBudget)
	return p.Model(), nil
}
