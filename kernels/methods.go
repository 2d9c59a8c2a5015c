package kernels

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// Blocking of the backward products.
const (
	backKBlock   = 512 // weight rows per pass of MatMulBackInput
	outerColBlk  = 256 // output columns per task
	elemParallel = 1 << 16
)

// outerRun computes C (M×N, row stride ldc) (+)= A·B over K with the
// level's outer-product tiles, in parallel tasks of (outMR rows × up to
// outerColBlk columns). A(kk, i) is a[i*lda + kk] when rowLayout, else
// a[kk*lda + i]; B is row-major with stride ldb. All strides in elements.
func (l *level) outerRun(c []float32, ldc int, a []float32, lda int, b []float32, ldb int, M, N, K int, acc, rowLayout bool) {
	vec := l.outVec
	mr := l.outMR
	colMain := N / vec * vec
	nrt := ceilDiv(M, mr)
	ncb := max(1, ceilDiv(N, outerColBlk))
	tab := l.outerP
	if rowLayout {
		tab = l.outerR
	}
	ac := 0
	if acc {
		ac = 1
	}
	parallel(nrt*ncb, func(task int) {
		cb, rt := task/nrt, task%nrt
		i0 := rt * mr
		mi := min(mr, M-i0)
		c0 := cb * outerColBlk
		c1 := min(N, c0+outerColBlk)
		var ap *float32
		if rowLayout {
			ap = &a[i0*lda]
		} else {
			ap = &a[i0]
		}
		for col := c0; col < min(c1, colMain); {
			nv := 2
			if col+2*vec > min(c1, colMain) {
				nv = 1
			}
			tab[mi][nv](&c[i0*ldc+col], ldc*4, ap, lda*4, &b[col], ldb*4, K, ac)
			col += nv * vec
		}
		// Columns left over by the vector width.
		for col := max(c0, colMain); col < c1; col++ {
			for i := i0; i < i0+mi; i++ {
				var s float32
				for kk := 0; kk < K; kk++ {
					var av float32
					if rowLayout {
						av = a[i*lda+kk]
					} else {
						av = a[kk*lda+i]
					}
					s += av * b[kk*ldb+col]
				}
				if acc {
					c[i*ldc+col] += s
				} else {
					c[i*ldc+col] = s
				}
			}
		}
	})
}

// MatMulBackInput implements Kernels. Weights of any type are used in passes
// of backKBlock rows; non-F32 rows are decoded to float32 per pass.
func (f fast) MatMulBackInput(dx, dy []float32, w *Matrix, m int) {
	R, C := w.Rows, w.Cols
	if m < 0 || len(dx) < m*C || len(dy) < m*R {
		panic(fmt.Sprintf("kernels.MatMulBackInput: m=%d, %d×%d weights, len(dx)=%d, len(dy)=%d", m, R, C, len(dx), len(dy)))
	}
	if m == 0 || C == 0 {
		return
	}
	if R == 0 {
		clear(dx[:m*C])
		return
	}
	l := f.l
	var bp *[]float32
	if w.Type != quant.F32 {
		bp = f32Pool.get(min(R, backKBlock) * C)
		defer f32Pool.put(bp)
	}
	for k0 := 0; k0 < R; k0 += backKBlock {
		kn := min(backKBlock, R-k0)
		var B []float32
		if w.Type == quant.F32 {
			B = w.f32[k0*C : (k0+kn)*C]
		} else {
			B = (*bp)[:kn*C]
			l.decodeRows(B, w, k0, kn)
		}
		l.outerRun(dx, C, dy[k0:], R, B, C, m, C, kn, k0 > 0, true)
	}
}

