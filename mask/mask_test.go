package mask

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
)

func TestBits(t *testing.T) {
	for _, cols := range []int{1, 7, 8, 9, 64, 100} {
		b := NewBits(3, cols)
		if b.Count() != int64(3*cols) || b.Density() != 1 {
			t.Fatalf("cols %d: new mask count %d", cols, b.Count())
		}
		if err := b.check(); err != nil {
			t.Fatal(err)
		}
		b.Set(1, cols-1, false)
		b.Set(2, 0, false)
		if b.Get(1, cols-1) || b.Get(2, 0) || !b.Get(0, 0) || b.RowCount(1) != cols-1 {
			t.Fatalf("cols %d: Set/Get wrong", cols)
		}
		c := b.Clone()
		c.Set(0, 0, false)
		if b.Equal(c) || diffCount(b, c) != 1 {
			t.Fatal("Clone/Equal/diffCount wrong")
		}
		keep := make([]bool, cols)
		keep[0] = true
		b.SetRow(0, keep)
		if b.RowCount(0) != 1 || b.check() != nil {
			t.Fatal("SetRow wrong")
		}
		b.Fill(false)
		if b.Count() != 0 {
			t.Fatal("Fill(false)")
		}
	}
}

func loadStories(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func loadHF(t testing.TB, name string) *model.Model {
	t.Helper()
	m, err := model.LoadHF("../testdata/hf-tiny/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// randomMask prunes each entry of every projection with probability rho
// (only the projections accepted by which).
func randomMask(m *model.Model, rho float64, seed uint64, which func(model.Proj) bool) *Mask {
	r := rand.New(rand.NewPCG(seed, 1))
	mk := New(m)
	for l := 0; l < m.Config.Layers; l++ {
		for p := model.Proj(0); p < model.NumProj; p++ {
			if which != nil && !which(p) {
				continue
			}
			s := mk.Shapes[p]
			b := NewBits(s[0], s[1])
			for i := 0; i < s[0]; i++ {
				for j := 0; j < s[1]; j++ {
					if r.Float64() < rho {
						b.Set(i, j, false)
					}
				}
			}
			if err := mk.Set(Key{l, p}, b); err != nil {
				panic(err)
			}
		}
	}
	return mk
}

func TestSaveLoad(t *testing.T) {
	m := loadStories(t)
	mk := randomMask(m, 0.4, 1, func(p model.Proj) bool { return p != model.ProjV })
	mk.Gamma = 0.25
	mk.Info = Info{Method: "wanda", Sparsity: 0.4, Granularity: "row", Extra: map[string]string{"side": "pos"}}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := mk.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint != mk.Fingerprint || got.Gamma != 0.25 || got.Layers != mk.Layers || got.Shapes != mk.Shapes ||
		got.Info.Method != "wanda" || got.Info.Extra["side"] != "pos" || len(got.Keys()) != len(mk.Keys()) {
		t.Fatalf("round trip lost fields: %+v", got)
	}
	for _, k := range mk.Keys() {
		if !got.Get(k).Equal(mk.Get(k)) {
			t.Fatalf("%s differs after round trip", k)
		}
	}
	if got.Get(Key{0, model.ProjV}) != nil || got.Bits(Key{0, model.ProjV}).Density() != 1 {
		t.Fatal("absent layer should be dense")
	}
	if d := got.Density(); math.Abs(d-mk.Density()) > 0 || d > 0.7 || d < 0.5 {
		t.Fatalf("density %g", d)
	}
	if err := got.Check(m); err != nil {
		t.Fatal(err)
	}
	// File size: bit-packed, about 1/32 of the F32 weights, plus the
	// metadata and the base's weight probe (base64 float32s).
	st, _ := os.Stat(path)
	if st.Size() > mk.Entries()/8+8192+int64(len(mk.Probe.Values))*16/3 {
		t.Fatalf("mask file has %d bytes for %d entries", st.Size(), mk.Entries())
	}
}

func TestLoadErrors(t *testing.T) {
	m := loadStories(t)
	dir := t.TempDir()
	good := New(m)
	goodPath := filepath.Join(dir, "good.safetensors")
	if err := good.Save(goodPath); err != nil {
		t.Fatal(err)
	}
	meta := func(over map[string]string) map[string]string {
		f, err := safetensors.Open(goodPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		md := f.Metadata()
		for k, v := range over {
			md[k] = v
		}
		return md
	}
	write := func(name string, ts []safetensors.WriteTensor, md map[string]string) string {
		p := filepath.Join(dir, name)
		if err := safetensors.Write(p, ts, md); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := filepath.Join(dir, "garbage.safetensors")
	os.WriteFile(garbage, []byte("this is not a safetensors file at all"), 0o644)
	s := good.Shapes[model.ProjQ]
	stride := (s[1] + 7) / 8
	padded := make([]byte, s[0]*stride)
	if s[1]%8 == 0 {
		padded = nil
	}
	cases := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.safetensors"), "no such file"},
		{"garbage", garbage, "garbage.safetensors"},
		{"not a mask", write("other.safetensors", nil, map[string]string{"format": "pt"}), "not a masque mask file"},
		{"bad version", write("v.safetensors", nil, meta(map[string]string{"version": "9"})), "unsupported mask format version"},
		{"no fingerprint", write("fp.safetensors", nil, meta(map[string]string{"fingerprint": ""})), "no model fingerprint"},
		{"bad shapes", write("sh.safetensors", nil, meta(map[string]string{"shapes": "[1,2"})), "bad shapes"},
		{"bad gamma", write("g.safetensors", nil, meta(map[string]string{"gamma": "x"})), "bad gamma"},
		{"bad name", write("n.safetensors", []safetensors.WriteTensor{{Name: "foo", DType: "U8", Shape: []int{1}, Data: []byte{1}}}, meta(nil)), `unexpected tensor "foo"`},
		{"bad shape", write("s.safetensors", []safetensors.WriteTensor{{Name: "model.layers.0.self_attn.q_proj.weight", DType: "U8", Shape: []int{1}, Data: []byte{1}}}, meta(nil)), "want U8"},
		{"layer out of range", write("l.safetensors", []safetensors.WriteTensor{{Name: "model.layers.99.self_attn.q_proj.weight", DType: "U8", Shape: []int{s[0], stride}, Data: make([]byte, s[0]*stride)}}, meta(nil)), "beyond"},
	}
	if padded != nil {
		padded[0*stride+stride-1] = 0xff
		cases = append(cases, struct{ name, path, want string }{"padding", write("p.safetensors", []safetensors.WriteTensor{{Name: "model.layers.0.self_attn.q_proj.weight", DType: "U8", Shape: []int{s[0], stride}, Data: padded}}, meta(nil)), "padding"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// manualMasked builds W ⊙ (M + γ(1−M)) directly in float32.
func manualMasked(t *testing.T, m *model.Model, mk *Mask) *model.Model {
	layers := append([]model.Layer(nil), m.Layers...)
	for _, k := range mk.Keys() {
		w := m.Layers[k.Layer].Weight(k.Proj)
		v := w.Float32s()
		b := mk.Get(k)
		for r := 0; r < w.Rows; r++ {
			for c := 0; c < w.Cols; c++ {
				if !b.Get(r, c) {
					v[r*w.Cols+c] *= float32(mk.Gamma)
				}
			}
		}
		layers[k.Layer].SetWeight(k.Proj, kernels.FromF32(w.Rows, w.Cols, v))
	}
	mm, err := model.New(m.Config, m.Embed, layers, m.Norm, m.LMHead)
	if err != nil {
		t.Fatal(err)
	}
	return mm
}

// logits runs m over toks with exact BF16 products (kernels.ExactBF16),
// so models with BF16 and float32 copies of the same weights compare
// to float32 rounding.
func logits(t *testing.T, m *model.Model, toks []int) []float32 {
	t.Helper()
	m.K = kernels.ExactBF16(m.K)
	out, err := m.Forward(m.NewCache(len(toks)), toks, true)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestApplyMatchesOnTheFly: writing the masked model and loading it gives
// exactly the logits of the in-memory masked model, which match W⊙M computed
// by hand; sparsity 0 changes nothing.
func TestApplyMatchesOnTheFly(t *testing.T) {
	toks := []int{1, 5, 9, 22, 7, 3, 100, 42}
	cases := []struct {
		name  string
		m     *model.Model
		rho   float64
		gamma float64
		which func(model.Proj) bool
	}{
		{"stories-export", loadStories(t), 0.5, 0, nil},
		{"llama-bias-f32", loadHF(t, "llama"), 0.5, 0, nil},
		{"llama-soft-gate", loadHF(t, "llama"), 0.3, 0.5, nil},
		{"llama3-bf16", loadHF(t, "llama3-ropescaled"), 0.5, 0, func(p model.Proj) bool { return p >= model.ProjGate }},
		{"mistral-sharded", loadHF(t, "mistral"), 0.6, 0, func(p model.Proj) bool { return p <= model.ProjO }},
		{"smollm-tied-f16", loadHF(t, "smollm-tied"), 0.5, 0, nil},
		{"qwen3-sparsity0", loadHF(t, "qwen3"), 0, 0, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mk := randomMask(tc.m, tc.rho, uint64(i), tc.which)
			mk.Gamma = tc.gamma
			fly, err := Masked(tc.m, mk, nil)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "masked")
			if err := Apply(tc.m, mk, out, ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			disk, err := model.LoadHF(out)
			if err != nil {
				t.Fatal(err)
			}
			defer disk.Close()
			lf, ld := logits(t, fly, toks), logits(t, disk, toks)
			if d := maxDiff(lf, ld); d != 0 {
				t.Fatalf("applied model differs from the on-the-fly mask by %g", d)
			}
			lm := logits(t, manualMasked(t, tc.m, mk), toks)
			if d := maxDiff(lf, lm); d > 1e-4 {
				t.Fatalf("on-the-fly mask differs from W⊙M by %g", d)
			}
			base := logits(t, tc.m, toks)
			if tc.rho == 0 {
				if d := maxDiff(base, ld); d != 0 {
					t.Fatalf("sparsity 0 changed the logits by %g", d)
				}
			} else if maxDiff(base, ld) < 1e-3 {
				t.Fatal("masking changed nothing")
			}
			if _, err := os.Stat(filepath.Join(out, ProvenanceFile)); err != nil {
				t.Fatal(err)
			}
			if tc.m.Source() != "" && !strings.HasSuffix(tc.m.Source(), ".bin") {
				if _, err := os.Stat(filepath.Join(out, "golden.safetensors")); err == nil {
					t.Fatal("non-model safetensors file copied")
				}
				if _, err := os.Stat(filepath.Join(out, "golden.json")); err != nil {
					t.Fatal("other files not copied")
				}
			}
		})
	}
}

func TestSparsityZeroKeepsBytes(t *testing.T) {
	m := loadHF(t, "llama")
	mk := randomMask(m, 0, 3, nil)
	out := filepath.Join(t.TempDir(), "same")
	if err := Apply(m, mk, out, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := safetensors.Open("../testdata/hf-tiny/llama/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, n := range a.Names() {
		ta, _ := a.Tensor(n)
		tb, ok := b.Tensor(n)
		if !ok || string(ta.Data) != string(tb.Data) || ta.DType != tb.DType {
			t.Fatalf("tensor %s changed", n)
		}
	}
}

func TestRefuseOtherModel(t *testing.T) {
	st := loadStories(t)
	hf := loadHF(t, "llama")
	mk := randomMask(st, 0.5, 1, nil)
	out := filepath.Join(t.TempDir(), "x")
	if err := Apply(hf, mk, out, ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "another model") {
		t.Fatalf("Apply with another model: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("output written for a refused mask")
	}
	if _, err := Masked(hf, mk, nil); err == nil || !strings.Contains(err.Error(), "another model") {
		t.Fatalf("Masked with another model: %v", err)
	}
	// Existing output is not overwritten without permission.
	good := randomMask(hf, 0.5, 1, nil)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Apply(hf, good, out, ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Apply over an existing folder: %v", err)
	}
	if err := Apply(hf, good, out, ApplyOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "config.json")); err != nil {
		t.Fatal(err)
	}
}

func TestApplyReplacementWeights(t *testing.T) {
	m := loadStories(t)
	mk := New(m)
	k := Key{1, model.ProjUp}
	s := mk.Shapes[k.Proj]
	repl := make([]float32, s[0]*s[1])
	for i := range repl {
		repl[i] = 0.01 * float32(i%7)
	}
	b := NewBits(s[0], s[1])
	b.Set(0, 1, false)
	mk.Set(k, b)
	mm, err := Masked(m, mk, Weights{k: repl})
	if err != nil {
		t.Fatal(err)
	}
	got := mm.Layers[1].Up.F32()
	if got[1] != 0 || got[2] != repl[2] || m.Layers[1].Up.F32()[2] == repl[2] {
		t.Fatal("replacement weights not used")
	}
}

func TestDiff(t *testing.T) {
	m := loadStories(t)
	a := New(m)
	b := New(m)
	k := Key{2, model.ProjDown}
	s := a.Shapes[k.Proj]
	ba := NewBits(s[0], s[1])
	ba.Set(0, 0, false)
	ba.Set(1, 1, false)
	a.Set(k, ba)
	bb := NewBits(s[0], s[1])
	bb.Set(0, 0, false)
	bb.Set(3, 3, false)
	b.Set(k, bb)
	b.Set(Key{0, model.ProjQ}, func() *Bits { x := NewBits(a.Shapes[0][0], a.Shapes[0][1]); x.Set(5, 5, false); return x }())
	d, err := Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	n := s[0] * s[1]
	if d.Total.Differ != 3 || d.Total.Entries != a.Entries() || d.PerLayer[2].Differ != 2 || d.PerLayer[0].Differ != 1 ||
		d.PerProj["down"].Differ != 2 || d.PerProj["down"].Entries != int64(n*m.Config.Layers) || d.PerProj["q"].Differ != 1 {
		t.Fatalf("diff %+v", d)
	}
	if same, _ := Diff(a, a); same.Total.Differ != 0 {
		t.Fatal("a mask differs from itself")
	}
	hf := New(loadHF(t, "llama"))
	if _, err := Diff(a, hf); err == nil || !strings.Contains(err.Error(), "different models") {
		t.Fatalf("Diff across models: %v", err)
	}
}

// TestSetChannels: pruning FFN channels clears rows of gate and up and
// columns of down, nothing else; wrong lengths and non-FFN projections are
// refused.
func TestSetChannels(t *testing.T) {
	m := loadStories(t)
	mk := New(m)
	ff, h := m.Config.Intermediate, m.Config.Hidden
	keep := make([]bool, ff)
	for c := range keep {
		keep[c] = c%3 != 1
	}
	for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
		if err := mk.SetChannels(2, p, keep); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []model.Proj{model.ProjGate, model.ProjUp} {
		b := mk.Get(Key{Layer: 2, Proj: p})
		for c := 0; c < ff; c++ {
			if want := map[bool]int{true: h, false: 0}[keep[c]]; b.RowCount(c) != want {
				t.Fatalf("%s row %d keeps %d, want %d", p.HFName(), c, b.RowCount(c), want)
			}
		}
	}
	d := mk.Get(Key{Layer: 2, Proj: model.ProjDown})
	for r := 0; r < h; r++ {
		for c := 0; c < ff; c++ {
			if d.Get(r, c) != keep[c] {
				t.Fatalf("down (%d, %d) kept %v, channel kept %v", r, c, d.Get(r, c), keep[c])
			}
		}
	}
	if len(mk.Keys()) != 3 {
		t.Errorf("keys %v, want layer 2's three FFN projections", mk.Keys())
	}
	if err := mk.SetChannels(0, model.ProjQ, keep); err == nil {
		t.Error("an attention projection was accepted")
	}
	if err := mk.SetChannels(0, model.ProjDown, keep[1:]); err == nil || !strings.Contains(err.Error(), "channel flags") {
		t.Errorf("a short flag list: %v", err)
	}
}
