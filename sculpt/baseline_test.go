package sculpt

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/subnet"
	"github.com/masque-ai/masque/train"
)

// tinyModel is a 2-layer model (hidden 4, d_ff 3, vocabulary 8) whose FFN
// weights are small hand-written numbers; attention and embeddings are
// seeded random values.
func tinyModel(t testing.TB) *model.Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(r, c int) *kernels.Matrix {
		v := make([]float32, r*c)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.7)
		}
		return kernels.FromF32(r, c, v)
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	cfg := model.Config{Arch: "LlamaForCausalLM", ModelType: "llama", Hidden: 4, Intermediate: 3, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 2,
		Vocab: 8, MaxSeq: 32, NormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: []int{2}}
	mat := func(r, c int, v ...float32) *kernels.Matrix { return kernels.FromF32(r, c, v) }
	layers := []model.Layer{
		{ // channel scores by magnitude: 3, 5, 5
			Gate: mat(3, 4, 1, 0, 0, 0, 0, 2, 0, 0, 1, 1, 1, 1),
			Up:   mat(3, 4, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0),
			Down: mat(4, 3, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0),
		},
		{ // 4, 0.5, 9
			Gate: mat(3, 4, 0, 0, 0, 0, 0.5, 0, 0, 0.5, 3, 0, 0, 0),
			Up:   mat(3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
			Down: mat(4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0),
		},
	}
	for i := range layers {
		l := &layers[i]
		l.AttnNorm, l.MLPNorm = ones(4), ones(4)
		l.Q, l.K, l.V, l.O = rnd(4, 4), rnd(2, 4), rnd(2, 4), rnd(4, 4)
	}
	m, err := model.New(cfg, rnd(8, 4), layers, ones(4), rnd(8, 4))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMagnitudeByHand(t *testing.T) {
	m := tinyModel(t)
	s := MagnitudeScores(m)
	want := [][]float64{{3, 5, 5}, {4, 0.5, 9}}
	for l := range want {
		for i := range want[l] {
			if math.Abs(s[l][i]-want[l][i]) > 1e-12 {
				t.Fatalf("layer %d channel %d: %v, want %v", l, i, s[l][i], want[l][i])
			}
		}
	}
	// k = 2: layer 0 ties 1 and 2 (both 5) above 0; k = 1 takes the
	// smaller index of the tie.
	if got := KeepTop(s, 2); !slices.Equal(got[0], []int{1, 2}) || !slices.Equal(got[1], []int{0, 2}) {
		t.Fatalf("k=2: %v", got)
	}
	if got := KeepTop(s, 1); !slices.Equal(got[0], []int{1}) || !slices.Equal(got[1], []int{2}) {
		t.Fatalf("k=1: %v", got)
	}
}

// ffnActs captures the FFN inputs and intermediate activations of samples.
func ffnActs(t *testing.T, m *model.Model, samples [][]int) (x, h [][]float32) {
	x, h = make([][]float32, m.Config.Layers), make([][]float32, m.Config.Layers)
	hooks := &model.Hooks{LinearInput: func(l int, p model.Proj, in []float32, rows, cols int) {
		switch p {
		case model.ProjGate:
			x[l] = append(x[l], in[:rows*cols]...)
		case model.ProjDown:
			h[l] = append(h[l], in[:rows*cols]...)
		}
	}}
	for _, s := range samples {
		if _, err := m.ForwardHooks(m.NewCache(len(s)), s, false, hooks); err != nil {
			t.Fatal(err)
		}
	}
	return x, h
}

func TestWandaByHand(t *testing.T) {
	m := tinyModel(t)
	samples := [][]int{{1, 3, 5, 7, 2}, {1, 4, 4, 6}}
	st, err := CollectFFNStats(m, samples)
	if err != nil {
		t.Fatal(err)
	}
	got, err := WandaScores(m, st)
	if err != nil {
		t.Fatal(err)
	}
	X, Hh := ffnActs(t, m, samples)
	for l := 0; l < 2; l++ {
		xn := make([]float64, 4)
		for r := 0; r < len(X[l])/4; r++ {
			for j := 0; j < 4; j++ {
				xn[j] += float64(X[l][r*4+j]) * float64(X[l][r*4+j])
			}
		}
		hn := make([]float64, 3)
		for r := 0; r < len(Hh[l])/3; r++ {
			for i := 0; i < 3; i++ {
				hn[i] += float64(Hh[l][r*3+i]) * float64(Hh[l][r*3+i])
			}
		}
		g, u, d := m.Layers[l].Gate.F32(), m.Layers[l].Up.F32(), m.Layers[l].Down.F32()
		for i := 0; i < 3; i++ {
			var want float64
			for j := 0; j < 4; j++ {
				want += (math.Abs(float64(g[i*4+j])) + math.Abs(float64(u[i*4+j]))) * math.Sqrt(xn[j])
			}
			var col float64
			for r := 0; r < 4; r++ {
				col += math.Abs(float64(d[r*3+i]))
			}
			want += math.Sqrt(hn[i]) * col
			if math.Abs(got[l][i]-want) > 1e-5*(1+want) {
				t.Errorf("layer %d channel %d: %v, want %v", l, i, got[l][i], want)
			}
		}
	}
	// With one calibration sample the structured Wanda of package subnet
	// (an independent implementation) keeps the same channels.
	ck := openBuiltin(t)
	sm := ck.Model
	one := [][]int{personaData(t, ck, "gloss").Train[0].Tokens}
	st1, err := CollectFFNStats(sm, one)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := WandaScores(sm, st1)
	if err != nil {
		t.Fatal(err)
	}
	const ratio = 0.5 // floor and round agree: 86 of 172
	mine := KeepTop(ws, 86)
	res, err := subnet.Prune(sm, st1, subnet.Options{Method: subnet.Wanda, Sparsity: ratio, Structured: true, Targets: subnet.MLPOnly})
	if err != nil {
		t.Fatal(err)
	}
	for l := range mine {
		b := res.Mask.Get(mask.Key{Layer: l, Proj: model.ProjGate})
		var theirs []int
		for c := 0; c < sm.Config.Intermediate; c++ {
			if b.RowCount(c) == b.Cols {
				theirs = append(theirs, c)
			}
		}
		if !slices.Equal(mine[l], theirs) {
			t.Fatalf("layer %d: Wanda keeps %v, subnet keeps %v", l, mine[l], theirs)
		}
	}
}

// Taylor importance against gradients by central finite differences of
// every FFN weight of the tiny model.
func TestTaylorByHand(t *testing.T) {
	m := tinyModel(t)
	seqs := randomSeqs(8, 3, 10, 3)
	gate := m.Layers[0].Gate
	got, err := TaylorScores(m, seqs, 16) // several batches
	if err != nil {
		t.Fatal(err)
	}
	if m.Layers[0].Gate != gate || gate.F32()[0] != 1 {
		t.Fatal("TaylorScores changed the model")
	}
	net, err := train.New(m, train.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		r, err := net.Loss(seqs)
		if err != nil {
			t.Fatal(err)
		}
		return r.Mean()
	}
	const eps = 1e-3
	for l := 0; l < 2; l++ {
		want := make([]float64, 3)
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			w := m.Layers[l].Weight(p)
			v := w.F32()
			for idx := range v {
				o := v[idx]
				v[idx] = o + eps
				w.Prepared = nil
				lp := loss()
				v[idx] = o - eps
				w.Prepared = nil
				lm := loss()
				v[idx] = o
				w.Prepared = nil
				g := (lp - lm) / (2 * eps)
				ch := idx / w.Cols
				if p == model.ProjDown {
					ch = idx % w.Cols
				}
				want[ch] += math.Abs(float64(o) * g)
			}
		}
		for i := range want {
			if math.Abs(got[l][i]-want[i]) > 2e-4+1e-2*want[i] {
				t.Errorf("layer %d channel %d: %v, finite differences %v", l, i, got[l][i], want[i])
			}
		}
		if !slices.Equal(TopK(got[l], 2), TopK(want, 2)) {
			t.Errorf("layer %d: ranking %v, by hand %v (%v vs %v)", l, TopK(got[l], 2), TopK(want, 2), got[l], want)
		}
	}
}

