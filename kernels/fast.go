package kernels

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// Blocking parameters of the float GEMM (m > mrMax).
const (
	gemmRowBlock      = 64   // weight rows per task
	gemmTokenBlock    = 96   // tokens per task
	gemmKBlockDefault = 1024 // reduction length per pass, so tiles stay in L1/L2
	minTaskMACs       = 1 << 16
	maxCallRows       = 1024 // weight rows per assembly call
)

var gemmKBlock = gemmKBlockDefault

// Batched decoding: up to midTokens tokens run each block of about
// midRowBytes of weight rows for all their token tiles in turn.
var (
	midTokens   = 32
	midRowBytes = 16 << 10
)

// taskBlocks splits an m-token product with N weight rows into tasks of rb
// rows (a multiple of align, at most gemmRowBlock) × tb tokens (a multiple
// of mr): nrb × ntb of them. With few row blocks the tokens are split finer
// so every thread has work.
func taskBlocks(N, m, mr, align int) (rb, tb, nrb, ntb int) {
	rb = min(roundUp(N, align), gemmRowBlock)
	tb = roundUp(min(m, gemmTokenBlock), mr)
	nrb, ntb = ceilDiv(N, rb), ceilDiv(m, tb)
	for nrb*ntb < 2*Threads() && tb > mr {
		tb = roundUp(tb/2, mr)
		ntb = ceilDiv(m, tb)
	}
	return rb, tb, nrb, ntb
}

