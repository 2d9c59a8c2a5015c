package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/masque-ai/masque/model"
)

// Finite-difference checks of every op's backward, in float32 with central
// differences: the objective is L = Σ c_i·y_i (random c, summed in float64),
// each checked input is moved by ±h, and (L+ − L−)/2h is compared with the
// analytic gradient (the backward of dy = c) relative to max|g|. Step and
// tolerance suit float32: rounding contributes ~1e-6·√n/h, truncation O(h²).

func randVec(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	return v
}

func dot64(c, y []float32) float64 {
	var s float64
	for i, v := range y {
		s += float64(c[i]) * float64(v)
	}
	return s
}

// fdCheck compares grad (analytic d f/d x) with central differences at
// up to 40 entries of x (the largest-gradient ones and random ones).
func fdCheck(t *testing.T, what string, x, grad []float32, f func() float64, h, tol float64) {
	fdCheckAbs(t, what, x, grad, f, h, tol, 0)
}

// fdCheckAbs is fdCheck with an absolute floor on the allowed error (for
// objectives whose float32 rounding noise is known).
func fdCheckAbs(t *testing.T, what string, x, grad []float32, f func() float64, h, tol, abs float64) {
	t.Helper()
	var gmax float64
	for _, g := range grad {
		gmax = math.Max(gmax, math.Abs(float64(g)))
	}
	if gmax == 0 {
		t.Fatalf("%s: analytic gradient is all zero", what)
	}
	rng := rand.New(rand.NewPCG(uint64(len(x)), 3))
	idx := map[int]bool{}
	for len(idx) < min(40, len(x)) {
		idx[rng.IntN(len(x))] = true
	}
	worst := 0.0
	for i := range idx {
		old := x[i]
		x[i] = old + float32(h)
		fp := f()
		x[i] = old - float32(h)
		fm := f()
		x[i] = old
		num := (fp - fm) / (2 * h)
		if d := math.Abs(num-float64(grad[i])) / gmax; d > worst {
			worst = d
		}
		if d := math.Abs(num-float64(grad[i])) / gmax; d > tol && math.Abs(num-float64(grad[i])) > abs {
			t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g (|Δ| = %.2g·max|g|)", what, i, grad[i], num, d)
		}
	}
	t.Logf("%s: worst |Δ| %.2g·max|g| over %d entries", what, worst, len(idx))
}

func TestRMSNormBackwardFD(t *testing.T) {
	for _, sh := range []struct{ rows, d int }{{1, 4}, {3, 16}, {5, 33}, {7, 128}} {
		t.Run(fmt.Sprintf("%dx%d", sh.rows, sh.d), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(sh.d), 1))
			x, w, c := randVec(rng, sh.rows*sh.d, 1), randVec(rng, sh.d, 0.5), randVec(rng, sh.rows*sh.d, 1)
			for i := range w {
				w[i] += 1
			}
			y, rstd := make([]float32, len(x)), make([]float32, sh.rows)
			f := func() float64 { rmsnormFwd(y, rstd, x, w, sh.d, 1e-5); return dot64(c, y) }
			f()
			dx, gw := make([]float32, len(x)), make([]float32, sh.d)
			rmsnormBwd(dx, c, x, rstd, w, gw, sh.d, false)
			fdCheck(t, "dx", x, dx, f, 1e-2, 2e-3)
			fdCheck(t, "dw", w, gw, f, 1e-2, 2e-3)
		})
	}
}

func TestRopeBackwardFD(t *testing.T) {
	for _, sh := range []struct{ rows, heads, D int }{{1, 1, 2}, {4, 2, 8}, {9, 3, 16}} {
		t.Run(fmt.Sprintf("%dx%dx%d", sh.rows, sh.heads, sh.D), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(sh.D), 2))
			n := sh.rows * sh.heads * sh.D
			x, c := randVec(rng, n, 1), randVec(rng, n, 1)
			half := sh.D / 2
			cos, sin := make([]float32, 20*half), make([]float32, 20*half)
			m := &model.Model{Config: model.Config{HeadDim: sh.D, RopeTheta: 10000, Rope: model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8}}}
			for p := 0; p < 20; p++ {
				m.RopeCosSin(p, cos[p*half:(p+1)*half], sin[p*half:(p+1)*half])
			}
			pos := make([]int, sh.rows)
			for i := range pos {
				pos[i] = rng.IntN(20)
			}
			y := make([]float32, n)
			f := func() float64 { copy(y, x); ropeFwd(y, pos, sh.heads, sh.D, cos, sin); return dot64(c, y) }
			dx := append([]float32(nil), c...)
			ropeBwd(dx, pos, sh.heads, sh.D, cos, sin)
			fdCheck(t, "dx", x, dx, f, 1e-2, 1e-3)
		})
	}
}

