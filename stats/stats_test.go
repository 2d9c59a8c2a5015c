package stats

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/model"
)

func loadStories(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// storiesSamples returns real token sequences: the prompts and greedy
// continuations recorded in the stories260K golden file.
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

func randomSamples(n, vocab int, seed uint64) [][]int {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([][]int, n)
	for i := range out {
		s := make([]int, 5+r.IntN(20))
		for j := range s {
			s[j] = r.IntN(vocab)
		}
		out[i] = s
	}
	return out
}

// refInputs recomputes, independently of the model package's forward pass,
// the inputs of every linear layer for one sample: [layer][input] →
// tokens×dim, in float64. It implements the Llama block directly from the
// weights (RMSNorm, q/k/v with biases, rotate-half RoPE, causal GQA
// attention, o, SiLU-gated MLP).
func refInputs(m *model.Model, tokens []int) [][NumInputs][][]float64 {
	c := m.Config
	H, D, T := c.Hidden, c.HeadDim, len(tokens)
	f64 := func(v []float32) []float64 {
		o := make([]float64, len(v))
		for i, x := range v {
			o[i] = float64(x)
		}
		return o
	}
	emb := f64(m.Embed.Float32s())
	x := make([][]float64, T)
	for i, t := range tokens {
		x[i] = append([]float64{}, emb[t*H:(t+1)*H]...)
	}
	rms := func(v []float64, w []float32) []float64 {
		var ss float64
		for _, a := range v {
			ss += a * a
		}
		s := 1 / math.Sqrt(ss/float64(len(v))+float64(c.NormEps))
		o := make([]float64, len(v))
		for i, a := range v {
			o[i] = a * s * float64(w[i])
		}
		return o
	}
	lin := func(in []float64, w []float64, rows int, b []float32) []float64 {
		cols := len(in)
		o := make([]float64, rows)
		for r := 0; r < rows; r++ {
			var s float64
			for j := 0; j < cols; j++ {
				s += w[r*cols+j] * in[j]
			}
			if b != nil {
				s += float64(b[r])
			}
			o[r] = s
		}
		return o
	}
	rope := func(v []float64, heads, pos int) {
		half := D / 2
		for h := 0; h < heads; h++ {
			for i := 0; i < half; i++ {
				f := 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(D))
				cs, sn := math.Cos(float64(pos)*f), math.Sin(float64(pos)*f)
				a, b := v[h*D+i], v[h*D+i+half]
				v[h*D+i] = a*cs - b*sn
				v[h*D+i+half] = b*cs + a*sn
			}
		}
	}
	out := make([][NumInputs][][]float64, c.Layers)
	for l := range m.Layers {
		ly := &m.Layers[l]
		W := func(p model.Proj) []float64 { return f64(ly.Weight(p).Float32s()) }
		wq, wk, wv, wo, wg, wu, wd := W(model.ProjQ), W(model.ProjK), W(model.ProjV), W(model.ProjO), W(model.ProjGate), W(model.ProjUp), W(model.ProjDown)
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for i := 0; i < T; i++ {
			xn := rms(x[i], ly.AttnNorm)
			out[l][AttnIn] = append(out[l][AttnIn], xn)
			qs[i] = lin(xn, wq, c.QDim(), ly.QBias)
			ks[i] = lin(xn, wk, c.KVDim(), ly.KBias)
			vs[i] = lin(xn, wv, c.KVDim(), ly.VBias)
			rope(qs[i], c.Heads, i)
			rope(ks[i], c.KVHeads, i)
		}
		group := c.Heads / c.KVHeads
		for i := 0; i < T; i++ {
			att := make([]float64, c.QDim())
			for h := 0; h < c.Heads; h++ {
				kh := (h / group) * D
				sc := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					var s float64
					for d := 0; d < D; d++ {
						s += qs[i][h*D+d] * ks[j][kh+d]
					}
					sc[j] = s / math.Sqrt(float64(D))
					mx = max(mx, sc[j])
				}
				var z float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					z += sc[j]
				}
				for j := range sc {
					for d := 0; d < D; d++ {
						att[h*D+d] += sc[j] / z * vs[j][kh+d]
					}
				}
			}
			out[l][OIn] = append(out[l][OIn], att)
			o := lin(att, wo, H, ly.OBias)
			for d := range x[i] {
				x[i][d] += o[d]
			}
			xn := rms(x[i], ly.MLPNorm)
			out[l][MLPIn] = append(out[l][MLPIn], xn)
			g := lin(xn, wg, c.Intermediate, ly.GateBias)
			u := lin(xn, wu, c.Intermediate, ly.UpBias)
			for d := range g {
				g[d] = g[d] / (1 + math.Exp(-g[d])) * u[d]
			}
			out[l][DownIn] = append(out[l][DownIn], g)
			dn := lin(g, wd, H, ly.DownBias)
			for d := range x[i] {
				x[i][d] += dn[d]
			}
		}
	}
	return out
}

