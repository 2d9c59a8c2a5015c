package model

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/masque-ai/masque/kernels"
)

// TestPassLayerByLayer drives a Pass by hand (with a layer run twice from
// a restored residual stream, once with zeroed weights in between) and
// checks that its logits and caches are bit-identical to ForwardBatch's.
func TestPassLayerByLayer(t *testing.T) {
	for _, name := range []string{"llama", "qwen2"} {
		t.Run(name, func(t *testing.T) {
			m := loadTiny(t, name)
			rng := rand.New(rand.NewPCG(3, 4))
			a, b := randTokens(rng, 9, m.Config.Vocab), randTokens(rng, 4, m.Config.Vocab)
			ref := []BatchSeq{{Cache: m.NewCache(32), Tokens: a, All: true}, {Cache: m.NewCache(32), Tokens: b}}
			want, err := m.ForwardBatch(ref)
			if err != nil {
				t.Fatal(err)
			}
			seqs := []BatchSeq{{Cache: m.NewCache(32), Tokens: a, All: true}, {Cache: m.NewCache(32), Tokens: b}}
			p, err := m.Begin(seqs)
			if err != nil {
				t.Fatal(err)
			}
			if p.Rows() != 13 || len(p.Residual()) != 13*m.Config.Hidden {
				t.Fatalf("%d rows, residual of %d values", p.Rows(), len(p.Residual()))
			}
			for l := range m.Layers {
				if l == 1 {
					// Run layer 1 with its down projection zeroed, then put
					// the stream and the weights back and run it again.
					saved := slices.Clone(p.Residual())
					orig := m.Layers[l].Down
					m.Layers[l].Down = kernels.FromF32(orig.Rows, orig.Cols, make([]float32, orig.Rows*orig.Cols))
					if err := p.Layer(l); err != nil {
						t.Fatal(err)
					}
					if slices.Equal(saved, p.Residual()) {
						t.Fatal("layer 1 left the residual stream unchanged")
					}
					m.Layers[l].Down = orig
					copy(p.Residual(), saved)
				}
				if err := p.Layer(l); err != nil {
					t.Fatal(err)
				}
			}
			got := p.Logits()
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Fatalf("sequence %d: logits differ from ForwardBatch's (max rel diff %g)", i, maxRelDiff(got[i], want[i]))
				}
				if seqs[i].Cache.Len() != ref[i].Cache.Len() {
					t.Fatalf("sequence %d: cache holds %d positions, want %d", i, seqs[i].Cache.Len(), ref[i].Cache.Len())
				}
				for l := range m.Layers {
					if !slices.Equal(seqs[i].Cache.k[l], ref[i].Cache.k[l]) || !slices.Equal(seqs[i].Cache.v[l], ref[i].Cache.v[l]) {
						t.Fatalf("sequence %d layer %d: cached keys or values differ", i, l)
					}
				}
			}
			if err := p.Layer(len(m.Layers)); err == nil {
				t.Fatal("Layer accepted a layer past the last")
			}
			if _, err := m.Begin(nil); err == nil {
				t.Fatal("Begin accepted an empty batch")
			}
			// A view's hooks apply to a pass as to ForwardBatch.
			half := make([]float32, m.Config.Intermediate)
			for i := range half {
				half[i] = float32(i % 2)
			}
			v := m.With(nil, &Hooks{FFNMask: func(int) []float32 { return half }})
			vw, err := v.ForwardBatch([]BatchSeq{{Cache: v.NewCache(32), Tokens: a, All: true}})
			if err != nil {
				t.Fatal(err)
			}
			vp, err := v.Begin([]BatchSeq{{Cache: v.NewCache(32), Tokens: a, All: true}})
			if err != nil {
				t.Fatal(err)
			}
			for l := range v.Layers {
				if err := vp.Layer(l); err != nil {
					t.Fatal(err)
				}
			}
			if vg := vp.Logits(); !slices.Equal(vg[0], vw[0]) || slices.Equal(vg[0], want[0]) {
				t.Fatal("a view's pass differs from its ForwardBatch, or its hooks did nothing")
			}
		})
	}
}
