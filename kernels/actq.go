package kernels

import (
	"encoding/binary"
	"math"
	"sync"
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// Activations are quantised to 8 bits once per MatMul call for the integer
// kernels, in one of two layouts (the same for every level):
//
// act32 (for Q8_0, Q4_0 and Q5_0 weights): blocks of 32 with one float32 scale,
// stored in chunks of two blocks (64 elements), chunk c at 192·c:
//
//	[0:64)    int8 quants of blocks 2c and 2c+1
//	[64:128)  16 float32 "lane scales": the scale of block 2c 8 times, then
//	          that of block 2c+1 8 times (one per 4-element lane)
//	[128:192) 16 int32 lane corrections: −8 × the sum of the lane's 4 quants
//	          (used with Q4_0's +8 offset)
//
// An odd last block leaves the second half of its chunk zero.
//
// act256 (for Q4_K, Q5_K and Q6_K weights, like GGML's q8_K): super-blocks of 256
// with one float32 scale, 320 bytes each:
//
//	[0:256)   int8 quants
//	[256:288) 16 int16 sums of the quants of each 16 elements
//	[288:292) float32 scale
//
// Quants are round-to-nearest-even(x · 127/amax) with amax the largest |x|
// of the block, so they lie in −127…127, and the scale is amax/127.

const (
	act32Chunk  = 192
	act256Block = 320
)

// act32RowBytes and act256RowBytes are the bytes one activation row of k
// elements takes.
func act32RowBytes(k int) int  { return ceilDiv(k, 64) * act32Chunk }
func act256RowBytes(k int) int { return k / 256 * act256Block }

// quantBlock quantises x (one block) into q and returns the scale.
func quantBlock(x []float32, q []int8) float32 {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	if amax == 0 {
		clear(q)
		return 0
	}
	id := 127 / amax
	for i, v := range x {
		q[i] = int8(math.RoundToEven(float64(v * id)))
	}
	return amax / 127
}

// goQuantAct32 writes the act32 layout of row x into dst.
func goQuantAct32(dst []byte, x []float32) {
	clear(dst)
	nb := len(x) / 32
	for b := 0; b < nb; b++ {
		c, h := b/2, b%2
		ch := dst[c*act32Chunk : (c+1)*act32Chunk]
		q := unsafe.Slice((*int8)(unsafe.Pointer(&ch[32*h])), 32)
		d := quantBlock(x[32*b:32*b+32], q)
		for l := 0; l < 8; l++ {
			binary.LittleEndian.PutUint32(ch[64+32*h+4*l:], math.Float32bits(d))
			s := int32(q[4*l]) + int32(q[4*l+1]) + int32(q[4*l+2]) + int32(q[4*l+3])
			binary.LittleEndian.PutUint32(ch[128+32*h+4*l:], uint32(-8*s))
		}
	}
}

// goQuantAct256 writes the act256 layout of row x into dst.
func goQuantAct256(dst []byte, x []float32) {
	for b := 0; b < len(x)/256; b++ {
		blk := dst[b*act256Block : (b+1)*act256Block]
		clear(blk)
		q := unsafe.Slice((*int8)(unsafe.Pointer(&blk[0])), 256)
		d := quantBlock(x[256*b:256*b+256], q)
		for s := 0; s < 16; s++ {
			var sum int16
			for _, v := range q[16*s : 16*s+16] {
				sum += int16(v)
			}
			binary.LittleEndian.PutUint16(blk[256+2*s:], uint16(sum))
		}
		binary.LittleEndian.PutUint32(blk[288:], math.Float32bits(d))
	}
}

// actRowBytes returns the activation row size of weight type t for k columns.
func actRowBytes(t quant.DType, k int) int {
	if usesAct256(t) {
		return act256RowBytes(k)
	}
	return act32RowBytes(k)
}

var actPool sync.Pool

func getBytes(n int) *[]byte {
	if p, ok := actPool.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, n+64)
	return &b
}

// act accessors for the reference kernels.

func act32Quants(a []byte, b int) []int8 {
	return unsafe.Slice((*int8)(unsafe.Pointer(&a[(b/2)*act32Chunk+32*(b%2)])), 32)
}

func act32Scale(a []byte, b int) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(a[(b/2)*act32Chunk+64+32*(b%2):]))
}

func act256Quants(a []byte, b int) []int8 {
	return unsafe.Slice((*int8)(unsafe.Pointer(&a[b*act256Block])), 256)
}

func act256Sum(a []byte, b, s int) int32 {
	return int32(int16(binary.LittleEndian.Uint16(a[b*act256Block+256+2*s:])))
}

func act256Scale(a []byte, b int) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(a[b*act256Block+288:]))
}

// usesAct256 reports whether the integer kernels of t take act256
// activations (the 256-element super-block types) rather than act32.
func usesAct256(t quant.DType) bool {
	return t == quant.Q4_K || t == quant.Q5_K || t == quant.Q6_K || t == quant.IQ4_XS
}