func TestDepthByHand(t *testing.T) {
	ck := openBuiltin(t)
	m := ck.Model // 5 layers
	samples := [][]int{{1, 400, 30, 99, 7, 250}, {1, 12, 13}}
	bi, err := BlockInfluence(m, samples)
	if err != nil {
		t.Fatal(err)
	}
	// hidden states by hand
	L, H := m.Config.Layers, m.Config.Hidden
	sum := make([][]float64, L+1)
	for i := range sum {
		sum[i] = make([]float64, L+1)
	}
	n := 0
	for _, s := range samples {
		xs := make([][]float32, L+1)
		h := &model.Hooks{Hidden: func(l int, x []float32, rows, cols int) {
			if l <= L {
				xs[l] = append([]float32(nil), x[:rows*cols]...)
			}
		}}
		if _, err := m.ForwardHooks(m.NewCache(len(s)), s, false, h); err != nil {
			t.Fatal(err)
		}
		for tok := range s {
			for a := 0; a <= L; a++ {
				for b := a + 1; b <= L; b++ {
					var ab, aa, bb float64
					for j := 0; j < H; j++ {
						x, y := float64(xs[a][tok*H+j]), float64(xs[b][tok*H+j])
						ab, aa, bb = ab+x*y, aa+x*x, bb+y*y
					}
					sum[a][b] += ab / math.Sqrt(aa*bb)
				}
			}
			n++
		}
	}
	type pair struct {
		l int
		v float64
	}
	var ps []pair
	for l := 0; l < L; l++ {
		want := 1 - sum[l][l+1]/float64(n)
		if math.Abs(bi[l]-want) > 1e-9 {
			t.Fatalf("BI[%d] = %v, by hand %v", l, bi[l], want)
		}
		ps = append(ps, pair{l, want})
	}
	slices.SortStableFunc(ps, func(a, b pair) int {
		if a.v < b.v {
			return -1
		}
		if a.v > b.v {
			return 1
		}
		return 0
	})
	drop, _, err := DepthDrop(m, MethodDepth, 2, samples)
	if err != nil {
		t.Fatal(err)
	}
	wantDrop := []int{ps[0].l, ps[1].l}
	slices.Sort(wantDrop)
	if !slices.Equal(drop, wantDrop) {
		t.Fatalf("depth drops %v, by hand %v (BI %v)", drop, wantDrop, bi)
	}
	// angular: runs of 2 blocks
	ad, _ := AngularDistances(m, samples, 2)
	best, bestV := -1, math.Inf(1)
	for l := 0; l+2 <= L; l++ {
		v := math.Acos(sum[l][l+2]/float64(n)) / math.Pi
		if math.Abs(ad[l]-v) > 1e-9 {
			t.Fatalf("angular[%d] = %v, by hand %v", l, ad[l], v)
		}
		if v < bestV {
			best, bestV = l, v
		}
	}
	drop, _, _ = DepthDrop(m, MethodDepthAngular, 2, samples)
	if !slices.Equal(drop, []int{best, best + 1}) {
		t.Fatalf("angular drops %v, by hand %d..%d", drop, best, best+1)
	}
	// Parameter matching: closest count not below the channel methods'.
	per := blockParams(m, 0)
	for _, ratio := range []float64{0.25, 0.5} {
		k, _ := KeepCount(m.Config.Intermediate, ratio)
		removed := int64(m.Config.Layers) * int64(m.Config.Intermediate-k) * int64(3*m.Config.Hidden)
		nb, err := DepthBlocks(m, k)
		if err != nil {
			t.Fatal(err)
		}
		if int64(nb)*per < removed || int64(nb-1)*per >= removed {
			t.Fatalf("ratio %v: %d blocks of %d parameters for %d removed", ratio, nb, per, removed)
		}
		dm, err := DropLayers(m, drop[:1])
		if err != nil || dm.Config.Layers != L-1 || dm.NumParams() != m.NumParams()-per {
			t.Fatalf("DropLayers: %v", err)
		}
	}
}

