package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
)

// qwen05 is the attention shape of Qwen2.5-0.5B (24 layers, 14 query heads,
// 2 KV heads of 64).
func qwen05() Config {
	return Config{Layers: 24, Hidden: 896, Heads: 14, KVHeads: 2, HeadDim: 64, Intermediate: 4864, Vocab: 151936, MaxSeq: 32768}
}

// TestCachePositionBytes: a cache holding exactly n positions allocates n ×
// PositionBytes, for every type on the golden models' shapes (head
// dimensions 8, 16 and 32, padded for the block types) and the Qwen2.5-0.5B
// shape, whose per-position sizes are those of llama.cpp's caches
// (2 × 24 layers × 2 heads × a row of 64: f32 256 bytes, f16 128, q8_0 2 blocks
// of 34). It also states how many idle sessions' KV fits in 8 GiB.
func TestCachePositionBytes(t *testing.T) {
	stories, _ := loadStories(t)
	models := []*Model{stories, loadTiny(t, "llama"), loadTiny(t, "qwen3")}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range models {
		for _, k := range CacheTypeNames {
			for _, v := range []string{k, "q8_0"} {
				ct, err := ParseCacheType(k, v)
				if err != nil {
					t.Fatal(err)
				}
				const n = 13
				c, err := m.NewCacheOf(n, ct)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := m.Forward(c, randTokens(rng, n, m.Config.Vocab), false); err != nil {
					t.Fatalf("%s %s: %v", m.Config.Arch, ct, err)
				}
				cfg := &m.Config
				bk, _ := ct.K.RowBytes(storedDim(ct.K, cfg.HeadDim))
				bv, _ := ct.V.RowBytes(storedDim(ct.V, cfg.HeadDim))
				want := int64(n * cfg.Layers * cfg.KVHeads * (bk + bv))
				if got := c.Bytes(); got != want || ct.PositionBytes(cfg)*n != want {
					t.Errorf("%s head dim %d, %s: %d positions take %d bytes, PositionBytes says %d, want %d", cfg.Arch, cfg.HeadDim, ct, n, got, ct.PositionBytes(cfg)*n, want)
				}
			}
		}
	}

	cfg := qwen05()
	m := &Model{Config: cfg}
	wantPos := map[quant.DType]int64{quant.F32: 24576, quant.F16: 12288, quant.Q8_0: 6528}
	var table []string
	for _, dt := range []quant.DType{quant.F32, quant.F16, quant.Q8_0} {
		ct := CacheType{dt, dt}
		if got := ct.PositionBytes(&cfg); got != wantPos[dt] {
			t.Errorf("Qwen2.5-0.5B %s: %d bytes a position, want %d", dt, got, wantPos[dt])
		}
		row := fmt.Sprintf("%s: %d B/position", dt, ct.PositionBytes(&cfg))
		for _, ctx := range []int{1024, 4096} {
			c, err := m.NewCacheOf(ctx, ct)
			if err != nil {
				t.Fatal(err)
			}
			c.grow(ctx) // what a session of ctx positions allocates
			if c.Bytes() != int64(ctx)*wantPos[dt] {
				t.Errorf("Qwen2.5-0.5B %s: %d positions allocate %d bytes, want %d", dt, ctx, c.Bytes(), int64(ctx)*wantPos[dt])
			}
			row += fmt.Sprintf(", %d-token sessions in 8 GiB: %d", ctx, (int64(8)<<30)/c.Bytes())
		}
		table = append(table, row)
	}
	t.Log("Qwen2.5-0.5B KV cache:\n" + strings.Join(table, "\n"))
}

