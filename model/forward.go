package model

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
