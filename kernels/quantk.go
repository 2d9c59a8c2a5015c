package kernels

import (
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

const numTypes = 8 // > every quant.DType value

// quantKernels are a level's kernels for block-quantised weights.
type quantKernels struct {
	// maxM is the largest token count the integer kernels handle; above it
	// weights are decoded to float32 and the float tiles run.
	maxM int
	// qmr is the most tokens one integer tile handles.
	qmr int
	// decode[t] decodes rows of type t (len(dst)/cols of them) to float32.
	decode [numTypes]func(dst []float32, src []byte, cols int)
	// act32 and act256 quantise one activation row (see actq.go).
	act32, act256 func(dst []byte, x []float32)
	// qdot[t][mr] is the integer tile for type t and mr tokens (nil: none).
	qdot [numTypes][]qdotFn
}

// decodeFloat converts one row of a float type to float32.
func (q *quantKernels) decodeFloat(t quant.DType, dst []float32, src []byte) {
	decodeFloatRow(t, unsafe.Pointer(&src[0]), dst)
}

func goQuantKernels() quantKernels {
	q := quantKernels{maxM: 8, qmr: 4, act32: goQuantAct32, act256: goQuantAct256}
	for _, t := range []quant.DType{quant.Q8_0, quant.Q4_0, quant.Q4_K, quant.Q6_K} {
		q.decode[t] = func(dst []float32, src []byte, cols int) {
			rb, _ := t.RowBytes(cols)
			for r := 0; r < len(dst)/cols; r++ {
				refDecode(t, src[r*rb:(r+1)*rb], dst[r*cols:(r+1)*cols])
			}
		}
		q.qdot[t] = make([]qdotFn, q.qmr+1)
		for mr := 1; mr <= q.qmr; mr++ {
			q.qdot[t][mr] = goQdot(t, mr)
		}
	}
	return q
}

// gemvQuant is the integer-kernel product: activations are quantised to 8
// bits once, then each task runs the tiles over a range of weight rows.
func (l *level) gemvQuant(dst, x []float32, w *Matrix, m int) {
	t := w.Type
	N, K := w.Rows, w.Cols
	ab := actRowBytes(t, K)
	rb := w.RowBytes()
	bp := getBytes(m * ab)
	act := *bp
	quantAct := l.q.act32
	if t == quant.Q4_K || t == quant.Q6_K {
		quantAct = l.q.act256
	}
	for i := 0; i < m; i++ {
		quantAct(act[i*ab:(i+1)*ab], x[i*K:(i+1)*K])
	}
	qmr := l.q.qmr
	chunk := rowChunk(N, 1, m*K)
	parallel(ceilDiv(N, chunk), func(task int) {
		r0 := task * chunk
		r1 := min(N, r0+chunk)
		for i0 := 0; i0 < m; i0 += qmr {
			mr := min(qmr, m-i0)
			l.q.qdot[t][mr](&dst[i0*N+r0], N*4, &act[i0*ab], ab, &w.Data[r0*rb], rb, K, r1-r0)
		}
	})
	actPool.Put(bp)
}
