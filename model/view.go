package model

import "fmt"

// With returns a view of m that applies the adapter a and the hooks h (either
// may be nil) to every sequence it runs: Forward and ForwardHooks, and the
// sequences of ForwardBatch that bring no Adapter or Hooks of their own. This
// is how a persona's weight mask or LoRA adapter (package persona's Overlay)
// runs in code that takes one model (decoding, evaluation): per sequence
// over the shared weights, as the server applies it, with nothing copied.
//
// The view shares every weight with m, which must stay open while the view
// is used; closing the view does nothing. A view of a view replaces its
// adapter and hooks.
func (m *Model) With(a Adapter, h *Hooks) *Model {
	v := *m
	v.closer = nil
	v.seqAdapter, v.seqHooks = a, h
	return &v
}

// SeqAdapter and SeqHooks are what the view applies to each sequence (nil
// for a model that is not a view made by With).
func (m *Model) SeqAdapter() Adapter { return m.seqAdapter }

// SeqHooks: see SeqAdapter.
func (m *Model) SeqHooks() *Hooks { return m.seqHooks }

// withView returns seqs with the view's adapter and hooks filled in where a
// sequence brings none (seqs itself when m is not a view).
func (m *Model) withView(seqs []BatchSeq) ([]BatchSeq, error) {
	if m.seqAdapter == nil && m.seqHooks == nil {
		return seqs, nil
	}
	out := make([]BatchSeq, len(seqs))
	for i, s := range seqs {
		if s.Adapter == nil {
			s.Adapter = m.seqAdapter
		}
		h, err := m.viewHooks(s.Hooks)
		if err != nil {
			return nil, fmt.Errorf("forward batch: sequence %d: %w", i, err)
		}
		s.Hooks = h
		out[i] = s
	}
	return out, nil
}

// viewHooks combines a caller's hooks with the view's: each field from
// whichever sets it; both setting one is an error.
func (m *Model) viewHooks(h *Hooks) (*Hooks, error) {
	v := m.seqHooks
	switch {
	case v == nil:
		return h, nil
	case h == nil:
		return v, nil
	}
	out := *h
	if v.LinearInput != nil {
		if out.LinearInput != nil {
			return nil, fmt.Errorf("the hooks and the model view both set LinearInput")
		}
		out.LinearInput = v.LinearInput
	}
	if v.Hidden != nil {
		if out.Hidden != nil {
			return nil, fmt.Errorf("the hooks and the model view both set Hidden")
		}
		out.Hidden = v.Hidden
	}
	if v.FFNMask != nil {
		if out.FFNMask != nil {
			return nil, fmt.Errorf("the hooks and the model view both set FFNMask")
		}
		out.FFNMask = v.FFNMask
	}
	return &out, nil
}
