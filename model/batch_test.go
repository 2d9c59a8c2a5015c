package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/kernels"
)

func loadTiny(t testing.TB, name string) *Model {
	t.Helper()
	m, err := LoadHF(filepath.Join("..", "testdata", "hf-tiny", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func randTokens(rng *rand.Rand, n, vocab int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = rng.IntN(vocab)
	}
	return out
}

// maxRelDiff returns max|a-b| / max(1, max|b|).
func maxRelDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, s float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		s = max(s, math.Abs(float64(b[i])))
	}
	return d / max(1, s)
}

// batchCase is one sequence of a batch test: how many tokens its cache
// already holds, how many new tokens it runs, and whether it wants every row.
type batchCase struct {
	prefix, n int
	all       bool
}

func TestForwardBatchEqualsSingle(t *testing.T) {
	shapes := []struct {
		name string
		seqs []batchCase
	}{
		{"one decode", []batchCase{{5, 1, false}}},
		{"one prefill all rows", []batchCase{{0, 7, true}}},
		{"decodes", []batchCase{{3, 1, false}, {9, 1, false}, {1, 1, false}, {12, 1, false}}},
		{"mixed prefill and decode", []batchCase{{0, 6, false}, {4, 1, false}, {2, 3, true}, {0, 1, false}}},
		{"long and short", []batchCase{{20, 1, false}, {0, 17, true}}},
	}
	for _, arch := range append([]string{"stories"}, hfTiny...) {
		var m *Model
		if arch == "stories" {
			m, _ = loadStories(t)
		} else {
			m = loadTiny(t, arch)
		}
		for _, window := range []int{0, 4} {
			m.Config.SlidingWindow = window
			for _, sh := range shapes {
				t.Run(arch+"/"+sh.name+map[bool]string{true: "/window"}[window > 0], func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(len(sh.seqs)), 7))
					var batch []BatchSeq
					var want [][]float32
					for _, c := range sh.seqs {
						prefix := randTokens(rng, c.prefix, m.Config.Vocab)
						toks := randTokens(rng, c.n, m.Config.Vocab)
						// Reference: the prefix and the new tokens alone.
						ref := m.NewCache(64)
						if len(prefix) > 0 {
							if _, err := m.Forward(ref, prefix, false); err != nil {
								t.Fatal(err)
							}
						}
						w, err := m.Forward(ref, toks, c.all)
						if err != nil {
							t.Fatal(err)
						}
						want = append(want, w)
						bc := m.NewCache(64)
						if len(prefix) > 0 {
							if _, err := m.Forward(bc, prefix, false); err != nil {
								t.Fatal(err)
							}
						}
						batch = append(batch, BatchSeq{Cache: bc, Tokens: toks, All: c.all})
					}
					got, err := m.ForwardBatch(batch)
					if err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if d := maxRelDiff(got[i], want[i]); d > 2e-5 || (len(batch) == 1 && d != 0) {
							t.Errorf("sequence %d: max relative difference %g from running it alone", i, d)
						}
						if c := batch[i].Cache.Len(); c != sh.seqs[i].prefix+sh.seqs[i].n {
							t.Errorf("sequence %d: cache holds %d positions", i, c)
						}
					}
					// A further decode step, batched, still agrees: the caches were filled right.
					var next []BatchSeq
					for i := range batch {
						next = append(next, BatchSeq{Cache: batch[i].Cache, Tokens: []int{i + 1}})
					}
					got2, err := m.ForwardBatch(next)
					if err != nil {
						t.Fatal(err)
					}
					for i := range next {
						// Compare against a one-sequence batch on a copy of the cache.
						cp := cloneCache(batch[i].Cache)
						cp.Truncate(batch[i].Cache.Len() - 1)
						w, err := m.ForwardBatch([]BatchSeq{{Cache: cp, Tokens: []int{i + 1}}})
						if err != nil {
							t.Fatal(err)
						}
						if d := maxRelDiff(got2[i], w[0]); d > 2e-5 {
							t.Errorf("step 2, sequence %d: max relative difference %g", i, d)
						}
					}
				})
			}
		}
		m.Config.SlidingWindow = 0
	}
}

