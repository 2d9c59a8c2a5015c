package pretrain

import (
	"math/rand/v2"
	"testing"

	"github.com/masque-ai/masque/train"
)

// BenchmarkStep times one optimiser step of the voices-base preset (8,192
// vocabulary) on a micro-batch of eight 512-token documents, and reports
// tokens/s; profile it with -cpuprofile to see where the time goes.
func BenchmarkStep(b *testing.B) {
	for _, preset := range []string{"voices-small", "voices-base"} {
		b.Run(preset, func(b *testing.B) {
			mc := Presets[preset].modelConfig(8192, 512, -1, []int{1})
			m, err := Init(mc, 1, 0.02)
			if err != nil {
				b.Fatal(err)
			}
			n, err := train.New(m, train.Options{Full: true})
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			var seqs []train.Sequence
			for d := 0; d < 8; d++ {
				ids := make([]int, 513)
				for i := range ids {
					ids[i] = rng.IntN(mc.Vocab)
				}
				seqs = append(seqs, train.Sequence{Tokens: ids[:512], Targets: ids[1:]})
			}
			tr, err := train.NewTrainer(n, train.Config{Steps: 1 << 30, BatchTokens: 4096, LR: 1e-3, Schedule: train.Schedule{Kind: "cosine"},
				Beta1: 0.9, Beta2: 0.95, WeightDecay: 0.1, ClipNorm: 1}, seqs, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, _, _, err := tr.Step(); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, _, _, err := tr.Step(); err != nil {
					b.Fatal(err)
				}
			}
			tps := float64(4096*b.N) / b.Elapsed().Seconds()
			b.ReportMetric(tps, "tokens/s")
			b.ReportMetric(tps*FlopsPerToken(mc, seqs)/1e9, "GFLOP/s")
		})
	}
}
