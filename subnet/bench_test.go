package subnet

import (
	"context"
	"github.com/masque-ai/masque/internal/cputime"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/randmodel"
)

// BenchmarkSparseGPTSequential compares the layer-at-a-time sequential
// SparseGPT ("layerwise": 2L−1 layer passes per sample) with the reference
// that reruns every sample from the embeddings for each layer ("rerun":
// L(L+1)/2 layer passes) on a model of the Qwen2.5-0.5B shape with random
// weights (24 layers, hidden 896). The pruned projections are q, k, v and o,
// whose SparseGPT solves are small, so that the calibration passes (what
// changed) dominate the time. It is heavy (2 GB of weights, minutes of CPU)
// and runs only when MASQUE_BENCH_SPARSEGPT is set; MASQUE_BENCH_SAMPLES and
// MASQUE_BENCH_TOKENS set the calibration (default 4 samples of 64 tokens).
// Besides ns/op it reports the process's CPU seconds per op (cpu-s/op), which
// is the fairer figure on a loaded machine:
//
//	MASQUE_BENCH_SPARSEGPT=1 go test -run '^$' -bench SparseGPTSequential -benchtime 1x ./subnet/
func BenchmarkSparseGPTSequential(b *testing.B) {
	if os.Getenv("MASQUE_BENCH_SPARSEGPT") == "" {
		b.Skip("set MASQUE_BENCH_SPARSEGPT=1 to run (2 GB model, minutes of CPU)")
	}
	n, t := envInt("MASQUE_BENCH_SAMPLES", 4), envInt("MASQUE_BENCH_TOKENS", 64)
	m, err := randmodel.New(randmodel.Presets["qwen2.5-0.5b"], 1, 0.02)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	samples := make([][]int, n)
	for i := range samples {
		samples[i] = make([]int, t)
		for j := range samples[i] {
			samples[i][j] = r.IntN(m.Config.Vocab)
		}
	}
	o := Options{Sparsity: 0.5, Targets: AttnOnly}
	run := func(b *testing.B, f func() (*Result, error)) {
		var cpu time.Duration
		for b.Loop() {
			c0 := cputime.Used()
			if _, err := f(); err != nil {
				b.Fatal(err)
			}
			cpu += cputime.Used() - c0
		}
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	}
	b.Run("layerwise", func(b *testing.B) {
		run(b, func() (*Result, error) {
			return SparseGPTSequential(context.Background(), m, samples, calib.Record{Name: "bench"}, o, nil)
		})
	})
	b.Run("rerun", func(b *testing.B) {
		run(b, func() (*Result, error) { return sequentialReference(m, samples, o) })
	})
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
