package quant

import (
	"encoding/binary"
	"math"
)

// Decoders (and, for Q4_1, Q5_0, Q5_1 and Q5_K, encoders) of the GGML block
// formats beyond Q8_0, Q4_0, Q4_K and Q6_K. Layouts follow ggml-common.h byte
// for byte; the decoders evaluate each element as GGML's scalar dequantisers
// do (scale·quant, then minus the min, each product rounded on its own).

// Q4_1 (20 bytes): d (f16), m (f16), 16 bytes; byte j holds element j (low
// nibble) and j+16 (high nibble); x = d·q + m.

func dequantQ4_1(b []byte, y []float32) {
	d, m := getF16(b), getF16(b[2:])
	for j := range 16 {
		q := b[4+j]
		y[j] = float32(float32(q&0xf)*d) + m
		y[j+16] = float32(float32(q>>4)*d) + m
	}
}

// minMax returns the smallest and largest of x (GGML starts from ±FLT_MAX).
func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

// quantQ4_1: d = (max−min)/15, m = min, q = trunc((x−min)·(1/d) + 0.5) ≤ 15,
// like GGML's quantize_row_q4_1_ref (the multiply-add fused, as built).
func quantQ4_1(x []float32, b []byte) {
	lo, id := putScaleMin(x[:32], b, 15)
	for j := range 16 {
		b[4+j] = truncQ(fma32(x[j]-lo, id, 0.5), 15) | truncQ(fma32(x[j+16]-lo, id, 0.5), 15)<<4
	}
}

// putScaleMin stores the scale d = (max−min)/nmax and the min of x as
// float16 at b and b[2:], as Q4_1 and Q5_1 do, and returns the min and the
// inverse of the unrounded d to quantise against.
func putScaleMin(x []float32, b []byte, nmax float32) (lo, id float32) {
	lo, hi := minMax(x)
	d := (hi - lo) / nmax
	putF16(b, scaleToF16(d))
	putF16(b[2:], scaleToF16(lo))
	return lo, inverse(d)
}

// putQ5 writes the 5-bit quants q = truncQ(fma32(x − lo, id, add), 31) of 32
// elements as Q5_0 and Q5_1 lay them out: byte j of qs holds the low four
// bits of element j (low nibble) and j+16 (high nibble), bit j of qh (a
// little-endian uint32) the fifth bit of element j. Q5_0 passes lo = 0
// (x − 0 is x, to the bit).
func putQ5(qs, qh []byte, x []float32, lo, id, add float32) {
	var h uint32
	for j := range 16 {
		q0, q1 := truncQ(fma32(x[j]-lo, id, add), 31), truncQ(fma32(x[j+16]-lo, id, add), 31)
		qs[j] = q0&0xf | (q1&0xf)<<4
		h |= uint32(q0>>4) << j
		h |= uint32(q1>>4) << (j + 16)
	}
	binary.LittleEndian.PutUint32(qh, h)
}

// truncQ returns trunc(f) clamped to 0..lim (NaN: 0), the (int8_t) cast
// of GGML's legacy quantisers. Their f is x·id + add with the product fused
// into the addition, as the reference build fuses it: callers pass
// fma32(x, id, add) (see quant_fma.go).
func truncQ(f float32, lim int) byte {
	if !(f > 0) {
		return 0
	}
	if f >= float32(lim) {
		return byte(lim)
	}
	return byte(int(f))
}

// Q5_0 (22 bytes): d (f16), qh (4 bytes, little-endian uint32: bit j is the
// fifth bit of element j), 16 bytes of low nibbles laid out as Q4_0;
// x = d·(q − 16).

func dequantQ5_0(b []byte, y []float32) {
	d := getF16(b)
	qh := binary.LittleEndian.Uint32(b[2:])
	for j := range 16 {
		q := b[6+j]
		h0 := byte(qh>>j) & 1 << 4
		h1 := byte(qh>>(j+16)) & 1 << 4
		y[j] = float32(int(q&0xf|h0)-16) * d
		y[j+16] = float32(int(q>>4|h1)-16) * d
	}
}

