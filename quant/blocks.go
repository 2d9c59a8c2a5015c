package quant

import (
	"encoding/binary"
	"math"
)

// This file holds the block codecs for Q8_0 and Q4_0 and the dispatch for all
// block formats; Q4_K, Q6_K and the shared k-quant search live in quant_k.go,
// the other formats in blocks_more.go.
//
// The quantisers follow GGML's reference ("_ref") quantisers step by step in
// float32 arithmetic and write byte-identical blocks: the places where the
// reference build evaluates a·b+c as a fused multiply-add use fma32 or
// roundMulAdd (quant_fma.go); every other product is rounded on its own,
// through explicit float32 conversions where it feeds an addition, which
// stops the Go compiler from fusing it on architectures where it otherwise
// would. The results are therefore the same on every GOARCH. The decoders
// match GGML's scalar dequantisers bit for bit.
//
// One deliberate difference: when a block's scale does not fit in float16
// (|x| beyond about 65504 × the largest quant), GGML stores an infinite scale,
// which decodes to Inf/NaN. Here the scale saturates at the largest finite
// float16 and the quants are clamped, so finite input always decodes to
// finite output.

// dequantizeBlocks and quantizeBlocks handle the block formats. The sizes have
// been checked by the caller.
func dequantizeBlocks(t DType, src []byte, dst []float32) {
	var fn func(b []byte, y []float32)
	switch t {
	case Q8_0:
		fn = dequantQ8_0
	case Q4_0:
		fn = dequantQ4_0
	case Q4_K:
		fn = dequantQ4K
	case Q6_K:
		fn = dequantQ6K
	case Q4_1:
		fn = dequantQ4_1
	case Q5_0:
		fn = dequantQ5_0
	case Q5_1:
		fn = dequantQ5_1
	case Q2_K:
		fn = dequantQ2K
	case Q3_K:
		fn = dequantQ3K
	case Q5_K:
		fn = dequantQ5K
	case Q8_K:
		fn = dequantQ8K
	case IQ4_NL:
		fn = dequantIQ4NL
	case IQ4_XS:
		fn = dequantIQ4XS
	default:
		panic("quant: no block decoder for " + t.String())
	}
	be, bb := t.BlockElems(), t.BlockBytes()
	for i := 0; i < len(dst)/be; i++ {
		fn(src[i*bb:(i+1)*bb], dst[i*be:(i+1)*be])
	}
}

func quantizeBlocks(t DType, src []float32, dst []byte) {
	var fn func(x []float32, b []byte)
	switch t {
	case Q8_0:
		fn = quantQ8_0
	case Q4_0:
		fn = quantQ4_0
	case Q4_K:
		fn = quantQ4K
	case Q6_K:
		fn = quantQ6K
	case Q4_1:
		fn = quantQ4_1
	case Q5_0:
		fn = quantQ5_0
	case Q5_1:
		fn = quantQ5_1
	case Q5_K:
		fn = quantQ5K
	case Q2_K:
		fn = quantQ2K
	case Q3_K:
		fn = quantQ3K
	case IQ4_NL:
		fn = quantIQ4NL
	case IQ4_XS:
		fn = quantIQ4XS
	default:
		panic("quant: no block encoder for " + t.String())
	}
	be, bb := t.BlockElems(), t.BlockBytes()
	for i := 0; i < len(src)/be; i++ {
		fn(src[i*be:(i+1)*be], dst[i*bb:(i+1)*bb])
	}
}

// maxF16Bits is the largest finite float16 value, 65504, as bits.
const maxF16Bits = 0x7bff

// scaleToF16 converts a block scale to float16, saturating at ±65504 instead
// of overflowing to infinity (NaN stays NaN only if the scale is NaN, which
// the quantisers never produce from finite input).
func scaleToF16(d float32) uint16 {
	h := F32ToF16(d)
	if h&0x7fff == 0x7c00 { // ±Inf
		return h&0x8000 | maxF16Bits
	}
	return h
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// maxAbs returns the largest magnitude in x and the first value that has it
// (GGML's amax and max; NaNs are passed over, and both are 0 when nothing is
// larger than 0).
func maxAbs(x []float32) (amax, mx float32) {
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, mx = a, v
		}
	}
	return amax, mx
}

// maxOf returns the largest of x, or 0 when none is larger (NaNs passed over).
func maxOf(x []float32) float32 {
	var m float32
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}

// inverse returns 1/d, or 0 when d is 0 (GGML's id = d ? 1.0f/d : 0.0f).
func inverse(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

// putScale stores the block scale d as float16 at b and returns the inverse
// scale to quantise against: that of d, or of the stored scale when d
// saturates (see scaleToF16).
func putScale(b []byte, d float32) (id float32) {
	h := scaleToF16(d)
	if F32ToF16(d)&0x7fff == 0x7c00 {
		d = F16ToF32(h) // saturated: quantise against the stored scale
	}
	putF16(b, h)
	return inverse(d)
}

// roundAwayClamp rounds half away from zero (C's roundf) and clamps to
// [-lim, lim]; NaN becomes 0.
func roundAwayClamp(x float32, lim int) int {
	if x != x {
		return 0
	}
	if x >= float32(lim) {
		return lim
	}
	if x <= -float32(lim) {
		return -lim
	}
	return int(math.Round(float64(x)))
}

// nearestInt rounds to the nearest integer, ties to even, like GGML's
// nearest_int (which adds 1.5·2²³ in float32 arithmetic). Values beyond ±2²²
// are clamped and NaN becomes 0, so the result is always safe to clamp again.
func nearestInt(x float32) int {
	const lim = 1 << 22
	if x >= -lim && x <= lim {
		return int(float32(x+roundMagic) - roundMagic)
	}
	if x > lim {
		return lim
	}
	if x < -lim {
		return -lim
	}
	return 0 // NaN
}

func clampInt(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

func putF16(b []byte, h uint16) { binary.LittleEndian.PutUint16(b, h) }
func getF16(b []byte) float32   { return F16ToF32(binary.LittleEndian.Uint16(b)) }

// Q8_0: d (f16) then 32 int8 quants; x = d·q.

func dequantQ8_0(b []byte, y []float32) {
	d := getF16(b)
	for j := range 32 {
		y[j] = float32(int8(b[2+j])) * d
	}
}

// quantQ8_0: d = max|x|/127 and q = round(x/d), halves away from zero (C's
// roundf), computed as x·(1/d) like GGML.
func quantQ8_0(x []float32, b []byte) {
	amax, _ := maxAbs(x[:32])
	id := putScale(b, amax/127)
	for j, v := range x[:32] {
		b[2+j] = byte(int8(roundAwayClamp(v*id, 127)))
	}
}

// Q4_0: d (f16) then 16 bytes; byte j holds element j (low nibble) and
// element j+16 (high nibble); x = d·(q-8).

func dequantQ4_0(b []byte, y []float32) {
	d := getF16(b)
	for j := range 16 {
		q := b[2+j]
		y[j] = float32(int(q&0xf)-8) * d
		y[j+16] = float32(int(q>>4)-8) * d
	}
}

// quantQ4_0: d = m/−8 where m is the (first) value of largest magnitude, so
// m itself maps to q = 0; q = trunc(x·(1/d) + 8.5), at most 15, like GGML.
func quantQ4_0(x []float32, b []byte) {
	_, mx := maxAbs(x[:32])
	id := putScale(b, mx/-8)
	for j := range 16 {
		b[2+j] = truncQ(fma32(x[j], id, 8.5), 15) | truncQ(fma32(x[j+16], id, 8.5), 15)<<4
	}
}
