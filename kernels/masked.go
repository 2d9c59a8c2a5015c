package kernels

import (
	"fmt"
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// MatMulMasked computes the product with the weights a bit mask keeps,
//
//	dst[i,r] = Σ_c x[i,c]·W[r,c]·keep(r,c)  for i < m,
//
// where keep(r,c) is bit c%8 (least significant first) of
// keep[r*stride + c/8]: 1 keeps the weight, 0 counts it as zero. It is
// MatMul by W⊙M without making W⊙M: a few masked rows at a time are copied
// into scratch memory and multiplied there, so a mask costs its bits, not a
// copy of the weights. w must be F32, F16 or BF16 and stride at least
// ceil(w.Cols/8). The arithmetic is k's, as for MatMul (activations of BF16
// products rounded to bf16 unless ExactBF16), so the result equals MatMul
// by a materialised W⊙M up to the order of the float32 sums.
func MatMulMasked(k Kernels, dst, x []float32, w *Matrix, keep []byte, stride, m int) {
	checkMatMul(dst, x, w, m)
	switch w.Type {
	case quant.F32, quant.F16, quant.BF16:
	default:
		panic(fmt.Sprintf("kernels.MatMulMasked: %s weights cannot be masked", w.Type))
	}
	if stride < (w.Cols+7)/8 || len(keep) < w.Rows*stride {
		panic(fmt.Sprintf("kernels.MatMulMasked: %d mask bytes of stride %d for %d×%d weights", len(keep), stride, w.Rows, w.Cols))
	}
	if m == 0 || w.Rows == 0 {
		return
	}
	if w.Cols == 0 {
		clear(dst[:m*w.Rows])
		return
	}
	if f, ok := k.(fast); ok {
		f.l.matMulMasked(dst, x, w, keep, stride, m, f.exactBF16, nil)
		return
	}
	maskedReference(k, dst, x, w, keep, stride, m)
}

// Premasked is W⊙M made once for the Kernels k (Premask), in the form in
// which k's masked products copy each block of rows before multiplying it
// (float32, or bf16 for the VDPBF16PS tiles). MatMulPremasked multiplies by
// it with exactly MatMulMasked's arithmetic, the same tiles over the same
// blocks, without masking again: a model run for many passes under one
// mask (an evaluation) trades memory, 4 bytes a weight (2 with VDPBF16PS),
// for the masking of every pass.
type Premasked struct {
	w      *Matrix
	keep   []byte
	stride int
	k      Kernels
	rows   unsafe.Pointer // nil: k has no masked tiles (MatMulMasked then)
	bytes  int64
}

// Premask prepares W⊙M for MatMulPremasked with k; the arguments are
// MatMulMasked's, and w and keep must stay unchanged while it is used.
func Premask(k Kernels, w *Matrix, keep []byte, stride int) *Premasked {
	switch w.Type {
	case quant.F32, quant.F16, quant.BF16:
	default:
		panic(fmt.Sprintf("kernels.Premask: %s weights cannot be masked", w.Type))
	}
	p := &Premasked{w: w, keep: keep, stride: stride, k: k}
	f, ok := k.(fast)
	if !ok || w.Rows == 0 || w.Cols == 0 {
		return p
	}
	if stride < (w.Cols+7)/8 || len(keep) < w.Rows*stride {
		panic(fmt.Sprintf("kernels.Premask: %d mask bytes of stride %d for %d×%d weights", len(keep), stride, w.Rows, w.Cols))
	}
	pairs := f.l.maskedPairs(w, f.exactBF16)
	n, eb := w.Rows*w.Cols, 4 // elements, bytes each
	if pairs {
		buf := make([]uint16, n)
		p.rows, eb = unsafe.Pointer(&buf[0]), 2
	} else {
		buf := make([]float32, n)
		p.rows = unsafe.Pointer(&buf[0])
	}
	p.bytes = int64(n) * int64(eb)
	parallel(ceilDiv(w.Rows, decodeRows), func(task int) {
		s0 := task * decodeRows
		s1 := min(w.Rows, s0+decodeRows)
		f.l.maskRows(unsafe.Add(p.rows, s0*w.Cols*eb), pairs, w, s0, s1, keep, stride)
	})
	return p
}

// Bytes is the memory the masked rows take.
func (p *Premasked) Bytes() int64 { return p.bytes }

// MatMulPremasked is MatMulMasked(k, dst, x, w, keep, stride, m) for the
// w, keep and stride that p was made from, by p's masked rows; k must be
// the Kernels p was made for (any other gets MatMulMasked).
func MatMulPremasked(k Kernels, dst, x []float32, p *Premasked, m int) {
	f, ok := k.(fast)
	if p.rows == nil || !ok || p.k != k {
		MatMulMasked(k, dst, x, p.w, p.keep, p.stride, m)
		return
	}
	checkMatMul(dst, x, p.w, m)
	if m == 0 {
		return
	}
	f.l.matMulMasked(dst, x, p.w, p.keep, p.stride, m, f.exactBF16, p.rows)
}

// RoundsBF16 reports whether k rounds the activations of products with
// BF16 weights to bf16 (the default; false under ExactBF16 and for
// implementations of other packages).
func RoundsBF16(k Kernels) bool {
	switch k := k.(type) {
	case fast:
		return !k.exactBF16
	case Portable:
		return !k.ExactBF16
	}
	return false
}

// maskedReference is MatMulMasked for any Kernels: one masked row at a
// time, dotted with every token.
func maskedReference(k Kernels, dst, x []float32, w *Matrix, keep []byte, stride, m int) {
	N, K := w.Rows, w.Cols
	if w.Type == quant.BF16 && RoundsBF16(k) {
		xr := make([]float32, m*K)
		roundBF16(xr, x[:m*K])
		x = xr
	}
	row := make([]float32, K)
	for r := 0; r < N; r++ {
		k.Row(row, w, r)
		maskGo(row, keep[r*stride:])
		for i := 0; i < m; i++ {
			dst[i*N+r] = k.Dot(x[i*K:(i+1)*K], row)
		}
	}
}

// maskGo zeroes the elements of v whose bit in bits is clear.
func maskGo[T float32 | uint16](v []T, bits []byte) {
	for j := 0; j*8 < len(v); j++ {
		b := bits[j]
		if b == 0xff {
			continue
		}
		seg := v[j*8 : min(len(v), j*8+8)]
		for i := range seg {
			if b&(1<<i) == 0 {
				seg[i] = 0
			}
		}
	}
}

// maskedPairs reports whether the masked products of w copy its rows as
// bf16 for the VDPBF16PS tiles (else as float32).
func (l *level) maskedPairs(w *Matrix, exact bool) bool {
	return w.Type == quant.BF16 && !exact && l.dotPairs != nil
}

// matMulMasked is MatMulMasked on a level: like gemmDecoded, row blocks
// are split over the threads, and each task copies decodeRows masked rows
// at a time into scratch (bf16 for the VDPBF16PS tiles, else float32) and
// runs every token tile over them. With pre (Premasked's rows, in that
// form) the rows are read from there instead.
func (l *level) matMulMasked(dst, x []float32, w *Matrix, keep []byte, stride, m int, exact bool, pre unsafe.Pointer) {
	N, K := w.Rows, w.Cols
	round := w.Type == quant.BF16 && !exact
	pairs := l.maskedPairs(w, exact)
	xf := x[:m*K] // the activations as the products see them, for the tail
	// The VDPBF16PS tiles take their own bf16 copy; the float32 one is then
	// only read by the tail, which rows of whole vectors do not have.
	if round && !(pairs && K%32 == 0) {
		bp := f32Pool.get(m * K)
		defer f32Pool.put(bp)
		xf = *bp
		roundBF16(xf, x[:m*K])
	}
	tiles := func(mr, nr int) dotFn { return l.dotFor(quant.F32, mr, nr) }
	xp, xbytes, kvec, eb := unsafe.Pointer(&xf[0]), 4, l.kvec, 4
	if pairs {
		bp := u16Pool.get(m * K)
		defer u16Pool.put(bp)
		xb := *bp
		l.cvtPairs(xb, x[:m*K])
		tiles = func(mr, nr int) dotFn { return l.dotPairs[mr][nr] }
		xp, xbytes, kvec, eb = unsafe.Pointer(&xb[0]), 2, 32, 2
	}
	kmain := K / kvec * kvec
	mr := min(m, l.mrMax)
	rb, tb, nrb, ntb := taskBlocks(N, m, mr, decodeRows)
	kb := kBlock(kmain, kvec, gemmKBlock/2)
	block := decodeRows
	if m <= l.mrMax {
		// One token tile: no reuse to keep in L1, so mask bigger blocks
		// (about 32 KiB) over the whole row, fewer calls.
		kb = kmain
		block = max(decodeRows, min(rb, roundUp(ceilDiv(32<<10, K*eb), decodeRows)))
	}
	parallel(nrb*ntb, func(task int) {
		r0 := (task / ntb) * rb
		r1 := min(N, r0+rb)
		i0 := (task % ntb) * tb
		i1 := min(m, i0+tb)
		var buf unsafe.Pointer
		switch {
		case pre != nil:
		case pairs:
			bp := u16Pool.get(block * K)
			defer u16Pool.put(bp)
			buf = unsafe.Pointer(&(*bp)[0])
		default:
			bp := f32Pool.get(block * K)
			defer f32Pool.put(bp)
			buf = unsafe.Pointer(&(*bp)[0])
		}
		for s0 := r0; s0 < r1; s0 += block {
			s1 := min(r1, s0+block)
			if pre != nil {
				buf = unsafe.Add(pre, s0*K*eb)
			} else {
				l.maskRows(buf, pairs, w, s0, s1, keep, stride)
			}
			for k0 := 0; k0 < kmain || k0 == 0; k0 += kb {
				kn := min(kb, kmain-k0) // 0 when every column is in the tail: the tiles then clear dst
				for i := i0; i < i1; i += mr {
					t := min(mr, i1-i)
					runDotRows(tiles, t, l.nrMax[t], dst[i*N+s0:], N, unsafe.Add(xp, (i*K+k0)*xbytes), K*xbytes,
						unsafe.Add(buf, k0*eb), K*eb, kn, s1-s0, k0 > 0)
				}
				if kmain == 0 {
					break
				}
			}
			maskedTail(dst, xf, buf, pairs, N, K, i0, i1, s0, s1, kmain)
		}
	})
}

// maskRows copies rows [s0, s1) of w, masked, into buf: as bf16 when
// asBF16 (w is BF16), else decoded to float32.
func (l *level) maskRows(buf unsafe.Pointer, asBF16 bool, w *Matrix, s0, s1 int, keep []byte, stride int) {
	K := w.Cols
	rbytes := w.RowBytes()
	if asBF16 && l.maskW16 != nil && K%32 == 0 && stride == K/8 {
		// Rows and their bits are contiguous: one call for the block.
		n := (s1 - s0) * K
		l.maskW16((*uint16)(buf), (*uint16)(unsafe.Pointer(&w.Data[s0*rbytes])), &keep[s0*stride], n)
		return
	}
	for r := s0; r < s1; r++ {
		bits := keep[r*stride:]
		if asBF16 {
			out := unsafe.Slice((*uint16)(unsafe.Add(buf, (r-s0)*K*2)), K)
			src := unsafe.Slice((*uint16)(unsafe.Pointer(&w.Data[r*rbytes])), K)
			n := 0
			if l.maskW16 != nil {
				n = K / 32 * 32
				if n > 0 {
					l.maskW16(&out[0], &src[0], &bits[0], n)
				}
			}
			copy(out[n:], src[n:])
			maskGo(out[n:], bits[n/8:])
			continue
		}
		out := unsafe.Slice((*float32)(unsafe.Add(buf, (r-s0)*K*4)), K)
		l.decodeRows(out, w, r, 1)
		n := 0
		if l.maskF32 != nil {
			n = K / 16 * 16
			if n > 0 {
				l.maskF32(&out[0], &out[0], &bits[0], n)
			}
		}
		maskGo(out[n:], bits[n/8:])
	}
}

// maskedTail adds the columns from kmain on, which the tiles left out.
func maskedTail(dst, xf []float32, buf unsafe.Pointer, asBF16 bool, N, K, i0, i1, s0, s1, kmain int) {
	if kmain >= K {
		return
	}
	var wbuf [32]float32
	wr := wbuf[:K-kmain]
	for r := s0; r < s1; r++ {
		if asBF16 {
			decodeFloatRow(quant.BF16, unsafe.Add(buf, ((r-s0)*K+kmain)*2), wr)
		} else {
			copy(wr, unsafe.Slice((*float32)(unsafe.Add(buf, ((r-s0)*K+kmain)*4)), K-kmain))
		}
		for i := i0; i < i1; i++ {
			dst[i*N+r] += dot(xf[i*K+kmain:(i+1)*K], wr)
		}
	}
}