// quantQ5_0: d = m/−16 where m is the (first) value of largest magnitude;
// q = trunc(x·(1/d) + 16.5) ≤ 31, like GGML's quantize_row_q5_0_ref.
func quantQ5_0(x []float32, b []byte) {
	_, mx := maxAbs(x[:32])
	putQ5(b[6:22], b[2:6], x, 0, putScale(b, mx/-16), 16.5)
}

// Q5_1 (24 bytes): d (f16), m (f16), qh (4 bytes), 16 bytes of low nibbles;
// x = d·q + m.

func dequantQ5_1(b []byte, y []float32) {
	d, m := getF16(b), getF16(b[2:])
	qh := binary.LittleEndian.Uint32(b[4:])
	for j := range 16 {
		q := b[8+j]
		h0 := byte(qh>>j) & 1 << 4
		h1 := byte(qh>>(j+16)) & 1 << 4
		y[j] = float32(float32(q&0xf|h0)*d) + m
		y[j+16] = float32(float32(q>>4|h1)*d) + m
	}
}

// quantQ5_1: d = (max−min)/31, m = min, q = trunc((x−min)·(1/d) + 0.5), like
// GGML's quantize_row_q5_1_ref.
func quantQ5_1(x []float32, b []byte) {
	lo, id := putScaleMin(x[:32], b, 31)
	putQ5(b[8:24], b[4:8], x, lo, id, 0.5)
}

// Q2_K super-block (84 bytes):
//
//	[0:16]  one byte per sub-block of 16: scale (low nibble), min (high nibble)
//	[16:80] 2-bit quants: two chunks of 32 bytes; chunk c covers elements
//	        128c..128c+127, bit pair s (0..3) of byte l holding element
//	        128c + 32s + l
//	[80:82] d (f16), [82:84] dmin (f16)
//
// Element e of sub-block j decodes as d·(sc[j]&15)·q − dmin·(sc[j]>>4).

func dequantQ2K(b []byte, y []float32) {
	sc, qs := b[0:16], b[16:80]
	d, dmin := getF16(b[80:]), getF16(b[82:])
	is := 0
	for c := range 2 {
		q := qs[32*c : 32*c+32]
		out := y[128*c:]
		for s := range 4 {
			shift := 2 * s
			for half := range 2 {
				v := sc[is]
				is++
				dl, ml := d*float32(v&0xf), dmin*float32(v>>4)
				o := out[32*s+16*half:]
				for l := range 16 {
					o[l] = float32(dl*float32(q[16*half+l]>>shift&3)) - ml
				}
			}
		}
	}
}

// Q3_K super-block (110 bytes):
//
//	[0:32]    hmask: bit s of byte l is the high bit of element 32s + l
//	          (set means +0, clear means −4)
//	[32:96]   low 2 bits, laid out as Q2_K's quants
//	[96:108]  16 six-bit scales (offset 32), packed (see scalesQ3K)
//	[108:110] d (f16)
//
// Element e decodes as d·(scale[e/16] − 32)·(low − (high ? 0 : 4)).

// scalesQ3K unpacks the 16 six-bit scales: the low four bits of scale j are
// nibble j/8 of byte j%8; the top two bits are bit pair j/4 of byte 8 + j%4.
func scalesQ3K(s []byte) [16]int8 {
	var out [16]int8
	for j := range 16 {
		lo := s[j%8] >> (4 * (j / 8)) & 0xf
		hi := s[8+j%4] >> (2 * (j / 4)) & 3
		out[j] = int8(lo|hi<<4) - 32
	}
	return out
}

