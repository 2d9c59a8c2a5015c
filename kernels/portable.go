package kernels

import (
	"math"

	"github.com/masque-ai/masque/quant"
)

// Portable is the reference implementation: plain single-threaded Go with
// sequential float32 accumulation. It builds everywhere and defines the
// results the fast kernels are checked against.
type Portable struct {
	// ExactBF16 keeps activations float32 in products with BF16 weights
	// (see the package function ExactBF16); by default they are rounded to
	// bf16 first.
	ExactBF16 bool
}

// Name implements Kernels.
func (Portable) Name() string { return "portable" }

// MatMul implements Kernels.
func (p Portable) MatMul(dst, x []float32, w *Matrix, m int) {
	if w.Type == quant.BF16 && !p.ExactBF16 {
		xr := make([]float32, m*w.Cols)
		roundBF16(xr, x[:m*w.Cols])
		x = xr
	}
	row := make([]float32, w.Cols)
	for r := 0; r < w.Rows; r++ {
		wr := row
		if w.Type == quant.F32 {
			wr = w.f32[r*w.Cols : (r+1)*w.Cols]
		} else {
			_ = quant.DequantizeRow(w.Type, w.RowData(r), row)
		}
		for i := 0; i < m; i++ {
			dst[i*w.Rows+r] = dot(x[i*w.Cols:(i+1)*w.Cols], wr)
		}
	}
}

// MatMulBackInput implements Kernels.
func (Portable) MatMulBackInput(dx, dy []float32, w *Matrix, m int) {
	clear(dx[:m*w.Cols])
	row := make([]float32, w.Cols)
	for r := 0; r < w.Rows; r++ {
		wr := row
		if w.Type == quant.F32 {
			wr = w.f32[r*w.Cols : (r+1)*w.Cols]
		} else {
			_ = quant.DequantizeRow(w.Type, w.RowData(r), row)
		}
		for i := 0; i < m; i++ {
			axpy(dy[i*w.Rows+r], wr, dx[i*w.Cols:(i+1)*w.Cols])
		}
	}
}

// MatMulBackWeight implements Kernels.
func (Portable) MatMulBackWeight(dw, dy, x []float32, m, rows, cols int) {
	for i := 0; i < m; i++ {
		xi := x[i*cols : (i+1)*cols]
		for r := 0; r < rows; r++ {
			axpy(dy[i*rows+r], xi, dw[r*cols:(r+1)*cols])
		}
	}
}

// Row implements Kernels.
func (Portable) Row(dst []float32, w *Matrix, i int) {
	_ = quant.DequantizeRow(w.Type, w.RowData(i), dst[:w.Cols])
}

// RMSNorm implements Kernels.
func (Portable) RMSNorm(dst, x, weight []float32, eps float32) {
	n := len(weight)
	if n == 0 {
		return
	}
	for off := 0; off+n <= len(x); off += n {
		xr := x[off : off+n]
		var ss float32
		for _, v := range xr {
			ss += v * v
		}
		s := float32(1 / math.Sqrt(float64(ss/float32(n)+eps)))
		for j, v := range xr {
			dst[off+j] = v * s * weight[j]
		}
	}
}

// SiLUMul implements Kernels.
func (Portable) SiLUMul(dst, gate, up []float32) {
	for i, g := range gate {
		dst[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

// Softmax implements Kernels.
func (Portable) Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	mx := x[0]
	for _, v := range x[1:] {
		mx = max(mx, v)
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - mx)))
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range x {
		x[i] *= inv
	}
}

// Dot implements Kernels.
func (Portable) Dot(a, b []float32) float32 { return dot(a, b) }

// Axpy implements Kernels.
func (Portable) Axpy(alpha float32, x, y []float32) { axpy(alpha, x, y) }

func dot(a, b []float32) float32 {
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func axpy(alpha float32, x, y []float32) {
	for i, v := range x {
		y[i] += alpha * v
	}
}