func close(a, b, rel, abs float64) bool {
	return math.Abs(a-b) <= abs+rel*math.Max(math.Abs(a), math.Abs(b))
}

// TestStatsMatchReference checks every statistic against values computed by
// hand from independently recomputed activations.
func TestStatsMatchReference(t *testing.T) {
	hf, err := model.LoadHF("../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	cases := []struct {
		name    string
		m       *model.Model
		samples [][]int
	}{
		{"stories260K", loadStories(t), storiesSamples(t)[:4]},
		{"hf-tiny-llama-bias", hf, randomSamples(4, hf.Config.Vocab, 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			col := NewCollector(tc.m, Options{Gram: func(l int, in Input) bool { return true }, Workers: 2})
			for _, s := range tc.samples {
				if err := col.AddSample(s); err != nil {
					t.Fatal(err)
				}
			}
			st := col.Stats(Manifest{Calibration: calib.Record{Name: "test"}})
			var total int
			for _, s := range tc.samples {
				total += len(s)
			}
			if st.Manifest.Samples != len(tc.samples) || st.Manifest.Tokens != int64(total) {
				t.Fatalf("manifest counts %d samples %d tokens, want %d %d", st.Manifest.Samples, st.Manifest.Tokens, len(tc.samples), total)
			}
			refs := make([][][NumInputs][][]float64, len(tc.samples))
			for i, s := range tc.samples {
				refs[i] = refInputs(tc.m, s)
			}
			for l := 0; l < tc.m.Config.Layers; l++ {
				for in := Input(0); in < NumInputs; in++ {
					ch := st.In[l][in]
					dim := ch.Dim
					norms := make([][]float64, len(tc.samples))
					sum, sumsq := make([]float64, dim), make([]float64, dim)
					gram := make([]float64, dim*dim)
					for si := range tc.samples {
						norms[si] = make([]float64, dim)
						for _, row := range refs[si][l][in] {
							for j, v := range row {
								norms[si][j] += v * v
								sum[j] += v
								sumsq[j] += v * v
								for k, w := range row {
									gram[j*dim+k] += v * w
								}
							}
						}
						for j := range norms[si] {
							norms[si][j] = math.Sqrt(norms[si][j])
						}
					}
					mean, nvar := make([]float64, dim), make([]float64, dim)
					for j := 0; j < dim; j++ {
						for si := range norms {
							mean[j] += norms[si][j]
						}
						mean[j] /= float64(len(norms))
						for si := range norms {
							d := norms[si][j] - mean[j]
							nvar[j] += d * d
						}
						nvar[j] /= float64(len(norms) - 1)
					}
					gotMean, gotVar, gotMu, gotV := ch.MeanNorm(), ch.NormVar(), ch.Mean(), ch.Var()
					N := float64(total)
					for j := 0; j < dim; j++ {
						for si := range norms {
							if !close(float64(ch.Norm(si)[j]), norms[si][j], 1e-4, 1e-5) {
								t.Fatalf("layer %d %s sample %d channel %d norm %g, want %g", l, in, si, j, ch.Norm(si)[j], norms[si][j])
							}
						}
						mu := sum[j] / N
						vr := sumsq[j]/N - mu*mu
						if !close(gotMean[j], mean[j], 1e-4, 1e-5) || !close(gotVar[j], nvar[j], 1e-3, 1e-6) ||
							!close(gotMu[j], mu, 1e-4, 1e-5) || !close(gotV[j], vr, 1e-3, 1e-6) {
							t.Fatalf("layer %d %s channel %d: mean norm %g/%g, norm var %g/%g, mean %g/%g, var %g/%g",
								l, in, j, gotMean[j], mean[j], gotVar[j], nvar[j], gotMu[j], mu, gotV[j], vr)
						}
						for k := 0; k < dim; k++ {
							// relative to the scale of the entry (Cauchy–Schwarz bound)
							scale := math.Sqrt(gram[j*dim+j] * gram[k*dim+k])
							if math.Abs(ch.Gram[j*dim+k]-gram[j*dim+k]) > 1e-4*scale+1e-6 {
								t.Fatalf("layer %d %s gram[%d,%d] = %g, want %g", l, in, j, k, ch.Gram[j*dim+k], gram[j*dim+k])
							}
						}
					}
				}
				// q, k, v share attn_in; gate and up share mlp_in.
				if st.Channel(l, model.ProjK) != st.In[l][AttnIn] || st.Channel(l, model.ProjUp) != st.In[l][MLPIn] || st.Channel(l, model.ProjDown) != st.In[l][DownIn] {
					t.Fatal("Channel does not map projections to their inputs")
				}
			}
		})
	}
}