func dequantQ3K(b []byte, y []float32) {
	hm, qs := b[0:32], b[32:96]
	scales := scalesQ3K(b[96:108])
	d := getF16(b[108:])
	is := 0
	for c := range 2 {
		q := qs[32*c : 32*c+32]
		out := y[128*c:]
		for s := range 4 {
			shift := 2 * s
			m := byte(1) << (4*c + s)
			for half := range 2 {
				dl := d * float32(scales[is])
				is++
				o := out[32*s+16*half:]
				for l := range 16 {
					v := int(q[16*half+l] >> shift & 3)
					if hm[16*half+l]&m == 0 {
						v -= 4
					}
					o[l] = dl * float32(v)
				}
			}
		}
	}
}

// Q5_K super-block (176 bytes):
//
//	[0:2] d (f16), [2:4] dmin (f16), [4:16] scales and mins as Q4_K
//	[16:48]   qh: bit 2c of byte l is the fifth bit of element 64c + l, bit
//	          2c+1 that of element 64c + 32 + l
//	[48:176]  low nibbles as Q4_K's quants
//
// Element i of sub-block j decodes as d·sc[j]·q − dmin·m[j].

func dequantQ5K(b []byte, y []float32) {
	d, dmin := getF16(b[0:]), getF16(b[2:])
	sc, qh, qs := b[4:16], b[16:48], b[48:176]
	for c := range 4 {
		s1, m1 := scaleMinK4(2*c, sc)
		s2, m2 := scaleMinK4(2*c+1, sc)
		d1, dm1 := d*float32(s1), dmin*float32(m1)
		d2, dm2 := d*float32(s2), dmin*float32(m2)
		q := qs[32*c : 32*c+32]
		out := y[64*c : 64*c+64]
		u1, u2 := byte(1)<<(2*c), byte(2)<<(2*c)
		for l := range 32 {
			lo, hi := q[l]&0x0f, q[l]>>4
			if qh[l]&u1 != 0 {
				lo += 16
			}
			if qh[l]&u2 != 0 {
				hi += 16
			}
			out[l] = float32(d1*float32(lo)) - dm1
			out[32+l] = float32(d2*float32(hi)) - dm2
		}
	}
}

// quantQ5K follows GGML's reference Q5_K quantiser, which is the Q4_K one
// (quantQ4K) with 5-bit quants and a shorter scale search.
func quantQ5K(x []float32, b []byte) {
	var L [256]uint8
	sc := b[4:16]
	kQuantScaleMin(x, L[:], b[0:], b[2:], sc, 31, -0.5, 0.1, 15)
	qh, ql := b[16:48], b[48:176]
	clear(qh)
	for c := range 4 {
		u1, u2 := byte(1)<<(2*c), byte(2)<<(2*c)
		for l := range 32 {
			l1, l2 := L[64*c+l], L[64*c+32+l]
			if l1 > 15 {
				l1 -= 16
				qh[l] |= u1
			}
			if l2 > 15 {
				l2 -= 16
				qh[l] |= u2
			}
			ql[32*c+l] = l1 | l2<<4
		}
	}
}

// Q8_K super-block (292 bytes): d (f32), 256 int8 quants, 16 int16 sums of
// groups of 16 (used only by dot products); x = d·q.

func dequantQ8K(b []byte, y []float32) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(b))
	for j := range 256 {
		y[j] = d * float32(int8(b[4+j]))
	}
}

// iq4nlValues is the non-linear 4-bit code book of IQ4_NL and IQ4_XS.
var iq4nlValues = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// IQ4_NL (18 bytes): d (f16), 16 bytes of indices laid out as Q4_0;
// x = d·table[q].

func dequantIQ4NL(b []byte, y []float32) {
	d := getF16(b)
	for j := range 16 {
		q := b[2+j]
		y[j] = d * float32(iq4nlValues[q&0xf])
		y[j+16] = d * float32(iq4nlValues[q>>4])
	}
}