func TestParseCacheType(t *testing.T) {
	for _, tc := range []struct {
		k, v, want, err string
	}{
		{"", "", "f32", ""},
		{"f16", "F16", "f16", ""},
		{"q8_0", "", "k=q8_0,v=f32", ""},
		{"q8_0", "q4_0", "k=q8_0,v=q4_0", ""},
		{"q4_k", "", "", "cache type of keys: unknown KV cache type \"q4_k\""},
		{"f16", "int8", "", "cache type of values: unknown KV cache type \"int8\""},
	} {
		ct, err := ParseCacheType(tc.k, tc.v)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q/%q: error %v, want %q", tc.k, tc.v, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q/%q: %v", tc.k, tc.v, err)
		case ct.String() != tc.want:
			t.Errorf("%q/%q: %s, want %s", tc.k, tc.v, ct, tc.want)
		}
	}
	m := &Model{Config: qwen05()}
	if err := m.SetCacheType(CacheType{K: quant.Q4_K}); err == nil || !strings.Contains(err.Error(), "keys cannot be stored as q4_k") {
		t.Errorf("SetCacheType(q4_k): %v", err)
	}
	if _, err := m.NewCacheOf(8, CacheType{V: quant.Q6_K}); err == nil {
		t.Error("NewCacheOf(q6_k values): no error")
	}
	a, _ := m.NewCacheOf(8, CacheType{quant.F16, quant.F16})
	b, _ := m.NewCacheOf(8, CacheType{quant.Q8_0, quant.F16})
	if err := b.CopyPrefix(a, 0); err == nil || !strings.Contains(err.Error(), "a k=q8_0,v=f16 cache cannot take the positions of a f16 one") {
		t.Errorf("CopyPrefix across types: %v", err)
	}
}

// cacheRun feeds toks to m on a fresh cache of type ct, the first prompt
// tokens in one pass and the rest one at a time (as a prompt and the
// decoding after it), and returns the logits of every position.
func cacheRun(t *testing.T, m *Model, ct CacheType, toks []int, prompt int) []float32 {
	t.Helper()
	c, err := m.NewCacheOf(len(toks), ct)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(c, toks[:prompt], true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks[prompt:] {
		lg, err := m.Forward(c, []int{tok}, false)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lg...)
	}
	return out
}

// logitDiff compares logits b against the reference a (rows of vocab):
// the largest and mean absolute difference, the reference's RMS, and the
// fraction of rows whose arg max agrees.
func logitDiff(a, b []float32, vocab int) (maxAbs, meanAbs, rms, top1 float64) {
	agree := 0
	for r := 0; r < len(a)/vocab; r++ {
		ra, rb := a[r*vocab:(r+1)*vocab], b[r*vocab:(r+1)*vocab]
		ia, ib := 0, 0
		for i := range ra {
			d := math.Abs(float64(ra[i] - rb[i]))
			maxAbs = max(maxAbs, d)
			meanAbs += d
			rms += float64(ra[i]) * float64(ra[i])
			if ra[i] > ra[ia] {
				ia = i
			}
			if rb[i] > rb[ib] {
				ib = i
			}
		}
		if ia == ib {
			agree++
		}
	}
	return maxAbs, meanAbs / float64(len(a)), math.Sqrt(rms / float64(len(a))), float64(agree) / float64(len(a)/vocab)
}

// cacheAccuracyBounds are the largest logit differences from the F32 cache
// allowed on the golden models over 256 positions (64 prompted, 192
// decoded), relative to the RMS of the F32 logits (stories260K's are about
// 10, the random fixtures' about 0.17): max and mean absolute difference,
// and the fewest agreeing arg maxes. About twice what was measured on the
// worst model (docs/BENCHMARKS.md, "KV cache types"), so a change in how
// rows are stored or multiplied shows.
var cacheAccuracyBounds = map[quant.DType]struct{ max, mean, top1 float64 }{
	quant.F16:  {0.025, 0.0025, 0.98},
	quant.Q8_0: {0.18, 0.013, 0.94},
}

