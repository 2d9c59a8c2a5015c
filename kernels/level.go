package kernels

import (
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// dotFn computes float32 dot-product tiles. For g < ngroups and the tile's
// mr tokens i and nr weight rows j it sets (acc == 0) or adds to (acc != 0)
//
//	dst[g·nr + j + i·ldd] = Σ_{c<k} x[c + i·ldx] · W[g·nr + j][c]
//
// where row r of W starts ldw bytes after row r-1 at w; x holds float32
// activations (bf16 for the VDPBF16PS tiles). Strides are in bytes;
// k (elements) must be a multiple of the level's kvec. The weight element
// type (f32, bf16, f16) is fixed per function.
type dotFn func(dst *float32, ldd int, x unsafe.Pointer, ldx int, w unsafe.Pointer, ldw int, k int, ngroups int, acc int)

// level is one implementation of the inner loops: pure Go, AVX2 or AVX-512.
// The drivers in fast.go are shared; they split work into tiles and tasks
// and call these.
type level struct {
	name  string
	kvec  int   // float dot kernels need k % kvec == 0
	mrMax int   // most tokens per float tile
	nrMax []int // most weight rows per float tile, by token count (non-increasing)
	// dot[t][mr][nr] for t = F32, F16, BF16.
	dot [3][][]dotFn

	// dotPairs[mr][nr] multiply BF16 weights by bf16 activations in pairs
	// (VDPBF16PS; k a multiple of 32), and cvtPairs rounds float32
	// activations to bf16 for them; both nil where the CPU lacks AVX-512 BF16.
	dotPairs [][]dotFn
	cvtPairs func(dst []uint16, src []float32)
	// maskW16 and maskF32 copy weights with the entries of clear mask bits
	// zeroed (MatMulMasked): 32 16-bit or 16 float32 elements per mask
	// word; nil where the level has no such kernels (then Go does it).
	maskW16 func(dst, src *uint16, bits *byte, n int)
	maskF32 func(dst, src *float32, bits *byte, n int)
	// gram is AddGram's tile; nil where the level has none (Go then).
	gram gramFn

	q quantKernels

	// Outer-product tiles for the backward products: outerP/outerR[mr][nv]
	// for up to outMR rows and nv vectors of outVec columns.
	outerP, outerR [][3]outerFn
	outMR, outVec  int

	v vecKernels
}

func (l *level) dotFor(t quant.DType, mr, nr int) dotFn {
	f := l.dot[t][mr][nr]
	if f == nil {
		panic("kernels: no " + t.String() + " dot kernel for this tile")
	}
	return f
}

// fast is the Kernels implementation built on a level's inner loops and the
// worker pool.
type fast struct {
	l         *level
	exactBF16 bool // see ExactBF16
}

// Name implements Kernels.
func (f fast) Name() string { return f.l.name }
