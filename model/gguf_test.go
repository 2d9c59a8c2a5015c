package model

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
)

// TestGGUFRoundTrip saves every hf-tiny model as GGUF and checks the loaded
// copy against the PyTorch goldens: exactly at F32, within quantisation
// error for the block types.
func TestGGUFRoundTrip(t *testing.T) {
	types := []struct {
		t   quant.DType
		tol float64 // max |Δlogit| relative to the largest |logit|
	}{{quant.F32, 1e-6}, {quant.F16, 2e-3}, {quant.BF16, 2e-2}, {quant.Q8_0, 2e-2}, {quant.Q4_0, 0.3}}
	for _, name := range hfTiny {
		m, err := Load(filepath.Join("..", "testdata", "hf-tiny", name))
		if err != nil {
			t.Fatal(err)
		}
		g, gf := loadHFGolden(t, name)
		want := goldenTensor(t, gf, "logits.1")
		for _, tt := range types {
			t.Run(name+"/"+tt.t.String(), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "m.gguf")
				if err := SaveGGUF(path, m, GGUFOptions{Type: tt.t}); err != nil {
					t.Fatal(err)
				}
				mg, err := LoadGGUF(path)
				if err != nil {
					t.Fatal(err)
				}
				defer mg.Close()
				// Exact BF16 products: the comparison with the dequantised
				// copy below is about loading, not activation rounding.
				mg.K = kernels.ExactBF16(mg.K)
				got, err := mg.Forward(mg.NewCache(0), g.InputIDs[1], true)
				if err != nil {
					t.Fatal(err)
				}
				maxAbs, maxDiff := 0.0, 0.0
				for i := range want {
					maxAbs = math.Max(maxAbs, math.Abs(float64(want[i])))
					maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
				}
				tol := tt.tol * maxAbs
				if tt.t == quant.F32 {
					tol = 1e-4
				}
				if maxDiff > tol {
					t.Errorf("max |Δlogit| %.3g > %.3g", maxDiff, tol)
				}
				// The stored model must compute exactly what its dequantised
				// weights compute: this separates loading from rounding.
				deq := dequantized(t, mg)
				ref, err := deq.Forward(deq.NewCache(0), g.InputIDs[1], true)
				if err != nil {
					t.Fatal(err)
				}
				for i := range ref {
					if d := math.Abs(float64(got[i] - ref[i])); d > 2e-3*maxAbs {
						t.Fatalf("logit %d: %g, dequantised reference %g", i, got[i], ref[i])
					}
				}
			})
		}
		m.Close()
	}
}

// dequantized returns a copy of m whose matrices are all F32.
func dequantized(t *testing.T, m *Model) *Model {
	t.Helper()
	f := func(w *kernels.Matrix) *kernels.Matrix { return kernels.FromF32(w.Rows, w.Cols, w.Float32s()) }
	layers := make([]Layer, len(m.Layers))
	for i, l := range m.Layers {
		layers[i] = l
		for p := Proj(0); p < NumProj; p++ {
			layers[i].SetWeight(p, f(l.Weight(p)))
		}
	}
	e := f(m.Embed)
	head := e
	if m.LMHead != m.Embed {
		head = f(m.LMHead)
	}
	d, err := New(m.Config, e, layers, m.Norm, head)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