// kBlock splits a reduction of length k (a multiple of kvec) into passes of
// at most about target elements, all of nearly the same length.
func kBlock(k, kvec, target int) int {
	if k == 0 {
		return 0
	}
	n := ceilDiv(k, target)
	return roundUp(ceilDiv(k, n), kvec)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// rowChunk picks how many weight rows one task of a row-split product gets:
// a multiple of nr, about four tasks per thread, at least minTaskMACs work.
func rowChunk(n, nr, macsPerRow int) int {
	th := Threads()
	c := ceilDiv(n, 4*th)
	c = max(c, ceilDiv(minTaskMACs, max(macsPerRow, 1)))
	c = roundUp(c, nr)
	return min(c, roundUp(n, nr))
}

func checkMatMul(dst, x []float32, w *Matrix, m int) {
	if m < 0 || len(dst) < m*w.Rows || len(x) < m*w.Cols {
		panic(fmt.Sprintf("kernels.MatMul: m=%d, %d×%d weights, len(dst)=%d, len(x)=%d", m, w.Rows, w.Cols, len(dst), len(x)))
	}
}

// MatMul implements Kernels.
func (f fast) MatMul(dst, x []float32, w *Matrix, m int) {
	checkMatMul(dst, x, w, m)
	if m == 0 || w.Rows == 0 {
		return
	}
	if w.Cols == 0 {
		clear(dst[:m*w.Rows])
		return
	}
	switch w.Type {
	case quant.BF16:
		if f.exactBF16 {
			f.l.matMulFloat(dst, x, w, m)
		} else {
			f.l.matMulBF16Rounded(dst, x, w, m)
		}
	case quant.F32, quant.F16:
		f.l.matMulFloat(dst, x, w, m)
	default:
		f.l.matMulQuant(dst, x, w, m)
	}
}

func floatElemBytes(t quant.DType) int {
	if t == quant.F32 {
		return 4
	}
	return 2
}

// dotRows runs the (mr × nr) float tile over nrows weight rows starting at w,
// writing dst[i*ldd + r]. k must be a multiple of kvec; the caller adds the
// remainder.
func (l *level) dotRows(t quant.DType, mr, nr int, dst []float32, ldd int, x []float32, ldx int, w unsafe.Pointer, ldw, k, nrows int, acc bool) {
	tiles := func(mr, nr int) dotFn { return l.dotFor(t, mr, nr) }
	runDotRows(tiles, mr, nr, dst, ldd, unsafe.Pointer(&x[0]), ldx*4, w, ldw, k, nrows, acc)
}

// runDotRows calls the tiles of tiles(mr, ·) over nrows weight rows; x and
// its stride ldx (bytes) are in the tiles' activation type.
func runDotRows(tiles func(mr, nr int) dotFn, mr, nr int, dst []float32, ldd int, x unsafe.Pointer, ldx int, w unsafe.Pointer, ldw, k, nrows int, acc bool) {
	a := 0
	if acc {
		a = 1
	}
	// At most maxCallRows rows per assembly call, so a goroutine is never
	// unpreemptible for long.
	g := nrows / nr
	for g0 := 0; g0 < g; g0 += maxCallRows / nr {
		gn := min(g-g0, maxCallRows/nr)
		tiles(mr, nr)(&dst[g0*nr], ldd*4, x, ldx, unsafe.Add(w, g0*nr*ldw), ldw, k, gn, a)
	}
	if rest := nrows % nr; rest > 0 {
		done := nrows - rest
		tiles(mr, rest)(&dst[done], ldd*4, x, ldx, unsafe.Add(w, done*ldw), ldw, k, 1, a)
	}
}

// floatTail adds Σ_{c ≥ k0} x[i,c]·W[r,c] for tokens i0 ≤ i < i1 and rows
// r0 ≤ r < r1 (the columns the vector tiles left out).
func floatTail(t quant.DType, dst, x []float32, w *Matrix, i0, i1, r0, r1, k0 int) {
	K, N := w.Cols, w.Rows
	if k0 >= K {
		return
	}
	eb := floatElemBytes(t)
	var buf [64]float32
	wr := buf[:K-k0]
	for r := r0; r < r1; r++ {
		decodeFloatRow(t, unsafe.Pointer(&w.Data[r*K*eb+k0*eb]), wr)
		for i := i0; i < i1; i++ {
			xr := x[i*K+k0 : (i+1)*K]
			var s float32
			for c, v := range wr {
				s += xr[c] * v
			}
			dst[i*N+r] += s
		}
	}
}

func (l *level) matMulFloat(dst, x []float32, w *Matrix, m int) {
	t := w.Type
	kmain := w.Cols / l.kvec * l.kvec
	l.floatProduct(dst, w, m, floatPlan{
		tiles: func(mr, nr int) dotFn { return l.dotFor(t, mr, nr) },
		kmain: kmain, kvec: l.kvec,
		x: unsafe.Pointer(&x[0]), xbytes: 4,
		tail: func(i0, i1, r0, r1 int) { floatTail(t, dst, x, w, i0, i1, r0, r1, kmain) },
	})
}

// floatPlan says how floatProduct runs one product: with which tiles, on
// activations of which type, and how the columns past kmain are added.
type floatPlan struct {
	tiles       func(mr, nr int) dotFn
	kmain, kvec int            // columns the tiles cover (a multiple of kvec)
	x           unsafe.Pointer // m × w.Cols activations
	xbytes      int            // bytes per activation (4, or 2 for bf16)
	tail        func(i0, i1, r0, r1 int)
}

// floatProduct splits dst = x·Wᵀ into tasks: rows of W for a few tokens
// (decoding), or blocks of rows × tokens × reduction passes (prompts).
func (l *level) floatProduct(dst []float32, w *Matrix, m int, p floatPlan) {
	N, K := w.Rows, w.Cols
	eb := floatElemBytes(w.Type)
	ldw := K * eb
	ldx := K * p.xbytes
	kmain := p.kmain
	wp := unsafe.Pointer(&w.Data[0])
	if m <= l.mrMax {
		mr, nr := m, l.nrMax[m]
		chunk := rowChunk(N, nr, m*K)
		parallel(ceilDiv(N, chunk), func(task int) {
			r0 := task * chunk
			r1 := min(N, r0+chunk)
			runDotRows(p.tiles, mr, nr, dst[r0:], N, p.x, ldx, unsafe.Add(wp, r0*ldw), ldw, kmain, r1-r0, false)
			p.tail(0, m, r0, r1)
		})
		return
	}
	mr := l.mrMax
	nr := l.nrMax[mr]
	if m <= midTokens {
		// A few token tiles (batched decoding): split by weight rows as
		// for one token, and run every token tile over a small block of
		// rows while it is in L1/L2, so the weights stream from memory
		// once, in order, with the hardware prefetcher's help.
		sub := roundUp(max(nr, midRowBytes/max(ldw, 1)), nr)
		chunk := roundUp(rowChunk(N, nr, m*K), sub)
		parallel(ceilDiv(N, chunk), func(task int) {
			r0 := task * chunk
			r1 := min(N, r0+chunk)
			prefetchL2((*byte)(unsafe.Add(wp, r0*ldw)), min(sub, r1-r0)*ldw, 0, 1)
			for s0 := r0; s0 < r1; s0 += sub {
				s1 := min(r1, s0+sub)
				// Ask for the next block while this one is multiplied.
				if s1 < r1 {
					prefetchL2((*byte)(unsafe.Add(wp, s1*ldw)), (min(r1, s1+sub)-s1)*ldw, 0, 1)
				}
				for i := 0; i < m; i += mr {
					runDotRows(p.tiles, min(mr, m-i), l.nrMax[min(mr, m-i)], dst[i*N+s0:], N, unsafe.Add(p.x, i*ldx), ldx,
						unsafe.Add(wp, s0*ldw), ldw, kmain, s1-s0, false)
				}
			}
			p.tail(0, m, r0, r1)
		})
		return
	}
	rb, tb, nrb, ntb := taskBlocks(N, m, mr, nr)
	kb := kBlock(kmain, p.kvec, gemmKBlock)
	parallel(nrb*ntb, func(task int) {
		r0 := (task / ntb) * rb
		r1 := min(N, r0+rb)
		i0 := (task % ntb) * tb
		i1 := min(m, i0+tb)
		// The first token tile would otherwise wait on memory for every
		// line of the weight block and of the output rows; ask for all of
		// them at once.
		prefetchL2(&w.Data[r0*ldw], (r1-r0)*ldw, 0, 1)
		prefetchL2((*byte)(unsafe.Pointer(&dst[i0*N+r0])), (r1-r0)*4, N*4, i1-i0)
		for k0 := 0; k0 < kmain || k0 == 0; k0 += kb {
			kn := min(kb, kmain-k0)
			for i := i0; i < i1; i += mr {
				runDotRows(p.tiles, min(mr, i1-i), nr, dst[i*N+r0:], N, unsafe.Add(p.x, i*ldx+k0*p.xbytes), ldx,
					unsafe.Add(wp, r0*ldw+k0*eb), ldw, kn, r1-r0, k0 > 0)
			}
			if kmain == 0 {
				break
			}
		}
		p.tail(i0, i1, r0, r1)
	})
}

// matMulBF16Rounded multiplies by BF16 weights with the activations rounded
// to bf16 (see ExactBF16): with VDPBF16PS where the CPU has it, otherwise
// by rounding x into float32 scratch and using the widening tiles (the
// products are exact either way; only the order of the float32 sums
// differs).
func (l *level) matMulBF16Rounded(dst, x []float32, w *Matrix, m int) {
	K := w.Cols
	if l.dotPairs == nil {
		bp := f32Pool.get(m * K)
		xr := *bp
		roundBF16(xr, x[:m*K])
		l.matMulFloat(dst, xr, w, m)
		f32Pool.put(bp)
		return
	}
	bp := u16Pool.get(m * K)
	xb := *bp
	l.cvtPairs(xb, x[:m*K])
	const kvec = 32 // bf16 pairs per 512-bit vector
	kmain := K / kvec * kvec
	l.floatProduct(dst, w, m, floatPlan{
		tiles: func(mr, nr int) dotFn { return l.dotPairs[mr][nr] },
		kmain: kmain, kvec: kvec,
		x: unsafe.Pointer(&xb[0]), xbytes: 2,
		tail: func(i0, i1, r0, r1 int) { bf16PairsTail(dst, xb, w, i0, i1, r0, r1, kmain) },
	})
	u16Pool.put(bp)
}

// bf16PairsTail adds Σ_{c ≥ k0} xb[i,c]·W[r,c] (both bf16) for tokens
// i0 ≤ i < i1 and rows r0 ≤ r < r1.
func bf16PairsTail(dst []float32, xb []uint16, w *Matrix, i0, i1, r0, r1, k0 int) {
	K, N := w.Cols, w.Rows
	if k0 >= K {
		return
	}
	var wbuf, xbuf [32]float32
	wr, xr := wbuf[:K-k0], xbuf[:K-k0]
	for r := r0; r < r1; r++ {
		decodeFloatRow(quant.BF16, unsafe.Pointer(&w.Data[(r*K+k0)*2]), wr)
		for i := i0; i < i1; i++ {
			decodeFloatRow(quant.BF16, unsafe.Pointer(&xb[i*K+k0]), xr)
			dst[i*N+r] += dot(xr, wr)
		}
	}
}

// roundBF16 sets dst[i] to src[i] rounded to the nearest bf16 value (ties
// to even; NaN stays NaN), as float32.
func roundBF16(dst, src []float32) {
	for i, v := range src {
		dst[i] = quant.BF16ToF32(quant.F32ToBF16(v))
	}
}

// scratch recycles buffers of T.
type scratch[T any] struct{ p sync.Pool }

// get returns a buffer of n elements (contents undefined).
func (s *scratch[T]) get(n int) *[]T {
	if p, ok := s.p.Get().(*[]T); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]T, n)
	return &b
}

