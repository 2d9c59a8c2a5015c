package model_test

import (
	"fmt"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/randmodel"
)

// BenchmarkDecodeCacheTypes times one decode step after ctx positions with
// each KV cache type, on two layers of the Qwen2.5-0.5B shape (14 query
// heads, 2 KV heads of 64, FFN 4864; a 1024-token vocabulary so the LM head
// does not dominate): go test ./model -run XXX -bench DecodeCacheTypes.
func BenchmarkDecodeCacheTypes(b *testing.B) {
	cfg := randmodel.Presets["qwen2.5-0.5b"]
	cfg.Layers, cfg.Vocab, cfg.EOS = 2, 1024, nil
	m, err := randmodel.New(cfg, 1, 0.02)
	if err != nil {
		b.Fatal(err)
	}
	for _, ctx := range []int{1024, 4096} {
		toks := make([]int, ctx)
		for i := range toks {
			toks[i] = (i * 7919) % cfg.Vocab
		}
		for _, dt := range []quant.DType{quant.F32, quant.F16, quant.Q8_0} {
			b.Run(fmt.Sprintf("ctx=%d/%s", ctx, dt), func(b *testing.B) {
				c, err := m.NewCacheOf(ctx+1, model.CacheType{K: dt, V: dt})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.Forward(c, toks, false); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					c.Truncate(ctx)
					if _, err := m.Forward(c, []int{1}, false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