// TestChunkedSample checks that feeding one sample in several forward passes
// gives the same statistics as one pass.
func TestChunkedSample(t *testing.T) {
	m := loadStories(t)
	s := storiesSamples(t)[1]
	a := NewCollector(m, Options{})
	if err := a.AddSample(s); err != nil {
		t.Fatal(err)
	}
	b := NewCollector(m, Options{})
	b.BeginSample()
	c := m.NewCache(len(s))
	for _, part := range [][]int{s[:10], s[10:30], s[30:]} {
		if _, err := m.ForwardHooks(c, part, false, b.Hooks()); err != nil {
			t.Fatal(err)
		}
	}
	b.EndSample()
	sa, sb := a.Stats(Manifest{}), b.Stats(Manifest{})
	for l := range sa.In {
		for in := range sa.In[l] {
			x, y := sa.In[l][in], sb.In[l][in]
			for j := range x.Norms {
				if !close(float64(x.Norms[j]), float64(y.Norms[j]), 1e-4, 1e-6) {
					t.Fatalf("layer %d %s: chunked norm %g, whole %g", l, Input(in), y.Norms[j], x.Norms[j])
				}
			}
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m := loadStories(t)
	col := NewCollector(m, Options{Gram: func(l int, in Input) bool { return l == 1 && in == DownIn }})
	for _, s := range storiesSamples(t)[:3] {
		if err := col.AddSample(s); err != nil {
			t.Fatal(err)
		}
	}
	st := col.Stats(Manifest{Calibration: calib.Record{Name: "golden", Source: "tokens", SHA256: "abc", MaxTokens: 512}})
	dir := filepath.Join(t.TempDir(), "st")
	if err := st.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Check(m); err != nil {
		t.Fatal(err)
	}
	if got.Manifest.Samples != 3 || got.Manifest.Calibration.Name != "golden" || len(got.Manifest.Gram) != 1 {
		t.Fatalf("manifest %+v", got.Manifest)
	}
	for l := range st.In {
		for in := range st.In[l] {
			a, b := st.In[l][in], got.In[l][in]
			if len(a.Norms) != len(b.Norms) || (a.Gram == nil) != (b.Gram == nil) {
				t.Fatalf("layer %d %s differs after loading", l, Input(in))
			}
			for j := range a.Norms {
				if a.Norms[j] != b.Norms[j] {
					t.Fatal("norms differ")
				}
			}
			for j := range a.Sum {
				if a.Sum[j] != b.Sum[j] || a.SumSq[j] != b.SumSq[j] {
					t.Fatal("sums differ")
				}
			}
			for j := range a.Gram {
				if a.Gram[j] != b.Gram[j] {
					t.Fatal("gram differs")
				}
			}
		}
	}
	// Statistics of another model are refused.
	hf, err := model.LoadHF("../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if err := got.Check(hf); err == nil || !strings.Contains(err.Error(), "another model") {
		t.Fatalf("Check on another model: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	m := loadStories(t)
	col := NewCollector(m, Options{})
	if err := col.AddSample([]int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "good")
	if err := col.Stats(Manifest{}).Save(good); err != nil {
		t.Fatal(err)
	}
	write := func(dir, name, content string) string {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
		return dir
	}
	copyGood := func() string {
		d := t.TempDir()
		for _, n := range []string{ManifestFile, TensorFile} {
			b, _ := os.ReadFile(filepath.Join(good, n))
			os.WriteFile(filepath.Join(d, n), b, 0o644)
		}
		return d
	}
	tampered := copyGood()
	f, _ := os.OpenFile(filepath.Join(tampered, TensorFile), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("x"))
	f.Close()
	cases := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(t.TempDir(), "nope"), "no such file"},
		{"no manifest", t.TempDir(), "not a statistics folder"},
		{"malformed manifest", write(t.TempDir(), ManifestFile, "{not json"), "malformed JSON"},
		{"wrong format", write(t.TempDir(), ManifestFile, `{"format":"other","version":1}`), "not a masque statistics manifest"},
		{"tampered tensors", tampered, "does not match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%s) = %v, want error containing %q", tc.path, err, tc.want)
			}
		})
	}
}

