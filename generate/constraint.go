package generate

import (
	"errors"
)

// Constraint restricts which tokens may be generated (constrained decoding,
// for instance output that must be JSON matching a schema). It is shared
// by generations; each one takes its own State.
type Constraint interface {
	// Start returns the state at the beginning of a generation.
	Start() ConstraintState
}

// ConstraintState follows one generation through a Constraint.
type ConstraintState interface {
	// Allowed sets allowed[id] (len: the vocabulary size) to whether token
	// id may come next, for every id that is not a stop token, and
	// reports whether the output so far is complete, so that generation may
	// stop here (stop tokens and EOS are allowed exactly then).
	Allowed(allowed []bool) (complete bool)
	// Accept advances the state over a generated token, which Allowed
	// allowed.
	Accept(id int) error
}

// constrained runs a ConstraintState beside a Sampler.
type constrained struct {
	state   ConstraintState
	allowed []bool
	stops   []int // ids that end generation
}

// newConstrained starts c for a vocabulary of vocab ids; isStop tells the
// ids that end generation.
func newConstrained(c Constraint, vocab int, isStop func(int) bool) *constrained {
	k := &constrained{state: c.Start(), allowed: make([]bool, vocab)}
	for id := 0; id < vocab; id++ {
		if isStop(id) {
			k.stops = append(k.stops, id)
		}
	}
	return k
}

// sample draws a token the state allows (a stop token only when the output
// is complete).
func (k *constrained) sample(s *Sampler, logits []float32, history []int) (int, error) {
	clear(k.allowed)
	complete := k.state.Allowed(k.allowed)
	for _, id := range k.stops {
		k.allowed[id] = complete
	}
	id := s.SampleMasked(logits, history, k.allowed)
	if id < 0 {
		return 0, errors.New("generate: the constraint allows no token here (the vocabulary cannot continue the output)")
	}
	return id, nil
}
