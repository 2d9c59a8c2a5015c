package kernels

// Kernels is the set of inner loops the engine needs. Every method works on
// float32 activations; weights come as a *Matrix of any type. Slices are
// row-major; m is the number of activation rows (tokens).
//
// Implementations must give the same results as Portable within float32
// rounding (the tests say how close).
type Kernels interface {
	// Name identifies the implementation ("portable", "avx2", …).
	Name() string

	// MatMul computes dst[i,r] = Σ_c x[i,c]·W[r,c] for i < m:
	// dst is m×w.Rows, x is m×w.Cols (y = x·Wᵀ, a Linear layer without bias).
	MatMul(dst, x []float32, w *Matrix, m int)
	// MatMulBackInput computes dx[i,c] = Σ_r dy[i,r]·W[r,c] for i < m:
	// dx is m×w.Cols, dy is m×w.Rows (the input gradient of a Linear layer).
	MatMulBackInput(dx, dy []float32, w *Matrix, m int)
	// MatMulBackWeight accumulates dw[r,c] += Σ_i dy[i,r]·x[i,c]:
	// dw is rows×cols, dy is m×rows, x is m×cols (the weight gradient).
	MatMulBackWeight(dw, dy, x []float32, m, rows, cols int)

	// Row decodes row i of w into dst (len w.Cols); used for embeddings.
	Row(dst []float32, w *Matrix, i int)

	// RMSNorm normalises each row of x (row length len(weight)) into dst:
	// dst = x / sqrt(mean(x²) + eps) * weight. dst may alias x.
	RMSNorm(dst, x, weight []float32, eps float32)
	// SiLUMul sets dst[i] = silu(gate[i])·up[i]. dst may alias gate or up.
	SiLUMul(dst, gate, up []float32)
	// Softmax replaces x by softmax(x) (numerically stable).
	Softmax(x []float32)
	// Dot returns Σ a[i]·b[i].
	Dot(a, b []float32) float32
	// Axpy sets y[i] += alpha·x[i].
	Axpy(alpha float32, x, y []float32)
}
