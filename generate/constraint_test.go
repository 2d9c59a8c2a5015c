package generate

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// seqConstraint allows exactly the ids of seq, in order, and is complete
// after them.
type seqConstraint struct{ seq []int }

func (c seqConstraint) Start() ConstraintState { return &seqState{seq: c.seq} }

type seqState struct {
	seq []int
	at  int
}

func (s *seqState) Allowed(allowed []bool) bool {
	if s.at < len(s.seq) {
		allowed[s.seq[s.at]] = true
	}
	return s.at == len(s.seq)
}

func (s *seqState) Accept(id int) error {
	s.at++
	return nil
}

// noneConstraint allows nothing and is never complete.
type noneConstraint struct{}

func (noneConstraint) Start() ConstraintState { return noneState{} }
func (noneState) Allowed([]bool) bool         { return false }
func (noneState) Accept(int) error            { return nil }

type noneState struct{}

// TestConstraint: a constraint decides every token, even against the
// model's preference and at any temperature; the end comes only when it
// says the output is complete; no allowed token is an error.
func TestConstraint(t *testing.T) {
	m, _, _ := stories(t)
	prompt := []int{1, 100, 200, 300}
	seq := []int{301, 302, 50, 7, 450}
	for _, temp := range []float32{0, 1.5} {
		res, err := Generate(context.Background(), m, nil, prompt, Options{Temperature: temp, Seed: 1, MaxTokens: 50, StopTokens: []int{2}, Constraint: seqConstraint{seq}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.IDs, seq) || res.FinishReason != FinishStop {
			t.Errorf("temperature %g: %v (%s), want %v then the stop token", temp, res.IDs, res.FinishReason, seq)
		}
	}
	_, err := Generate(context.Background(), m, nil, prompt, Options{MaxTokens: 5, Constraint: noneConstraint{}}, nil)
	if err == nil || !strings.Contains(err.Error(), "allows no token") {
		t.Errorf("nothing allowed: %v", err)
	}
}
