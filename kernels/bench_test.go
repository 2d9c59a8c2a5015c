package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

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
// second (GB/s).
func BenchmarkMatMul(b *testing.B) {
	defer SetThreads(0)
	SetThreads(2)
	k := Default()
	for _, dt := range allTypes {
		for _, sh := range benchShapes {
			cols := benchCols(dt, sh.cols)
			w := benchMatrix(dt, sh.rows, cols)
			for _, m := range []int{1, 128} {
				b.Run(fmt.Sprintf("%s/%s/m=%d", dt, sh.name, m), func(b *testing.B) {
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
