package model

import (
	"fmt"
	"math"
)

// Cache is the key/value cache of one sequence. It grows as tokens are added,
// up to the maximum length it was made with.
type Cache struct {
	kvDim, max int
	k, v       [][]float32 // per layer: [positions × kvDim]
	n          int
}

// NewCache returns an empty cache for up to maxSeq positions (maxSeq ≤ 0
// means the model's max_position_embeddings, or 4096 if that is unset).
func (m *Model) NewCache(maxSeq int) *Cache {
	if maxSeq <= 0 {
		maxSeq = m.Config.MaxSeq
		if maxSeq <= 0 {
			maxSeq = 4096
		}
	}
	return &Cache{kvDim: m.Config.KVDim(), max: maxSeq, k: make([][]float32, m.Config.Layers), v: make([][]float32, m.Config.Layers)}
}

// Len is the number of positions stored.
func (c *Cache) Len() int { return c.n }

// Max is the number of positions the cache can hold.
func (c *Cache) Max() int { return c.max }

// Reset empties the cache, keeping its memory.
func (c *Cache) Reset() { c.n = 0 }

// Truncate drops every position from n on.
func (c *Cache) Truncate(n int) {
	if n < c.n && n >= 0 {
		c.n = n
	}
}

// Bytes is the memory the cache holds.
func (c *Cache) Bytes() int64 {
	var b int64
	for i := range c.k {
		b += int64(cap(c.k[i])+cap(c.v[i])) * 4
	}
	return b
}

// grow makes room for n positions in every layer.
func (c *Cache) grow(n int) {
	need := n * c.kvDim
	for l := range c.k {
		if cap(c.k[l]) < need {
			nc := max(need, 2*cap(c.k[l]))
			nc = min(nc, c.max*c.kvDim)
			k := make([]float32, need, nc)
			v := make([]float32, need, nc)
			copy(k, c.k[l][:c.n*c.kvDim])
			copy(v, c.v[l][:c.n*c.kvDim])
			c.k[l], c.v[l] = k, v
		} else {
			c.k[l] = c.k[l][:need]
			c.v[l] = c.v[l][:need]
		}
	}
}

// Hooks observe or steer a forward pass. Every field is optional. Slices
// passed to a hook belong to the forward pass: read them, do not keep them.
type Hooks struct {
	// LinearInput sees the input ([rows × cols], row-major) of projection p
	// in layer l just before it is applied.
	LinearInput func(layer int, p Proj, x []float32, rows, cols int)
	// Hidden sees the residual stream entering layer l ([rows × Hidden]);
	// l == Layers is the stream after the last layer and l == Layers+1 the
	// output of the final norm.
	Hidden func(layer int, x []float32, rows, cols int)
	// FFNMask, if it returns a non-nil slice of length Intermediate for layer
	// l, multiplies the FFN's intermediate activations silu(gate)·up by it
	// (a structured channel mask).
	FFNMask func(layer int) []float32
}

// Forward runs tokens at the positions that follow what c already holds,
// appends their keys and values to c, and returns logits: one row of Vocab
// values per token if all is true, otherwise only the last token's row.
func (m *Model) Forward(c *Cache, tokens []int, all bool) ([]float32, error) {
	return m.ForwardHooks(c, tokens, all, nil)
}

