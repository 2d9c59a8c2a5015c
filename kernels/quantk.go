package kernels

import "github.com/masque-ai/masque/quant"

const numTypes = 16 // > every quant.DType value (checked by TestNumTypes)

// quantKernels are a level's kernels for block-quantised weights.
type quantKernels struct {
	// maxM[t] is the largest token count the integer kernels handle for
	// type t; above it weights are decoded to float32 and the float tiles
	// run.
	maxM [numTypes]int
	// qmr[t] is the most tokens one integer tile of type t handles.
	qmr [numTypes]int
	// decode[t] decodes rows of type t (len(dst)/cols of them) to float32.
	decode [numTypes]func(dst []float32, src []byte, cols int)
	// act32 and act256 quantise one activation row (see actq.go).
	act32, act256 func(dst []byte, x []float32)
	// qdot[t][mr] is the integer tile for type t and mr tokens (nil: none).
	qdot [numTypes][]qdotFn
}

func goQuantKernels() quantKernels {
	q := quantKernels{act32: goQuantAct32, act256: goQuantAct256}
	for _, t := range []quant.DType{quant.Q8_0, quant.Q4_0, quant.Q4_1, quant.Q5_0, quant.Q5_1, quant.IQ4_NL, quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.IQ4_XS} {
		q.maxM[t] = 8
		q.decode[t] = func(dst []float32, src []byte, cols int) {
			rb, _ := t.RowBytes(cols)
			for r := 0; r < len(dst)/cols; r++ {
				refDecode(t, src[r*rb:(r+1)*rb], dst[r*cols:(r+1)*cols])
			}
		}
		q.qmr[t] = 8
		q.qdot[t] = make([]qdotFn, q.qmr[t]+1)
		for mr := 1; mr <= q.qmr[t]; mr++ {
			q.qdot[t][mr] = goQdot(t, mr)
		}
	}
	// Every other block type (Q2_K, Q3_K, Q8_K) has no integer tile
	// yet: its rows are decoded to
	// float32 by package quant's decoder and multiplied by the float tiles
	// (gemmDecoded) for any number of tokens.
	for t := quant.DType(0); t < numTypes && t.Valid(); t++ {
		if t.Quantized() && q.decode[t] == nil {
			q.decode[t] = func(dst []float32, src []byte, cols int) {
				rb, _ := t.RowBytes(cols)
				for r := 0; r < len(dst)/cols; r++ {
					_ = quant.DequantizeRow(t, src[r*rb:(r+1)*rb], dst[r*cols:(r+1)*cols])
				}
			}
		}
	}
	return q
}

// qBlockBytes bounds the weight bytes a task runs all its token groups over
// before moving on, so that they are re-read from L2.
const qBlockBytes = 256 << 10

// gemvQuant is the integer-kernel product: activations are quantised to 8
// bits once, then each task runs the tiles over a range of weight rows, in
// blocks of rows that stay in cache while every group of qmr tokens passes
// over them.
func (l *level) gemvQuant(dst, x []float32, w *Matrix, m int) {
	t := w.Type
	N, K := w.Rows, w.Cols
	ab := actRowBytes(t, K)
	rb := w.RowBytes()
	bp := getBytes(m * ab)
	act := *bp
	quantAct := l.q.act32
	if usesAct256(t) {
		quantAct = l.q.act256
	}
	qrows := func(a, b int) {
		for i := a; i < b; i++ {
			quantAct(act[i*ab:(i+1)*ab], x[i*K:(i+1)*K])
		}
	}
	if m*K < elemParallel || m < 4 {
		qrows(0, m)
	} else {
		per := ceilDiv(m, 2*Threads())
		parallel(ceilDiv(m, per), func(task int) { qrows(task*per, min(m, (task+1)*per)) })
	}
	qmr := l.q.qmr[t]
	blk := maxCallRows
	if m > qmr {
		blk = min(blk, max(8, qBlockBytes/rb))
	}
	chunk := rowChunk(N, 1, m*K)
	parallel(ceilDiv(N, chunk), func(task int) {
		r0 := task * chunk
		r1 := min(N, r0+chunk)
		for s0 := r0; s0 < r1; s0 += blk {
			s1 := min(r1, s0+blk)
			for i0 := 0; i0 < m; i0 += qmr {
				mr := min(qmr, m-i0)
				l.q.qdot[t][mr](&dst[i0*N+s0], N*4, &act[i0*ab], ab, &w.Data[s0*rb], rb, K, s1-s0)
			}
		}
	})
	actPool.Put(bp)
}
