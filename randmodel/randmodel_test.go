package randmodel

import (
	"math"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
)

// TestWriteLoadRoundTrip writes every architecture's tiny random model and
// checks the loaded copy computes the same logits as the in-memory one.
func TestWriteLoadRoundTrip(t *testing.T) {
	for _, arch := range []string{"llama", "qwen2", "qwen3", "mistral"} {
		for _, dt := range []quant.DType{quant.F32, quant.BF16} {
			t.Run(arch+"/"+dt.String(), func(t *testing.T) {
				cfg := Presets["tiny"]
				cfg.Arch, _ = model.ArchFor(arch)
				cfg.ModelType = arch
				cfg.AttnQKVBias = arch == "qwen2"
				cfg.QKNorm = arch == "qwen3"
				cfg.Tied = arch != "mistral"
				dir := t.TempDir()
				if err := Write(dir, cfg, 7, 0.05, dt); err != nil {
					t.Fatal(err)
				}
				want, err := New(cfg, 7, 0.05)
				if err != nil {
					t.Fatal(err)
				}
				got, err := model.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer got.Close()
				ids := []int{1, 200, 33, 511, 7}
				a, _ := want.Forward(want.NewCache(0), ids, true)
				b, err := got.Forward(got.NewCache(0), ids, true)
				if err != nil {
					t.Fatal(err)
				}
				tol := 1e-6
				if dt == quant.BF16 {
					tol = 0.05 // weights rounded to 8 mantissa bits
				}
				for i := range a {
					if d := math.Abs(float64(a[i] - b[i])); d > tol {
						t.Fatalf("logit %d: %g vs %g", i, a[i], b[i])
					}
				}
			})
		}
	}
}

func TestTokenizerJSONSize(t *testing.T) {
	if _, err := TokenizerJSON(100); err == nil {
		t.Fatal("vocab 100 accepted")
	}
	b, err := TokenizerJSON(1000)
	if err != nil || len(b) == 0 {
		t.Fatal(err)
	}
}