func TestSwiGLUBackwardFD(t *testing.T) {
	for _, masked := range []bool{false, true} {
		t.Run(fmt.Sprintf("mask=%v", masked), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 5))
			rows, d := 6, 24
			g, u, c := randVec(rng, rows*d, 2), randVec(rng, rows*d, 1), randVec(rng, rows*d, 1)
			var mask, gm []float32
			if masked {
				mask, gm = randVec(rng, d, 1), make([]float32, d)
			}
			h, sig := make([]float32, rows*d), make([]float32, rows*d)
			f := func() float64 { swigluFwd(h, sig, g, u, mask, d); return dot64(c, h) }
			f()
			h2 := make([]float32, rows*d)
			swigluRedo(h2, sig, g, u, mask, d)
			if !slices.Equal(h, h2) {
				t.Errorf("swigluRedo differs from swigluFwd")
			}
			dg, du := make([]float32, rows*d), make([]float32, rows*d)
			swigluBwd(dg, du, c, g, u, sig, mask, gm, d)
			fdCheck(t, "dgate", g, dg, f, 1e-2, 2e-3)
			fdCheck(t, "dup", u, du, f, 1e-2, 2e-3)
			if masked {
				fdCheck(t, "dmask", mask, gm, f, 1e-2, 2e-3)
			}
		})
	}
}

// TestAttentionBackwardFD checks attention on packed sequences of several
// lengths, with grouped-query heads, with and without a sliding window, for
// lengths that span several query blocks.
func TestAttentionBackwardFD(t *testing.T) {
	for _, tc := range []struct {
		heads, kv, D, window int
		lens                 []int
	}{
		{2, 2, 8, 0, []int{5}},
		{4, 2, 8, 0, []int{3, 11}},
		{4, 1, 4, 3, []int{7, 2}},
		{2, 1, 8, 0, []int{attnBlock + 9}},
		{2, 2, 4, 17, []int{2*attnBlock + 5, 4}},
	} {
		t.Run(fmt.Sprintf("h%d_kv%d_D%d_w%d_%v", tc.heads, tc.kv, tc.D, tc.window, tc.lens), func(t *testing.T) {
			cfg := model.Config{Hidden: tc.heads * tc.D, Intermediate: 8, Layers: 1, Heads: tc.heads, KVHeads: tc.kv, HeadDim: tc.D,
				Vocab: 8, NormEps: 1e-5, RopeTheta: 1e4, SlidingWindow: tc.window}
			n := &Net{cfg: cfg, threads: 2}
			n.K = defaultKernels()
			pb := &packed{}
			for _, l := range tc.lens {
				pb.segs = append(pb.segs, seg{pb.N, l})
				pb.N += l
			}
			rng := rand.New(rand.NewPCG(uint64(pb.N), 9))
			qd, kvd := tc.heads*tc.D, tc.kv*tc.D
			q, k, v := randVec(rng, pb.N*qd, 1), randVec(rng, pb.N*kvd, 1), randVec(rng, pb.N*kvd, 1)
			c := randVec(rng, pb.N*qd, 1)
			att, lse := make([]float32, pb.N*qd), make([]float32, pb.N*tc.heads)
			f := func() float64 { n.attnFwd(att, lse, q, k, v, pb); return dot64(c, att) }
			f()
			dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
			n.attnBwd(dq, dk, dv, c, att, lse, q, k, v, pb)
			fdCheck(t, "dq", q, dq, f, 1e-2, 2e-3)
			fdCheck(t, "dk", k, dk, f, 1e-2, 2e-3)
			fdCheck(t, "dv", v, dv, f, 1e-2, 2e-3)
			// The forward must match a direct softmax(q·k/√D)·v per query.
			f()
			checkAttnDirect(t, att, q, k, v, pb, cfg)
		})
	}
}