func TestHookOutsideSample(t *testing.T) {
	m := loadStories(t)
	col := NewCollector(m, Options{})
	if _, err := m.ForwardHooks(m.NewCache(4), []int{1, 2}, false, col.Hooks()); err != nil {
		t.Fatal(err)
	}
	if col.Err() == nil {
		t.Fatal("no error for a forward pass outside a sample")
	}
	if err := NewCollector(m, Options{}).AddSample(nil); err == nil {
		t.Fatal("empty sample accepted")
	}
}

// TestCollect checks Collect against a Collector fed by hand, its progress
// calls, a cancelled context and an empty set.
func TestCollect(t *testing.T) {
	m := loadStories(t)
	ss := storiesSamples(t)[:3]
	var calls []int
	got, err := Collect(context.Background(), m, ss, calib.Record{Name: "three"}, Options{}, func(d, n int) {
		if n != len(ss) {
			t.Errorf("progress total %d, want %d", n, len(ss))
		}
		calls = append(calls, d)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[2] != 3 {
		t.Fatalf("progress calls %v, want 1 2 3", calls)
	}
	c := NewCollector(m, Options{})
	for _, s := range ss {
		if err := c.AddSample(s); err != nil {
			t.Fatal(err)
		}
	}
	want := c.Stats(Manifest{})
	if got.Manifest.Calibration.Name != "three" || got.Manifest.Samples != 3 {
		t.Fatalf("manifest %+v", got.Manifest)
	}
	for l := range want.In {
		for in := range want.In[l] {
			x, y := want.In[l][in].MeanNorm(), got.In[l][in].MeanNorm()
			for j := range x {
				if x[j] != y[j] {
					t.Fatalf("layer %d %s channel %d: %g, want %g", l, Input(in), j, y[j], x[j])
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Collect(ctx, m, ss, calib.Record{}, Options{}, nil); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := Collect(context.Background(), m, nil, calib.Record{}, Options{}, nil); err == nil {
		t.Fatal("no samples: no error")
	}
}

func TestParseLayers(t *testing.T) {
	all, err := ParseLayers("", 3)
	if err != nil || len(all) != 3 || !all[0] || !all[2] {
		t.Errorf(`"": %v %v`, all, err)
	}
	if a, err := ParseLayers("all", 2); err != nil || len(a) != 2 {
		t.Errorf("all: %v %v", a, err)
	}
	got, err := ParseLayers("0-1, 3", 4)
	if err != nil || len(got) != 3 || !got[0] || !got[1] || got[2] || !got[3] {
		t.Errorf("0-1,3: %v %v", got, err)
	}
	for _, bad := range []string{"4", "2-1", "x", "-1", "1-"} {
		if _, err := ParseLayers(bad, 4); err == nil || !strings.Contains(err.Error(), "layers 0-3") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
