package kernels

import (
	"encoding/binary"
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// qdotFn is an integer-kernel tile for block-quantised weights: for the
// tile's mr tokens i and r < nrows weight rows it sets
//
//	dst[r + i·ldd] = Σ over blocks of (weight scale · activation scale ·
//	                 integer dot product of the quants) (+ the min terms)
//
// x holds mr activation rows in the type's act layout, ldx bytes apart; w
// holds the weight rows, ldw bytes apart; k is the row length in elements.
// ldd is in bytes.
type qdotFn func(dst *float32, ldd int, x *byte, ldx int, w *byte, ldw int, k int, nrows int)

// goQdot returns the pure-Go integer tile for type t (any mr): the
// reference the assembly is tested against.
func goQdot(t quant.DType, mr int) qdotFn {
	var row func(x, w []byte, k int) float32
	switch t {
	case quant.Q8_0:
		row = goDotQ8_0
	case quant.Q4_0:
		row = goDotQ4_0
	case quant.Q5_0:
		row = goDotQ5_0
	case quant.IQ4_NL:
		row = goDotIQ4NL
	case quant.IQ4_XS:
		row = goDotIQ4XS
	case quant.Q4_1:
		row = goDotQ4_1
	case quant.Q5_1:
		row = goDotQ5_1
	case quant.Q4_K:
		row = goDotQ4K
	case quant.Q5_K:
		row = goDotQ5K
	case quant.Q6_K:
		row = goDotQ6K
	default:
		return nil
	}
	return func(dst *float32, ldd int, x *byte, ldx int, w *byte, ldw int, k int, nrows int) {
		rb, _ := t.RowBytes(k)
		ab := actRowBytes(t, k)
		for r := 0; r < nrows; r++ {
			wr := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(w), r*ldw)), rb)
			for i := 0; i < mr; i++ {
				xr := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(x), i*ldx)), ab)
				*(*float32)(unsafe.Add(unsafe.Pointer(dst), i*ldd+4*r)) = row(xr, wr, k)
			}
		}
	}
}

// dot32 is the integer dot product of 32 quants.
func dot32(w *[32]int8, x *[32]int8) int32 {
	var s0, s1, s2, s3 int32
	for j := 0; j < 32; j += 4 {
		s0 += int32(w[j]) * int32(x[j])
		s1 += int32(w[j+1]) * int32(x[j+1])
		s2 += int32(w[j+2]) * int32(x[j+2])
		s3 += int32(w[j+3]) * int32(x[j+3])
	}
	return s0 + s1 + s2 + s3
}

func goDotQ8_0(x, w []byte, k int) float32 {
	var s float32
	for b := 0; b < k/32; b++ {
		blk := w[34*b : 34*b+34]
		q := (*[32]int8)(act32Quants(x, b))
		sum := dot32((*[32]int8)(unsafe.Pointer(&blk[2])), q)
		s += float32(sum) * (f16(blk) * act32Scale(x, b))
	}
	return s
}

func goDotQ4_0(x, w []byte, k int) float32 {
	var s float32
	var u [32]int8
	for b := 0; b < k/32; b++ {
		blk := w[18*b : 18*b+18]
		q := (*[32]int8)(act32Quants(x, b))
		for j := 0; j < 16; j++ {
			u[j] = int8(blk[2+j] & 15)
			u[16+j] = int8(blk[2+j] >> 4)
		}
		var qs int32
		for _, v := range q {
			qs += int32(v)
		}
		s += float32(dot32(&u, q)-8*qs) * (f16(blk) * act32Scale(x, b))
	}
	return s
}

func goDotQ4K(x, w []byte, k int) float32 {
	var s float32
	var u [32]int8
	for b := 0; b < k/256; b++ {
		blk := w[144*b : 144*b+144]
		d, dmin := f16(blk), f16(blk[2:])
		sc, mn := q4kScales(blk[4:16])
		q := act256Quants(x, b)
		var A, B int32
		for c := 0; c < 4; c++ {
			qs := blk[16+32*c : 16+32*c+32]
			for l := 0; l < 32; l++ {
				u[l] = int8(qs[l] & 15)
			}
			A += int32(sc[2*c]) * dot32(&u, (*[32]int8)(q[64*c:]))
			for l := 0; l < 32; l++ {
				u[l] = int8(qs[l] >> 4)
			}
			A += int32(sc[2*c+1]) * dot32(&u, (*[32]int8)(q[64*c+32:]))
		}
		for j := 0; j < 8; j++ {
			B += int32(mn[j]) * (act256Sum(x, b, 2*j) + act256Sum(x, b, 2*j+1))
		}
		dx := act256Scale(x, b)
		s += float32(A)*(d*dx) - float32(B)*(dmin*dx)
	}
	return s
}

func goDotQ6K(x, w []byte, k int) float32 {
	var s float32
	var u [256]uint8
	for b := 0; b < k/256; b++ {
		blk := w[210*b : 210*b+210]
		q := act256Quants(x, b)
		q6kUnpack(blk, &u)
		var A int32
		for sb := 0; sb < 16; sb++ {
			var I int32
			for e := 16 * sb; e < 16*sb+16; e++ {
				I += int32(u[e]) * int32(q[e])
			}
			A += int32(int8(blk[192+sb])) * (I - 32*act256Sum(x, b, sb))
		}
		s += float32(A) * (f16(blk[208:]) * act256Scale(x, b))
	}
	return s
}