// ForwardHooks is Forward with hooks (nil hooks are allowed).
func (m *Model) ForwardHooks(c *Cache, tokens []int, all bool, h *Hooks) ([]float32, error) {
	cfg := &m.Config
	T := len(tokens)
	if T == 0 {
		return nil, fmt.Errorf("forward: no tokens")
	}
	if c.n+T > c.max {
		return nil, fmt.Errorf("forward: %d positions exceed the cache's %d", c.n+T, c.max)
	}
	for _, t := range tokens {
		if t < 0 || t >= cfg.Vocab {
			return nil, fmt.Errorf("forward: token id %d outside the vocabulary [0,%d)", t, cfg.Vocab)
		}
	}
	if h == nil {
		h = &Hooks{}
	}
	k := m.K
	H, D, qd, kvd, ff := cfg.Hidden, cfg.HeadDim, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	p0 := c.n
	c.grow(p0 + T)

	x := make([]float32, T*H)
	for i, t := range tokens {
		k.Row(x[i*H:(i+1)*H], m.Embed, t)
	}
	xn := make([]float32, T*max(H, qd))
	q := make([]float32, T*qd)
	kv := make([]float32, 2*T*kvd)
	kk, vv := kv[:T*kvd], kv[T*kvd:]
	att := make([]float32, T*qd)
	proj := make([]float32, T*H)
	gate := make([]float32, T*ff)
	up := make([]float32, T*ff)

	half := D / 2
	cos := make([]float32, T*half)
	sin := make([]float32, T*half)
	for i := 0; i < T; i++ {
		m.rope.cosSin(p0+i, cos[i*half:(i+1)*half], sin[i*half:(i+1)*half])
	}
	linear := func(l int, p Proj, dst, in []float32, rows int) {
		ly := &m.Layers[l]
		w := ly.Weight(p)
		if h.LinearInput != nil {
			h.LinearInput(l, p, in[:rows*w.Cols], rows, w.Cols)
		}
		k.MatMul(dst, in, w, rows)
		if b := ly.Bias(p); b != nil {
			for r := 0; r < rows; r++ {
				addTo(dst[r*w.Rows:(r+1)*w.Rows], b)
			}
		}
	}
	scale := float32(1 / math.Sqrt(float64(D)))
	group := cfg.Heads / cfg.KVHeads
	scores := make([]float32, p0+T)

	for l := range m.Layers {
		ly := &m.Layers[l]
		if h.Hidden != nil {
			h.Hidden(l, x, T, H)
		}
		k.RMSNorm(xn[:T*H], x, ly.AttnNorm, cfg.NormEps)
		linear(l, ProjQ, q, xn, T)
		linear(l, ProjK, kk, xn, T)
		linear(l, ProjV, vv, xn, T)
		if ly.QNorm != nil {
			k.RMSNorm(q, q, ly.QNorm, cfg.NormEps)
			k.RMSNorm(kk, kk, ly.KNorm, cfg.NormEps)
		}
		for i := 0; i < T; i++ {
			cs, sn := cos[i*half:(i+1)*half], sin[i*half:(i+1)*half]
			applyRope(q[i*qd:(i+1)*qd], cfg.Heads, D, cs, sn)
			applyRope(kk[i*kvd:(i+1)*kvd], cfg.KVHeads, D, cs, sn)
		}
		kc, vc := c.k[l], c.v[l]
		copy(kc[p0*kvd:], kk)
		copy(vc[p0*kvd:], vv)
		for i := 0; i < T; i++ {
			pos := p0 + i
			lo := 0
			if w := cfg.SlidingWindow; w > 0 && pos-w+1 > 0 {
				lo = pos - w + 1
			}
			for hd := 0; hd < cfg.Heads; hd++ {
				qh := q[i*qd+hd*D : i*qd+(hd+1)*D]
				off := (hd / group) * D
				s := scores[lo : pos+1]
				for j := lo; j <= pos; j++ {
					s[j-lo] = k.Dot(qh, kc[j*kvd+off:j*kvd+off+D]) * scale
				}
				k.Softmax(s)
				out := att[i*qd+hd*D : i*qd+(hd+1)*D]
				clear(out)
				for j := lo; j <= pos; j++ {
					k.Axpy(s[j-lo], vc[j*kvd+off:j*kvd+off+D], out)
				}
			}
		}
		linear(l, ProjO, proj, att, T)
		addTo(x, proj)

		k.RMSNorm(xn[:T*H], x, ly.MLPNorm, cfg.NormEps)
		linear(l, ProjGate, gate, xn, T)
		linear(l, ProjUp, up, xn, T)
		k.SiLUMul(gate, gate, up)
		if h.FFNMask != nil {
			if mask := h.FFNMask(l); mask != nil {
				for r := 0; r < T; r++ {
					mulTo(gate[r*ff:(r+1)*ff], mask)
				}
			}
		}
		linear(l, ProjDown, proj, gate, T)
		addTo(x, proj)
	}
	if h.Hidden != nil {
		h.Hidden(cfg.Layers, x, T, H)
	}
	c.n = p0 + T

	rows, in := T, x
	if !all {
		rows, in = 1, x[(T-1)*H:]
	}
	k.RMSNorm(xn[:rows*H], in, m.Norm, cfg.NormEps)
	if h.Hidden != nil {
		h.Hidden(cfg.Layers+1, xn[:rows*H], rows, H)
	}
	logits := make([]float32, rows*cfg.Vocab)
	k.MatMul(logits, xn, m.LMHead, rows)
	return logits, nil
}

func addTo(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}

func mulTo(dst, src []float32) {
	for i, v := range src {
		dst[i] *= v
	}
}
