package hfsave

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/masque-ai/masque/model"
)

func logits(t *testing.T, m *model.Model) []float32 {
	t.Helper()
	ids := []int{1, 5, 9, 200, 3, 77}
	out, err := m.Forward(m.NewCache(len(ids)), ids, true)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRoundTrip saves models of every kind (sharded, tied, BF16, F16, and a
// llama2.c checkpoint without config.json) and loads them back.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ src, dtype string }{
		{"../../testdata/hf-tiny/mistral", ""},
		{"../../testdata/hf-tiny/qwen3", "F32"},
		{"../../testdata/hf-tiny/llama3-ropescaled", ""},
		{"../../testdata/hf-tiny/smollm-tied", "F16"},
		{"../../testdata/stories260K/stories260K.bin", ""},
	} {
		t.Run(filepath.Base(tc.src), func(t *testing.T) {
			m, err := model.Load(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			dir := filepath.Join(t.TempDir(), "out")
			if err := Save(m, dir, Options{DType: tc.dtype}); err != nil {
				t.Fatal(err)
			}
			// Saving again over the folder replaces it.
			if err := Save(m, dir, Options{DType: tc.dtype}); err != nil {
				t.Fatal(err)
			}
			m2, err := model.LoadHF(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			a, b := logits(t, m), logits(t, m2)
			for i := range a {
				if math.Abs(float64(a[i]-b[i])) > 1e-4 {
					t.Fatalf("logit %d: %g before saving, %g after", i, a[i], b[i])
				}
			}
			if m2.Config.Tied != m.Config.Tied || m2.Config.Rope.Type != m.Config.Rope.Type || m2.Config.Rope.Factor != m.Config.Rope.Factor || m2.Config.HeadDim != m.Config.HeadDim {
				t.Errorf("config changed: %+v → %+v", m.Config, m2.Config)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.Name()[0] == '.' {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
			var cfg map[string]any
			data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg["architectures"] == nil || cfg["torch_dtype"] == nil {
				t.Errorf("config.json lacks architectures or torch_dtype: %v", cfg)
			}
		})
	}
}

func TestBadDType(t *testing.T) {
	m, err := model.Load("../../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := Save(m, t.TempDir(), Options{DType: "q4_0"}); err == nil {
		t.Errorf("Save accepted dtype q4_0")
	}
}

// TestLlama2CRoundTrip saves stories260K in llama2.c format: the weights
// come out byte for byte as in the original file.
func TestLlama2CRoundTrip(t *testing.T) {
	src := "../../testdata/stories260K/stories260K.bin"
	m, err := model.LoadLlama2C(src)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "model.bin")
	if err := SaveLlama2C(m, out); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(out)
	// Everything but the legacy RoPE tables at the end (which no loader
	// reads, and whose last bits depend on the libm) is identical.
	tables := m.Config.MaxSeq * m.Config.HeadDim * 4
	if len(a) != len(b) || !slices.Equal(a[:len(a)-tables], b[:len(b)-tables]) {
		t.Errorf("rewritten checkpoint differs from the original (%d vs %d bytes)", len(b), len(a))
		m2, err := model.LoadLlama2C(out)
		if err != nil {
			t.Fatal(err)
		}
		if la, lb := logits(t, m), logits(t, m2); !slices.Equal(la, lb) {
			t.Errorf("and its logits differ")
		}
	}
	q, err := model.Load("../../testdata/hf-tiny/qwen2")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := SaveLlama2C(q, filepath.Join(t.TempDir(), "x.bin")); err == nil {
		t.Errorf("saved a model with biases as llama2.c")
	}
}