// decodeRows decodes n rows of w starting at row r0 into dst (float32),
// in parallel.
func (l *level) decodeRows(dst []float32, w *Matrix, r0, n int) {
	C := w.Cols
	rb := w.RowBytes()
	chunk := max(1, min(n, ceilDiv(1<<14, C)))
	parallel(ceilDiv(n, chunk), func(task int) {
		a := task * chunk
		b := min(n, a+chunk)
		src := w.Data[(r0+a)*rb : (r0+b)*rb]
		out := dst[a*C : b*C]
		switch w.Type {
		case quant.F32:
			copy(out, w.f32[(r0+a)*C:(r0+b)*C])
		case quant.F16, quant.BF16:
			l.convert(w.Type, out, src)
		default:
			l.q.decode[w.Type](out, src, C)
		}
	})
}

// convert decodes F16 or BF16 values to float32.
func (l *level) convert(t quant.DType, dst []float32, src []byte) {
	n := len(dst)
	n0 := n / (2 * l.v.w) * (2 * l.v.w)
	if n0 > 0 {
		if t == quant.BF16 {
			l.v.cvtBF16(&dst[0], &src[0], n0)
		} else {
			l.v.cvtF16(&dst[0], &src[0], n0)
		}
	}
	if n0 < n {
		decodeFloatRow(t, unsafe.Pointer(&src[2*n0]), dst[n0:])
	}
}

// MatMulBackWeight implements Kernels. dy and x are first copied into
// panels (mr rows of dy, one tile width of x columns, each contiguous over
// the m tokens) so that the tiles stream through memory with unit stride;
// row strides that are multiples of 4 KiB otherwise thrash the caches.
func (f fast) MatMulBackWeight(dw, dy, x []float32, m, rows, cols int) {
	if m < 0 || len(dw) < rows*cols || len(dy) < m*rows || len(x) < m*cols {
		panic(fmt.Sprintf("kernels.MatMulBackWeight: m=%d rows=%d cols=%d, len(dw)=%d, len(dy)=%d, len(x)=%d", m, rows, cols, len(dw), len(dy), len(x)))
	}
	if m == 0 || rows == 0 || cols == 0 {
		return
	}
	l := f.l
	mr, vec := l.outMR, l.outVec
	pw := 2 * vec
	nrt := ceilDiv(rows, mr)
	// dy panels: tile rt holds dy[i, rt·mr : rt·mr+mi] for every i, [m][mi].
	app := f32Pool.get(nrt * mr * m)
	ap := *app
	const tilesPerTask = 16
	parallel(ceilDiv(nrt, tilesPerTask), func(task int) {
		for rt := task * tilesPerTask; rt < min(nrt, (task+1)*tilesPerTask); rt++ {
			r0 := rt * mr
			mi := min(mr, rows-r0)
			p := ap[rt*mr*m : rt*mr*m+mi*m]
			for i := 0; i < m; i++ {
				copy(p[i*mi:(i+1)*mi], dy[i*rows+r0:i*rows+r0+mi])
			}
		}
	})
	colMain := cols / vec * vec
	npan := ceilDiv(colMain, pw)
	parallel(npan, func(pn int) {
		c0 := pn * pw
		w := min(pw, colMain-c0)
		bpp := f32Pool.get(m * w)
		bp := *bpp
		for i := 0; i < m; i++ {
			copy(bp[i*w:(i+1)*w], x[i*cols+c0:i*cols+c0+w])
		}
		kern := l.outerP
		for rt := 0; rt < nrt; rt++ {
			r0 := rt * mr
			mi := min(mr, rows-r0)
			kern[mi][w/vec](&dw[r0*cols+c0], cols*4, &ap[rt*mr*m], mi*4, &bp[0], w*4, m, 1)
		}
		f32Pool.put(bpp)
	})
	f32Pool.put(app)
	// Columns left over by the vector width.
	if colMain < cols {
		for r := 0; r < rows; r++ {
			for c := colMain; c < cols; c++ {
				var s float32
				for i := 0; i < m; i++ {
					s += dy[i*rows+r] * x[i*cols+c]
				}
				dw[r*cols+c] += s
			}
		}
	}
}

