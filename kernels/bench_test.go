package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masque-ai/masque/quant"
)

// Qwen2.5-0.5B projection shapes (rows × cols of W).
var benchShapes = []struct {
	name       string
	rows, cols int
}{
	{"896x896", 896, 896},
	{"4864x896", 4864, 896},
	{"896x4864", 896, 4864},
	{"151936x896", 151936, 896},
}

// benchMatrix makes a rows×cols matrix of type dt. Float types get
// normally distributed values (σ = 0.05, like trained weights); block types
// get random bytes with small finite scales, which is much faster than
// quantising and just as good for timing.
func benchMatrix(dt quant.DType, rows, cols int) *Matrix {
	rb, _ := dt.RowBytes(cols)
	data := make([]byte, rows*rb)
	rng := rand.New(rand.NewPCG(1, uint64(rows)))
	if !dt.Quantized() {
		var table [4096]float32
		for i := range table {
			table[i] = float32(rng.NormFloat64()) * 0.05
		}
		row := make([]float32, cols)
		for r := 0; r < rows; r++ {
			for c := range row {
				row[c] = table[rng.Uint32()%4096]
			}
			quant.QuantizeRow(dt, row, data[r*rb:(r+1)*rb])
		}
	} else {
		for i := 0; i+8 <= len(data); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				data[i+j] = byte(v >> (8 * j))
			}
		}
		fixScales(dt, data)
	}
	m, err := NewMatrix(dt, rows, cols, data)
	if err != nil {
		panic(err)
	}
	return m
}

// benchCols is the row length used for dt: the k-quants need multiples of
// 256, so 896 becomes 1024 for them.
func benchCols(dt quant.DType, cols int) int {
	return roundUp(cols, dt.BlockElems())
}

// BenchmarkMatMul times MatMul with the default kernels on 2 threads and
// reports GFLOP/s (2·m·rows·cols per call) and the weight bytes streamed per
// second (GB/s). BF16 runs twice: with the default rounded activations and
// as bf16-exact (ExactBF16).
func BenchmarkMatMul(b *testing.B) {
	defer SetThreads(0)
	SetThreads(2)
	type variant struct {
		dt   quant.DType
		name string
		k    Kernels
	}
	var variants []variant
	for _, dt := range allTypes {
		variants = append(variants, variant{dt, dt.String(), Default()})
		if dt == quant.BF16 {
			variants = append(variants, variant{dt, "bf16-exact", ExactBF16(Default())})
		}
	}
	for _, v := range variants {
		dt, k := v.dt, v.k
		for _, sh := range benchShapes {
			cols := benchCols(dt, sh.cols)
			var w *Matrix
			for _, m := range []int{1, 16, 128} {
				b.Run(fmt.Sprintf("%s/%s/m=%d", v.name, sh.name, m), func(b *testing.B) {
					if w == nil {
						w = benchMatrix(dt, sh.rows, cols)
					}
					x := randVec(rand.New(rand.NewPCG(2, 3)), m*cols, 1)
					dst := make([]float32, m*sh.rows)
					k.MatMul(dst, x, w, m)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						k.MatMul(dst, x, w, m)
					}
					s := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(2*float64(m)*float64(sh.rows)*float64(cols)/s/1e9, "GFLOP/s")
					b.ReportMetric(float64(len(w.Data))/s/1e9, "GB/s")
				})
			}
		}
	}
}