// IQ4_XS super-block (136 bytes): d (f16), scales_h (uint16: bit pair j is
// the top of sub-block j's scale), scales_l (4 bytes: nibble j%2 of byte j/2
// is the low four bits), then eight 16-byte groups of indices laid out as
// IQ4_NL. Sub-block j decodes as d·(scale[j] − 32)·table[q].

func dequantIQ4XS(b []byte, y []float32) {
	d := getF16(b)
	sh := binary.LittleEndian.Uint16(b[2:])
	sl := b[4:8]
	for j := range 8 {
		ls := int(sl[j/2]>>(4*(j%2))&0xf) | int(sh>>(2*j)&3)<<4
		dl := d * float32(ls-32)
		q := b[8+16*j : 8+16*j+16]
		o := y[32*j:]
		for l := range 16 {
			o[l] = dl * float32(iq4nlValues[q[l]&0xf])
			o[l+16] = dl * float32(iq4nlValues[q[l]>>4])
		}
	}
}

// quantQ2K follows GGML's reference Q2_K quantiser: each sub-block of 16
// gets a scale and min from the make_qkx2_quants search (2-bit quants,
// |x| weights, absolute error); scales and mins are quantised to 4 bits
// against d = max scale/15 and dmin = max min/15, and the elements are
// re-quantised against the rounded values they decode with.
func quantQ2K(x []float32, b []byte) {
	var (
		L            [256]uint8
		w            [16]float32
		scales, mins [16]float32
	)
	for j := range 16 {
		xs := x[16*j : 16*j+16]
		for l, v := range xs {
			w[l] = abs32(v)
		}
		scales[j], mins[j] = searchScaleMinErr(xs, w[:], L[16*j:16*j+16], 3, -0.5, 0.1, 15, true)
	}
	maxScale, maxM := maxOf(scales[:]), maxOf(mins[:])
	sc := b[0:16]
	clear(sc)
	if maxScale > 0 {
		is := 15 / maxScale
		for j := range 16 {
			sc[j] = uint8(roundMulAdd(is, scales[j]))
		}
		putF16(b[80:], scaleToF16(maxScale/15))
	} else {
		putF16(b[80:], 0)
	}
	if maxM > 0 {
		im := 15 / maxM
		for j := range 16 {
			sc[j] |= uint8(roundMulAdd(im, mins[j])) << 4
		}
		putF16(b[82:], scaleToF16(maxM/15))
	} else {
		putF16(b[82:], 0)
	}
	d, dmin := getF16(b[80:]), getF16(b[82:])
	for j := range 16 {
		dj := d * float32(sc[j]&0xf)
		if dj == 0 {
			continue
		}
		dm := dmin * float32(sc[j]>>4)
		for i, v := range x[16*j : 16*j+16] {
			L[16*j+i] = uint8(clampInt(nearestInt((v+dm)/dj), 0, 3))
		}
	}
	packQ2Bits(L[:], b[16:80])
}

// packQ2Bits packs 256 two-bit values as Q2_K and Q3_K store them: in
// chunk c of 32 bytes, bit pair s of byte l holds element 128c + 32s + l.
func packQ2Bits(L []uint8, qs []byte) {
	for c := range 2 {
		for l := range 32 {
			e := 128*c + l
			qs[32*c+l] = L[e] | L[e+32]<<2 | L[e+64]<<4 | L[e+96]<<6
		}
	}
}

