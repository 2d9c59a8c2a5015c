package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/masque-ai/masque/quant"
)

var _ = quant.F32

// Backward products are compared with float64 references at
// |err| ≤ 1e-5 · (Σ|terms| + |initial value|), like the float MatMul.

func TestMatMulBackInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	shapes := []shape{{1, 1, 1}, {1, 5, 7}, {3, 17, 33}, {7, 40, 64}, {13, 64, 100}, {64, 96, 130}, {37, 600, 64}, {20, 1100, 48}}
	for _, dt := range allTypes {
		for _, sh := range shapes {
			m, R, C := sh.m, sh.n, sh.k
			if dt.Quantized() {
				C = roundUp(C, dt.BlockElems())
			}
			w, dec := randMatrix(t, rng, dt, R, C)
			dy := randVec(rng, m*R, 1)
			want := make([]float64, m*C)
			mag := make([]float64, m*C)
			for i := 0; i < m; i++ {
				for r := 0; r < R; r++ {
					for c := 0; c < C; c++ {
						p := float64(dy[i*R+r]) * float64(dec[r*C+c])
						want[i*C+c] += p
						mag[i*C+c] += math.Abs(p)
					}
				}
			}
			for _, k := range append([]Kernels{Portable{}}, testLevels(t)...) {
				dx := randVec(rng, m*C, 1)
				k.MatMulBackInput(dx, dy, w, m)
				checkClose(t, fmt.Sprintf("%s BackInput %s m=%d R=%d C=%d", k.Name(), dt, m, R, C), dx, want, mag, nil, tolFloat)
			}
		}
	}
}

func TestMatMulBackWeight(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	shapes := []shape{{1, 1, 1}, {5, 3, 7}, {3, 17, 33}, {16, 13, 64}, {64, 40, 100}, {100, 25, 260}, {256, 31, 96}}
	for _, sh := range shapes {
		m, rows, cols := sh.m, sh.n, sh.k
		dy := randVec(rng, m*rows, 1)
		x := randVec(rng, m*cols, 1)
		dw0 := randVec(rng, rows*cols, 1)
		want := make([]float64, rows*cols)
		mag := make([]float64, rows*cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				s, a := float64(dw0[r*cols+c]), math.Abs(float64(dw0[r*cols+c]))
				for i := 0; i < m; i++ {
					p := float64(dy[i*rows+r]) * float64(x[i*cols+c])
					s += p
					a += math.Abs(p)
				}
				want[r*cols+c], mag[r*cols+c] = s, a
			}
		}
		for _, k := range append([]Kernels{Portable{}}, testLevels(t)...) {
			dw := append([]float32(nil), dw0...)
			k.MatMulBackWeight(dw, dy, x, m, rows, cols)
			checkClose(t, fmt.Sprintf("%s BackWeight m=%d rows=%d cols=%d", k.Name(), m, rows, cols), dw, want, mag, nil, tolFloat)
		}
	}
}

var elemSizes = []int{1, 2, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 257, 896, 4864, 70000}

// closeRel reports whether a and b agree to rel (relative) or abs.
func closeRel(a, b float32, rel, abs float64) bool {
	if a == b || (a != a && b != b) {
		return true
	}
	d := math.Abs(float64(a) - float64(b))
	return d <= abs || d <= rel*math.Max(math.Abs(float64(a)), math.Abs(float64(b)))
}