// cloneCache copies a cache's contents.
func cloneCache(c *Cache) *Cache {
	out := *c
	out.k, out.v, out.scratch = make([][]byte, len(c.k)), make([][]byte, len(c.v)), nil
	for l := range c.k {
		out.k[l] = allocBytes(len(c.k[l]))
		copy(out.k[l], c.k[l])
		out.v[l] = allocBytes(len(c.v[l]))
		copy(out.v[l], c.v[l])
	}
	return &out
}

// deltaAdapter adds x·Δᵀ to one projection (as a model with W+Δ would).
type deltaAdapter struct {
	k     kernels.Kernels
	p     Proj
	delta map[int]*kernels.Matrix // by layer
	calls int
}

func (a *deltaAdapter) AdaptLinear(layer int, p Proj, y, x []float32, rows int) {
	d := a.delta[layer]
	if p != a.p || d == nil {
		return
	}
	a.calls++
	tmp := make([]float32, rows*d.Rows)
	a.k.MatMul(tmp, x, d, rows)
	for i := range tmp {
		y[i] += tmp[i]
	}
}

// withDelta returns a copy of m whose projection p has W+Δ in every layer.
func withDelta(t *testing.T, m *Model, a *deltaAdapter) *Model {
	t.Helper()
	layers := append([]Layer(nil), m.Layers...)
	for l, d := range a.delta {
		w := layers[l].Weight(a.p).Float32s()
		for i, v := range d.F32() {
			w[i] += v
		}
		layers[l].SetWeight(a.p, kernels.FromF32(d.Rows, d.Cols, w))
	}
	out, err := New(m.Config, m.Embed, layers, m.Norm, m.LMHead)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestForwardBatchAdaptersAndMasks(t *testing.T) {
	m := loadTiny(t, "qwen2")
	cfg := &m.Config
	rng := rand.New(rand.NewPCG(3, 4))
	mkDelta := func(p Proj) *deltaAdapter {
		a := &deltaAdapter{k: m.K, p: p, delta: map[int]*kernels.Matrix{}}
		w := m.Layers[0].Weight(p)
		for l := range m.Layers {
			v := make([]float32, w.Rows*w.Cols)
			for i := range v {
				v[i] = float32(rng.NormFloat64()) * 0.05
			}
			a.delta[l] = kernels.FromF32(w.Rows, w.Cols, v)
		}
		return a
	}
	aUp, aQ := mkDelta(ProjUp), mkDelta(ProjQ)
	mask := make([]float32, cfg.Intermediate)
	for i := range mask {
		if i%3 != 0 {
			mask[i] = 1
		}
	}
	ffn := &Hooks{FFNMask: func(int) []float32 { return mask }}

	// Each sequence: adapter (nil, up, q), FFN mask or not. aUp's sequences
	// are not contiguous, so its rows are gathered.
	type seqSpec struct {
		a    *deltaAdapter
		mask bool
	}
	specs := []seqSpec{{aUp, false}, {nil, false}, {aQ, true}, {aUp, true}, {nil, true}}
	var batch []BatchSeq
	var want [][]float32
	for i, s := range specs {
		toks := randTokens(rng, 2+i, cfg.Vocab)
		ref := m
		if s.a != nil {
			ref = withDelta(t, m, s.a)
		}
		var h *Hooks
		if s.mask {
			h = ffn
		}
		w, err := ref.ForwardHooks(ref.NewCache(32), toks, true, h)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, w)
		bs := BatchSeq{Cache: m.NewCache(32), Tokens: toks, All: true, Hooks: h}
		if s.a != nil {
			bs.Adapter = s.a
		}
		batch = append(batch, bs)
	}
	got, err := m.ForwardBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if d := maxRelDiff(got[i], want[i]); d > 1e-4 {
			t.Errorf("sequence %d (%+v): max relative difference %g from the model with the adapter merged", i, specs[i], d)
		}
	}
	// One call per layer for each adapter, whatever the number of its sequences.
	if aUp.calls != cfg.Layers || aQ.calls != cfg.Layers {
		t.Errorf("adapter calls: up %d, q %d; want %d each", aUp.calls, aQ.calls, cfg.Layers)
	}
}

