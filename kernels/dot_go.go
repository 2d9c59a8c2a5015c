package kernels

import (
	"math"
	"sync"
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// The pure-Go level: the same tiles as the assembly, written plainly. It is
// the fallback off amd64 and the reference the assembly tiles are tested
// against.

const (
	goMR = 4
	goNR = 4
)

var levelGo = newGoLevel()

func newGoLevel() *level {
	l := &level{name: "go", kvec: 1, mrMax: goMR, nrMax: []int{0, goNR, goNR, goNR, goNR}}
	for _, t := range []quant.DType{quant.F32, quant.F16, quant.BF16} {
		l.dot[t] = make([][]dotFn, goMR+1)
		for mr := 1; mr <= goMR; mr++ {
			l.dot[t][mr] = make([]dotFn, goNR+1)
			for nr := 1; nr <= goNR; nr++ {
				l.dot[t][mr][nr] = goDot(t, mr, nr)
			}
		}
	}
	l.q = goQuantKernels()
	l.outerP, l.outerR = goOuterTable(false), goOuterTable(true)
	l.outMR, l.outVec = goOuterMR, goOuterVec
	l.v = goVec
	return l
}

var (
	f16Once  sync.Once
	f16Table []float32 // every float16 bit pattern as float32
)

func f16Tab() []float32 {
	f16Once.Do(func() {
		t := make([]float32, 1<<16)
		for i := range t {
			t[i] = quant.F16ToF32(uint16(i))
		}
		f16Table = t
	})
	return f16Table
}

// decodeFloatRow converts n elements of a float-type row at p to float32.
func decodeFloatRow(t quant.DType, p unsafe.Pointer, dst []float32) {
	switch t {
	case quant.F32:
		copy(dst, unsafe.Slice((*float32)(p), len(dst)))
	case quant.BF16:
		for i, h := range unsafe.Slice((*uint16)(p), len(dst)) {
			dst[i] = math.Float32frombits(uint32(h) << 16)
		}
	case quant.F16:
		tab := f16Tab()
		for i, h := range unsafe.Slice((*uint16)(p), len(dst)) {
			dst[i] = tab[h]
		}
	}
}

func goDot(t quant.DType, mr, nr int) dotFn {
	eb := 4
	if t != quant.F32 {
		eb = 2
	}
	return func(dst *float32, ldd int, x unsafe.Pointer, ldx int, w unsafe.Pointer, ldw int, k int, ngroups int, acc int) {
		const chunk = 256
		var buf [chunk]float32
		for g := 0; g < ngroups; g++ {
			var sums [goMR][goNR]float32
			for c0 := 0; c0 < k; c0 += chunk {
				n := min(chunk, k-c0)
				for j := 0; j < nr; j++ {
					wj := unsafe.Add(w, (g*nr+j)*ldw+c0*eb)
					var wr []float32
					if t == quant.F32 {
						wr = unsafe.Slice((*float32)(wj), n)
					} else {
						wr = buf[:n]
						decodeFloatRow(t, wj, wr)
					}
					for i := 0; i < mr; i++ {
						xi := unsafe.Slice((*float32)(unsafe.Add(x, i*ldx+c0*4)), n)
						sums[i][j] += dot4(xi, wr)
					}
				}
			}
			for i := 0; i < mr; i++ {
				d := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(dst), i*ldd+g*nr*4)), nr)
				for j := range d {
					if acc != 0 {
						d[j] += sums[i][j]
					} else {
						d[j] = sums[i][j]
					}
				}
			}
		}
	}
}

// dot4 is a dot product with four independent partial sums.
func dot4(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