func TestBaselineRuns(t *testing.T) {
	ck := openBuiltin(t)
	d := personaData(t, ck, "gloss")
	for _, method := range BaselineMethods {
		dir := t.TempDir()
		res, err := RunBaseline(context.Background(), BaselineConfig{Checkpoint: ck, Method: method, Ratio: 0.25, Calib: d, CalibName: "gloss", Out: dir, CalibSamples: 4})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if res.Params > PrunedParams(ck.Model, 129) && method != MethodDepth && method != MethodDepthAngular {
			t.Errorf("%s: %d parameters", method, res.Params)
		}
		if (method == MethodDepth || method == MethodDepthAngular) && res.Params > PrunedParams(ck.Model, 129) {
			t.Errorf("%s keeps more parameters (%d) than the channel methods (%d)", method, res.Params, PrunedParams(ck.Model, 129))
		}
		if res.Export == nil || res.Export.GGUF == "" {
			t.Errorf("%s: export %+v", method, res.Export)
		}
	}
	if _, err := RunBaseline(context.Background(), BaselineConfig{Checkpoint: ck, Method: "wanda", Ratio: 0.25, Out: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "calibration") {
		t.Errorf("wanda without data: %v", err)
	}
	if _, err := RunBaseline(context.Background(), BaselineConfig{Checkpoint: ck, Method: "slicegpt", Ratio: 0.25, Out: t.TempDir()}); err == nil {
		t.Error("unknown method accepted")
	}
}
