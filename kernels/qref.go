package kernels

import (
	"encoding/binary"
	"math"

	"github.com/masque-ai/masque/quant"
)

// Reference decoders for the block formats, written from GGML's layouts
// (see package quant for the byte maps). They are what the pure-Go level uses
// and what the SIMD decoders are tested against; package quant's own
// DequantizeRow must agree with them (tested).

func f16(b []byte) float32 { return f16Tab()[binary.LittleEndian.Uint16(b)] }

// refDecodeQ8_0 decodes whole Q8_0 blocks from src into dst.
func refDecodeQ8_0(src []byte, dst []float32) {
	for b := 0; b < len(dst)/32; b++ {
		blk := src[34*b : 34*b+34]
		d := f16(blk)
		for i := 0; i < 32; i++ {
			dst[32*b+i] = d * float32(int8(blk[2+i]))
		}
	}
}

// refDecodeQ4_0 decodes whole Q4_0 blocks: element i < 16 is the low nibble
// of byte i, element 16+i its high nibble, both offset by 8.
func refDecodeQ4_0(src []byte, dst []float32) {
	for b := 0; b < len(dst)/32; b++ {
		blk := src[18*b : 18*b+18]
		d := f16(blk)
		for i := 0; i < 16; i++ {
			q := blk[2+i]
			dst[32*b+i] = d * float32(int(q&15)-8)
			dst[32*b+16+i] = d * float32(int(q>>4)-8)
		}
	}
}

// q4kScales unpacks the eight 6-bit scales and mins of a Q4_K super-block
// from its 12 packed bytes.
func q4kScales(s []byte) (sc, mn [8]uint8) {
	for j := 0; j < 4; j++ {
		sc[j] = s[j] & 63
		mn[j] = s[j+4] & 63
		sc[j+4] = s[j+8]&15 | (s[j]>>6)<<4
		mn[j+4] = s[j+8]>>4 | (s[j+4]>>6)<<4
	}
	return
}

// refDecodeQ4K decodes whole Q4_K super-blocks: d·sc·q − dmin·m per
// sub-block of 32; chunk c of 32 bytes holds elements 64c.. (low nibbles)
// and 64c+32.. (high nibbles).
func refDecodeQ4K(src []byte, dst []float32) {
	for b := 0; b < len(dst)/256; b++ {
		blk := src[144*b : 144*b+144]
		d, dmin := f16(blk), f16(blk[2:])
		sc, mn := q4kScales(blk[4:16])
		y := dst[256*b:]
		for c := 0; c < 4; c++ {
			d1, m1 := d*float32(sc[2*c]), dmin*float32(mn[2*c])
			d2, m2 := d*float32(sc[2*c+1]), dmin*float32(mn[2*c+1])
			q := blk[16+32*c:]
			for l := 0; l < 32; l++ {
				y[64*c+l] = float32(d1*float32(q[l]&15)) - m1
				y[64*c+32+l] = float32(d2*float32(q[l]>>4)) - m2
			}
		}
	}
}

// q6kUnpack writes the 256 six-bit quants (0..63, offset 32) of a Q6_K
// super-block in element order: in half h, with l in 0..31, byte
// ql[64h+l] holds elements 128h+l (low nibble) and 128h+l+64 (high nibble),
// ql[64h+32+l] holds 128h+l+32 and 128h+l+96, and qh[32h+l] holds the top
// two bits of those four in bit pairs 0–1, 2–3, 4–5, 6–7.
func q6kUnpack(blk []byte, q *[256]uint8) {
	for h := 0; h < 2; h++ {
		ql := (*[64]byte)(blk[64*h:])
		qh := (*[32]byte)(blk[128+32*h:])
		out := (*[128]uint8)(q[128*h:])
		for l := 0; l < 32; l++ {
			out[l] = ql[l]&15 | (qh[l]&3)<<4
			out[l+32] = ql[l+32]&15 | (qh[l]>>2&3)<<4
			out[l+64] = ql[l]>>4 | (qh[l]>>4&3)<<4
			out[l+96] = ql[l+32]>>4 | (qh[l]>>6&3)<<4
		}
	}
}

// refDecodeQ6K decodes whole Q6_K super-blocks: d·scale[e/16]·(q−32).
func refDecodeQ6K(src []byte, dst []float32) {
	var q [256]uint8
	for b := 0; b < len(dst)/256; b++ {
		blk := src[210*b : 210*b+210]
		d := f16(blk[208:])
		q6kUnpack(blk, &q)
		for e := 0; e < 256; e++ {
			s := float32(int8(blk[192+e/16]))
			dst[256*b+e] = d * s * float32(int(q[e])-32)
		}
	}
}

// refDecode decodes a row of any type to float32.
func refDecode(t quant.DType, src []byte, dst []float32) {
	switch t {
	case quant.F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case quant.F16:
		for i := range dst {
			dst[i] = quant.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case quant.BF16:
		for i := range dst {
			dst[i] = quant.BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case quant.Q8_0:
		refDecodeQ8_0(src, dst)
	case quant.Q4_0:
		refDecodeQ4_0(src, dst)
	case quant.Q4_K:
		refDecodeQ4K(src, dst)
	case quant.Q6_K:
		refDecodeQ6K(src, dst)
	default:
		// The other block types decode through package quant (they follow
		// GGML's dequantisers element for element; tested against ggml).
		if err := quant.DequantizeRow(t, src, dst); err != nil {
			panic("kernels: " + err.Error())
		}
	}
}
