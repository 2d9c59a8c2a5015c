package model

import (
	"fmt"
	"math"
	"reflect"

	"github.com/masque-ai/masque/kernels"
)

// Replacer is an Adapter that computes the whole output of some
// projections from their input alone (a weight mask over the shared
// weights, for example). For a projection it Replaces, ForwardBatch leaves
// its sequences' rows out of the shared product, and AdaptLinear gets y
// holding only the projection's bias (zeros without one) in those rows.
type Replacer interface {
	Adapter
	// Replaces reports whether AdaptLinear computes projection p of layer l
	// without the shared product.
	Replaces(layer int, p Proj) bool
}

// Adapter changes the linear projections of the sequences it is attached to
// in a batched forward pass (ForwardBatch) without touching the shared
// weights: a LoRA adapter adds x·Aᵀ·Bᵀ, a sparse weight mask subtracts the
// contribution of its pruned entries, and so on.
type Adapter interface {
	// AdaptLinear is called after projection p of layer l has computed
	// y = x·Wᵀ + b for rows rows of the sequences that carry this adapter:
	// x is [rows × in] and y is [rows × out], both row-major. It may change
	// y in place (typically by adding a correction computed from x). The
	// slices belong to the forward pass: use them, do not keep them.
	AdaptLinear(layer int, p Proj, y, x []float32, rows int)
}

// BatchSeq is one sequence of a batched forward pass: its cache, the new
// tokens to run at the positions that follow what the cache holds, and what
// applies to it alone.
type BatchSeq struct {
	// Cache holds the sequence's keys and values; the new tokens' are
	// appended to it. Every sequence of a batch needs its own cache.
	Cache *Cache
	// Tokens are the new tokens (at least one).
	Tokens []int
	// All asks for the logits of every new token; otherwise only the last
	// token's row is returned.
	All bool
	// Hooks, if not nil, apply to this sequence only: FFNMask multiplies
	// this sequence's FFN activations (a per-sequence channel mask), and
	// LinearInput and Hidden see this sequence's rows only.
	Hooks *Hooks
	// Adapter, if not nil, corrects this sequence's linear projections.
	// Sequences whose Adapter values are equal (==) are adapted together
	// in one call over all their rows, so a persona's sequences share the
	// work; Adapter values must therefore be comparable (pointers are).
	Adapter Adapter
}

// ForwardBatch runs the new tokens of several independent sequences through
// the model together. Every matrix product runs once over the rows of all
// sequences stacked (one MatMul per weight, so the weights are read once per
// step whatever the number of sequences); RoPE positions, attention and the
// KV caches are per sequence, and each sequence's Hooks and Adapter apply to
// its own rows only. The result has one logits slice per sequence, in the
// order given: Vocab values per token when All is set, otherwise only for
// the last token.
//
// A batch of one sequence computes exactly what ForwardHooks does. With more
// sequences the results equal running each alone up to float32 rounding
// (the matrix kernels may block the sums differently for more rows).
//
// Nothing is changed when an error is returned.
func (m *Model) ForwardBatch(seqs []BatchSeq) ([][]float32, error) {
	seqs, err := m.withView(seqs)
	if err != nil {
		return nil, err
	}
	T, err := m.checkBatch(seqs)
	if err != nil {
		return nil, err
	}
	return m.forwardBatch(seqs, T)
}