// TestElementwise checks every level's RMSNorm, SiLUMul, Softmax, Dot and
// Axpy against float64 evaluations: SiLUMul to 3e-7 relative (the SIMD exp
// is within about 2 float32 ulps; 3e-7 is what Portable, with a correctly
// rounded exp, needs too), RMSNorm to 1e-6 (Portable, summing squares
// sequentially, to 2e-5), Softmax to 1e-5 (float32 sums
// of up to 70000 terms), Dot to 1e-5 of Σ|a·b|, Axpy to 2 ulps.
func TestElementwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	for _, k := range append([]Kernels{Portable{}}, testLevels(t)...) {
		for _, n := range elemSizes {
			a := randVec(rng, n, 3)
			b := randVec(rng, n, 3)
			// Extremes for exp.
			for i := 0; i < n; i += 13 {
				a[i] = float32(rng.IntN(240)) - 120
			}
			// Dot and Axpy.
			var want, mag float64
			for i := range a {
				want += float64(a[i]) * float64(b[i])
				mag += math.Abs(float64(a[i]) * float64(b[i]))
			}
			if got := k.Dot(a, b); math.Abs(float64(got)-want) > 1e-5*mag+1e-30 {
				t.Errorf("%s Dot n=%d: %g, want %g", k.Name(), n, got, want)
			}
			y := append([]float32(nil), b...)
			k.Axpy(0.37, a, y)
			for i := range y {
				w := float32(float64(b[i]) + 0.37*float64(a[i]))
				if !closeRel(y[i], w, 2.5e-7, 1e-7*math.Abs(float64(a[i]))) {
					t.Fatalf("%s Axpy n=%d [%d]: %g, want %g", k.Name(), n, i, y[i], w)
				}
			}
			// SiLUMul, also in place.
			d := make([]float32, n)
			k.SiLUMul(d, a, b)
			for i := range d {
				g := float64(a[i])
				w := g / (1 + math.Exp(-g)) * float64(b[i])
				if math.Abs(float64(d[i])-w) > 3e-7*math.Abs(w)+1e-30 {
					t.Fatalf("%s SiLUMul n=%d [%d] g=%g: %g, want %g", k.Name(), n, i, a[i], d[i], w)
				}
			}
			g2 := append([]float32(nil), a...)
			k.SiLUMul(g2, g2, b)
			for i := range g2 {
				if g2[i] != d[i] {
					t.Fatalf("%s SiLUMul in place differs at %d", k.Name(), i)
				}
			}
			// Softmax, with a −Inf entry.
			s1 := append([]float32(nil), a...)
			if n > 3 {
				s1[3] = float32(math.Inf(-1))
			}
			in := append([]float32(nil), s1...)
			k.Softmax(s1)
			mx := math.Inf(-1)
			for _, v := range in {
				mx = max(mx, float64(v))
			}
			var sum float64
			for _, v := range in {
				sum += math.Exp(float64(v) - mx)
			}
			for i := range s1 {
				w := math.Exp(float64(in[i])-mx) / sum
				if math.Abs(float64(s1[i])-w) > 1e-5*w+1e-37 {
					t.Fatalf("%s Softmax n=%d [%d]: %g, want %g", k.Name(), n, i, s1[i], w)
				}
			}
		}
		// RMSNorm over several rows, also in place.
		for _, n := range []int{1, 7, 16, 33, 896, 1000, 4864} {
			rows := 3
			x := randVec(rng, rows*n, 2)
			wt := randVec(rng, n, 1)
			d := make([]float32, rows*n)
			k.RMSNorm(d, x, wt, 1e-6)
			tol := 1e-6
			if k.Name() == "portable" {
				tol = 2e-5 // sequential float32 sum of squares
			}
			for r := 0; r < rows; r++ {
				var ss float64
				for _, v := range x[r*n : (r+1)*n] {
					ss += float64(v) * float64(v)
				}
				sc := 1 / math.Sqrt(ss/float64(n)+1e-6)
				for j := 0; j < n; j++ {
					w := float64(x[r*n+j]) * sc * float64(wt[j])
					if math.Abs(float64(d[r*n+j])-w) > tol*math.Abs(w)+1e-30 {
						t.Fatalf("%s RMSNorm n=%d [%d]: %g, want %g", k.Name(), n, r*n+j, d[r*n+j], w)
					}
				}
			}
			k.RMSNorm(x, x, wt, 1e-6)
			for i := range x {
				if x[i] != d[i] {
					t.Fatalf("%s RMSNorm in place differs at %d", k.Name(), i)
				}
			}
		}
	}
}
