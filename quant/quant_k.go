package quant

import "math"

// The k-quants: super-blocks of 256 elements split into sub-blocks that each
// carry a small integer scale (and for Q4_K a min) relative to float16 super
// scales. Layouts follow GGML's block_q4_K and block_q6_K byte for byte.

// Q4_K super-block (144 bytes):
//
//	[0:2]    d    (f16) super scale for the sub-block scales
//	[2:4]    dmin (f16) super scale for the sub-block mins
//	[4:16]   8 six-bit scales and 8 six-bit mins, packed (see scaleMinK4)
//	[16:144] 4-bit quants: four chunks of 32 bytes; chunk c covers elements
//	         64c..64c+63, low nibbles the first 32, high nibbles the next 32
//
// Element i of sub-block j decodes as d·sc[j]·q − dmin·m[j].

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j (0..7) from the
// 12 packed bytes: sub-blocks 0–3 keep theirs in the low six bits of bytes
// j and j+4; sub-blocks 4–7 keep their low four bits in the nibbles of byte
// j+4 and their top two bits in the top bits of bytes j−4 (scale) and j (min).
func scaleMinK4(j int, s []byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	sc = s[j+4]&0x0f | (s[j-4]>>6)<<4
	m = s[j+4]>>4 | (s[j]>>6)<<4
	return sc, m
}

// packScaleMinK4 is the inverse of scaleMinK4 for sub-block j; s must start
// zeroed and the sub-blocks be packed in order 0..7.
func packScaleMinK4(j int, s []byte, sc, m uint8) {
	if j < 4 {
		s[j] = sc
		s[j+4] = m
		return
	}
	s[j+4] = sc&0x0f | (m&0x0f)<<4
	s[j-4] |= (sc >> 4) << 6
	s[j] |= (m >> 4) << 6
}

func dequantQ4K(b []byte, y []float32) {
	d, dmin := getF16(b[0:]), getF16(b[2:])
	sc, qs := b[4:16], b[16:144]
	for c := range 4 {
		s1, m1 := scaleMinK4(2*c, sc)
		s2, m2 := scaleMinK4(2*c+1, sc)
		d1, dm1 := d*float32(s1), dmin*float32(m1)
		d2, dm2 := d*float32(s2), dmin*float32(m2)
		q := qs[32*c : 32*c+32]
		out := y[64*c : 64*c+64]
		for l := range 32 {
			out[l] = float32(d1*float32(q[l]&0x0f)) - dm1
			out[32+l] = float32(d2*float32(q[l]>>4)) - dm2
		}
	}
}

// quantQ4K follows GGML's reference Q4_K quantiser: each sub-block of 32 gets
// a scale and min from an iterative weighted least-squares search
// (searchScaleMin); the eight scales and mins are then quantised to 6 bits
// against d = max scale/63 and dmin = max min/63, and finally every element
// is re-quantised against the rounded scale and min it will be decoded with.
// Fused multiply-adds (fma32, roundMulAdd) stand exactly where the reference
// build contracts them; see quant_fma.go.
func quantQ4K(x []float32, b []byte) {
	var L [256]uint8
	kQuantScaleMin(x, L[:], b[0:], b[2:], b[4:16], 15, -1, 0.1, 20)
	qs := b[16:144]
	for c := range 4 {
		for l := range 32 {
			qs[32*c+l] = L[64*c+l] | L[64*c+32+l]<<4
		}
	}
}

// kQuantScaleMin is the part Q4_K and Q5_K share: the per-sub-block scale
// and min search (searchScaleMin with the given nmax and search grid), the
// 6-bit scales and mins packed into sc against the super scales written to
// dOut and dminOut, and the final quants (0..nmax) written to L.
func kQuantScaleMin(x []float32, L []uint8, dOut, dminOut, sc []byte, nmax int, rmin, rdelta float32, nstep int) {
	var (
		w            [32]float32
		scales, mins [8]float32
	)
	for j := range 8 {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := float32(math.Sqrt(float64(sumX2 / 32)))
		for l, v := range xs {
			w[l] = avX + abs32(v)
		}
		scales[j], mins[j] = searchScaleMin(xs, w[:], L[32*j:32*j+32], nmax, rmin, rdelta, nstep)
	}
	maxScale, maxM := maxOf(scales[:]), maxOf(mins[:])
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxM > 0 {
		invMin = 63 / maxM
	}
	clear(sc[:12])
	for j := range 8 {
		ls := clampInt(roundMulAdd(invScale, scales[j]), 0, 63)
		lm := clampInt(roundMulAdd(invMin, mins[j]), 0, 63)
		packScaleMinK4(j, sc, uint8(ls), uint8(lm))
	}
	putF16(dOut, scaleToF16(maxScale/63))
	putF16(dminOut, scaleToF16(maxM/63))
	d, dmin := getF16(dOut), getF16(dminOut)
	for j := range 8 {
		s, m := scaleMinK4(j, sc)
		dj := d * float32(s)
		if dj == 0 {
			continue // keep the search's quants, as GGML does
		}
		dm := dmin * float32(m)
		for i, v := range x[32*j : 32*j+32] {
			L[32*j+i] = uint8(clampInt(nearestInt((v+dm)/dj), 0, nmax))
		}
	}
}