// checkBatch validates a batch and returns its number of new tokens.
func (m *Model) checkBatch(seqs []BatchSeq) (int, error) {
	cfg := &m.Config
	if len(seqs) == 0 {
		return 0, fmt.Errorf("forward batch: no sequences")
	}
	T := 0
	caches := make(map[*Cache]int, len(seqs))
	for i := range seqs {
		s := &seqs[i]
		if s.Cache == nil {
			return 0, fmt.Errorf("forward batch: sequence %d has no cache", i)
		}
		if j, dup := caches[s.Cache]; dup {
			return 0, fmt.Errorf("forward batch: sequences %d and %d share a cache", j, i)
		}
		caches[s.Cache] = i
		if len(s.Tokens) == 0 {
			return 0, fmt.Errorf("forward batch: sequence %d has no tokens", i)
		}
		if s.Cache.kvDim != cfg.KVDim() || s.Cache.headDim != cfg.HeadDim || len(s.Cache.k) != cfg.Layers {
			return 0, fmt.Errorf("forward batch: sequence %d's cache was made for another model", i)
		}
		if n := s.Cache.n + len(s.Tokens); n > s.Cache.max {
			return 0, fmt.Errorf("forward batch: sequence %d: %d positions exceed the cache's %d", i, n, s.Cache.max)
		}
		for _, t := range s.Tokens {
			if t < 0 || t >= cfg.Vocab {
				return 0, fmt.Errorf("forward batch: sequence %d: token id %d outside the vocabulary [0,%d)", i, t, cfg.Vocab)
			}
		}
		if s.Adapter != nil && !reflect.TypeOf(s.Adapter).Comparable() {
			return 0, fmt.Errorf("forward batch: sequence %d: adapter of type %T is not comparable", i, s.Adapter)
		}
		T += len(s.Tokens)
	}
	return T, nil
}

// forwardBatch runs a checked batch of T new tokens: Begin, every layer in
// order, Logits.
func (m *Model) forwardBatch(seqs []BatchSeq, T int) ([][]float32, error) {
	p := m.begin(seqs, T)
	for l := range m.Layers {
		p.layer(l)
	}
	return p.Logits(), nil
}

// Pass is one batched forward pass run a step at a time, so that callers
// can drive it layer by layer: Begin embeds the new tokens of a batch,
// Layer runs one decoder layer over the residual stream, and Logits applies
// the final norm and LM head. ForwardBatch is Begin, Layer(0) … Layer(L−1)
// and Logits, with this very code, so a pass driven by hand computes
// exactly what ForwardBatch does.
//
// Between steps the caller may read and overwrite the residual stream
// (Residual): to run a layer twice from the same input (say, before and
// after changing its weights), keep a copy of the stream and put it back.
// Each sequence's Hooks and Adapter apply as in ForwardBatch. A Pass is not
// safe for concurrent use.
type Pass struct {
	m    *Model
	seqs []BatchSeq
	T    int
	// Row layout: sequence i owns rows [off[i], off[i+1]); its first new
	// token is at position p0[i].
	off, p0 []int

	x, cos, sin           []float32 // residual stream [T×H]; RoPE tables [T×HeadDim/2]
	xn, q, kk, vv, attOut []float32
	proj, gate, up        []float32
	groups                []*adapterGroup
	anyHooks              bool
	att                   *attention
	gx, gy, rx, ry        []float32 // gather buffers (adapters over scattered rows; rows no adapter replaces)
	replaced              []bool
}

// Begin checks a batch (as ForwardBatch does; a view's adapter and hooks,
// see With, apply to the sequences that bring none), makes room in the caches
// and embeds the new tokens: the residual stream then holds the input of
// layer 0. Nothing is changed when an error is returned.
func (m *Model) Begin(seqs []BatchSeq) (*Pass, error) {
	seqs, err := m.withView(seqs)
	if err != nil {
		return nil, err
	}
	T, err := m.checkBatch(seqs)
	if err != nil {
		return nil, err
	}
	return m.begin(seqs, T), nil
}

