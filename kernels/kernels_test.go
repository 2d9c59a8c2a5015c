package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// Tolerances. Every product is compared with a float64 evaluation of the
// same decoded weights:
//
//   - float weights (F32, BF16, F16) and block weights decoded to float32
//     (Portable, and the fast levels for m above the integer-kernel limit):
//     |err| ≤ 1e-5 · Σ|x·w| of that output element — float32 rounding only.
//   - block weights (Q8_0, Q4_0, Q4_K, Q6_K) with the integer kernels: the
//     activations are quantised to 8 bits as llama.cpp does (per 32 elements
//     for Q8_0/Q4_0, per 256 for the k-quants), which moves each x by at most
//     half a step, amax_block/254. So the allowance is that bound,
//     Σ_j |w_j| · amax(block of j)/254, plus the float one. On the random
//     data here that comes to at most about 1e-2 of Σ|x·w| (the worst ratio
//     seen is logged with -v), the error budget llama.cpp's own q8
//     activations have.
const tolFloat = 1e-5

var allTypes = []quant.DType{quant.F32, quant.BF16, quant.F16, quant.Q8_0, quant.Q4_0, quant.Q4_1, quant.Q5_0, quant.Q5_1, quant.IQ4_NL, quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.IQ4_XS}

// testLevels returns every kernel level this machine runs.
func testLevels(t *testing.T) []Kernels {
	var out []Kernels
	for _, name := range Levels() {
		k, err := ForLevel(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// bf16NoPairs returns the levels that multiply BF16 weights with
// VDPBF16PS again without it (as on AVX-512 CPUs that lack the BF16
// extension), so that path is tested too.
func bf16NoPairs() []Kernels {
	var out []Kernels
	for _, l := range levels() {
		if l.dotPairs != nil {
			c := *l
			c.name += "-nobf16"
			c.dotPairs, c.cvtPairs = nil, nil
			out = append(out, fast{l: &c})
		}
	}
	return out
}

func randVec(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64()) * scale
	}
	return v
}

// quantOK reports whether package quant can encode and decode t (the block
// codecs may be missing while that package is being written).
func quantOK(t quant.DType) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	n := t.BlockElems()
	if n == 1 {
		n = 4
	}
	b := make([]byte, n/t.BlockElems()*t.BlockBytes())
	v := make([]float32, n)
	return quant.QuantizeRow(t, v, b) == nil && quant.DequantizeRow(t, b, v) == nil
}

// randMatrix returns a random rows×cols matrix of type t and its decoded
// float32 values.
func randMatrix(t *testing.T, rng *rand.Rand, dt quant.DType, rows, cols int) (*Matrix, []float32) {
	t.Helper()
	rb, err := dt.RowBytes(cols)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, rows*rb)
	vals := randVec(rng, rows*cols, 1)
	// A few outlier rows/columns, as real weights have.
	for i := 0; i < len(vals); i += 97 {
		vals[i] *= 8
	}
	for r := 0; r < rows; r++ {
		if err := quant.QuantizeRow(dt, vals[r*cols:(r+1)*cols], data[r*rb:(r+1)*rb]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := NewMatrix(dt, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	dec := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		refDecode(dt, m.RowData(r), dec[r*cols:(r+1)*cols])
	}
	return m, dec
}

// refMatMul returns the float64 product and Σ|x·w| per output.
func refMatMul(x, w []float32, m, n, k int) (want, mag []float64) {
	want = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for r := 0; r < n; r++ {
			var s, a float64
			for c := 0; c < k; c++ {
				p := float64(x[i*k+c]) * float64(w[r*k+c])
				s += p
				a += math.Abs(p)
			}
			want[i*n+r] = s
			mag[i*n+r] = a
		}
	}
	return
}

// worstErr records the largest error seen per kernel and type (reported
// by TestMatMul with -v).
var worstErr = map[string]float64{}

