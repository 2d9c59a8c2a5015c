package persona

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

func loadTiny(t testing.TB, name string) *model.Model {
	t.Helper()
	m, err := model.LoadHF(filepath.Join("..", "testdata", "hf-tiny", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// randomBits prunes each entry with probability p.
func randomBits(rng *rand.Rand, rows, cols int, p float64) *mask.Bits {
	b := mask.NewBits(rows, cols)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			if rng.Float64() < p {
				b.Set(r, c, false)
			}
		}
	}
	return b
}

// channelMask prunes FFN channel c when drop(c): gate and up rows and the
// down column, as ffn-channel pruning does.
func channelMask(t testing.TB, m *model.Model, drop func(l, c int) bool, which []model.Proj) *mask.Mask {
	mk := mask.New(m)
	cfg := &m.Config
	for l := 0; l < cfg.Layers; l++ {
		for _, p := range which {
			w := m.Layers[l].Weight(p)
			b := mask.NewBits(w.Rows, w.Cols)
			for c := 0; c < cfg.Intermediate; c++ {
				if !drop(l, c) {
					continue
				}
				if p == model.ProjDown {
					for r := 0; r < w.Rows; r++ {
						b.Set(r, c, false)
					}
				} else {
					for col := 0; col < w.Cols; col++ {
						b.Set(c, col, false)
					}
				}
			}
			if err := mk.Set(mask.Key{Layer: l, Proj: p}, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	return mk
}

func maxRelDiff(a, b []float32) float64 {
	var d, s float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		s = max(s, math.Abs(float64(b[i])))
	}
	return d / max(1, s)
}

func TestOverlayMatchesMergedModel(t *testing.T) {
	ffn := []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown}
	tests := []struct {
		name      string
		arch      string
		mask      func(t *testing.T, m *model.Model, rng *rand.Rand) *mask.Mask
		lora      bool
		ffnLayers int  // layers expected to use a channel vector (-1: all)
		sparse    bool // sparse corrections expected
		exact     bool // bit-identical logits expected
	}{
		{"ffn channels", "qwen2", func(t *testing.T, m *model.Model, rng *rand.Rand) *mask.Mask {
			return channelMask(t, m, func(l, c int) bool { return (c+l)%4 == 0 }, ffn)
		}, false, -1, false, true},
		{"down columns only, gamma", "llama", func(t *testing.T, m *model.Model, rng *rand.Rand) *mask.Mask {
			mk := channelMask(t, m, func(l, c int) bool { return c%3 == 0 }, []model.Proj{model.ProjDown})
			mk.Gamma = 0.25
			return mk
		}, false, -1, false, false},
		{"unstructured, all projections", "qwen2", func(t *testing.T, m *model.Model, rng *rand.Rand) *mask.Mask {
			mk := mask.New(m)
			for l := range m.Layers {
				for p := model.Proj(0); p < model.NumProj; p++ {
					w := m.Layers[l].Weight(p)
					mk.Set(mask.Key{Layer: l, Proj: p}, randomBits(rng, w.Rows, w.Cols, 0.5))
				}
			}
			return mk
		}, false, 0, true, false},
		{"sparse, few pruned", "qwen3", func(t *testing.T, m *model.Model, rng *rand.Rand) *mask.Mask {
			mk := mask.New(m)
			w := m.Layers[1].Weight(model.ProjO)
			mk.Set(mask.Key{Layer: 1, Proj: model.ProjO}, randomBits(rng, w.Rows, w.Cols, 0.03))
			return mk
		}, false, 0, true, false},
		{"unstructured with gamma", "mistral", func(t *testing.T, m *model.Model, rng *rand.Rand) *mask.Mask {
			mk := mask.New(m)
			w := m.Layers[0].Weight(model.ProjUp)
			mk.Set(mask.Key{Layer: 0, Proj: model.ProjUp}, randomBits(rng, w.Rows, w.Cols, 0.7))
			mk.Gamma = 0.1
			return mk
		}, false, 0, true, false},
		{"unstructured over biases, gamma", "llama", func(t *testing.T, m *model.Model, rng *rand.Rand) *mask.Mask {
			mk := mask.New(m)
			for l := range m.Layers {
				for _, p := range []model.Proj{model.ProjQ, model.ProjV, model.ProjGate} {
					w := m.Layers[l].Weight(p)
					mk.Set(mask.Key{Layer: l, Proj: p}, randomBits(rng, w.Rows, w.Cols, 0.4))
				}
			}
			mk.Gamma = 0.3
			return mk
		}, false, 0, true, false},
		{"lora", "smollm-tied", nil, true, 0, false, false},
		{"mask and lora", "qwen2", func(t *testing.T, m *model.Model, rng *rand.Rand) *mask.Mask {
			return channelMask(t, m, func(l, c int) bool { return c%2 == 0 }, ffn)
		}, true, -1, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := loadTiny(t, tc.arch)
			rng := rand.New(rand.NewPCG(11, 12))
			var mk *mask.Mask
			ref := m
			if tc.mask != nil {
				mk = tc.mask(t, m, rng)
				var err error
				if ref, err = mask.Masked(m, mk, nil); err != nil {
					t.Fatal(err)
				}
			}
			var ad *lora.Adapter
			if tc.lora {
				var err error
				ad, err = lora.New(m, lora.Config{Rank: 4, Alpha: 8, Targets: []model.Proj{model.ProjQ, model.ProjV, model.ProjDown}}, 5)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range ad.All() {
					for i := range p.B {
						p.B[i] = float32(rng.NormFloat64()) * 0.1
					}
				}
				if ref, err = ad.Merged(ref); err != nil {
					t.Fatal(err)
				}
			}
			p, err := NewOverlay(m, mk, ad)
			if err != nil {
				t.Fatal(err)
			}
			if tc.ffnLayers < 0 {
				tc.ffnLayers = m.Config.Layers
			}
			ffnLayers, sparseProjs := p.Channels()
			if ffnLayers != tc.ffnLayers || (sparseProjs > 0) != tc.sparse {
				t.Errorf("channel layers %d, sparse projections %d; want %d, sparse %v", ffnLayers, sparseProjs, tc.ffnLayers, tc.sparse)
			}
			toks := []int{1, 17, 42, 99, 3, 250, 7, 8}
			want, err := ref.Forward(ref.NewCache(32), toks, true)
			if err != nil {
				t.Fatal(err)
			}
			// The persona alone, and next to a base sequence in one batch.
			var ada model.Adapter
			if a := p.Adapter(); a != nil {
				ada = a
			}
			for _, withBase := range []bool{false, true} {
				batch := []model.BatchSeq{{Cache: m.NewCache(32), Tokens: toks, All: true, Hooks: p.Hooks(), Adapter: ada}}
				if withBase {
					batch = append(batch, model.BatchSeq{Cache: m.NewCache(32), Tokens: toks[:5]})
				}
				got, err := m.ForwardBatch(batch)
				if err != nil {
					t.Fatal(err)
				}
				d := maxRelDiff(got[0], want)
				if d > 1e-4 || (tc.exact && !withBase && d != 0) {
					t.Errorf("batch with base %v: max relative difference %g from the merged model", withBase, d)
				}
			}
		})
	}
}

func TestOverlayMemory(t *testing.T) {
	m := loadTiny(t, "qwen2")
	rng := rand.New(rand.NewPCG(1, 2))
	mk := mask.New(m)
	var maskBytes int64
	for l := range m.Layers {
		w := m.Layers[l].Weight(model.ProjQ)
		b := randomBits(rng, w.Rows, w.Cols, 0.4)
		mk.Set(mask.Key{Layer: l, Proj: model.ProjQ}, b)
		maskBytes += int64(len(b.Data))
	}
	p, err := MaskOverlay(m, mk)
	if err != nil {
		t.Fatal(err)
	}
	if p.Bytes() < maskBytes || p.Bytes() > 2*maskBytes {
		t.Errorf("persona holds %d bytes for %d bytes of masks", p.Bytes(), maskBytes)
	}
	if p.Hooks() != nil {
		t.Error("an attention-only mask has no FFN hooks")
	}
	// A dense mask costs nothing and needs no adapter.
	dense, err := MaskOverlay(m, mask.New(m))
	if err != nil {
		t.Fatal(err)
	}
	if dense.Bytes() != 0 || dense.Adapter() != nil || dense.Hooks() != nil {
		t.Errorf("dense mask: %d bytes, adapter %v", dense.Bytes(), dense.Adapter())
	}
}

func TestMaskOverlayWrongModel(t *testing.T) {
	a, b := loadTiny(t, "qwen2"), loadTiny(t, "llama")
	if _, err := MaskOverlay(b, mask.New(a)); err == nil {
		t.Fatal("a mask made for another model was accepted")
	}
}

func BenchmarkSparseCorrection(b *testing.B) {
	m := loadTiny(b, "qwen2")
	rng := rand.New(rand.NewPCG(1, 2))
	w := m.Layers[0].Weight(model.ProjDown)
	s := &sparse{w: w, bits: randomBits(rng, w.Rows, w.Cols, 0.5)}
	x := make([]float32, 4*w.Cols)
	y := make([]float32, 4*w.Rows)
	for i := 0; i < b.N; i++ {
		s.apply(m.K, y, x, 4, 1)
	}
}
