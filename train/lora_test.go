package train

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
	"github.com/masque-ai/masque/train/hfsave"
)

func allProjs() []model.Proj {
	return []model.Proj{model.ProjQ, model.ProjK, model.ProjV, model.ProjO, model.ProjGate, model.ProjUp, model.ProjDown}
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// forwardLogits runs m over ids with exact BF16 products
// (kernels.ExactBF16): the training network and merged float32 models
// compute BF16 bases in float32 too.
func forwardLogits(t testing.TB, m *model.Model, ids []int) []float32 {
	t.Helper()
	m.K = kernels.ExactBF16(m.K)
	out, err := m.Forward(m.NewCache(len(ids)), ids, true)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var testIDs = []int{1, 17, 300, 42, 42, 7, 99, 250, 3, 8, 120, 511, 64}

// TestTrainForwardMatchesModel checks that the training forward pass gives
// the inference forward's logits on every architecture (and with a
// sliding window shorter than the sequence).
func TestTrainForwardMatchesModel(t *testing.T) {
	for _, name := range append(hfTiny, "mistral-window") {
		t.Run(name, func(t *testing.T) {
			dir := name
			if name == "mistral-window" {
				dir = "mistral"
			}
			m, err := model.Load(tinyDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if name == "mistral-window" {
				m.Config.SlidingWindow = 4
			}
			want := forwardLogits(t, m, testIDs)
			n, err := New(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := n.Logits(testIDs)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(got, want); d > 1e-4 {
				t.Errorf("train logits differ from model.Forward by %.3g", d)
			}
		})
	}
}

// TestLoRAZeroBUnchanged: a fresh adapter (B = 0) leaves the model's output
// unchanged at step 0, bit for bit.
func TestLoRAZeroBUnchanged(t *testing.T) {
	m, err := model.Load(tinyDir("qwen2"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base, _ := New(m, Options{})
	want, err := base.Logits(testIDs)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(m, lora.Config{Rank: 4, Alpha: 8, Targets: allProjs()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(m, Options{Adapter: a})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := n.Logits(testIDs)
	if !slices.Equal(got, want) {
		t.Errorf("zero-B adapter changed the logits by %.3g", maxAbsDiff(got, want))
	}
}

func randomizeB(a *lora.Adapter, seed uint64, std float64) {
	rng := rand.New(rand.NewPCG(seed, 5))
	for _, p := range a.All() {
		for i := range p.B {
			p.B[i] = float32(rng.NormFloat64() * std)
		}
		p.Invalidate()
	}
}

// TestLoRAMergeEquivalence: the model with adapters computes what the
// merged model computes, for every architecture (BF16 and F16 bases too),
// in memory and after saving and loading both the adapter and the merged
// Hugging Face folder.
func TestLoRAMergeEquivalence(t *testing.T) {
	for _, name := range hfTiny {
		t.Run(name, func(t *testing.T) {
			m, err := model.Load(tinyDir(name))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			a, err := lora.New(m, lora.Config{Rank: 3, Alpha: 6, Targets: allProjs()}, 2)
			if err != nil {
				t.Fatal(err)
			}
			randomizeB(a, 3, 0.05)
			n, err := New(m, Options{Adapter: a})
			if err != nil {
				t.Fatal(err)
			}
			withAdapter, _ := n.Logits(testIDs)
			base := forwardLogits(t, m, testIDs)
			if maxAbsDiff(withAdapter, base) < 1e-3 {
				t.Fatalf("the random adapter does not change the output")
			}
			merged, err := a.Merged(m)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(forwardLogits(t, merged, testIDs), withAdapter); d > 1e-4 {
				t.Errorf("merged model differs from model+adapter by %.3g", d)
			}
			if !slices.Equal(forwardLogits(t, m, testIDs), base) {
				t.Errorf("Merged modified the base model")
			}

			dir := t.TempDir()
			if err := a.Save(filepath.Join(dir, "adapter"), nil); err != nil {
				t.Fatal(err)
			}
			b, err := lora.Load(filepath.Join(dir, "adapter"))
			if err != nil {
				t.Fatal(err)
			}
			if err := hfsave.SaveMerged(a, m, filepath.Join(dir, "merged"), hfsaveF32()); err != nil {
				t.Fatal(err)
			}
			// Inference path: load the base again, Merge the loaded adapter in place.
			m2, err := model.Load(tinyDir(name))
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			if err := b.Merge(m2); err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(forwardLogits(t, m2, testIDs), withAdapter); d > 1e-4 {
				t.Errorf("loaded adapter merged: differs by %.3g", d)
			}
			m3, err := model.Load(filepath.Join(dir, "merged"))
			if err != nil {
				t.Fatal(err)
			}
			defer m3.Close()
			if d := maxAbsDiff(forwardLogits(t, m3, testIDs), withAdapter); d > 1e-4 {
				t.Errorf("saved merged model differs by %.3g", d)
			}
		})
	}
}

// TestLoRAPEFTFormat checks the file names, tensor names, shapes and config
// fields PEFT expects, and that Load restores the values.
func TestLoRAPEFTFormat(t *testing.T) {
	m, err := model.Load(tinyDir("qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, err := lora.New(m, lora.Config{Rank: 4, Alpha: 16, Dropout: 0.05, Targets: []model.Proj{model.ProjQ, model.ProjV, model.ProjDown}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a, 1, 0.1)
	dir := t.TempDir()
	if err := a.Save(dir, map[string]any{"steps": 3}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := m.Config
	for _, tc := range []struct {
		name  string
		shape []int
	}{
		{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", []int{4, c.Hidden}},
		{"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", []int{c.QDim(), 4}},
		{"base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight", []int{c.KVDim(), 4}},
		{"base_model.model.model.layers.1.mlp.down_proj.lora_A.weight", []int{4, c.Intermediate}},
		{"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight", []int{c.Hidden, 4}},
	} {
		tt, ok := f.Tensor(tc.name)
		if !ok {
			t.Errorf("tensor %s missing (have %v)", tc.name, f.Names()[:4])
			continue
		}
		if !slices.Equal(tt.Shape, tc.shape) || tt.DType != "F32" {
			t.Errorf("%s: %s %v, want F32 %v", tc.name, tt.DType, tt.Shape, tc.shape)
		}
	}
	if got, want := len(f.Names()), 2*3*c.Layers; got != want {
		t.Errorf("%d tensors, want %d", got, want)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"peft_type": "LORA", "r": 4.0, "lora_alpha": 16.0, "lora_dropout": 0.05, "bias": "none", "task_type": "CAUSAL_LM",
		"base_model_name_or_path": m.Source()} {
		if cfg[k] != v {
			t.Errorf("adapter_config.json %s = %v, want %v", k, cfg[k], v)
		}
	}
	if tm, _ := cfg["target_modules"].([]any); !slices.Equal(tm, []any{"q_proj", "v_proj", "down_proj"}) {
		t.Errorf("target_modules = %v", cfg["target_modules"])
	}
	b, err := lora.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Config.Rank != 4 || b.Config.Alpha != 16 || !slices.Equal(b.Config.Targets, a.Config.Targets) {
		t.Errorf("loaded config %+v", b.Config)
	}
	for i, p := range a.All() {
		q := b.All()[i]
		if q.Layer != p.Layer || q.Proj != p.Proj || !slices.Equal(q.A, p.A) || !slices.Equal(q.B, p.B) {
			t.Errorf("pair %d (layer %d %v) differs after loading", i, p.Layer, p.Proj)
		}
	}
}

// TestLoRAGradients checks the adapter gradients against the full weight
// gradient of the merged model: with W' = W + s·B·A, dL/dB = s·dW'·Aᵀ and
// dL/dA = s·Bᵀ·dW'. It also checks that the frozen base gets no
// parameters and the input gradient is the same.
func TestLoRAGradients(t *testing.T) {
	m, err := model.Load(tinyDir("llama"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	g, _ := loadGolden(t, "llama")
	a, err := lora.New(m, lora.Config{Rank: 2, Alpha: 4, Targets: allProjs()}, 4)
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a, 5, 0.05)
	n, err := New(m, Options{Adapter: a, InputGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Params()) != 2*7*m.Config.Layers {
		t.Fatalf("%d trainable tensors, want only the %d LoRA matrices", len(n.Params()), 2*7*m.Config.Layers)
	}
	if _, err := n.ForwardBackward(g.seqs(), 0); err != nil {
		t.Fatal(err)
	}
	merged, err := a.Merged(m)
	if err != nil {
		t.Fatal(err)
	}
	full, err := New(merged, Options{Full: true, InputGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := full.ForwardBackward(g.seqs(), 0); err != nil {
		t.Fatal(err)
	}
	s := a.Scale()
	r := a.Config.Rank
	for _, p := range a.All() {
		dW := full.Param(model.HFLayerPrefix(p.Layer) + p.Proj.HFName() + ".weight").Grad
		wantB := make([]float32, p.Out*r)
		wantA := make([]float32, r*p.In)
		for o := 0; o < p.Out; o++ {
			for k := 0; k < r; k++ {
				var sb float64
				for i := 0; i < p.In; i++ {
					sb += float64(dW[o*p.In+i]) * float64(p.A[k*p.In+i])
				}
				wantB[o*r+k] = float32(sb) * s
			}
		}
		for k := 0; k < r; k++ {
			for i := 0; i < p.In; i++ {
				var sa float64
				for o := 0; o < p.Out; o++ {
					sa += float64(p.B[o*r+k]) * float64(dW[o*p.In+i])
				}
				wantA[k*p.In+i] = float32(sa) * s
			}
		}
		gA := n.Param(lora.TensorName(p.Layer, p.Proj, "A")).Grad
		gB := n.Param(lora.TensorName(p.Layer, p.Proj, "B")).Grad
		if d := maxRelDiff(gA, wantA); d > 1e-4 {
			t.Errorf("layer %d %v: dA off by %.3g·max", p.Layer, p.Proj, d)
		}
		if d := maxRelDiff(gB, wantB); d > 1e-4 {
			t.Errorf("layer %d %v: dB off by %.3g·max", p.Layer, p.Proj, d)
		}
	}
	if d := maxRelDiff(n.InputGrad, full.InputGrad); d > 1e-4 {
		t.Errorf("input gradients differ by %.3g·max", d)
	}
}

// TestLoRADropoutFD checks the adapter gradients by finite differences with
// dropout active (the masks are fixed by Seed and Counter), with activation
// recomputation on.
func TestLoRADropoutFD(t *testing.T) {
	m, err := model.Load(tinyDir("qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	g, _ := loadGolden(t, "qwen3")
	a, err := lora.New(m, lora.Config{Rank: 2, Alpha: 2, Dropout: 0.3, Targets: []model.Proj{model.ProjQ, model.ProjO, model.ProjUp, model.ProjDown}}, 4)
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a, 6, 0.2)
	n, err := New(m, Options{Adapter: a, Recompute: true})
	if err != nil {
		t.Fatal(err)
	}
	n.Training, n.Seed, n.Counter = true, 11, 5
	seqs := g.seqs()
	res, err := n.ForwardBackward(seqs, 0)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		n.Changed()
		n.Counter = 5
		pb, err := n.pack(seqs)
		if err != nil {
			t.Fatal(err)
		}
		xf := n.forward(pb, false)
		l, _ := n.lmHead(pb, xf, false, 0)
		return l / float64(res.Count)
	}
	if d := math.Abs(loss() - res.Mean()); d > 1e-6 {
		t.Fatalf("loss with the same dropout masks differs by %g", d)
	}
	for _, p := range n.Params()[:6] {
		fdCheckAbs(t, p.Name, p.Data, p.Grad, loss, 5e-3, 2e-2, 1e-4)
	}
}

func hfsaveF32() hfsave.Options { return hfsave.Options{DType: "F32"} }
