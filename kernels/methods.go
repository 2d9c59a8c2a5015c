package kernels

// MatMulBackInput implements Kernels.
func (f fast) MatMulBackInput(dx, dy []float32, w *Matrix, m int) {
	Portable{}.MatMulBackInput(dx, dy, w, m)
}

// MatMulBackWeight implements Kernels.
func (f fast) MatMulBackWeight(dw, dy, x []float32, m, rows, cols int) {
	Portable{}.MatMulBackWeight(dw, dy, x, m, rows, cols)
}

// RMSNorm implements Kernels.
func (f fast) RMSNorm(dst, x, weight []float32, eps float32) { Portable{}.RMSNorm(dst, x, weight, eps) }

// SiLUMul implements Kernels.
func (f fast) SiLUMul(dst, gate, up []float32) { Portable{}.SiLUMul(dst, gate, up) }

// Softmax implements Kernels.
func (f fast) Softmax(x []float32) { Portable{}.Softmax(x) }

// Dot implements Kernels.
func (f fast) Dot(a, b []float32) float32 { return dot(a, b) }

// Axpy implements Kernels.
func (f fast) Axpy(alpha float32, x, y []float32) { axpy(alpha, x, y) }