// begin starts a pass over a checked batch of T new tokens.
func (m *Model) begin(seqs []BatchSeq, T int) *Pass {
	cfg := &m.Config
	k := m.K
	H, qd, kvd, ff := cfg.Hidden, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	half := cfg.HeadDim / 2
	p := &Pass{m: m, seqs: seqs, T: T, off: make([]int, len(seqs)+1), p0: make([]int, len(seqs))}
	for i := range seqs {
		p.off[i+1] = p.off[i] + len(seqs[i].Tokens)
		p.p0[i] = seqs[i].Cache.n
	}
	for i := range seqs {
		seqs[i].Cache.grow(p.p0[i] + len(seqs[i].Tokens))
	}
	p.x = make([]float32, T*H)
	p.cos = make([]float32, T*half)
	p.sin = make([]float32, T*half)
	for i := range seqs {
		for j, t := range seqs[i].Tokens {
			r := p.off[i] + j
			k.Row(p.x[r*H:(r+1)*H], m.Embed, t)
			m.rope.cosSin(p.p0[i]+j, p.cos[r*half:(r+1)*half], p.sin[r*half:(r+1)*half])
		}
	}
	p.xn = make([]float32, T*max(H, qd))
	p.q = make([]float32, T*qd)
	kv := make([]float32, 2*T*kvd)
	p.kk, p.vv = kv[:T*kvd], kv[T*kvd:]
	p.attOut = make([]float32, T*qd)
	p.proj = make([]float32, T*H)
	p.gate = make([]float32, T*ff)
	p.up = make([]float32, T*ff)
	p.groups = adapterGroups(seqs, p.off)
	for i := range seqs {
		if seqs[i].Hooks != nil {
			p.anyHooks = true
		}
	}
	p.att = newAttention(seqs, p.off, p.p0, cfg, k)
	return p
}

// Rows is the number of new tokens in the pass (the rows of the residual
// stream); sequence i's rows follow those of the sequences before it.
func (p *Pass) Rows() int { return p.T }

// Residual returns the residual stream ([Rows × Hidden], row-major): the
// input of the next layer to run. It is the pass's own buffer: the caller
// may read it and write it between steps, not keep it past the pass.
func (p *Pass) Residual() []float32 { return p.x }

// Layer runs decoder layer l over the residual stream and stores the new
// tokens' keys and values of layer l in the caches. A full forward pass
// runs layers 0 … Layers−1 in order; a layer may also be run again after
// the stream has been put back (see Pass).
func (p *Pass) Layer(l int) error {
	if l < 0 || l >= len(p.m.Layers) {
		return fmt.Errorf("forward pass: layer %d outside [0,%d)", l, len(p.m.Layers))
	}
	p.layer(l)
	return nil
}

// hidden calls the Hidden hooks with x, sequence i owning rows rowsOf(i).
func (p *Pass) hidden(l int, x []float32, rowsOf func(i int) (int, int)) {
	if !p.anyHooks {
		return
	}
	H := p.m.Config.Hidden
	for i := range p.seqs {
		if h := p.seqs[i].Hooks; h != nil && h.Hidden != nil {
			a, b := rowsOf(i)
			h.Hidden(l, x[a*H:b*H], b-a, H)
		}
	}
}

func (p *Pass) seqRows(i int) (int, int) { return p.off[i], p.off[i+1] }

// linear sets dst = in·Wᵀ + b for projection pr of layer l over the T rows,
// with the LinearInput hooks before and the adapters after.
func (p *Pass) linear(l int, pr Proj, dst, in []float32) {
	ly := &p.m.Layers[l]
	w := ly.Weight(pr)
	seqs, off, T := p.seqs, p.off, p.T
	if p.anyHooks {
		for i := range seqs {
			if h := seqs[i].Hooks; h != nil && h.LinearInput != nil {
				h.LinearInput(l, pr, in[off[i]*w.Cols:off[i+1]*w.Cols], off[i+1]-off[i], w.Cols)
			}
		}
	}
	sharedProduct(p.m.K, dst, in, w, T, replacedRows(l, pr, p.groups, seqs, off, T, &p.replaced), &p.rx, &p.ry)
	if b := ly.Bias(pr); b != nil {
		for r := 0; r < T; r++ {
			addTo(dst[r*w.Rows:(r+1)*w.Rows], b)
		}
	}
	for _, g := range p.groups {
		if g.lo >= 0 {
			g.a.AdaptLinear(l, pr, dst[g.lo*w.Rows:g.hi*w.Rows], in[g.lo*w.Cols:g.hi*w.Cols], g.hi-g.lo)
			continue
		}
		n := 0
		for _, i := range g.seqs {
			n += off[i+1] - off[i]
		}
		p.gx = grow32(p.gx, n*w.Cols)
		p.gy = grow32(p.gy, n*w.Rows)
		r := 0
		for _, i := range g.seqs {
			c := off[i+1] - off[i]
			copy(p.gx[r*w.Cols:(r+c)*w.Cols], in[off[i]*w.Cols:off[i+1]*w.Cols])
			copy(p.gy[r*w.Rows:(r+c)*w.Rows], dst[off[i]*w.Rows:off[i+1]*w.Rows])
			r += c
		}
		g.a.AdaptLinear(l, pr, p.gy[:n*w.Rows], p.gx[:n*w.Cols], n)
		r = 0
		for _, i := range g.seqs {
			c := off[i+1] - off[i]
			copy(dst[off[i]*w.Rows:off[i+1]*w.Rows], p.gy[r*w.Rows:(r+c)*w.Rows])
			r += c
		}
	}
}

