package mask

import (
	"fmt"

	"github.com/masque-ai/masque/model"
)

// Share counts entries that differ out of a number of entries.
type Share struct {
	Differ  int64   `json:"differ"`
	Entries int64   `json:"entries"`
	Share   float64 `json:"share"` // Differ / Entries (0 when Entries is 0)
}

func (s *Share) add(d, n int64) {
	s.Differ += d
	s.Entries += n
	if s.Entries > 0 {
		s.Share = float64(s.Differ) / float64(s.Entries)
	}
}

// DiffResult is the comparison of two masks of the same model.
type DiffResult struct {
	Total    Share            `json:"total"`     // over every linear weight of the model
	PerLayer []Share          `json:"per_layer"` // per decoder block
	PerProj  map[string]Share `json:"per_proj"`  // per module type (q, k, v, o, gate, up, down)
	// DensityA and DensityB are the kept shares of the two masks.
	DensityA float64 `json:"density_a"`
	DensityB float64 `json:"density_b"`
}

// Diff compares a and b entry by entry: the share of entries that one mask
// keeps and the other prunes, over the whole model, per layer and per module
// type. A layer missing from a mask counts as dense. The masks must be for
// the same model (same fingerprint).
func Diff(a, b *Mask) (*DiffResult, error) {
	if a.Fingerprint != b.Fingerprint {
		return nil, fmt.Errorf("mask: the masks are for different models (fingerprints %s and %s)", short(a.Fingerprint), short(b.Fingerprint))
	}
	if a.Layers != b.Layers || a.Shapes != b.Shapes {
		return nil, fmt.Errorf("mask: the masks have different shapes")
	}
	r := &DiffResult{PerLayer: make([]Share, a.Layers), PerProj: map[string]Share{}, DensityA: a.Density(), DensityB: b.Density()}
	for l := 0; l < a.Layers; l++ {
		for p := model.Proj(0); p < model.NumProj; p++ {
			k := Key{l, p}
			n := int64(a.Shapes[p][0]) * int64(a.Shapes[p][1])
			var d int64
			ba, bb := a.Get(k), b.Get(k)
			switch {
			case ba == nil && bb == nil:
			case ba == nil:
				d = n - bb.Count()
			case bb == nil:
				d = n - ba.Count()
			default:
				d = diffCount(ba, bb)
			}
			r.Total.add(d, n)
			r.PerLayer[l].add(d, n)
			s := r.PerProj[p.String()]
			s.add(d, n)
			r.PerProj[p.String()] = s
		}
	}
	return r, nil
}