// q8Slack returns the activation-quantisation error bound per output for
// blocks of be elements: Σ_j |w_j| · amax(x's block of j)/254.
func q8Slack(x, w []float32, m, n, k, be int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		half := make([]float64, k/be)
		for b := range half {
			for _, v := range x[i*k+b*be : i*k+(b+1)*be] {
				half[b] = max(half[b], math.Abs(float64(v)))
			}
			half[b] = half[b] / 254 * (1 + 1e-6)
		}
		for r := 0; r < n; r++ {
			var s float64
			for c := 0; c < k; c++ {
				s += math.Abs(float64(w[r*k+c])) * half[c/be]
			}
			out[i*n+r] = s
		}
	}
	return out
}

func checkClose(t *testing.T, what string, got []float32, want, mag, slack []float64, tol float64) float64 {
	t.Helper()
	bad := 0
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if mag[i] > 0 {
			worst = max(worst, d/mag[i])
		}
		allow := tol*mag[i] + 1e-30
		if slack != nil {
			allow += slack[i]
		}
		if !(d <= allow) {
			if bad < 5 {
				t.Errorf("%s: [%d] got %g want %g (|diff| %.3g, %.3g of Σ|x·w|)", what, i, got[i], want[i], d, d/mag[i])
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d values off", what, bad, len(want))
	}
	return worst
}

type shape struct{ m, n, k int }

func matMulShapes(dt quant.DType) []shape {
	if dt.Quantized() {
		be := dt.BlockElems()
		return []shape{
			{1, 1, be}, {1, 37, 2 * be}, {1, 64, 4 * be}, {2, 19, be}, {3, 40, 3 * be},
			{4, 33, 2 * be}, {5, 9, be}, {7, 29, 2 * be}, {8, 16, be}, {13, 70, 3 * be},
			{64, 50, 4 * be}, {1, 300, 8 * be}, {100, 130, 5 * be}, {1, 2100, be}, {3, 1500, be},
		}
	}
	return []shape{
		{1, 1, 1}, {1, 1, 17}, {1, 7, 5}, {1, 33, 64}, {1, 100, 131}, {2, 9, 16}, {3, 13, 47},
		{4, 8, 100}, {5, 11, 33}, {6, 17, 64}, {7, 23, 79}, {7, 5, 1}, {8, 40, 96},
		{13, 31, 200}, {64, 70, 130}, {64, 64, 1100}, {97, 67, 2071}, {200, 130, 64},
		{1, 2100, 48}, {2, 2053, 16},
		// Batched decoding (up to midTokens): several tasks, blocks of rows
		// and token tiles of every size.
		{16, 2100, 100}, {11, 1037, 70}, {32, 300, 1030}, {9, 5, 64},
	}
}

func TestMatMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range allTypes {
		if !quantOK(dt) {
			t.Logf("skipping %s: package quant cannot encode it yet", dt)
			continue
		}
		for _, sh := range matMulShapes(dt) {
			if testing.Short() && sh.m*sh.n*sh.k > 1<<22 {
				continue
			}
			w, dec := randMatrix(t, rng, dt, sh.n, sh.k)
			x := randVec(rng, sh.m*sh.k, 1)
			want, mag := refMatMul(x, dec, sh.m, sh.n, sh.k)
			var slack []float64
			if dt.Quantized() {
				be := 32
				if usesAct256(dt) {
					be = 256
				}
				slack = q8Slack(x, dec, sh.m, sh.n, sh.k, be)
			}
			ks := append([]Kernels{Portable{}}, testLevels(t)...)
			if dt == quant.BF16 {
				// By default BF16 products round x to bf16 first: compare
				// with the exact product of the rounded x, and the exact
				// variants with the plain reference.
				xr := make([]float32, len(x))
				roundBF16(xr, x)
				wantR, magR := refMatMul(xr, dec, sh.m, sh.n, sh.k)
				for _, k := range append(ks, bf16NoPairs()...) {
					dst := randVec(rng, sh.m*sh.n, 1)
					k.MatMul(dst, x, w, sh.m)
					e := checkClose(t, fmt.Sprintf("%s %s (rounded x) m=%d n=%d k=%d", k.Name(), dt, sh.m, sh.n, sh.k), dst, wantR, magR, nil, tolFloat)
					key := fmt.Sprintf("%-9s %-5s rounded", k.Name(), dt)
					worstErr[key] = max(worstErr[key], e)
				}
				for i, k := range ks {
					ks[i] = ExactBF16(k)
				}
			}
			for _, k := range ks {
				sl := slack
				if k.Name() == "portable" {
					sl = nil
				}
				dst := randVec(rng, sh.m*sh.n, 1) // garbage that must be overwritten
				k.MatMul(dst, x, w, sh.m)
				e := checkClose(t, fmt.Sprintf("%s %s m=%d n=%d k=%d", k.Name(), dt, sh.m, sh.n, sh.k), dst, want, mag, sl, tolFloat)
				key := fmt.Sprintf("%-9s %-5s", k.Name(), dt)
				worstErr[key] = max(worstErr[key], e)
			}
		}
	}
	keys := make([]string, 0, len(worstErr))
	for k := range worstErr {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Logf("%s worst |err|/Σ|x·w| = %.2g", k, worstErr[k])
	}
}

