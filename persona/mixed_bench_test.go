package persona

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/masque-ai/masque/bench"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/randmodel"
)

// BenchmarkMixedBatch measures what personas of mixed kinds cost a batched
// decode step (issue #18 §3, "mixed kinds cost little"): 16 sequences, each
// after a 128-token prompt, decode one token each in one model.ForwardBatch,
// once as base-only sessions and once for each mix of persona kinds below,
// the steps alternating in one run so that the machine's state is the same
// for all. Every persona applies per sequence over the one copy of the
// weights, as the server runs them: FFN-channel masks (a quarter of every
// layer's channels) as channel vectors, LoRA adapters (rank 8, every
// projection) as one x·Aᵀ·Bᵀ per adapter over the rows of all its
// sequences, unstructured masks (half of every projection's entries) by
// their masked weights. The model is a random Qwen2.5-0.5B-shaped BF16
// folder ($MASQUE_BENCH_MODEL, or written once under the temp folder,
// ≈1 GB). Run it with -benchtime 1x: it reports the base step's median
// milliseconds and, per mix, the median ratio of its step time to the base
// step's of the same round ("<mix>_x").
func BenchmarkMixedBatch(b *testing.B) {
	dir := os.Getenv("MASQUE_BENCH_MODEL")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "masque-bench-qwen2.5-0.5b-bf16")
		if err := randmodel.WriteOnce(dir, randmodel.Presets["qwen2.5-0.5b"], 1, 0.02, quant.BF16); err != nil {
			b.Fatal(err)
		}
	}
	ck, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ck.Close()
	m := ck.Model
	cfg := &m.Config
	rng := rand.New(rand.NewPCG(18, 3))
	overlay := func(mk *mask.Mask, a *lora.Adapter) *Overlay {
		o, err := NewOverlay(m, mk, a)
		if err != nil {
			b.Fatal(err)
		}
		return o
	}
	ffn := func(k int) *Overlay {
		return overlay(channelMask(b, m, func(l, c int) bool { return c%4 == k },
			[]model.Proj{model.ProjGate, model.ProjUp, model.ProjDown}), nil)
	}
	unstructured := func() *Overlay {
		mk := mask.New(m)
		for l := 0; l < cfg.Layers; l++ {
			for p := range model.NumProj {
				s := mk.Shapes[p]
				bits := mask.NewBits(s[0], s[1])
				for i := range bits.Data {
					bits.Data[i] = byte(rng.Uint32()) // each entry kept with probability ½
				}
				if s[1]%8 != 0 {
					b.Fatalf("%d columns: not a whole number of mask bytes", s[1])
				}
				if err := mk.Set(mask.Key{Layer: l, Proj: model.Proj(p)}, bits); err != nil {
					b.Fatal(err)
				}
			}
		}
		return overlay(mk, nil)
	}
	adapter := func(seed uint64) *Overlay {
		all := make([]model.Proj, model.NumProj)
		for p := range all {
			all[p] = model.Proj(p)
		}
		a, err := lora.New(m, lora.Config{Rank: 8, Alpha: 16, Targets: all}, seed)
		if err != nil {
			b.Fatal(err)
		}
		for _, pr := range a.All() { // B starts at zero; make the product real
			for i := range pr.B {
				pr.B[i] = float32(rng.NormFloat64() * 0.01)
			}
		}
		return overlay(nil, a)
	}
	f0, f1, f2, f3 := ffn(0), ffn(1), ffn(2), ffn(3)
	l0, l1, l2, l3 := adapter(1), adapter(2), adapter(3), adapter(4)
	u0, u1 := unstructured(), unstructured()
	rep := func(o *Overlay, n int) []*Overlay { return slices.Repeat([]*Overlay{o}, n) }
	mixes := []struct {
		name  string
		seqs  []*Overlay
		batch []model.BatchSeq
		ms    []float64
	}{
		{name: "base", seqs: rep(nil, 16)},
		{name: "ffn", seqs: slices.Concat(rep(f0, 4), rep(f1, 4), rep(f2, 4), rep(f3, 4))},
		{name: "lora", seqs: slices.Concat(rep(l0, 4), rep(l1, 4), rep(l2, 4), rep(l3, 4))},
		{name: "prompt+ffn+lora", seqs: slices.Concat(rep(nil, 4), rep(f0, 2), rep(f1, 2), rep(f2, 2), rep(f3, 2), rep(l0, 2), rep(l1, 2))},
		{name: "prompt+ffn+lora+unstructured", seqs: slices.Concat(rep(nil, 4), rep(f0, 2), rep(f1, 2), rep(l0, 2), rep(l1, 2), rep(u0, 2), rep(u1, 2))},
	}
	const prompt = 128
	for i := range mixes {
		mx := &mixes[i]
		mx.batch = make([]model.BatchSeq, len(mx.seqs))
		for j, o := range mx.seqs {
			toks := make([]int, prompt)
			for t := range toks {
				toks[t] = rng.IntN(cfg.Vocab)
			}
			mx.batch[j] = model.BatchSeq{Cache: m.NewCache(prompt + 1), Tokens: toks, Hooks: o.Hooks(), Adapter: o.Adapter()}
		}
		if _, err := m.ForwardBatch(mx.batch); err != nil { // the prompts
			b.Fatal(err)
		}
		for j := range mx.batch {
			mx.batch[j].Tokens = []int{rng.IntN(cfg.Vocab)}
		}
	}
	const rounds = 12
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for r := 0; r < rounds; r++ {
			for i := range mixes {
				mx := &mixes[i]
				t0 := time.Now()
				if _, err := m.ForwardBatch(mx.batch); err != nil {
					b.Fatal(err)
				}
				mx.ms = append(mx.ms, float64(time.Since(t0).Microseconds())/1000)
				for j := range mx.batch {
					mx.batch[j].Cache.Truncate(prompt)
				}
			}
		}
	}
	b.StopTimer()
	base := mixes[0].ms
	b.ReportMetric(bench.Median(base), "base_ms")
	for _, mx := range mixes[1:] {
		ratios := make([]float64, len(base))
		for r := range base {
			ratios[r] = mx.ms[r] / base[r]
		}
		b.ReportMetric(bench.Median(ratios), mx.name+"_x")
		b.Logf("%-30s median %.1f ms a step (%.2f× base; rounds %s)", mx.name, bench.Median(mx.ms), bench.Median(ratios), fmtMs(mx.ms))
	}
	b.Logf("%-30s median %.1f ms a step (rounds %s)", "base", bench.Median(base), fmtMs(base))
}

func fmtMs(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.1f", x)
	}
	return s
}
