package stats

import (
	"github.com/masque-ai/masque/internal/cputime"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/randmodel"
)

// benchSamples returns the calibration-like workload: the stories260K golden
// sequences, repeated to n samples.
func benchSamples(b *testing.B, n int) [][]int {
	s := storiesSamples(b)
	var out [][]int
	for len(out) < n {
		out = append(out, s...)
	}
	return out[:n]
}

// BenchmarkForward measures a pass over the same calibration samples without
// hooks ("plain") and while collecting statistics without Gram matrices
// ("stats").
func BenchmarkForward(b *testing.B) {
	m := loadStories(b)
	samples := benchSamples(b, 16)
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			plainPass(b, m, samples)
		}
	})
	b.Run("stats", func(b *testing.B) {
		for b.Loop() {
			statsPass(b, m, samples)
		}
	})
}

func plainPass(b *testing.B, m *model.Model, samples [][]int) {
	for _, s := range samples {
		if _, err := m.Forward(m.NewCache(len(s)), s, false); err != nil {
			b.Fatal(err)
		}
	}
}

func statsPass(b *testing.B, m *model.Model, samples [][]int) {
	col := NewCollector(m, Options{})
	for _, s := range samples {
		if err := col.AddSample(s); err != nil {
			b.Fatal(err)
		}
	}
	col.Stats(Manifest{ModelFingerprint: "bench"})
}

// timedStatsPass is statsPass that also returns the time spent collecting:
// inside the hooks, closing samples and finishing.
func timedStatsPass(b *testing.B, m *model.Model, samples [][]int) (total, collecting time.Duration) {
	t0 := time.Now()
	col := NewCollector(m, Options{})
	inner := col.Hooks().LinearInput
	h := &model.Hooks{LinearInput: func(l int, p model.Proj, x []float32, rows, cols int) {
		t := time.Now()
		inner(l, p, x, rows, cols)
		collecting += time.Since(t)
	}}
	for _, s := range samples {
		col.BeginSample()
		if _, err := m.ForwardHooks(m.NewCache(len(s)), s, false, h); err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		col.EndSample()
		collecting += time.Since(t)
	}
	t := time.Now()
	col.Stats(Manifest{ModelFingerprint: "bench"})
	collecting += time.Since(t)
	if col.Err() != nil {
		b.Fatal(col.Err())
	}
	return time.Since(t0), collecting
}

// BenchmarkStatsOverhead runs a plain pass and a statistics pass over the
// same samples alternately, so that both see the same machine load, and
// reports the fastest of each and the overhead of collection
// (stats/plain − 1, in percent), by wall-clock time and by process CPU time
// (which is less disturbed by other work on a shared machine); and, from a
// third, instrumented pass, the time spent collecting (inside the hooks,
// closing samples, finishing) relative to the rest of that same pass
// ("in-pass-overhead-%"), which is the most robust figure on a loaded machine. Models: stories260K (real weights, 16
// golden samples) and, unless -short, random weights in the shape of
// SmolLM2-135M (4 samples of 128 random tokens).
func BenchmarkStatsOverhead(b *testing.B) {
	type wl struct {
		name    string
		m       func() *model.Model
		samples func() [][]int
	}
	wls := []wl{{"stories260K", func() *model.Model { return loadStories(b) }, func() [][]int { return benchSamples(b, 16) }}}
	if !testing.Short() || os.Getenv("MASQUE_BENCH_BIG") != "" {
		wls = append(wls, wl{"smollm2-135m-shape", func() *model.Model {
			m, err := randmodel.New(randmodel.Presets["smollm2-135m"], 1, 0.02)
			if err != nil {
				b.Fatal(err)
			}
			return m
		}, func() [][]int {
			r := rand.New(rand.NewPCG(1, 2))
			out := make([][]int, 4)
			for i := range out {
				out[i] = make([]int, 128)
				for j := range out[i] {
					out[i][j] = r.IntN(randmodel.Presets["smollm2-135m"].Vocab)
				}
			}
			return out
		}})
	}
	for _, w := range wls {
		b.Run(w.name, func(b *testing.B) {
			m, samples := w.m(), w.samples()
			var tokens int
			for _, s := range samples {
				tokens += len(s)
			}
			minPlain, minStats := time.Duration(1<<62), time.Duration(1<<62)
			cpuPlain, cpuStats := time.Duration(1<<62), time.Duration(1<<62)
			var share float64 = math.Inf(1)
			for b.Loop() {
				c0, t0 := cputime.Used(), time.Now()
				plainPass(b, m, samples)
				c1, t1 := cputime.Used(), time.Now()
				statsPass(b, m, samples)
				c2, t2 := cputime.Used(), time.Now()
				minPlain = min(minPlain, t1.Sub(t0))
				minStats = min(minStats, t2.Sub(t1))
				cpuPlain = min(cpuPlain, c1-c0)
				cpuStats = min(cpuStats, c2-c1)
				tot, coll := timedStatsPass(b, m, samples)
				share = min(share, float64(coll)/float64(tot-coll))
			}
			b.ReportMetric(100*share, "in-pass-overhead-%")
			if cpuPlain > 0 {
				b.ReportMetric(100*(float64(cpuStats)/float64(cpuPlain)-1), "cpu-overhead-%")
			}
			b.ReportMetric(float64(minPlain.Microseconds())/1000, "plain-ms")
			b.ReportMetric(float64(minStats.Microseconds())/1000, "stats-ms")
			b.ReportMetric(float64(tokens)/minPlain.Seconds(), "plain-tok/s")
			b.ReportMetric(100*(float64(minStats)/float64(minPlain)-1), "overhead-%")
		})
	}
}