// goDotQ5_0 is Q4_0's product with the fifth bits (qh, bit j for element j)
// added and an offset of 16.
func goDotQ5_0(x, w []byte, k int) float32 {
	var s float32
	var u [32]int8
	for b := 0; b < k/32; b++ {
		blk := w[22*b : 22*b+22]
		qh := binary.LittleEndian.Uint32(blk[2:])
		q := (*[32]int8)(act32Quants(x, b))
		for j := 0; j < 16; j++ {
			u[j] = int8(blk[6+j]&15 | byte(qh>>j&1)<<4)
			u[16+j] = int8(blk[6+j]>>4 | byte(qh>>(j+16)&1)<<4)
		}
		var qs int32
		for _, v := range q {
			qs += int32(v)
		}
		s += float32(dot32(&u, q)-16*qs) * (f16(blk) * act32Scale(x, b))
	}
	return s
}

// goDotQ5K is Q4_K's product with the fifth bits: bit 2c of qh[l] for
// element 64c+l, bit 2c+1 for element 64c+32+l.
func goDotQ5K(x, w []byte, k int) float32 {
	var s float32
	var u [32]int8
	for b := 0; b < k/256; b++ {
		blk := w[176*b : 176*b+176]
		d, dmin := f16(blk), f16(blk[2:])
		sc, mn := q4kScales(blk[4:16])
		qh := blk[16:48]
		q := act256Quants(x, b)
		var A, B int32
		for c := 0; c < 4; c++ {
			qs := blk[48+32*c : 48+32*c+32]
			for l := 0; l < 32; l++ {
				u[l] = int8(qs[l]&15 | (qh[l]>>(2*c)&1)<<4)
			}
			A += int32(sc[2*c]) * dot32(&u, (*[32]int8)(q[64*c:]))
			for l := 0; l < 32; l++ {
				u[l] = int8(qs[l]>>4 | (qh[l]>>(2*c+1)&1)<<4)
			}
			A += int32(sc[2*c+1]) * dot32(&u, (*[32]int8)(q[64*c+32:]))
		}
		for j := 0; j < 8; j++ {
			B += int32(mn[j]) * (act256Sum(x, b, 2*j) + act256Sum(x, b, 2*j+1))
		}
		dx := act256Scale(x, b)
		s += float32(A)*(d*dx) - float32(B)*(dmin*dx)
	}
	return s
}

// goDotQ4_1 and goDotQ5_1 are the products with x = d·q + m weights:
// d·dx·Σq·xq + m·dx·Σxq per block.
func goDotQ4_1(x, w []byte, k int) float32 { return goDotQx1(x, w, k, false) }
func goDotQ5_1(x, w []byte, k int) float32 { return goDotQx1(x, w, k, true) }

func goDotQx1(x, w []byte, k int, five bool) float32 {
	bs, qo := 20, 4
	if five {
		bs, qo = 24, 8
	}
	var s float32
	var u [32]int8
	for b := 0; b < k/32; b++ {
		blk := w[bs*b : bs*b+bs]
		var qh uint32
		if five {
			qh = binary.LittleEndian.Uint32(blk[4:])
		}
		q := (*[32]int8)(act32Quants(x, b))
		for j := 0; j < 16; j++ {
			u[j] = int8(blk[qo+j]&15 | byte(qh>>j&1)<<4)
			u[16+j] = int8(blk[qo+j]>>4 | byte(qh>>(j+16)&1)<<4)
		}
		var qs int32
		for _, v := range q {
			qs += int32(v)
		}
		dx := act32Scale(x, b)
		s += float32(dot32(&u, q))*(f16(blk)*dx) + float32(qs)*(f16(blk[2:])*dx)
	}
	return s
}

// iq4nlTable is IQ4_NL's non-linear code book (as package quant's).
var iq4nlTable = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// goDotIQ4NL is Q4_0's product with the nibbles looked up in the code book.
func goDotIQ4NL(x, w []byte, k int) float32 {
	var s float32
	var u [32]int8
	for b := 0; b < k/32; b++ {
		blk := w[18*b : 18*b+18]
		q := (*[32]int8)(act32Quants(x, b))
		for j := 0; j < 16; j++ {
			u[j] = iq4nlTable[blk[2+j]&15]
			u[16+j] = iq4nlTable[blk[2+j]>>4]
		}
		s += float32(dot32(&u, q)) * (f16(blk) * act32Scale(x, b))
	}
	return s
}

// goDotIQ4XS: per sub-block of 32, the 6-bit scale (offset 32) times the
// integer product of the code-book values with the activations.
func goDotIQ4XS(x, w []byte, k int) float32 {
	var s float32
	var u [32]int8
	for b := 0; b < k/256; b++ {
		blk := w[136*b : 136*b+136]
		sh := binary.LittleEndian.Uint16(blk[2:])
		q := act256Quants(x, b)
		var A int32
		for ib := 0; ib < 8; ib++ {
			ls := int32(blk[4+ib/2]>>(4*(ib%2))&0xf) | int32(sh>>(2*ib)&3)<<4
			qs := blk[8+16*ib:]
			for j := 0; j < 16; j++ {
				u[j] = iq4nlTable[qs[j]&15]
				u[16+j] = iq4nlTable[qs[j]>>4]
			}
			A += (ls - 32) * dot32(&u, (*[32]int8)(q[32*ib:]))
		}
		s += float32(A) * (f16(blk) * act256Scale(x, b))
	}
	return s
}
