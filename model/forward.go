package model

import "fmt"

// Cache is the key/value cache of one sequence. It grows as tokens are added,
// up to the maximum length it was made with.
type Cache struct {
	kvDim, headDim, max int
	capPos              int         // positions allocated per KV head
	k, v                [][]float32 // per layer: [KV heads × capPos × headDim], head-major
	n                   int
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
	return &Cache{kvDim: m.Config.KVDim(), headDim: m.Config.HeadDim, max: maxSeq,
		k: make([][]float32, m.Config.Layers), v: make([][]float32, m.Config.Layers)}
}

// head returns the keys and values of KV head h in layer l, one row of
// headDim values per position (capPos rows, the first Len() filled).
func (c *Cache) head(l, h int) (k, v []float32) {
	n := c.capPos * c.headDim
	return c.k[l][h*n : (h+1)*n], c.v[l][h*n : (h+1)*n]
}

// put stores the keys and values of position pos in layer l from rows
// holding every KV head side by side (kvDim values each).
func (c *Cache) put(l, pos int, k, v []float32) {
	D := c.headDim
	for h, o := 0, pos*D; h < c.kvDim/D; h, o = h+1, o+c.capPos*D {
		copy(c.k[l][o:o+D], k[h*D:(h+1)*D])
		copy(c.v[l][o:o+D], v[h*D:(h+1)*D])
	}
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

// CopyPrefix replaces c's contents with the first n positions of src, so
// that c continues src's sequence from position n: keys and values depend
// only on the tokens before them, so a shared prompt prefix computed once can
// seed other sequences. Both caches must belong to models of the same shape
// (layers and KV width); n may be at most src.Len() and c.Max(). On error, c
// is unchanged. src is only read; when c is src, c is truncated to n.
func (c *Cache) CopyPrefix(src *Cache, n int) error {
	switch {
	case c == nil || src == nil:
		return fmt.Errorf("copy prefix: nil cache")
	case c.kvDim != src.kvDim || len(c.k) != len(src.k):
		return fmt.Errorf("copy prefix: caches of different models (%d layers × %d KV width, source %d × %d)", len(c.k), c.kvDim, len(src.k), src.kvDim)
	case n < 0 || n > src.n:
		return fmt.Errorf("copy prefix: %d positions, the source holds %d", n, src.n)
	case n > c.max:
		return fmt.Errorf("copy prefix: %d positions exceed the cache's %d", n, c.max)
	}
	if c == src {
		c.n = n
		return nil
	}
	c.n = 0 // nothing of the old contents needs to survive a reallocation
	c.grow(n)
	m := n * c.headDim
	for l := range c.k {
		for h := 0; h < c.kvDim/c.headDim; h++ {
			dk, dv := c.head(l, h)
			sk, sv := src.head(l, h)
			copy(dk[:m], sk[:m])
			copy(dv[:m], sv[:m])
		}
	}
	c.n = n
	return nil
}

// Bytes is the memory the cache holds.
func (c *Cache) Bytes() int64 {
	var b int64
	for i := range c.k {
		b += int64(cap(c.k[i])+cap(c.v[i])) * 4
	}
	return b
}

// grow makes room for n positions in every layer, keeping the first Len().
func (c *Cache) grow(n int) {
	if n <= c.capPos {
		return
	}
	nc := min(max(n, 2*c.capPos), c.max)
	D, heads := c.headDim, c.kvDim/c.headDim
	keep := c.n * D
	for l := range c.k {
		k := make([]float32, heads*nc*D)
		v := make([]float32, heads*nc*D)
		if keep > 0 {
			for h := 0; h < heads; h++ {
				ok, ov := c.head(l, h)
				copy(k[h*nc*D:], ok[:keep])
				copy(v[h*nc*D:], ov[:keep])
			}
		}
		c.k[l], c.v[l] = k, v
	}
	c.capPos = nc
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

// ForwardHooks is Forward with hooks (nil hooks are allowed). It is a batch
// of one sequence through ForwardBatch, so single and batched inference
// share one implementation. Without hooks, a long run of tokens goes
// through in chunks of forwardChunk, which bounds the memory of the
// activations (hooks see every call's tokens together, so with hooks it is
// one pass).
func (m *Model) ForwardHooks(c *Cache, tokens []int, all bool, h *Hooks) ([]float32, error) {
	own := h != nil
	h, err := m.viewHooks(h) // a view's (With) per-sequence hooks
	if err != nil {
		return nil, err
	}
	seq := []BatchSeq{{Cache: c, Tokens: tokens, All: all, Hooks: h, Adapter: m.seqAdapter}}
	T, err := m.checkBatch(seq)
	if err != nil {
		return nil, err
	}
	if own || T <= forwardChunk {
		out, err := m.forwardBatch(seq, T)
		if err != nil {
			return nil, err
		}
		return out[0], nil
	}
	var logits []float32
	if all {
		logits = make([]float32, 0, T*m.Config.Vocab)
	}
	for i := 0; i < T; i += forwardChunk {
		part := tokens[i:min(T, i+forwardChunk)]
		out, err := m.forwardBatch([]BatchSeq{{Cache: c, Tokens: part, All: all, Hooks: h, Adapter: m.seqAdapter}}, len(part))
		if err != nil {
			return nil, err
		}
		if all {
			logits = append(logits, out[0]...)
		} else {
			logits = out[0]
		}
	}
	return logits, nil
}

// forwardChunk is the most tokens Forward runs in one pass.
var forwardChunk = 512

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