// funcAdapter is not comparable.
type funcAdapter func()

func (funcAdapter) AdaptLinear(int, Proj, []float32, []float32, int) {}

func TestForwardBatchErrors(t *testing.T) {
	m, _ := loadStories(t)
	shared := m.NewCache(8)
	full := m.NewCache(4)
	if _, err := m.Forward(full, []int{1, 2, 3}, false); err != nil {
		t.Fatal(err)
	}
	other := loadTiny(t, "qwen3")
	tests := []struct {
		name string
		seqs []BatchSeq
		want string
	}{
		{"empty batch", nil, "no sequences"},
		{"no cache", []BatchSeq{{Tokens: []int{1}}}, "no cache"},
		{"no tokens", []BatchSeq{{Cache: m.NewCache(8)}}, "no tokens"},
		{"shared cache", []BatchSeq{{Cache: shared, Tokens: []int{1}}, {Cache: shared, Tokens: []int{2}}}, "share a cache"},
		{"bad token", []BatchSeq{{Cache: m.NewCache(8), Tokens: []int{1, m.Config.Vocab}}}, "outside the vocabulary"},
		{"too long", []BatchSeq{{Cache: m.NewCache(8), Tokens: []int{1}}, {Cache: full, Tokens: []int{1, 2}}}, "exceed"},
		{"foreign cache", []BatchSeq{{Cache: other.NewCache(8), Tokens: []int{1}}}, "another model"},
		{"uncomparable adapter", []BatchSeq{{Cache: m.NewCache(8), Tokens: []int{1}, Adapter: funcAdapter(func() {})}}, "not comparable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.ForwardBatch(tc.seqs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			for _, s := range tc.seqs {
				if s.Cache == full && full.Len() != 3 {
					t.Errorf("a failed batch changed a cache (now %d positions)", full.Len())
				}
			}
		})
	}
}

