package synth

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/model"
)

// Default layer range of the persona-sensitivity score (METHODS §1 stage A,
// step 3); it is clamped to the model's depth.
const (
	DefaultFirstLayer = 5
	DefaultLastLayer  = 24
)

// ErrPromptTooLong is returned by Scorer.Score for a question whose chat
// prompt does not fit the model's context.
var ErrPromptTooLong = errors.New("prompt does not fit the model's context")

// Scorer computes the persona-sensitivity score of questions with the model
// to be pruned:
//
//	s(q) = 1 − mean over reference personas R, mean over layers l, of
//	       cos(h_l(q, P), h_l(q, R))
//
// where h_l(q, X) is Hugging Face's hidden_states[l] of the last prompt
// token for the chat prompt [system: X, user: q] with the generation prompt
// appended: the residual stream entering layer l for l < Layers, and for
// l == Layers the output of the final norm (HF applies the model's final
// norm to its last hidden state; for a model of ≤ 24 layers the default
// range reaches it). Each persona keeps its own KV cache, and the longest
// prefix shared with the previous prompt (the system turn) is reused, so
// only the question part is recomputed. A Scorer is not safe for concurrent
// use.
type Scorer struct {
	ck         *checkpoint.Checkpoint
	personas   []string // [0] is the target, then the references
	first      int      // first layer (inclusive)
	last       int      // last layer (inclusive)
	caches     []*model.Cache
	cached     [][]int
	hiddenSize int
}

// NewScorer prepares a scorer for persona against refs (nil: the built-in
// ReferencePersonas) at layers first..last (inclusive), clamped to
// [0, Layers], where Layers (hidden_states[Layers], after the final norm) is
// the deepest. A negative first layer or a reversed range is an error.
func NewScorer(ck *checkpoint.Checkpoint, persona string, refs []string, first, last int) (*Scorer, error) {
	if persona == "" {
		return nil, errors.New("no persona")
	}
	if first < 0 || last < first {
		return nil, fmt.Errorf("sensitivity layers %d..%d: want 0 ≤ first ≤ last", first, last)
	}
	if refs == nil {
		refs = ReferencePersonas
	}
	if len(refs) == 0 {
		return nil, errors.New("no reference personas")
	}
	L := ck.Model.Config.Layers
	first, last = min(first, L), min(last, L)
	s := &Scorer{ck: ck, personas: append([]string{persona}, refs...), first: first, last: last,
		hiddenSize: ck.Model.Config.Hidden}
	s.caches = make([]*model.Cache, len(s.personas))
	s.cached = make([][]int, len(s.personas))
	for i := range s.caches {
		s.caches[i] = ck.Model.NewCache(0)
	}
	return s, nil
}

// Layers is the (clamped) layer range, inclusive.
func (s *Scorer) Layers() (first, last int) { return s.first, s.last }

// hidden returns the last prompt token's hidden state at each scored layer
// for persona p and question q.
func (s *Scorer) hidden(p int, q string) ([][]float32, error) {
	ids, err := s.ck.EncodeChat([]chattemplate.Message{{Role: "system", Content: s.personas[p]}, {Role: "user", Content: q}}, true, nil)
	if err != nil {
		return nil, err
	}
	return s.hiddenIDs(p, ids)
}

// hiddenIDs is hidden for the prompt's tokens.
func (s *Scorer) hiddenIDs(p int, ids []int) ([][]float32, error) {
	c := s.caches[p]
	if len(ids) == 0 {
		return nil, errors.New("empty prompt")
	}
	if len(ids) > c.Max() {
		return nil, ErrPromptTooLong
	}
	keep := 0
	prev := s.cached[p]
	for keep < len(prev) && keep < len(ids)-1 && prev[keep] == ids[keep] {
		keep++
	}
	keep = min(keep, c.Len())
	c.Truncate(keep)
	H := s.hiddenSize
	out := make([][]float32, s.last-s.first+1)
	L := s.ck.Model.Config.Layers
	hooks := &model.Hooks{Hidden: func(layer int, x []float32, rows, cols int) {
		// The hook's layer L is the stream leaving the last block and L+1
		// the final norm's output, which is HF's hidden_states[L].
		switch {
		case layer == L:
			return
		case layer == L+1:
			layer = L
		}
		if layer >= s.first && layer <= s.last {
			h := make([]float32, H)
			copy(h, x[(rows-1)*cols:(rows-1)*cols+H])
			out[layer-s.first] = h
		}
	}}
	if _, err := s.ck.Model.ForwardHooks(c, ids[keep:], false, hooks); err != nil {
		c.Truncate(keep)
		s.cached[p] = ids[:keep]
		return nil, err
	}
	s.cached[p] = ids
	return out, nil
}

// Score returns s(q) in [0, 2] (higher: the persona changes the model's
// state more on this question).
func (s *Scorer) Score(ctx context.Context, q string) (float64, error) {
	return s.score(ctx, func(p int) ([][]float32, error) { return s.hidden(p, q) })
}

// score is Score with hidden(p) giving persona p's hidden states.
func (s *Scorer) score(ctx context.Context, hidden func(p int) ([][]float32, error)) (float64, error) {
	target, err := hidden(0)
	if err != nil {
		return 0, err
	}
	var sum float64
	for r := 1; r < len(s.personas); r++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		ref, err := hidden(r)
		if err != nil {
			return 0, err
		}
		var layerSum float64
		for l := range target {
			layerSum += cosine(target[l], ref[l])
		}
		sum += layerSum / float64(len(target))
	}
	return 1 - sum/float64(len(s.personas)-1), nil
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// String describes the scorer's setup.
func (s *Scorer) String() string {
	return fmt.Sprintf("%s, layers %d..%d, %d reference personas", s.ck.Path, s.first, s.last, len(s.personas)-1)
}