// searchScaleMin finds a scale s ≥ 0 and min m ≥ 0 so that x ≈ s·q − m with
// q in 0..nmax, minimising Σ w·(s·q − m − x)². It starts from the plain
// min/max mapping, then tries 21 inverse scales (14 to 16 steps across the
// current range, moving the range's low end to each improvement), refining
// each by the weighted least-squares s and m for the quants it yields, and
// keeps the best. It writes the chosen quants to L and returns s and m.
// This is the search of GGML's make_qkx2_quants with squared error (Q4_K:
// nmax = 15, rmin = −1, rdelta = 0.1, 20 steps; Q5_K: 31, −0.5, 0.1, 15),
// evaluated in the same order.
func searchScaleMin(x, w []float32, L []uint8, nmax int, rmin, rdelta float32, nstep int) (scale, theMin float32) {
	return searchScaleMinErr(x, w, L, nmax, rmin, rdelta, nstep, false)
}

// searchScaleMinErr is searchScaleMin with the error measure chosen: squared
// (mad false) or absolute (mad true, make_qkx2_quants' use_mad, as Q2_K).
func searchScaleMinErr(x, w []float32, L []uint8, nmax int, rmin, rdelta float32, nstep int, mad bool) (scale, theMin float32) {
	n := len(x)
	lo, hi := x[0], x[0]
	sumW := w[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		sumW += w[i]
		sumX += float32(w[i] * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if !(hi > lo) { // all equal (or NaN): nothing to search
		clear(L[:n])
		return 0, -lo
	}
	iscale := float32(nmax) / (hi - lo)
	scale = 1 / iscale
	var bestErr float32
	for i := range n {
		l := uint8(clampInt(roundMulAdd(iscale, x[i]-lo), 0, nmax))
		L[i] = l
		diff := fma32(scale, float32(l), lo) - x[i]
		if mad {
			bestErr = fma32(w[i], abs32(diff), bestErr)
		} else {
			bestErr = fma32(w[i], diff*diff, bestErr)
		}
	}
	var aux [32]uint8
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + float32(nmax)) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i := range n {
			l := uint8(clampInt(roundMulAdd(iscale, x[i]-lo), 0, nmax))
			aux[i] = l
			wl := float32(w[i] * float32(l))
			sumL += wl
			sumL2 = fma32(wl, float32(l), sumL2)
			sumXL = fma32(wl, x[i], sumXL)
		}
		D := fma32(sumW, sumL2, -float32(sumL*sumL))
		if !(D > 0) {
			continue
		}
		thisScale := fma32(-sumX, sumL, float32(sumW*sumXL)) / D
		thisMin := fma32(sumL2, sumX, -float32(sumL*sumXL)) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var e float32
		for i := range n {
			diff := fma32(thisScale, float32(aux[i]), thisMin) - x[i]
			if mad {
				e = fma32(w[i], abs32(diff), e)
			} else {
				e = fma32(w[i], diff*diff, e)
			}
		}
		if e < bestErr {
			copy(L[:n], aux[:n])
			bestErr = e
			scale, lo = thisScale, thisMin
		}
	}
	return scale, -lo
}

// Q6_K super-block (210 bytes):
//
//	[0:128]   ql: low four bits of the 6-bit quants
//	[128:192] qh: high two bits, four quants per byte
//	[192:208] 16 int8 scales, one per sub-block of 16
//	[208:210] d (f16)
//
// The super-block is two halves of 128; in half h, with l in 0..31, byte
// ql[64h+l] holds elements 128h+l (low nibble) and 128h+l+64 (high nibble),
// ql[64h+32+l] holds 128h+l+32 and 128h+l+96, and qh[32h+l] holds the high
// bits of 128h+l, +32, +64, +96 in bit pairs 0–1, 2–3, 4–5, 6–7. Element i
// decodes as d·scale[i/16]·(q − 32).