func BenchmarkForwardBatchDecode(b *testing.B) {
	m, _ := loadStories(b)
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("seqs=%d", n), func(b *testing.B) {
			batch := make([]BatchSeq, n)
			for i := range batch {
				batch[i] = BatchSeq{Cache: m.NewCache(0), Tokens: []int{1 + i}}
			}
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				for i := range batch {
					if batch[i].Cache.Len() >= 200 {
						batch[i].Cache.Reset()
					}
				}
				if _, err := m.ForwardBatch(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// TestAttentionRowBlocks: splitting a long prompt's attention into blocks
// of rows (as attBlockFloats does for long contexts) gives the same logits,
// with and without a sliding window.
func TestAttentionRowBlocks(t *testing.T) {
	m := loadTiny(t, "qwen2")
	defer func(v int) { attBlockFloats = v; m.Config.SlidingWindow = 0 }(attBlockFloats)
	toks := randTokens(rand.New(rand.NewPCG(5, 6)), 40, m.Config.Vocab)
	for _, window := range []int{0, 5} {
		m.Config.SlidingWindow = window
		attBlockFloats = 1 << 18
		want, err := m.Forward(m.NewCache(64), toks, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, floats := range []int{1, 50, 300} {
			attBlockFloats = floats
			got, err := m.Forward(m.NewCache(64), toks, true)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(got, want); d > 1e-5 {
				t.Errorf("window %d, blocks of %d scores: max relative difference %g", window, floats, d)
			}
		}
	}
}

// replacingAdapter computes projection p entirely: y (the bias alone, as
// ForwardBatch leaves it for a Replacer) += x·(W+Δ)ᵀ.
type replacingAdapter struct {
	k    kernels.Kernels
	p    Proj
	full map[int]*kernels.Matrix // W+Δ by layer
}

func (a *replacingAdapter) Replaces(layer int, p Proj) bool { return p == a.p && a.full[layer] != nil }

func (a *replacingAdapter) AdaptLinear(layer int, p Proj, y, x []float32, rows int) {
	if !a.Replaces(layer, p) {
		return
	}
	f := a.full[layer]
	tmp := make([]float32, rows*f.Rows)
	a.k.MatMul(tmp, x, f, rows)
	for i := range tmp {
		y[i] += tmp[i]
	}
}

// TestForwardBatchReplacer: rows of a Replacer's sequences are left out of
// the shared product (alone, next to other rows, scattered among them) and
// the result is the model with the replaced weights.
func TestForwardBatchReplacer(t *testing.T) {
	m := loadTiny(t, "qwen2") // q/k/v have biases
	rng := rand.New(rand.NewPCG(9, 10))
	for _, p := range []Proj{ProjQ, ProjUp} {
		d := &deltaAdapter{k: m.K, p: p, delta: map[int]*kernels.Matrix{}}
		r := &replacingAdapter{k: m.K, p: p, full: map[int]*kernels.Matrix{}}
		for l := range m.Layers {
			w := m.Layers[l].Weight(p)
			v, full := make([]float32, w.Rows*w.Cols), w.Float32s()
			for i := range v {
				v[i] = float32(rng.NormFloat64()) * 0.05
				full[i] += v[i]
			}
			d.delta[l] = kernels.FromF32(w.Rows, w.Cols, v)
			r.full[l] = kernels.FromF32(w.Rows, w.Cols, full)
		}
		ref := withDelta(t, m, d)
		for _, layout := range [][]bool{{true}, {true, false}, {false, true, false, true}, {true, false, true}} {
			var batch []BatchSeq
			var want [][]float32
			for i, rep := range layout {
				toks := randTokens(rng, 2+i, m.Config.Vocab)
				src := m
				bs := BatchSeq{Cache: m.NewCache(32), Tokens: toks, All: true}
				if rep {
					src, bs.Adapter = ref, r
				}
				w, err := src.Forward(src.NewCache(32), toks, true)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, w)
				batch = append(batch, bs)
			}
			got, err := m.ForwardBatch(batch)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if d := maxRelDiff(got[i], want[i]); d > 1e-4 {
					t.Errorf("%s, layout %v, sequence %d: max relative difference %g", p.HFName(), layout, i, d)
				}
			}
		}
	}
}

// TestForwardChunks: a long run of tokens goes through Forward in chunks
// (forwardChunk) with the logits of one pass, and an invalid token anywhere
// leaves the cache unchanged.
func TestForwardChunks(t *testing.T) {
	m := loadTiny(t, "qwen3")
	toks := randTokens(rand.New(rand.NewPCG(7, 8)), 23, m.Config.Vocab)
	defer func(v int) { forwardChunk = v }(forwardChunk)
	for _, all := range []bool{true, false} {
		forwardChunk = 512
		want, err := m.Forward(m.NewCache(64), toks, all)
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int{1, 5, 22} {
			forwardChunk = chunk
			c := m.NewCache(64)
			got, err := m.Forward(c, toks, all)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || c.Len() != len(toks) {
				t.Fatalf("chunks of %d: %d logits, cache %d; want %d, %d", chunk, len(got), c.Len(), len(want), len(toks))
			}
			if d := maxRelDiff(got, want); d > 1e-5 {
				t.Errorf("chunks of %d, all %v: max relative difference %g", chunk, all, d)
			}
		}
	}
	forwardChunk = 4
	bad := append(append([]int(nil), toks...), m.Config.Vocab)
	c := m.NewCache(64)
	if _, err := m.Forward(c, bad, false); err == nil || c.Len() != 0 {
		t.Errorf("a bad last token: error %v, cache holds %d", err, c.Len())
	}
}
