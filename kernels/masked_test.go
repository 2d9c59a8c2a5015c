package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// TestMatMulMasked compares MatMulMasked on every level (and the exact-BF16
// and no-VDPBF16PS variants) with the float64 product of the decoded
// weights with the pruned entries zeroed, for masks of several densities
// and odd shapes.
func TestMatMulMasked(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	shapes := []shape{{1, 1, 1}, {1, 7, 13}, {1, 33, 64}, {2, 9, 100}, {3, 40, 47}, {6, 17, 200},
		{7, 23, 79}, {16, 70, 130}, {64, 50, 96}, {1, 300, 896}, {97, 20, 33}}
	for _, dt := range []quant.DType{quant.F32, quant.F16, quant.BF16} {
		for _, density := range []float64{0, 0.5, 0.95, 1} {
			for _, sh := range shapes {
				w, dec := randMatrix(t, rng, dt, sh.n, sh.k)
				stride := (sh.k+7)/8 + 1 // a wider stride than needed
				keep := make([]byte, sh.n*stride)
				masked := append([]float32(nil), dec...)
				for r := 0; r < sh.n; r++ {
					for c := 0; c < sh.k; c++ {
						if rng.Float64() < density {
							keep[r*stride+c/8] |= 1 << (c % 8)
						} else {
							masked[r*sh.k+c] = 0
						}
					}
				}
				x := randVec(rng, sh.m*sh.k, 1)
				xr := make([]float32, len(x))
				roundBF16(xr, x)
				ks := append([]Kernels{Portable{}}, testLevels(t)...)
				if dt == quant.BF16 {
					ks = append(ks, bf16NoPairs()...)
					for _, k := range append([]Kernels{Portable{}}, testLevels(t)...) {
						ks = append(ks, ExactBF16(k))
					}
				}
				for _, k := range ks {
					xin := x
					if dt == quant.BF16 && RoundsBF16(k) {
						xin = xr
					}
					want, mag := refMatMul(xin, masked, sh.m, sh.n, sh.k)
					dst := randVec(rng, sh.m*sh.n, 1) // garbage that must be overwritten
					MatMulMasked(k, dst, x, w, keep, stride, sh.m)
					name := fmt.Sprintf("%s %s exact=%v density %.2f m=%d n=%d k=%d", k.Name(), dt, !RoundsBF16(k), density, sh.m, sh.n, sh.k)
					checkClose(t, name, dst, want, mag, nil, tolFloat)
					// Premasked: the same products, bit for bit, and
					// the same again (nothing of p is changed by use).
					p := Premask(k, w, keep, stride)
					for range 2 {
						pre := randVec(rng, sh.m*sh.n, 1)
						MatMulPremasked(k, pre, x, p, sh.m)
						if !slices.Equal(pre, dst) {
							t.Errorf("%s: MatMulPremasked differs from MatMulMasked", name)
							break
						}
					}
				}
			}
		}
	}
}

// TestMatMulMaskedAllKept: with a mask that keeps everything,
// MatMulMasked is MatMul (to float32 rounding of Σ|x·w|).
func TestMatMulMaskedAllKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	w, dec := randMatrix(t, rng, quant.BF16, 50, 300)
	keep := make([]byte, 50*38)
	for i := range keep {
		keep[i] = 0xff
	}
	x := randVec(rng, 5*300, 1)
	xr := make([]float32, len(x))
	roundBF16(xr, x)
	_, mag := refMatMul(xr, dec, 5, 50, 300)
	for _, k := range testLevels(t) {
		a, b := make([]float32, 5*50), make([]float32, 5*50)
		k.MatMul(a, x, w, 5)
		MatMulMasked(k, b, x, w, keep, 38, 5)
		want := make([]float64, len(a))
		for i, v := range a {
			want[i] = float64(v)
		}
		checkClose(t, k.Name()+" all kept", b, want, mag, nil, 1e-5)
	}
}