// put hands a buffer from get back.
func (s *scratch[T]) put(b *[]T) { s.p.Put(b) }

var (
	f32Pool scratch[float32] // decoded weights, rounded activations, panels
	u16Pool scratch[uint16]  // bf16 activations
)

// matMulQuant multiplies by a block-quantised matrix. Up to maxM tokens use
// the integer kernels on 8-bit activations; more tokens decode row blocks of
// the weights to float32 once and reuse them for all tokens with the float
// tiles.
func (l *level) matMulQuant(dst, x []float32, w *Matrix, m int) {
	if m <= l.q.maxM[w.Type] && l.q.qdot[w.Type] != nil {
		l.gemvQuant(dst, x, w, m)
		return
	}
	l.gemmDecoded(dst, x, w, m)
}

const decodeRows = 8 // weight rows decoded to float32 at a time

func (l *level) gemmDecoded(dst, x []float32, w *Matrix, m int) {
	N, K := w.Rows, w.Cols
	rbytes := w.RowBytes()
	kmain := K / l.kvec * l.kvec
	mr := min(m, l.mrMax)
	nr := l.nrMax[mr]
	rb, tb, nrb, ntb := taskBlocks(N, m, mr, decodeRows)
	// Half the float path's pass: the decoded rows and the activation tile
	// then share L1.
	kb := kBlock(kmain, l.kvec, gemmKBlock/2)
	decode := l.q.decode[w.Type]
	parallel(nrb*ntb, func(task int) {
		r0 := (task / ntb) * rb
		r1 := min(N, r0+rb)
		i0 := (task % ntb) * tb
		i1 := min(m, i0+tb)
		bp := f32Pool.get(decodeRows * K)
		buf := *bp
		prefetchL2(&w.Data[r0*rbytes], (r1-r0)*rbytes, 0, 1)
		prefetchL2((*byte)(unsafe.Pointer(&dst[i0*N+r0])), (r1-r0)*4, N*4, i1-i0)
		for s0 := r0; s0 < r1; s0 += decodeRows {
			s1 := min(r1, s0+decodeRows)
			decode(buf[:(s1-s0)*K], w.Data[s0*rbytes:s1*rbytes], K)
			bw := unsafe.Pointer(&buf[0])
			for k0 := 0; k0 < kmain || k0 == 0; k0 += kb {
				kn := min(kb, kmain-k0)
				for i := i0; i < i1; i += mr {
					l.dotRows(quant.F32, min(mr, i1-i), nr, dst[i*N+s0:], N, x[i*K+k0:], K,
						unsafe.Add(bw, k0*4), K*4, kn, s1-s0, k0 > 0)
				}
				if kmain == 0 {
					break
				}
			}
		}
		f32Pool.put(bp)
	})
}
