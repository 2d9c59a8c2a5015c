package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAddGram: every level adds XᵀX to the upper triangle with the same
// bits as the plain loop (products of float32 values added in the order of
// the rows), over ragged sizes and split row ranges, into a matrix that
// already holds sums; the lower triangle is left alone.
func TestAddGram(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, sh := range [][2]int{{1, 1}, {3, 5}, {17, 12}, {64, 13}, {40, 96}, {9, 100}, {130, 33}} {
		rows, d := sh[0], sh[1]
		x := make([]float64, rows*d)
		for i := range x {
			if rng.IntN(7) > 0 { // some exact zeros, as activations have
				x[i] = float64(float32(rng.NormFloat64() * 3))
			}
		}
		start := make([]float64, d*d)
		for i := range start {
			start[i] = float64(float32(rng.NormFloat64()))
		}
		want := slices.Clone(start)
		for i := 0; i < d; i++ {
			for tt := 0; tt < rows; tt++ {
				for j := i; j < d; j++ {
					want[i*d+j] += x[tt*d+i] * x[tt*d+j]
				}
			}
		}
		for _, k := range append([]Kernels{Portable{}}, testLevels(t)...) {
			for _, split := range []int{1, 3} {
				g := slices.Clone(start)
				for s := 0; s < split; s++ {
					AddGram(k, g, x, rows, d, s*d/split, (s+1)*d/split)
				}
				if !slices.Equal(g, want) {
					t.Errorf("%s, %d×%d in %d parts: differs from the plain loop", k.Name(), rows, d, split)
				}
			}
		}
	}
	for _, bad := range [][3]int{{-1, 2, 3}, {0, 5, 4}, {2, 1, 4}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AddGram(lo %d, hi %d, d %d) did not panic", bad[0], bad[1], bad[2])
				}
			}()
			AddGram(Portable{}, make([]float64, 16), make([]float64, 8), 2, bad[2], bad[0], bad[1])
		}()
	}
}