// layer runs decoder layer l (l in range).
func (p *Pass) layer(l int) {
	cfg := &p.m.Config
	k := p.m.K
	H, D, qd, kvd, ff := cfg.Hidden, cfg.HeadDim, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	half := D / 2
	T, x, xn, q, kk, vv := p.T, p.x, p.xn, p.q, p.kk, p.vv
	ly := &p.m.Layers[l]
	p.hidden(l, x, p.seqRows)
	k.RMSNorm(xn[:T*H], x, ly.AttnNorm, cfg.NormEps)
	p.linear(l, ProjQ, q, xn)
	p.linear(l, ProjK, kk, xn)
	p.linear(l, ProjV, vv, xn)
	if ly.QNorm != nil {
		k.RMSNorm(q, q, ly.QNorm, cfg.NormEps)
		k.RMSNorm(kk, kk, ly.KNorm, cfg.NormEps)
	}
	for r := 0; r < T; r++ {
		cs, sn := p.cos[r*half:(r+1)*half], p.sin[r*half:(r+1)*half]
		applyRope(q[r*qd:(r+1)*qd], cfg.Heads, D, cs, sn)
		applyRope(kk[r*kvd:(r+1)*kvd], cfg.KVHeads, D, cs, sn)
	}
	for i := range p.seqs {
		c := p.seqs[i].Cache
		for r := p.off[i]; r < p.off[i+1]; r++ {
			c.put(l, p.p0[i]+r-p.off[i], kk[r*kvd:(r+1)*kvd], vv[r*kvd:(r+1)*kvd])
		}
	}
	p.att.run(l, q, p.attOut, float32(1/math.Sqrt(float64(D))), cfg.Heads/cfg.KVHeads)
	p.linear(l, ProjO, p.proj, p.attOut)
	addTo(x, p.proj)

	k.RMSNorm(xn[:T*H], x, ly.MLPNorm, cfg.NormEps)
	p.linear(l, ProjGate, p.gate, xn)
	p.linear(l, ProjUp, p.up, xn)
	k.SiLUMul(p.gate, p.gate, p.up)
	if p.anyHooks {
		for i := range p.seqs {
			h := p.seqs[i].Hooks
			if h == nil || h.FFNMask == nil {
				continue
			}
			if mask := h.FFNMask(l); mask != nil {
				for r := p.off[i]; r < p.off[i+1]; r++ {
					mulTo(p.gate[r*ff:(r+1)*ff], mask)
				}
			}
		}
	}
	p.linear(l, ProjDown, p.proj, p.gate)
	addTo(x, p.proj)
}

