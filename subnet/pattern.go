package subnet

import (
	"fmt"
	"strconv"
	"strings"
)

// PatternSpec is the shape of a sweep's masks as text, the way `masque
// subnet` and `masque subnet contrast` take it (--sparsity, --layer-sparsity,
// --nm, --structured, --only, --gamma, --workers).
type PatternSpec struct {
	// Sparsity is a comma-separated list of sparsities: one mask each.
	Sparsity string
	// LayerSparsity is a comma-separated sparsity per layer; it overrides
	// Sparsity (one mask, whose Sparsity is the mean).
	LayerSparsity string
	// NM is an N:M pattern such as 2:4; it replaces Sparsity (one mask).
	NM         string
	Structured bool
	// Only is the projections masked: all, mlp or attn.
	Only    string
	Gamma   float64
	Workers int
}

// SpecError is a PatternSpec field that does not parse; Field is the
// field's name as a flag (sparsity, layer-sparsity, nm, only).
type SpecError struct {
	Field string
	Err   error
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

// Patterns returns one Options per mask the spec asks for: one per
// sparsity of the list, or a single one for an N:M pattern or per-layer
// sparsities. Errors are *SpecError.
func (s PatternSpec) Patterns() ([]Options, error) {
	base := Options{Structured: s.Structured, Gamma: s.Gamma, Workers: s.Workers}
	var err error
	if base.Targets, err = ParseTargets(s.Only); err != nil {
		return nil, &SpecError{"only", err}
	}
	if s.NM != "" {
		if base.N, base.M, err = ParseNM(s.NM); err != nil {
			return nil, &SpecError{"nm", err}
		}
		return []Options{base}, nil
	}
	if s.LayerSparsity != "" {
		if base.LayerSparsity, err = ParseFloats(s.LayerSparsity); err != nil {
			return nil, &SpecError{"layer-sparsity", err}
		}
		var mean float64
		for _, r := range base.LayerSparsity {
			mean += r
		}
		if n := len(base.LayerSparsity); n > 0 {
			base.Sparsity = mean / float64(n)
		}
		return []Options{base}, nil
	}
	rhos, err := ParseFloats(s.Sparsity)
	if err != nil {
		return nil, &SpecError{"sparsity", err}
	}
	if len(rhos) == 0 {
		return nil, &SpecError{"sparsity", fmt.Errorf("no value")}
	}
	out := make([]Options, len(rhos))
	for i, r := range rhos {
		out[i] = base
		out[i].Sparsity = r
	}
	return out, nil
}

// ParseFloats parses a comma-separated list of numbers; empty entries are
// skipped.
func ParseFloats(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", p)
		}
		out = append(out, v)
	}
	return out, nil
}