// searchScale3 is GGML's make_q3_quants with do_rmse (nmax = 4): quants in
// −4..3 from the scale mapping the value of largest magnitude to −4, then
// up to five passes that move single quants wherever that raises the
// x²-weighted least-squares fit. Quants go to L offset by +4; it returns
// the least-squares scale.
func searchScale3(x []float32, L []int8) float32 {
	const nmax = 4
	amax, mx := maxAbs(x)
	if !(amax >= groupMaxEps) {
		clear(L[:len(x)])
		return 0
	}
	iscale := -nmax / mx
	var sumLX, sumL2 float32
	for i, v := range x {
		l := clampInt(roundMulAdd(iscale, v), -nmax, nmax-1)
		L[i] = int8(l)
		w, fl := float32(v*v), float32(l)
		sumLX = fma32(float32(w*v), fl, sumLX)
		sumL2 = fma32(float32(w*fl), fl, sumL2)
	}
	for range 5 {
		changed := 0
		for i, v := range x {
			w := float32(v * v)
			fl := float32(L[i])
			slx := fma32(-float32(w*v), fl, sumLX)
			if slx > 0 {
				sl2 := fma32(-float32(w*fl), fl, sumL2)
				nl := clampInt(nearestInt(float32(v*sl2)/slx), -nmax, nmax-1)
				if nl != int(L[i]) {
					fn := float32(nl)
					slx = fma32(float32(w*v), fn, slx)
					sl2 = fma32(float32(w*fn), fn, sl2)
					if sl2 > 0 && float32(float32(slx*slx)*sumL2) > float32(float32(sumLX*sumLX)*sl2) {
						L[i] = int8(nl)
						sumLX, sumL2 = slx, sl2
						changed++
					}
				}
			}
		}
		if changed == 0 {
			break
		}
	}
	for i := range x {
		L[i] += nmax
	}
	if sumL2 > 0 {
		return sumLX / sumL2
	}
	return 0
}

// quantQ3K follows GGML's reference Q3_K quantiser: a signed scale per
// sub-block of 16 from searchScale3, the 16 scales quantised to 6 bits
// against d = −(scale of largest magnitude)/32, the elements re-quantised
// against the rounded scales, then split into high bits (hmask) and low
// two bits.
func quantQ3K(x []float32, b []byte) {
	var (
		L      [256]int8
		scales [16]float32
	)
	_, maxScale := groupScales(x[:256], L[:], scales[:], searchScale3)
	sc := b[96:108]
	clear(sc)
	if maxScale != 0 {
		iscale := -32 / maxScale
		for j := range 16 {
			l := int(int8(roundMulAdd(iscale, scales[j])))
			l = clampInt(l, -32, 31) + 32
			if j < 8 {
				sc[j] = uint8(l & 0xf)
			} else {
				sc[j-8] |= uint8(l&0xf) << 4
			}
			sc[8+j%4] |= uint8(l>>4) << (2 * (j / 4))
		}
		putF16(b[108:], scaleToF16(1/iscale))
	} else {
		putF16(b[108:], 0)
	}
	d := getF16(b[108:])
	q := scalesQ3K(sc)
	for j := range 16 {
		dj := d * float32(q[j])
		if dj == 0 {
			continue
		}
		for i, v := range x[16*j : 16*j+16] {
			L[16*j+i] = int8(clampInt(nearestInt(v/dj), -4, 3) + 4)
		}
	}
	hm := b[0:32]
	clear(hm)
	var u [256]uint8
	for j := range 256 {
		v := uint8(L[j])
		if v > 3 {
			hm[j%32] |= 1 << (j / 32)
			v -= 4
		}
		u[j] = v
	}
	packQ2Bits(u[:], b[32:96])
}

// bestIndexIQ4 returns the index of the code-book value nearest to v
// (GGML's best_index_int8: a binary search, ties to the upper value).
func bestIndexIQ4(v float32) int {
	if v <= float32(iq4nlValues[0]) {
		return 0
	}
	if v >= float32(iq4nlValues[15]) {
		return 15
	}
	lo, hi := 0, 15
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if v < float32(iq4nlValues[mid]) {
			hi = mid
		} else {
			lo = mid
		}
	}
	if float32(v-float32(iq4nlValues[hi-1])) < float32(float32(iq4nlValues[hi])-v) {
		return hi - 1
	}
	return hi
}