// Row implements Kernels.
func (f fast) Row(dst []float32, w *Matrix, i int) {
	if w.Cols == 0 {
		return
	}
	rb := w.RowBytes()
	src := w.Data[i*rb : (i+1)*rb]
	switch w.Type {
	case quant.F32:
		copy(dst[:w.Cols], w.f32[i*w.Cols:(i+1)*w.Cols])
	case quant.F16, quant.BF16:
		f.l.convert(w.Type, dst[:w.Cols], src)
	default:
		f.l.q.decode[w.Type](dst[:w.Cols], src, w.Cols)
	}
}

// RMSNorm implements Kernels.
func (f fast) RMSNorm(dst, x, weight []float32, eps float32) {
	n := len(weight)
	if n == 0 {
		return
	}
	v := &f.l.v
	n0 := n / v.w * v.w
	rows := len(x) / n
	_ = dst[rows*n-1]
	for r := 0; r < rows; r++ {
		xr := x[r*n : (r+1)*n]
		dr := dst[r*n : (r+1)*n]
		var ss float32
		if n0 > 0 {
			ss = v.sumsq(&xr[0], n0)
		}
		for _, e := range xr[n0:] {
			ss += e * e
		}
		s := float32(1 / math.Sqrt(float64(ss/float32(n)+eps)))
		if n0 > 0 {
			v.mulScale(&dr[0], &xr[0], &weight[0], n0, s)
		}
		for j := n0; j < n; j++ {
			dr[j] = xr[j] * s * weight[j]
		}
	}
}

// SiLUMul implements Kernels.
func (f fast) SiLUMul(dst, gate, up []float32) {
	n := len(gate)
	if n == 0 {
		return
	}
	_, _ = dst[n-1], up[n-1]
	v := &f.l.v
	run := func(a, b int) {
		m := (b - a) / v.w * v.w
		if m > 0 {
			v.siluMul(&dst[a], &gate[a], &up[a], m)
		}
		for i := a + m; i < b; i++ {
			g := gate[i]
			dst[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
		}
	}
	if n < elemParallel || Threads() == 1 {
		run(0, n)
		return
	}
	chunk := roundUp(ceilDiv(n, 4*Threads()), 64)
	parallel(ceilDiv(n, chunk), func(t int) { run(t*chunk, min(n, (t+1)*chunk)) })
}

// Softmax implements Kernels.
func (f fast) Softmax(x []float32) {
	n := len(x)
	if n == 0 {
		return
	}
	v := &f.l.v
	n0 := n / v.w * v.w
	mx := float32(math.Inf(-1))
	if n0 > 0 {
		mx = v.max(&x[0], n0)
	}
	for _, e := range x[n0:] {
		mx = max(mx, e)
	}
	var sum float32
	if n0 > 0 {
		sum = v.expSub(&x[0], n0, mx)
	}
	for i := n0; i < n; i++ {
		e := float32(math.Exp(float64(x[i] - mx)))
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	if n0 > 0 {
		v.scale(&x[0], n0, inv)
	}
	for i := n0; i < n; i++ {
		x[i] *= inv
	}
}

// Dot implements Kernels.
func (f fast) Dot(a, b []float32) float32 {
	n := len(a)
	if n == 0 {
		return 0
	}
	_ = b[n-1]
	v := &f.l.v
	n0 := n / v.w * v.w
	var s float32
	if n0 > 0 {
		s = v.dot(&a[0], &b[0], n0)
	}
	for i := n0; i < n; i++ {
		s += a[i] * b[i]
	}
	return s
}

// Axpy implements Kernels.
func (f fast) Axpy(alpha float32, x, y []float32) {
	n := len(x)
	if n == 0 {
		return
	}
	_ = y[n-1]
	v := &f.l.v
	n0 := n / v.w * v.w
	if n0 > 0 {
		v.axpy(&x[0], &y[0], n0, alpha)
	}
	for i := n0; i < n; i++ {
		y[i] += alpha * x[i]
	}
}