// checkAttnDirect recomputes attention naively in float64.
func checkAttnDirect(t *testing.T, att, q, k, v []float32, pb *packed, c model.Config) {
	t.Helper()
	D, qd, kvd := c.HeadDim, c.QDim(), c.KVDim()
	worst := 0.0
	for _, sg := range pb.segs {
		for i := 0; i < sg.n; i++ {
			for h := 0; h < c.Heads; h++ {
				g := h / (c.Heads / c.KVHeads)
				lo := keyRange(i, c.SlidingWindow)
				s := make([]float64, i+1-lo)
				mx := math.Inf(-1)
				for j := lo; j <= i; j++ {
					var d float64
					for e := 0; e < D; e++ {
						d += float64(q[(sg.start+i)*qd+h*D+e]) * float64(k[(sg.start+j)*kvd+g*D+e])
					}
					s[j-lo] = d / math.Sqrt(float64(D))
					mx = math.Max(mx, s[j-lo])
				}
				var sum float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for e := 0; e < D; e++ {
					var o float64
					for j := lo; j <= i; j++ {
						o += s[j-lo] / sum * float64(v[(sg.start+j)*kvd+g*D+e])
					}
					worst = math.Max(worst, math.Abs(o-float64(att[(sg.start+i)*qd+h*D+e])))
				}
			}
		}
	}
	if worst > 1e-5 {
		t.Errorf("attention output differs from the direct computation by %.3g", worst)
	}
}

// TestModelFD perturbs parameters and input embeddings of small random
// models (biases, q/k norm, GQA, sliding window, tied head, FFN mask) and
// compares the change of the mean loss with the analytic gradients.
func TestModelFD(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  model.Config
		mask bool
	}{
		{"llama-bias-tied", model.Config{Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, Vocab: 40, NormEps: 1e-5, RopeTheta: 1e4,
			AttnQKVBias: true, AttnOBias: true, MLPBias: true, Tied: true}, false},
		{"qwen3-window-mask", model.Config{Hidden: 12, Intermediate: 20, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 8, Vocab: 30, NormEps: 1e-6, RopeTheta: 1e6,
			QKNorm: true, SlidingWindow: 4, Rope: model.RopeScaling{Type: "linear", Factor: 2}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, tc.cfg, 3)
			n, err := New(m, Options{Full: true, InputGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(4, 4))
			var seqs []Sequence
			for _, l := range []int{9, 4} {
				ids := make([]int, l+1)
				for i := range ids {
					ids[i] = rng.IntN(tc.cfg.Vocab)
				}
				tg := append([]int(nil), ids[1:]...)
				tg[1] = IgnoreIndex
				seqs = append(seqs, Sequence{Tokens: ids[:l], Targets: tg})
			}
			if tc.mask {
				for l := range n.FFNMask {
					n.FFNMask[l] = randVec(rng, tc.cfg.Intermediate, 1)
				}
			}
			if _, err := n.ForwardBackward(seqs, 0); err != nil {
				t.Fatal(err)
			}
			loss := func() float64 {
				n.Changed()
				r, err := n.Loss(seqs)
				if err != nil {
					t.Fatal(err)
				}
				return r.Mean()
			}
			for _, p := range n.Params() {
				// A float32 loss of ~3.5 is rounded to ~2e-7 at each of
				// thousands of operations: with h = 5e-3, differences carry
				// noise up to ~1e-4.
				fdCheckAbs(t, p.Name, p.Data, p.Grad, loss, 5e-3, 2e-2, 1e-4)
			}
			if tc.mask {
				for l := range n.FFNMask {
					fdCheckAbs(t, fmt.Sprintf("ffn_mask.%d", l), n.FFNMask[l], n.FFNMaskGrad[l], loss, 5e-3, 2e-2, 1e-4)
				}
			}
		})
	}
}

// TestExpNeg compares expNeg with math.Exp over its range.
func TestExpNeg(t *testing.T) {
	worst := 0.0
	for i := 0; i <= 2000000; i++ {
		x := -90 * float64(i) / 2000000
		got := float64(expNeg(float32(x)))
		want := math.Exp(float64(float32(x)))
		if want < 1.2e-38 {
			if got != 0 && math.Abs(got-want) > 1e-38 {
				t.Fatalf("expNeg(%g) = %g, want %g", x, got, want)
			}
			continue
		}
		if r := math.Abs(got-want) / want; r > worst {
			worst = r
		}
	}
	if worst > 2.5e-7 {
		t.Errorf("worst relative error %.3g", worst)
	}
	if expNeg(0) != 1 || !math.IsNaN(float64(expNeg(float32(math.NaN())))) || expNeg(float32(math.Inf(-1))) != 0 {
		t.Errorf("special values: %g %g %g", expNeg(0), expNeg(float32(math.NaN())), expNeg(float32(math.Inf(-1))))
	}
}