func dequantQ6K(b []byte, y []float32) {
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	d := getF16(b[208:])
	for h := range 2 {
		ql, qh, out := ql[64*h:], qh[32*h:], y[128*h:]
		s := sc[8*h:]
		for l := range 32 {
			is := l / 16
			q1 := int(ql[l]&0x0f|(qh[l]>>0&3)<<4) - 32
			q2 := int(ql[l+32]&0x0f|(qh[l]>>2&3)<<4) - 32
			q3 := int(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
			q4 := int(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
			out[l] = d * float32(int8(s[is])) * float32(q1)
			out[l+32] = d * float32(int8(s[is+2])) * float32(q2)
			out[l+64] = d * float32(int8(s[is+4])) * float32(q3)
			out[l+96] = d * float32(int8(s[is+6])) * float32(q4)
		}
	}
}

// groupMaxEps is the magnitude below which a group is treated as all zero.
const groupMaxEps = 1e-15

// quantQ6K follows GGML's reference Q6_K quantiser: each sub-block of 16 gets
// a signed scale from searchScale6; the 16 scales are quantised to int8
// against d = −(scale of largest magnitude)/128, and every element is then
// re-quantised against the rounded scale it will be decoded with.
func quantQ6K(x []float32, b []byte) {
	var (
		L      [256]uint8
		scales [16]float32
	)
	maxAbsS, maxScale := groupScales(x[:256], L[:], scales[:], searchScale6)
	if !(maxAbsS >= groupMaxEps) {
		clear(b[:210])
		return
	}
	iscale := -128 / maxScale
	putF16(b[208:], scaleToF16(1/iscale))
	d := getF16(b[208:])
	sc := b[192:208]
	for ib := range 16 {
		sc[ib] = byte(int8(clampInt(roundMulAdd(iscale, scales[ib]), -128, 127)))
	}
	for j := range 16 {
		dj := d * float32(int8(sc[j]))
		if dj == 0 {
			continue
		}
		for i, v := range x[16*j : 16*j+16] {
			L[16*j+i] = uint8(clampInt(nearestInt(v/dj), -32, 31) + 32)
		}
	}
	ql, qh := b[0:128], b[128:192]
	for h := range 2 {
		ql, qh, L := ql[64*h:], qh[32*h:], L[128*h:]
		for l := range 32 {
			ql[l] = L[l]&0x0f | (L[l+64]&0x0f)<<4
			ql[l+32] = L[l+32]&0x0f | (L[l+96]&0x0f)<<4
			qh[l] = L[l]>>4 | (L[l+32]>>4)<<2 | (L[l+64]>>4)<<4 | (L[l+96]>>4)<<6
		}
	}
}

// groupScales sets scales[j] to search's scale for group j of x (groups of
// len(x)/len(scales) elements, their quants going to the same group of L)
// and returns the largest magnitude among the scales and the first scale
// that has it (see maxAbs): the first step of the Q3_K, Q6_K and IQ4_XS
// quantisers.
func groupScales[Q uint8 | int8](x []float32, L []Q, scales []float32, search func(x []float32, L []Q) float32) (amax, mx float32) {
	n := len(x) / len(scales)
	for j := range scales {
		scales[j] = search(x[n*j:n*j+n], L[n*j:n*j+n])
	}
	return maxAbs(scales)
}

// searchScale6 finds a signed scale s so that x ≈ s·q with q in −32..31,
// weighting each element by x² (so large values are fitted best). It starts
// from the scale that maps the value of largest magnitude to −32, tries 18
// nearby inverse scales (±0.1 … ±0.9 around 32) and keeps the one whose
// least-squares scale explains the most weighted energy. Quants are written
// to L offset by +32. This is the search of GGML's make_qx_quants with
// nmax = 32 and x² weights, evaluated in the same order.
func searchScale6(x []float32, L []uint8) float32 {
	const nmax = 32
	amax, mx := maxAbs(x)
	if !(amax >= groupMaxEps) {
		clear(L[:len(x)])
		return 0
	}
	// The first pass fuses its products (as the reference build does);
	// the trial passes below do not.
	var sumLX, sumL2 float32
	iscale := -nmax / mx
	for i, v := range x {
		l := clampInt(roundMulAdd(iscale, v), -nmax, nmax-1)
		L[i] = uint8(l + nmax)
		w, fl := v*v, float32(l)
		sumLX = fma32(w*v, fl, sumLX)
		sumL2 = fma32(w*fl, fl, sumL2)
	}
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale := -float32(nmax+float32(0.1*float32(is))) / mx
		sumLX, sumL2 = 0, 0
		for _, v := range x {
			fl := float32(clampInt(nearestInt(iscale*v), -nmax, nmax-1))
			w := v * v
			sumLX += float32(float32(w*v) * fl)
			sumL2 += float32(float32(w*fl) * fl)
		}
		if sumL2 > 0 && sumLX*sumLX > best*sumL2 {
			for i, v := range x {
				L[i] = uint8(clampInt(nearestInt(iscale*v), -nmax, nmax-1) + nmax)
			}
			scale = sumLX / sumL2
			best = scale * sumLX
		}
	}
	return scale
}
