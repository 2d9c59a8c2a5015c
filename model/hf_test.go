package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/safetensors"
)

var hfTiny = []string{"llama", "llama3-ropescaled", "qwen2", "qwen3", "mistral", "smollm-tied"}

type hfGolden struct {
	InputIDs    [][]int `json:"input_ids"`
	LossTargets [][]int `json:"loss_targets"`
	Loss        float64 `json:"loss"`
}

func loadHFGolden(t testing.TB, name string) (*hfGolden, *safetensors.File) {
	t.Helper()
	dir := filepath.Join("..", "testdata", "hf-tiny", name)
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g hfGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &g, f
}

func goldenTensor(t testing.TB, f *safetensors.File, name string) []float32 {
	t.Helper()
	tt, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("golden tensor %s missing", name)
	}
	v, err := tt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestHFGoldenLogits compares full-sequence logits with PyTorch (float64
// reference) and checks that token-by-token decoding with the cache gives the
// same logits as the full pass. Models with BF16 weights run twice: with
// kernels.ExactBF16 (float32 activations) against the 1e-4 bound, and with
// the default kernels, which round the activations of BF16 products to bf16
// as llama.cpp and PyTorch's bf16 arithmetic do, against 1e-2 of the
// largest logit.
func TestHFGoldenLogits(t *testing.T) {
	for _, name := range hfTiny {
		m, err := Load(filepath.Join("..", "testdata", "hf-tiny", name))
		if err != nil {
			t.Fatal(err)
		}
		bf16 := m.Layers[0].Q.Type == quant.BF16
		m.Close()
		for _, exact := range []bool{true, false} {
			if !exact && !bf16 {
				continue
			}
			sub := name
			if bf16 && exact {
				sub += "/exact"
			} else if bf16 {
				sub += "/rounded"
			}
			t.Run(sub, func(t *testing.T) { testHFGoldenLogits(t, name, exact) })
		}
	}
}

func testHFGoldenLogits(t *testing.T, name string, exact bool) {
	m, err := Load(filepath.Join("..", "testdata", "hf-tiny", name))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if exact {
		m.K = kernels.ExactBF16(m.K)
	}
	g, gf := loadHFGolden(t, name)
	V := m.Config.Vocab
	for b, ids := range g.InputIDs {
		want := goldenTensor(t, gf, "logits."+itoa(b))
		got, err := m.Forward(m.NewCache(0), ids, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("seq %d: %d logits, want %d", b, len(got), len(want))
		}
		maxAbs, maxDiff := 0.0, 0.0
		for i := range want {
			maxAbs = math.Max(maxAbs, math.Abs(float64(want[i])))
			maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
		}
		if tol := 1e-4; exact && maxDiff > tol || !exact && maxDiff > 1e-2*maxAbs {
			t.Errorf("seq %d: max |Δlogit| %.3g too large (max |logit| %.3g, exact %v)", b, maxDiff, maxAbs, exact)
		}
		t.Logf("seq %d: max |Δ| %.2g, relative %.2g", b, maxDiff, maxDiff/maxAbs)

		// Incremental: a 3-token prefill, then one token at a time.
		c := m.NewCache(0)
		pre := min(3, len(ids))
		inc, err := m.Forward(c, ids[:pre], true)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids[pre:] {
			l, err := m.Forward(c, []int{id}, false)
			if err != nil {
				t.Fatal(err)
			}
			inc = append(inc, l...)
		}
		for i := range got {
			if d := math.Abs(float64(inc[i] - got[i])); d > 1e-5 {
				t.Fatalf("seq %d pos %d: cached decoding differs from the full pass by %g", b, i/V, d)
			}
		}
	}
}

func itoa(i int) string { return string(rune('0' + i)) }