// TestBenchMin measures the best-of-N time of MatMul per level, dtype, shape
// and m, which is far less sensitive to other load on the machine than
// testing.B's mean. It only runs with MASQUE_BENCH=1 (MASQUE_BENCH_FILTER,
// a regexp, picks cases; MASQUE_BENCH_THREADS the thread count, default 2).
func TestBenchMin(t *testing.T) {
	if os.Getenv("MASQUE_BENCH") == "" {
		t.Skip("set MASQUE_BENCH=1")
	}
	th := 2
	if v, err := strconv.Atoi(os.Getenv("MASQUE_BENCH_THREADS")); err == nil {
		th = v
	}
	defer SetThreads(0)
	SetThreads(th)
	if v, err := strconv.Atoi(os.Getenv("MASQUE_BENCH_QMAXM")); err == nil {
		for _, l := range levels() {
			for t := range l.q.maxM {
				l.q.maxM[t] = v
			}
		}
	}
	if v, err := strconv.Atoi(os.Getenv("MASQUE_BENCH_KB")); err == nil {
		gemmKBlock = v
	}
	filter := regexp.MustCompile(os.Getenv("MASQUE_BENCH_FILTER"))
	names := Levels()
	if lv := os.Getenv("MASQUE_BENCH_LEVELS"); lv != "" {
		names = strings.Split(lv, ",")
	}
	ms := []int{1, 128}
	if v := os.Getenv("MASQUE_BENCH_M"); v != "" {
		ms = nil
		for _, f := range strings.Split(v, ",") {
			n, _ := strconv.Atoi(f)
			ms = append(ms, n)
		}
	}
	for _, dt := range allTypes {
		for _, sh := range benchShapes {
			cols := benchCols(dt, sh.cols)
			var w *Matrix
			for _, m := range ms {
				for _, name := range names {
					// "LEVEL+exact" measures LEVEL under ExactBF16.
					base, exact := strings.CutSuffix(name, "+exact")
					k, err := ForLevel(base)
					if err != nil {
						t.Fatal(err)
					}
					if exact {
						k = ExactBF16(k)
					}
					id := fmt.Sprintf("%s %s %s m=%d", name, dt, sh.name, m)
					if !filter.MatchString(id) {
						continue
					}
					if w == nil {
						w = benchMatrix(dt, sh.rows, cols)
					}
					x := randVec(rand.New(rand.NewPCG(2, 3)), m*cols, 1)
					dst := make([]float32, m*sh.rows)
					best := math.Inf(1)
					start := time.Now()
					for n := 0; n < 400 && (n < 5 || time.Since(start) < 3*time.Second); n++ {
						t0 := time.Now()
						k.MatMul(dst, x, w, m)
						best = min(best, time.Since(t0).Seconds())
					}
					flop := 2 * float64(m) * float64(sh.rows) * float64(cols)
					fmt.Printf("%-32s %9.1f µs %8.1f GFLOP/s %7.1f GB/s\n", id, best*1e6, flop/best/1e9, float64(len(w.Data))/best/1e9)
				}
			}
		}
	}
}

// TestBenchBackward is TestBenchMin for the backward products at m = 256
// (MASQUE_BENCH=1 to run).
func TestBenchBackward(t *testing.T) {
	if os.Getenv("MASQUE_BENCH") == "" {
		t.Skip("set MASQUE_BENCH=1")
	}
	th := 2
	if v, err := strconv.Atoi(os.Getenv("MASQUE_BENCH_THREADS")); err == nil {
		th = v
	}
	defer SetThreads(0)
	SetThreads(th)
	names := Levels()
	if lv := os.Getenv("MASQUE_BENCH_LEVELS"); lv != "" {
		names = strings.Split(lv, ",")
	}
	const m = 256
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sh := range []struct{ rows, cols int }{{512, 512}, {896, 896}, {2048, 2048}, {4864, 896}, {896, 4864}} {
		w := FromF32(sh.rows, sh.cols, randVec(rng, sh.rows*sh.cols, 0.05))
		dy := randVec(rng, m*sh.rows, 1)
		x := randVec(rng, m*sh.cols, 1)
		dx := make([]float32, m*sh.cols)
		dw := make([]float32, sh.rows*sh.cols)
		for _, name := range names {
			k, _ := ForLevel(name)
			for _, op := range []string{"BackInput", "BackWeight"} {
				best := math.Inf(1)
				start := time.Now()
				for n := 0; n < 200 && (n < 3 || time.Since(start) < 2*time.Second); n++ {
					t0 := time.Now()
					if op == "BackInput" {
						k.MatMulBackInput(dx, dy, w, m)
					} else {
						k.MatMulBackWeight(dw, dy, x, m, sh.rows, sh.cols)
					}
					best = min(best, time.Since(t0).Seconds())
				}
				flop := 2 * float64(m) * float64(sh.rows) * float64(sh.cols)
				fmt.Printf("%-7s %-10s %4dx%-4d m=%d %9.1f µs %7.1f GFLOP/s\n", k.Name(), op, sh.rows, sh.cols, m, best*1e6, flop/best/1e9)
			}
		}
	}
}