// TestMatMulThreads runs the same product with several thread counts; the
// results must not depend on it beyond rounding.
func TestMatMulThreads(t *testing.T) {
	defer SetThreads(0)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range []quant.DType{quant.F32, quant.BF16} {
		w, dec := randMatrix(t, rng, dt, 301, 256)
		for _, m := range []int{1, 3, 50} {
			x := randVec(rng, m*256, 1)
			want, mag := refMatMul(x, dec, m, 301, 256)
			for _, th := range []int{1, 2, 3, 8} {
				SetThreads(th)
				dst := make([]float32, m*301)
				ExactBF16(Default()).MatMul(dst, x, w, m)
				checkClose(t, fmt.Sprintf("threads=%d %s m=%d", th, dt, m), dst, want, mag, nil, tolFloat)
			}
		}
	}
}

func TestRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, dt := range allTypes {
		if !quantOK(dt) {
			continue
		}
		cols := 512
		w, dec := randMatrix(t, rng, dt, 5, cols)
		for _, k := range append([]Kernels{Portable{}}, testLevels(t)...) {
			dst := make([]float32, cols)
			for r := 0; r < 5; r++ {
				k.Row(dst, w, r)
				for c, v := range dst {
					if v != dec[r*cols+c] {
						t.Fatalf("%s %s Row(%d)[%d] = %g, want %g", k.Name(), dt, r, c, v, dec[r*cols+c])
					}
				}
			}
		}
	}
}

// TestRefDecodeMatchesQuant checks this package's block decoders against
// package quant's.
func TestRefDecodeMatchesQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, dt := range allTypes {
		if !quantOK(dt) {
			continue
		}
		n := 1024
		rb, _ := dt.RowBytes(n)
		data := make([]byte, rb)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		// Keep f16 scales finite.
		fixScales(dt, data)
		a := make([]float32, n)
		b := make([]float32, n)
		if err := quant.DequantizeRow(dt, data, a); err != nil {
			t.Fatal(err)
		}
		refDecode(dt, data, b)
		for i := range a {
			if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
				t.Fatalf("%s [%d]: quant %g, kernels %g", dt, i, a[i], b[i])
			}
		}
	}
}

// fixScales overwrites the f16 scales of random block data with small finite
// values.
func fixScales(dt quant.DType, data []byte) {
	bb := dt.BlockBytes()
	put := func(o int) { data[o] = 0x00; data[o+1] = 0x2c } // 0.0625
	for o := 0; o+bb <= len(data); o += bb {
		switch dt {
		case quant.Q8_0, quant.Q4_0, quant.Q5_0, quant.IQ4_NL, quant.IQ4_XS:
			put(o)
		case quant.Q4_1, quant.Q5_1:
			put(o)
			put(o + 2)
		case quant.Q4_K, quant.Q5_K:
			put(o)
			put(o + 2)
		case quant.Q6_K:
			put(o + 208)
		}
	}
	if dt == quant.F16 || dt == quant.BF16 {
		for o := 0; o+1 < len(data); o += 2 {
			data[o+1] &= 0x3f // exponent well inside the range
		}
	}
}
