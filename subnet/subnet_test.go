package subnet

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
)

func loadStories(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// storiesSamples returns real token sequences (the golden prompts and
// greedy continuations of stories260K).
func storiesSamples(t testing.TB) [][]int {
	t.Helper()
	data, err := os.ReadFile("../testdata/stories260K/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			PromptIDs    []int `json:"prompt_ids"`
			GeneratedIDs []int `json:"generated_ids"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	var out [][]int
	for _, c := range g.Cases {
		out = append(out, append(append([]int{}, c.PromptIDs...), c.GeneratedIDs...))
	}
	return out
}

func collect(t testing.TB, m *model.Model, samples [][]int, gram bool) *stats.Stats {
	t.Helper()
	o := stats.Options{}
	if gram {
		o.Gram = func(int, stats.Input) bool { return true }
	}
	col := stats.NewCollector(m, o)
	for _, s := range samples {
		if err := col.AddSample(s); err != nil {
			t.Fatal(err)
		}
	}
	return col.Stats(stats.Manifest{Calibration: calib.Record{Name: "golden"}})
}

// rowScores returns |W|·a for row r of the projection (a nil: |W|).
func rowScores(m *model.Model, k mask.Key, r int, a []float64) []float64 {
	w := m.Layers[k.Layer].Weight(k.Proj)
	row := w.F32()[r*w.Cols : (r+1)*w.Cols]
	out := make([]float64, len(row))
	for j, x := range row {
		out[j] = math.Abs(float64(x))
		if a != nil {
			out[j] *= a[j]
		}
	}
	return out
}

func TestRowMasksKeepExactlyK(t *testing.T) {
	m := loadStories(t)
	st := collect(t, m, storiesSamples(t)[:4], false)
	perLayer := []float64{0.1, 0.2, 0.3, 0.4, 0.5}
	cases := []struct {
		name     string
		method   Method
		rho      float64
		layerRho []float64
		targets  Targets
	}{
		{"magnitude-50", Magnitude, 0.5, nil, AllLinear},
		{"wanda-0", Wanda, 0, nil, AllLinear},
		{"wanda-30", Wanda, 0.3, nil, AllLinear},
		{"wanda-90-mlp", Wanda, 0.9, nil, MLPOnly},
		{"wanda-attn", Wanda, 0.5, nil, AttnOnly},
		{"wanda-per-layer", Wanda, 0, perLayer, AllLinear},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Prune(m, st, Options{Method: tc.method, Sparsity: tc.rho, LayerSparsity: tc.layerRho, Targets: tc.targets, Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			mk := res.Mask
			for l := 0; l < m.Config.Layers; l++ {
				for p := model.Proj(0); p < model.NumProj; p++ {
					k := mask.Key{Layer: l, Proj: p}
					b := mk.Get(k)
					if !tc.targets.Has(p) {
						if b != nil {
							t.Fatalf("%s masked though not targeted", k)
						}
						continue
					}
					rho := tc.rho
					if tc.layerRho != nil {
						rho = tc.layerRho[l]
					}
					want := int(math.Floor(float64(b.Cols) * (1 - rho)))
					var a []float64
					if tc.method == Wanda {
						a = st.Channel(l, p).MeanNorm()
					}
					for r := 0; r < b.Rows; r++ {
						if got := b.RowCount(r); got != want {
							t.Fatalf("%s row %d keeps %d, want %d", k, r, got, want)
						}
						// every kept score ≥ every pruned score
						s := rowScores(m, k, r, a)
						minKept, maxPruned := math.Inf(1), math.Inf(-1)
						for j, v := range s {
							if b.Get(r, j) {
								minKept = min(minKept, v)
							} else {
								maxPruned = max(maxPruned, v)
							}
						}
						if minKept < maxPruned {
							t.Fatalf("%s row %d keeps a score %g below a pruned %g", k, r, minKept, maxPruned)
						}
					}
				}
			}
		})
	}
}

func TestNMMasks(t *testing.T) {
	m := loadStories(t)
	st := collect(t, m, storiesSamples(t)[:3], true)
	for _, nm := range [][2]int{{2, 4}, {4, 8}, {1, 4}} {
		for _, method := range []Method{Magnitude, Wanda, SparseGPT} {
			t.Run(method.String()+"-"+string(rune('0'+nm[0]))+":"+string(rune('0'+nm[1])), func(t *testing.T) {
				targets := AllLinear
				if m.Config.Intermediate%nm[1] != 0 {
					targets = AttnOnly // stories260K's d_ff (172) is not a multiple of 8
				}
				res, err := Prune(m, st, Options{Method: method, N: nm[0], M: nm[1], Targets: targets, Workers: 2})
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range res.Mask.Keys() {
					b := res.Mask.Get(k)
					for r := 0; r < b.Rows; r++ {
						for g := 0; g < b.Cols; g += nm[1] {
							n := 0
							for j := g; j < g+nm[1]; j++ {
								if b.Get(r, j) {
									n++
								}
							}
							if n != nm[0] {
								t.Fatalf("%s row %d group %d keeps %d of %d, want %d", k, r, g/nm[1], n, nm[1], nm[0])
							}
						}
					}
				}
				if got := res.Mask.Info.Granularity; got != string(rune('0'+nm[0]))+":"+string(rune('0'+nm[1])) {
					t.Fatalf("granularity %q", got)
				}
			})
		}
	}
}

func (m Method) String() string { return string(m) }

func TestStructuredFFN(t *testing.T) {
	m := loadStories(t)
	st := collect(t, m, storiesSamples(t)[:3], false)
	for _, method := range []Method{Magnitude, Wanda} {
		res, err := Prune(m, st, Options{Method: method, Sparsity: 0.25, Structured: true, Targets: MLPOnly})
		if err != nil {
			t.Fatal(err)
		}
		ff := m.Config.Intermediate
		want := int(math.Floor(float64(ff) * 0.75))
		for l := 0; l < m.Config.Layers; l++ {
			g, u, d := res.Mask.Get(mask.Key{Layer: l, Proj: model.ProjGate}), res.Mask.Get(mask.Key{Layer: l, Proj: model.ProjUp}), res.Mask.Get(mask.Key{Layer: l, Proj: model.ProjDown})
			if res.Mask.Get(mask.Key{Layer: l, Proj: model.ProjQ}) != nil {
				t.Fatal("attention masked by structured FFN pruning")
			}
			kept := 0
			for c := 0; c < ff; c++ {
				on := g.RowCount(c) == g.Cols
				if !on && g.RowCount(c) != 0 {
					t.Fatalf("layer %d channel %d partly pruned", l, c)
				}
				if (u.RowCount(c) == u.Cols) != on {
					t.Fatalf("layer %d channel %d: up disagrees with gate", l, c)
				}
				for r := 0; r < d.Rows; r++ {
					if d.Get(r, c) != on {
						t.Fatalf("layer %d channel %d: down column disagrees", l, c)
					}
				}
				if on {
					kept++
				}
			}
			if kept != want {
				t.Fatalf("layer %d keeps %d channels, want %d", l, kept, want)
			}
		}
	}
	if _, err := Prune(m, st, Options{Method: Wanda, Sparsity: 0.25, Structured: true, Targets: AttnOnly}); err == nil {
		t.Fatal("structured attention-only accepted")
	}
}

// activations captures the inputs of every projection over the samples.
func activations(t testing.TB, m *model.Model, samples [][]int) [][stats.NumInputs][]float32 {
	out := make([][stats.NumInputs][]float32, m.Config.Layers)
	h := &model.Hooks{LinearInput: func(l int, p model.Proj, x []float32, rows, cols int) {
		if p == model.ProjK || p == model.ProjV || p == model.ProjUp {
			return
		}
		in := stats.InputOf(p)
		out[l][in] = append(out[l][in], x[:rows*cols]...)
	}}
	for _, s := range samples {
		if _, err := m.ForwardHooks(m.NewCache(len(s)), s, false, h); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// reconError returns ‖WX − ŴX‖²_F with X the captured activations.
func reconError(w, wh []float32, rows, cols int, X []float32) float64 {
	T := len(X) / cols
	var e float64
	for t := 0; t < T; t++ {
		x := X[t*cols : (t+1)*cols]
		for r := 0; r < rows; r++ {
			var d float64
			for j, v := range x {
				d += float64(w[r*cols+j]-wh[r*cols+j]) * float64(v)
			}
			e += d * d
		}
	}
	return e
}

func maskedWeights(w []float32, b *mask.Bits) []float32 {
	out := append([]float32(nil), w...)
	for r := 0; r < b.Rows; r++ {
		for c := 0; c < b.Cols; c++ {
			if !b.Get(r, c) {
				out[r*b.Cols+c] = 0
			}
		}
	}
	return out
}

// TestSparseGPTReconstruction: on real calibration activations of
// stories260K, SparseGPT's layer reconstruction error ‖WX − ŴX‖ is below
// Wanda's and magnitude's at the same sparsity, for every linear layer.
func TestSparseGPTReconstruction(t *testing.T) {
	m := loadStories(t)
	samples := storiesSamples(t)
	st := collect(t, m, samples, true)
	X := activations(t, m, samples)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"unstructured-50", Options{Sparsity: 0.5}},
		{"unstructured-70", Options{Sparsity: 0.7}},
		{"2:4", Options{N: 2, M: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := map[Method]*Result{}
			for _, method := range []Method{Magnitude, Wanda, SparseGPT} {
				o := tc.o
				o.Method = method
				r, err := Prune(m, st, o)
				if err != nil {
					t.Fatal(err)
				}
				res[method] = r
			}
			var tot [3]float64
			for _, k := range res[SparseGPT].Mask.Keys() {
				w := m.Layers[k.Layer].Weight(k.Proj)
				orig := w.Float32s()
				x := X[k.Layer][stats.InputOf(k.Proj)]
				eS := reconError(orig, res[SparseGPT].Weights[k], w.Rows, w.Cols, x)
				eW := reconError(orig, maskedWeights(orig, res[Wanda].Mask.Get(k)), w.Rows, w.Cols, x)
				eM := reconError(orig, maskedWeights(orig, res[Magnitude].Mask.Get(k)), w.Rows, w.Cols, x)
				tot[0] += eS
				tot[1] += eW
				tot[2] += eM
				if !(eS < eW && eS < eM) {
					t.Errorf("%s: SparseGPT error %.4g, Wanda %.4g, magnitude %.4g", k, eS, eW, eM)
				}
				// SparseGPT's weights are zero exactly where its mask prunes.
				b := res[SparseGPT].Mask.Get(k)
				for r := 0; r < w.Rows; r++ {
					for c := 0; c < w.Cols; c++ {
						if !b.Get(r, c) && res[SparseGPT].Weights[k][r*w.Cols+c] != 0 {
							t.Fatalf("%s: pruned weight (%d,%d) is not zero", k, r, c)
						}
					}
					if tc.o.M == 0 {
						if want := int(math.Floor(float64(w.Cols) * (1 - tc.o.Sparsity))); b.RowCount(r) != want {
							t.Fatalf("%s row %d keeps %d, want %d", k, r, b.RowCount(r), want)
						}
					}
				}
			}
			t.Logf("total ‖WX−ŴX‖²: sparsegpt %.4g, wanda %.4g, magnitude %.4g", tot[0], tot[1], tot[2])
		})
	}
}

func TestSparseGPTZeroSparsityKeepsWeights(t *testing.T) {
	m := loadStories(t)
	st := collect(t, m, storiesSamples(t)[:3], true)
	w := m.Layers[0].Gate
	upd, b, err := SparseGPTMatrix(w.Float32s(), w.Rows, w.Cols, st.Channel(0, model.ProjGate).Gram, SparseGPTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	orig := w.Float32s()
	for i := range orig {
		if upd[i] != orig[i] {
			t.Fatalf("weight %d changed at sparsity 0: %g → %g", i, orig[i], upd[i])
		}
	}
	if b.Density() != 1 {
		t.Fatal("mask prunes at sparsity 0")
	}
	// A dead input (never active: zero row and column of H) has its weights
	// zeroed, as in the original algorithm; the rest still works.
	H := append([]float64(nil), st.Channel(0, model.ProjGate).Gram...)
	n := w.Cols
	for i := 0; i < n; i++ {
		H[3*n+i], H[i*n+3] = 0, 0
	}
	upd, b, err = SparseGPTMatrix(orig, w.Rows, w.Cols, H, SparseGPTOptions{Sparsity: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < w.Rows; r++ {
		if upd[r*n+3] != 0 || b.RowCount(r) != n/2 {
			t.Fatalf("row %d: dead weight %g, kept %d", r, upd[r*n+3], b.RowCount(r))
		}
	}
}

func TestUpperCholInverse(t *testing.T) {
	n := 37
	H := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			for k := 0; k < n+5; k++ {
				a := math.Sin(float64(i*k+1)) + 0.1*float64(i)
				b := math.Sin(float64(j*k+1)) + 0.1*float64(j)
				H[i*n+j] += a * b
			}
		}
	}
	damp := 0.5
	U, err := upperCholInverse(H, n, nil, damp, 2)
	if err != nil {
		t.Fatal(err)
	}
	// (UᵀU)(H + damp·I) = I
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if j < i && U[i*n+j] != 0 {
				t.Fatal("U is not upper triangular")
			}
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for k := 0; k < n; k++ {
				var hinv float64 // (UᵀU)[i,k]
				for r := 0; r < n; r++ {
					hinv += U[r*n+i] * U[r*n+k]
				}
				h := H[k*n+j]
				if k == j {
					h += damp
				}
				s += hinv * h
			}
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(s-want) > 1e-8 {
				t.Fatalf("(UᵀU)(H+λI)[%d,%d] = %g", i, j, s)
			}
		}
	}
	if _, err := upperCholInverse(make([]float64, 4), 2, nil, -1, 1); err == nil {
		t.Fatal("indefinite matrix accepted")
	}
}

func TestSparseGPTSequential(t *testing.T) {
	m := loadStories(t)
	samples := storiesSamples(t)
	calls := 0
	res, err := SparseGPTSequential(context.Background(), m, samples, calib.Record{Name: "golden"}, Options{Sparsity: 0.5, Targets: AllLinear, Workers: 2},
		func(done, total int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls != (2*m.Config.Layers-1)*len(samples) {
		t.Fatalf("progress called %d times", calls)
	}
	if len(res.Mask.Keys()) != m.Config.Layers*int(model.NumProj) || len(res.Weights) != len(res.Mask.Keys()) {
		t.Fatal("not every projection pruned")
	}
	// The pruned model stays close to the dense one on the calibration data:
	// closer than the Wanda mask at the same sparsity.
	wanda, err := Prune(m, collect(t, m, samples, false), Options{Method: Wanda, Sparsity: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := mask.Masked(m, res.Mask, res.Weights)
	if err != nil {
		t.Fatal(err)
	}
	wm, err := mask.Masked(m, wanda.Mask, nil)
	if err != nil {
		t.Fatal(err)
	}
	var eS, eW float64
	for _, s := range samples {
		dense, _ := m.Forward(m.NewCache(len(s)), s, true)
		a, _ := sg.Forward(sg.NewCache(len(s)), s, true)
		b, _ := wm.Forward(wm.NewCache(len(s)), s, true)
		for i := range dense {
			eS += math.Pow(float64(a[i]-dense[i]), 2)
			eW += math.Pow(float64(b[i]-dense[i]), 2)
		}
	}
	t.Logf("logit error vs dense: sequential SparseGPT %.4g, Wanda %.4g", eS, eW)
	if !(eS < eW) {
		t.Fatalf("sequential SparseGPT logit error %g not below Wanda's %g", eS, eW)
	}
}

func TestPruneErrors(t *testing.T) {
	m := loadStories(t)
	st := collect(t, m, storiesSamples(t)[:2], false)
	hf, err := model.LoadHF("../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	cases := []struct {
		name string
		m    *model.Model
		st   *stats.Stats
		o    Options
		want string
	}{
		{"sparsity 1", m, st, Options{Method: Wanda, Sparsity: 1}, "must be in [0, 1)"},
		{"negative", m, st, Options{Method: Wanda, Sparsity: -0.1}, "must be in [0, 1)"},
		{"bad nm", m, st, Options{Method: Wanda, N: 5, M: 4}, "bad N:M"},
		{"nm not dividing", m, st, Options{Method: Wanda, N: 2, M: 3}, "not a multiple"},
		{"layer count", m, st, Options{Method: Wanda, LayerSparsity: []float64{0.5}}, "per-layer"},
		{"no stats", m, nil, Options{Method: Wanda, Sparsity: 0.5}, "needs activation statistics"},
		{"no gram", m, st, Options{Method: SparseGPT, Sparsity: 0.5}, "Gram matrix"},
		{"other model", hf, st, Options{Method: Wanda, Sparsity: 0.5}, "another model"},
		{"gamma", m, st, Options{Method: Wanda, Sparsity: 0.5, Gamma: 2}, "soft gate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Prune(tc.m, tc.st, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prune = %v, want error containing %q", err, tc.want)
			}
		})
	}
	for _, s := range []string{"3", "a:b", "0:4", "5:4", "2:100"} {
		if _, _, err := ParseNM(s); err == nil {
			t.Fatalf("ParseNM(%q) accepted", s)
		}
	}
	if n, mm, err := ParseNM("2:4"); err != nil || n != 2 || mm != 4 {
		t.Fatal("ParseNM(2:4)")
	}
}

// contrastStats returns copies of base whose per-sample norms are scaled
// ×3 for the positive persona in channels up, and for the negative persona
// in channels down, of every input of every layer; elsewhere the two sets
// are identical.
func contrastStats(base *stats.Stats, up, down []int) (pos, neg *stats.Stats) {
	clone := func() *stats.Stats {
		s := &stats.Stats{Manifest: base.Manifest, In: make([][stats.NumInputs]*stats.Channel, len(base.In))}
		for l := range base.In {
			for i, c := range base.In[l] {
				cc := *c
				cc.Norms = append([]float32(nil), c.Norms...)
				cc.Sum = append([]float64(nil), c.Sum...)
				cc.SumSq = append([]float64(nil), c.SumSq...)
				s.In[l][i] = &cc
			}
		}
		return s
	}
	pos, neg = clone(), clone()
	scale := func(s *stats.Stats, chans []int) {
		for l := range s.In {
			for _, c := range s.In[l] {
				for smp := 0; smp < c.Samples; smp++ {
					for _, j := range chans {
						c.Norms[smp*c.Dim+j] *= 3
					}
				}
				for _, j := range chans {
					c.Sum[j] += 5 * float64(c.Tokens)
					c.SumSq[j] *= 9
				}
			}
		}
	}
	scale(pos, up)
	scale(neg, down)
	return pos, neg
}

// TestContrastMasksDifferOnlyWhereStatsDiffer: two calibration sets whose
// statistics differ only in some channels give contrastive masks that differ
// in exactly those channels (columns of every weight).
func TestContrastMasksDifferOnlyWhereStatsDiffer(t *testing.T) {
	m := loadStories(t)
	base := collect(t, m, storiesSamples(t), false)
	up, down := []int{3, 17, 40}, []int{5, 22, 61}
	pos, neg := contrastStats(base, up, down)
	differ := map[int]bool{}
	for _, j := range append(append([]int{}, up...), down...) {
		differ[j] = true
	}
	for _, tc := range []struct {
		name string
		o    ContrastOptions
	}{
		{"relu-50", ContrastOptions{Options: Options{Sparsity: 0.5}}},
		{"relu-20-mlp", ContrastOptions{Options: Options{Sparsity: 0.2, Targets: MLPOnly}}},
		{"relu-80", ContrastOptions{Options: Options{Sparsity: 0.8}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, err := Contrast(m, pos, neg, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if a.Info.Extra["side"] != "pos" || b.Info.Extra["side"] != "neg" || a.Info.Method != "contrast-wanda" {
				t.Fatalf("info %+v / %+v", a.Info, b.Info)
			}
			for _, k := range a.Keys() {
				ba, bb := a.Get(k), b.Get(k)
				want := int(math.Floor(float64(ba.Cols) * (1 - tc.o.Sparsity)))
				for r := 0; r < ba.Rows; r++ {
					if ba.RowCount(r) != want || bb.RowCount(r) != want {
						t.Fatalf("%s row %d keeps %d / %d, want %d", k, r, ba.RowCount(r), bb.RowCount(r), want)
					}
					for c := 0; c < ba.Cols; c++ {
						d := ba.Get(r, c) != bb.Get(r, c)
						if d != differ[c] {
							t.Fatalf("%s row %d column %d: masks differ=%v, statistics differ=%v", k, r, c, d, differ[c])
						}
					}
					for _, c := range up {
						if !ba.Get(r, c) || bb.Get(r, c) {
							t.Fatalf("%s row %d: channel %d (favours p+) not kept by p+ only", k, r, c)
						}
					}
				}
			}
			// Opposing masks differ in a small share of entries.
			d, err := mask.Diff(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if d.Total.Differ == 0 || d.Total.Share > 0.2 {
				t.Fatalf("diff share %g", d.Total.Share)
			}
		})
	}
	// Identical statistics: identical masks.
	a, b, err := Contrast(m, base, base, ContrastOptions{Options: Options{Sparsity: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := mask.Diff(a, b); d.Total.Differ != 0 {
		t.Fatal("identical statistics gave different masks")
	}
}

func TestContrastVariants(t *testing.T) {
	m := loadStories(t)
	base := collect(t, m, storiesSamples(t), false)
	up, down := []int{3, 17, 40}, []int{5, 22, 61}
	pos, neg := contrastStats(base, up, down)
	// softplus: masks still differ only in the channels whose statistics differ
	// when as many channels favour each side.
	a, b, err := Contrast(m, pos, neg, ContrastOptions{Options: Options{Sparsity: 0.5}, Phi: Softplus})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := mask.Diff(a, b); d.Total.Differ == 0 {
		t.Fatal("softplus masks identical")
	}
	// pooled: p+ keeps the top k of |W|·score, p− the next k: disjoint masks;
	// the channels with the largest pooled difference go to p+.
	a, b, err = Contrast(m, pos, neg, ContrastOptions{Options: Options{Sparsity: 0.5}, Variant: VariantPooled})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range a.Keys() {
		ba, bb := a.Get(k), b.Get(k)
		want := int(math.Floor(float64(ba.Cols) * 0.5))
		for r := 0; r < ba.Rows; r++ {
			if ba.RowCount(r) != want || bb.RowCount(r) != min(want, ba.Cols-want) {
				t.Fatalf("%s row %d keeps %d / %d", k, r, ba.RowCount(r), bb.RowCount(r))
			}
			for c := 0; c < ba.Cols; c++ {
				if ba.Get(r, c) && bb.Get(r, c) {
					t.Fatalf("%s: pooled masks overlap at (%d,%d)", k, r, c)
				}
			}
		}
	}
	// N:M and structured contrast masks are valid.
	a, _, err = Contrast(m, pos, neg, ContrastOptions{Options: Options{N: 2, M: 4}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range a.Keys() {
		bt := a.Get(k)
		for r := 0; r < bt.Rows; r++ {
			if bt.RowCount(r) != bt.Cols/2 {
				t.Fatalf("2:4 contrast row keeps %d", bt.RowCount(r))
			}
		}
	}
	if _, _, err := Contrast(m, pos, neg, ContrastOptions{Options: Options{Sparsity: 0.5, Structured: true, Targets: MLPOnly}}); err != nil {
		t.Fatal(err)
	}
	// z-scores: zero where the statistics agree, positive where p+ is larger.
	z := ZScores(pos.In[0][0], neg.In[0][0])
	for j, v := range z {
		switch {
		case slicesContains(up, j) && !(v > 0), slicesContains(down, j) && !(v < 0):
			t.Fatalf("z[%d] = %g has the wrong sign", j, v)
		case !slicesContains(up, j) && !slicesContains(down, j) && v != 0:
			t.Fatalf("z[%d] = %g, want 0", j, v)
		}
	}
	// Errors.
	hf, err := model.LoadHF("../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if _, _, err := Contrast(hf, pos, neg, ContrastOptions{Options: Options{Sparsity: 0.5}}); err == nil || !strings.Contains(err.Error(), "another model") {
		t.Fatalf("contrast on another model: %v", err)
	}
	one := collect(t, m, storiesSamples(t)[:1], false)
	if _, _, err := Contrast(m, one, one, ContrastOptions{Options: Options{Sparsity: 0.5}}); err == nil || !strings.Contains(err.Error(), "2 samples") {
		t.Fatalf("contrast with one sample: %v", err)
	}
}

func slicesContains(s []int, v int) bool {
	i := sort.SearchInts(s, v)
	return i < len(s) && s[i] == v
}

func TestSelectTop(t *testing.T) {
	// selection agrees with a full sort on many shapes, ties included
	for n := 1; n < 300; n += 7 {
		p := make([]float64, n)
		for i := range p {
			p[i] = float64((i * 7919) % 13) // many ties
		}
		if n > 5 {
			p[2] = math.NaN()
		}
		sanitize(p)
		rk := ranker{p: p}
		for _, k := range []int{0, 1, n / 3, n / 2, n - 1, n} {
			keep := make([]bool, n)
			rk.keepRanks(keep, make([]int, n), 0, k)
			idx := make([]int, n)
			for i := range idx {
				idx[i] = i
			}
			sort.Slice(idx, func(a, b int) bool { return rk.before(idx[a], idx[b]) })
			for r, j := range idx {
				if keep[j] != (r < k) {
					t.Fatalf("n=%d k=%d: entry %d (rank %d) keep=%v", n, k, j, r, keep[j])
				}
			}
		}
	}
}

func TestReportHTML(t *testing.T) {
	m := loadStories(t)
	rep := &Report{Title: "test <report>", Model: "stories260K", Method: "magnitude"}
	for i, rho := range []float64{0.1, 0.3, 0.5} {
		res, err := Prune(m, nil, Options{Method: Magnitude, Sparsity: rho, Targets: MLPOnly})
		if err != nil {
			t.Fatal(err)
		}
		run := RunFromMask("ρ="+string(rune('1'+i)), rho, res.Mask)
		run.Metrics = map[string]float64{"accuracy": 0.5 + 0.1*float64(i)}
		if math.Abs(run.Density[0][model.ProjGate]-(1-rho)) > 0.02 || run.Density[0][model.ProjQ] != 1 {
			t.Fatalf("densities %v", run.Density[0])
		}
		rep.Runs = append(rep.Runs, run)
	}
	var b strings.Builder
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{"<svg", "accuracy against sparsity", "test &lt;report&gt;", "</html>", "polyline"} {
		if !strings.Contains(s, want) {
			t.Fatalf("report lacks %q", want)
		}
	}
	if strings.Contains(s, "<script") || strings.Contains(s, "http://") && !strings.Contains(s, "http://www.w3.org/2000/svg") {
		t.Fatal("report is not self-contained")
	}
}
