package ppl

import (
	"context"
	"fmt"
	"slices"

	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/model"
)

// Scorer computes the negative log-likelihood of samples as Evaluate does,
// doing less work when many samples are scored: the keys and values of the
// longest prefix that a sample shares with the previous sample scored under
// the same key (a chat template and system prompt, say, across the
// questions of a benchmark) are copied instead of computed again. The sums
// equal Evaluate's up to the order of float32 additions inside the model
// (the prompt's rows run in two passes instead of one).
//
// A Scorer belongs to one model and one goroutine.
type Scorer struct {
	m    *model.Model
	last map[string]*scoredPrefix // nil: nothing shared (Evaluate)
}

// scoredPrefix is the unscored start of the last sample of a key and the
// cache that holds its keys and values.
type scoredPrefix struct {
	ids []int
	c   *model.Cache
}

// NewScorer returns a Scorer over m (a model or a view of one).
func NewScorer(m *model.Model) *Scorer {
	return &Scorer{m: m, last: map[string]*scoredPrefix{}}
}

// NLL returns the summed negative log-likelihood of s's scored tokens and
// their number (0 and 0 when none is scored). key groups the samples whose
// prefixes are worth sharing; any string will do.
func (sc *Scorer) NLL(ctx context.Context, key string, s Sample) (nll float64, tokens int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if s.Score != nil && len(s.Score) != len(s.IDs) {
		return 0, 0, fmt.Errorf("ppl: %d score flags for %d tokens", len(s.Score), len(s.IDs))
	}
	scored := func(j int) bool { return j > 0 && (s.Score == nil || s.Score[j]) }
	first := -1
	for j := 1; j < len(s.IDs); j++ {
		if scored(j) {
			first = j
			break
		}
	}
	if first < 0 {
		return 0, 0, nil
	}
	// The tokens before position first−1 need no logits; those from it on
	// do. The first pre tokens are what a later sample may share.
	pre := first - 1
	c := sc.m.NewCache(len(s.IDs))
	shared := 0
	if p := sc.last[key]; p != nil {
		for shared < min(len(p.ids), pre) && p.ids[shared] == s.IDs[shared] {
			shared++
		}
		if shared > 0 {
			if err := c.CopyPrefix(p.c, shared); err != nil {
				return 0, 0, fmt.Errorf("ppl: %w", err)
			}
		}
	}
	// One pass over the rest (a masked view pays for its masking once a
	// pass), its logits used from position pre on.
	lg, err := sc.m.Forward(c, s.IDs[shared:len(s.IDs)-1], true)
	if err != nil {
		return 0, 0, fmt.Errorf("ppl: %w", err)
	}
	V := sc.m.Config.Vocab
	for j := first; j < len(s.IDs); j++ {
		if scored(j) {
			row := j - 1 - shared
			nll -= generate.LogProb(lg[row*V:(row+1)*V], s.IDs[j])
			tokens++
		}
	}
	if sc.last != nil {
		c.Truncate(pre)
		sc.last[key] = &scoredPrefix{ids: slices.Clone(s.IDs[:pre]), c: c}
	}
	return nll, tokens, nil
}