// searchScaleIQ4 is the per-32 scale search of GGML's
// quantize_row_iq4_nl_impl as llama.cpp's quantize tool runs it (no
// importance matrix, x² weights, 7 tries each way): it writes code-book
// indices to L and returns the least-squares scale (0 for an all-zero
// block).
func searchScaleIQ4(x []float32, L []uint8) float32 {
	const ntry = 7
	amax, mx := maxAbs(x)
	if !(amax >= groupMaxEps) {
		return 0
	}
	v0 := float32(iq4nlValues[0])
	d := -mx / v0
	id := 1 / d
	var sumQX, sumQ2 float32
	for j, v := range x {
		l := bestIndexIQ4(float32(id * v))
		L[j] = uint8(l)
		q := float32(iq4nlValues[l])
		w := float32(v * v)
		sumQX = fma32(float32(w*q), v, sumQX)
		sumQ2 = fma32(float32(w*q), q, sumQ2)
	}
	d = sumQX / sumQ2
	best := d * sumQX
	for itry := -ntry; itry <= ntry; itry++ {
		id := float32(itry+int(iq4nlValues[0])) / mx
		sumQX, sumQ2 = 0, 0
		for _, v := range x {
			q := float32(iq4nlValues[bestIndexIQ4(float32(id*v))])
			w := float32(v * v)
			sumQX = fma32(float32(w*q), v, sumQX)
			sumQ2 = fma32(float32(w*q), q, sumQ2)
		}
		if sumQ2 > 0 && float32(sumQX*sumQX) > float32(best*sumQ2) {
			d = sumQX / sumQ2
			best = d * sumQX
		}
	}
	return d
}

// packIQ4 packs 32 indices per group as IQ4_NL stores them: byte j holds
// element j (low nibble) and j+16 (high nibble).
func packIQ4(L []uint8, qs []byte) {
	for i := 0; i < len(L)/32; i++ {
		for j := range 16 {
			qs[16*i+j] = L[32*i+j] | L[32*i+16+j]<<4
		}
	}
}

// quantIQ4NL follows the IQ4_NL quantiser llama.cpp's quantize tool runs
// (quantize_iq4_nl without an importance matrix): searchScaleIQ4, then the
// indices against that (unrounded) scale.
func quantIQ4NL(x []float32, b []byte) {
	var L [32]uint8
	d := searchScaleIQ4(x[:32], L[:])
	putF16(b, scaleToF16(d))
	if d != 0 {
		id := 1 / d
		for j, v := range x[:32] {
			L[j] = uint8(bestIndexIQ4(float32(id * v)))
		}
	} else {
		clear(L[:])
	}
	packIQ4(L[:], b[2:18])
}

// quantIQ4XS follows quantize_iq4_xs without an importance matrix: a scale
// per 32 from searchScaleIQ4, the eight scales quantised to 6 bits against
// d = −(scale of largest magnitude)/32, and the indices re-chosen against
// each quantised scale.
func quantIQ4XS(x []float32, b []byte) {
	var (
		L      [256]uint8
		scales [8]float32
	)
	_, maxScale := groupScales(x[:256], L[:], scales[:], searchScaleIQ4)
	d := -maxScale / 32
	putF16(b, scaleToF16(d))
	id := inverse(d)
	var sh uint16
	sl := b[4:8]
	clear(sl)
	for ib := range 8 {
		l := clampInt(roundMulAdd(id, scales[ib]), -32, 31)
		idl := inverse(d * float32(l))
		for j, v := range x[32*ib : 32*ib+32] {
			L[32*ib+j] = uint8(bestIndexIQ4(float32(idl * v)))
		}
		l += 32
		if ib%2 == 0 {
			sl[ib/2] = uint8(l & 0xf)
		} else {
			sl[ib/2] |= uint8(l&0xf) << 4
		}
		sh |= uint16(l>>4) << (2 * ib)
	}
	binary.LittleEndian.PutUint16(b[2:], sh)
	packIQ4(L[:], b[8:136])
}