// Logits ends the pass: the caches are marked as holding the new tokens
// (so call it after running every layer when the caches are used again),
// and the final norm and LM head run over the rows whose logits are wanted.
// The result is what ForwardBatch returns: one logits slice per sequence,
// Vocab values per token when All is set, otherwise only for the last token.
func (p *Pass) Logits() [][]float32 {
	m, seqs, off := p.m, p.seqs, p.off
	cfg := &m.Config
	k := m.K
	H, T, x, xn := cfg.Hidden, p.T, p.x, p.xn
	p.hidden(cfg.Layers, x, p.seqRows)
	for i := range seqs {
		seqs[i].Cache.n = p.p0[i] + len(seqs[i].Tokens)
	}

	// The final norm and LM head run only over the rows whose logits are
	// wanted, stacked.
	outOff := make([]int, len(seqs)+1)
	for i := range seqs {
		n := 1
		if seqs[i].All {
			n = len(seqs[i].Tokens)
		}
		outOff[i+1] = outOff[i] + n
	}
	R := outOff[len(seqs)]
	in := x
	if R != T {
		in = make([]float32, R*H)
		for i := range seqs {
			src := off[i]
			if !seqs[i].All {
				src = off[i+1] - 1
			}
			copy(in[outOff[i]*H:outOff[i+1]*H], x[src*H:])
		}
	}
	k.RMSNorm(xn[:R*H], in, m.Norm, cfg.NormEps)
	p.hidden(cfg.Layers+1, xn, func(i int) (int, int) { return outOff[i], outOff[i+1] })
	V := cfg.Vocab
	logits := make([]float32, R*V)
	k.MatMul(logits, xn, m.LMHead, R)
	out := make([][]float32, len(seqs))
	for i := range seqs {
		out[i] = logits[outOff[i]*V : outOff[i+1]*V : outOff[i+1]*V]
	}
	return out
}

// adapterGroup is the set of sequences that share one Adapter. When their
// rows are contiguous, lo and hi bound them; otherwise lo is -1 and the rows
// are gathered.
type adapterGroup struct {
	a      Adapter
	seqs   []int
	lo, hi int
}

func adapterGroups(seqs []BatchSeq, off []int) []*adapterGroup {
	var groups []*adapterGroup
	for i := range seqs {
		a := seqs[i].Adapter
		if a == nil {
			continue
		}
		var g *adapterGroup
		for _, h := range groups {
			if h.a == a {
				g = h
				break
			}
		}
		if g == nil {
			g = &adapterGroup{a: a, lo: off[i], hi: off[i]}
			groups = append(groups, g)
		}
		g.seqs = append(g.seqs, i)
		if g.lo >= 0 && g.hi == off[i] {
			g.hi = off[i+1]
		} else {
			g.lo = -1
		}
	}
	return groups
}

func grow32(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// replacedRows marks, in *buf, the batch rows whose projection p of layer l
// a Replacer adapter computes; it returns nil when there are none.
func replacedRows(l int, p Proj, groups []*adapterGroup, seqs []BatchSeq, off []int, T int, buf *[]bool) []bool {
	var out []bool
	for _, g := range groups {
		r, ok := g.a.(Replacer)
		if !ok || !r.Replaces(l, p) {
			continue
		}
		if out == nil {
			if cap(*buf) < T {
				*buf = make([]bool, T)
			}
			out = (*buf)[:T]
			clear(out)
		}
		for _, i := range g.seqs {
			for r := off[i]; r < off[i+1]; r++ {
				out[r] = true
			}
		}
	}
	return out
}

// sharedProduct sets dst = in·Wᵀ for the T rows, except the rows marked in
// skip, which it zeroes. The other rows are multiplied in one product
// (gathered into rx and ry when they are not contiguous), so the weights
// are read once.
func sharedProduct(k kernels.Kernels, dst, in []float32, w *kernels.Matrix, T int, skip []bool, rx, ry *[]float32) {
	if skip == nil {
		k.MatMul(dst, in, w, T)
		return
	}
	N, C := w.Rows, w.Cols
	var keep []int
	for r := 0; r < T; r++ {
		if skip[r] {
			clear(dst[r*N : (r+1)*N])
		} else {
			keep = append(keep, r)
		}
	}
	switch {
	case len(keep) == 0:
	case keep[len(keep)-1]-keep[0] == len(keep)-1: // contiguous
		a := keep[0]
		k.MatMul(dst[a*N:], in[a*C:(a+len(keep))*C], w, len(keep))
	default:
		n := len(keep)
		*rx, *ry = grow32(*rx, n*C), grow32(*ry, n*N)
		for j, r := range keep {
			copy((*rx)[j*C:(j+1)*C], in[r*C:(r+1)*C])
		}
		k.MatMul(*ry, *rx, w, n)
		for j, r := range keep {
			copy(dst[r*N:(r+1)*N], (*ry)[j*N:(j+1)*N])
		}
	}
}