// TestCacheTypeAccuracy measures the accuracy cost of each cache type
// against the F32 cache on the golden models: every hf-tiny fixture
// (random weights) and stories260K (trained), 256 positions of random
// tokens, with the default kernels. The F16 and Q8_0 differences are bounded
// by cacheAccuracyBounds; the others (BF16, Q4_0) are reported.
func TestCacheTypeAccuracy(t *testing.T) {
	stories, _ := loadStories(t)
	type named struct {
		name string
		m    *Model
	}
	models := []named{{"stories260K", stories}}
	for _, n := range []string{"llama", "llama3-ropescaled", "mistral", "qwen2", "qwen3", "smollm-tied"} {
		models = append(models, named{"hf-tiny/" + n, loadTiny(t, n)})
	}
	const n, prompt = 256, 64
	var lines []string
	for _, nm := range models {
		m := nm.m
		rng := rand.New(rand.NewPCG(7, uint64(len(nm.name))))
		toks := randTokens(rng, n, m.Config.Vocab)
		ref := cacheRun(t, m, CacheType{}, toks, prompt)
		for _, dt := range []quant.DType{quant.F16, quant.BF16, quant.Q8_0, quant.Q4_0} {
			got := cacheRun(t, m, CacheType{dt, dt}, toks, prompt)
			mx, mean, rms, top1 := logitDiff(ref, got, m.Config.Vocab)
			lines = append(lines, fmt.Sprintf("| %s | %d | %s | %.2g | %.2g | %.3g | %.2g | %.2g | %.3f |", nm.name, m.Config.HeadDim, dt, mx, mean, rms, mx/rms, mean/rms, top1))
			if b, ok := cacheAccuracyBounds[dt]; ok && (mx/rms > b.max || mean/rms > b.mean || top1 < b.top1) {
				t.Errorf("%s, %s cache: logits differ from F32 by max %.3g, mean %.3g of their RMS, arg max agrees %.3f (bounds %g, %g, %g)", nm.name, dt, mx/rms, mean/rms, top1, b.max, b.mean, b.top1)
			}
		}
	}
	t.Log("| model | head dim | cache | max abs | mean abs | logit RMS | max / RMS | mean / RMS | top-1 agree |\n" + strings.Join(lines, "\n"))
}

// TestCacheTypeKernels: with F16 and Q8_0 caches, the default kernels (the
// AVX-512 or AVX2 products on the stored rows) compute what the Portable
// reference does, within the difference quantising the queries to 8 bits
// makes (Q8_0 keys, decoding) and float32 rounding otherwise; batched
// sequences with caches of different types each match their own run.
func TestCacheTypeKernels(t *testing.T) {
	m := loadTiny(t, "qwen3") // head dim 32: Q8_0 rows without padding
	rng := rand.New(rand.NewPCG(3, 4))
	toks := randTokens(rng, 96, m.Config.Vocab)
	for _, ct := range []CacheType{{quant.F16, quant.F16}, {quant.Q8_0, quant.Q8_0}, {quant.Q8_0, quant.F16}} {
		fast := cacheRun(t, m, ct, toks, 32)
		ref := m.With(nil, nil)
		ref.K = kernels.Portable{ExactBF16: true}
		want := cacheRun(t, ref, ct, toks, 32)
		mx, _, _, _ := logitDiff(want, fast, m.Config.Vocab)
		const bound = 1e-3
		t.Logf("%s: default kernels (%s) vs Portable: max %.3g", ct, m.K.Name(), mx)
		if mx > bound {
			t.Errorf("%s: default kernels differ from Portable by %.3g (bound %g)", ct, mx, bound)
		}
	}

	// The same tokens in one pass or one at a time: the queries that meet
	// Q8_0 keys are rounded to Q8_0 either way (see roundQ8).
	for _, ct := range []CacheType{{quant.F16, quant.F16}, {quant.Q8_0, quant.Q8_0}} {
		whole := cacheRun(t, m, ct, toks, len(toks))
		steps := cacheRun(t, m, ct, toks, 1)
		if d := maxRelDiff(steps, whole); d > 2e-5 {
			t.Errorf("%s cache: one token at a time differs from one pass by %g", ct, d)
		}
	}

	// One batch, three cache types.
	types := []CacheType{{}, {quant.F16, quant.F16}, {quant.Q8_0, quant.Q8_0}}
	var seqs []BatchSeq
	var alone [][]float32
	for i, ct := range types {
		c, _ := m.NewCacheOf(64, ct)
		s := toks[i*10 : i*10+20]
		seqs = append(seqs, BatchSeq{Cache: c, Tokens: s, All: true})
		a, _ := m.NewCacheOf(64, ct)
		lg, err := m.Forward(a, s, true)
		if err != nil {
			t.Fatal(err)
		}
		alone = append(alone, lg)
	}
	got, err := m.ForwardBatch(seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range types {
		if d := maxRelDiff(got[i], alone[i]); d > 2e-5 {
			t.Errorf("batched %s cache: max relative difference %g from its own run", types[i], d)
		}
	}
}
