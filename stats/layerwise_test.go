package stats

import (
	"context"
	"slices"
	"testing"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/model"
)

// TestLayerwiseEqualsCollect runs the samples a layer at a time (Collect
// then Advance for even layers, Step for odd ones) and checks every
// statistic, Gram matrices included, against a whole-model collection: they
// must be bit-identical. It also checks the progress calls, the token count
// and the end of the layers.
func TestLayerwiseEqualsCollect(t *testing.T) {
	m, err := model.LoadHF("../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	ss := randomSamples(4, m.Config.Vocab, 5)
	gram := func(int, Input) bool { return true }
	want, err := Collect(context.Background(), m, ss, calib.Record{}, Options{Gram: gram}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lw, err := NewLayerwise(m, ss)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for l := 0; l < m.Config.Layers; l++ {
		if lw.Next() != l {
			t.Fatalf("Next() = %d, want %d", lw.Next(), l)
		}
		var calls []int
		prog := func(d, n int) {
			if n != len(ss) {
				t.Errorf("progress total %d", n)
			}
			calls = append(calls, d)
		}
		var got *Stats
		if l%2 == 0 {
			if got, err = lw.Collect(ctx, Options{Gram: gram}, Manifest{}, prog); err != nil {
				t.Fatal(err)
			}
			if lw.Next() != l {
				t.Fatal("Collect moved on to the next layer")
			}
			if err := lw.Advance(ctx, nil); err != nil {
				t.Fatal(err)
			}
		} else if got, err = lw.Step(ctx, Options{Gram: gram}, Manifest{}, prog); err != nil {
			t.Fatal(err)
		}
		if len(calls) != len(ss) || calls[len(ss)-1] != len(ss) {
			t.Fatalf("layer %d: progress calls %v", l, calls)
		}
		if got.Manifest.Tokens != want.Manifest.Tokens || got.Manifest.Samples != len(ss) || got.Manifest.Tokens != lw.Tokens() {
			t.Fatalf("layer %d: %d samples, %d tokens; want %d, %d", l, got.Manifest.Samples, got.Manifest.Tokens, len(ss), want.Manifest.Tokens)
		}
		for ll := range got.In {
			for in, c := range got.In[ll] {
				if (c != nil) != (ll == l) {
					t.Fatalf("layer %d run: statistics of layer %d %s present: %v", l, ll, Input(in), c != nil)
				}
				if c == nil {
					continue
				}
				w := want.In[ll][in]
				if !slices.Equal(c.Norms, w.Norms) || !slices.Equal(c.Sum, w.Sum) || !slices.Equal(c.SumSq, w.SumSq) || !slices.Equal(c.Gram, w.Gram) || c.Tokens != w.Tokens {
					t.Fatalf("layer %d %s: statistics differ from the whole-model collection", l, Input(in))
				}
			}
		}
	}
	if _, err := lw.Step(ctx, Options{}, Manifest{}, nil); err == nil {
		t.Fatal("a step past the last layer: no error")
	}
	if _, err := NewLayerwise(m, [][]int{{1}, {}}); err == nil {
		t.Fatal("empty sample: no error")
	}
	lw, _ = NewLayerwise(m, ss)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := lw.Advance(cctx, nil); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
	if err := lw.Advance(ctx, nil); err == nil {
		t.Fatal("a Layerwise whose Advance stopped part-way ran again")
	}
}
