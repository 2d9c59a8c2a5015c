package kernels

import (
	"math"
	"unsafe"
)

// outerFn is an outer-product tile (see internal/gen/outer.go): for i < mr
// and the tile's nv vectors of columns,
//
//	C[i*ldc + col] (+)= Σ_{kk<k} A(kk, i) · B[kk*ldb + col]
//
// with A(kk, i) at a + kk*lda + 4i ("P" layout) or a + i*lda + 4kk ("R").
// Strides in bytes; acc != 0 adds to C instead of overwriting it.
type outerFn func(c *float32, ldc int, a *float32, lda int, b *float32, ldb int, k int, acc int)

// vecKernels are a level's elementwise kernels. Each handles n rounded down
// to a multiple of w (2w for the conversions); callers do the rest in Go.
type vecKernels struct {
	w        int
	dot      func(x, y *float32, n int) float32
	sumsq    func(x *float32, n int) float32
	axpy     func(x, y *float32, n int, alpha float32)
	mulScale func(dst, x, w *float32, n int, s float32) // dst = x·s·w
	scale    func(x *float32, n int, s float32)
	max      func(x *float32, n int) float32
	expSub   func(x *float32, n int, mx float32) float32 // x = exp(x−mx), returns Σ
	siluMul  func(dst, gate, up *float32, n int)
	cvtBF16  func(dst *float32, src *byte, n int)
	cvtF16   func(dst *float32, src *byte, n int)
}

func f32s(p *float32, n int) []float32 { return unsafe.Slice(p, n) }

// goVec are the pure-Go elementwise kernels (w = 1: they do everything).
var goVec = vecKernels{
	w: 1,
	dot: func(x, y *float32, n int) float32 {
		if n == 0 {
			return 0
		}
		return dot4(f32s(x, n), f32s(y, n))
	},
	sumsq: func(x *float32, n int) float32 {
		if n == 0 {
			return 0
		}
		v := f32s(x, n)
		return dot4(v, v)
	},
	axpy: func(x, y *float32, n int, alpha float32) {
		if n > 0 {
			axpy(alpha, f32s(x, n), f32s(y, n))
		}
	},
	mulScale: func(dst, x, w *float32, n int, s float32) {
		if n == 0 {
			return
		}
		d, xv, wv := f32s(dst, n), f32s(x, n), f32s(w, n)
		for i := range d {
			d[i] = xv[i] * s * wv[i]
		}
	},
	scale: func(x *float32, n int, s float32) {
		if n == 0 {
			return
		}
		for i, v := range f32s(x, n) {
			*(*float32)(unsafe.Add(unsafe.Pointer(x), 4*i)) = v * s
		}
	},
	max: func(x *float32, n int) float32 {
		m := float32(math.Inf(-1))
		if n == 0 {
			return m
		}
		for _, v := range f32s(x, n) {
			m = max(m, v)
		}
		return m
	},
	expSub: func(x *float32, n int, mx float32) float32 {
		if n == 0 {
			return 0
		}
		var s float32
		v := f32s(x, n)
		for i := range v {
			e := float32(math.Exp(float64(v[i] - mx)))
			v[i] = e
			s += e
		}
		return s
	},
	siluMul: func(dst, gate, up *float32, n int) {
		if n == 0 {
			return
		}
		d, g, u := f32s(dst, n), f32s(gate, n), f32s(up, n)
		for i := range d {
			d[i] = g[i] / (1 + float32(math.Exp(float64(-g[i])))) * u[i]
		}
	},
	cvtBF16: func(dst *float32, src *byte, n int) {
		if n > 0 {
			decodeFloatRow(2, unsafe.Pointer(src), f32s(dst, n))
		}
	},
	cvtF16: func(dst *float32, src *byte, n int) {
		if n > 0 {
			decodeFloatRow(1, unsafe.Pointer(src), f32s(dst, n))
		}
	},
}

// goOuter returns the pure-Go outer-product tile for mr rows and nc columns
// in layout "P" or "R".
func goOuter(rowLayout bool, mr, nc int) outerFn {
	return func(c *float32, ldc int, a *float32, lda int, b *float32, ldb int, k int, acc int) {
		var sums [goOuterMR][2 * goOuterVec]float32
		for kk := 0; kk < k; kk++ {
			brow := f32s((*float32)(unsafe.Add(unsafe.Pointer(b), kk*ldb)), nc)
			for i := 0; i < mr; i++ {
				var av float32
				if rowLayout {
					av = *(*float32)(unsafe.Add(unsafe.Pointer(a), i*lda+4*kk))
				} else {
					av = *(*float32)(unsafe.Add(unsafe.Pointer(a), kk*lda+4*i))
				}
				s := sums[i][:nc]
				for j, bv := range brow {
					s[j] += av * bv
				}
			}
		}
		for i := 0; i < mr; i++ {
			crow := f32s((*float32)(unsafe.Add(unsafe.Pointer(c), i*ldc)), nc)
			for j := range crow {
				if acc != 0 {
					crow[j] += sums[i][j]
				} else {
					crow[j] = sums[i][j]
				}
			}
		}
	}
}

const (
	goOuterMR  = 4
	goOuterVec = 8
)

func goOuterTable(rowLayout bool) [][3]outerFn {
	t := make([][3]outerFn, goOuterMR+1)
	for mr := 1; mr <= goOuterMR; mr++ {
		for nv := 1; nv <= 2; nv++ {
			t[mr][nv] = goOuter(rowLayout, mr, nv*goOuterVec)
		}
	}
	return t
}
