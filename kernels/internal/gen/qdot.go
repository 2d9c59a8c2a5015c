package main

import "fmt"

// Integer kernels for block-quantised weights (see kernels/qdot_go.go for
// the reference and kernels/actq.go for the activation layouts).
//
// Each kernel handles mr tokens and loops over nrows weight rows; per row it
// walks the row's blocks, unpacks the weight quants once and multiplies them
// with every token's 8-bit activations: VPDPBUSD (u8·s8 → int32 lanes of
// four products) on AVX-512 VNNI, VPMADDUBSW + VPMADDWD on AVX2. Each 32-bit
// lane always covers four consecutive elements, so per-lane scale and
// correction vectors line up in both.

const qdotArgs = "dst *float32, ldd int, x *byte, ldx int, w *byte, ldw int, k int, nrows int"

type qtype struct {
	name   string
	wIter  int  // weight bytes per main-loop iteration
	aIter  int  // activation bytes per iteration
	eIter  int  // elements per iteration
	tail32 bool // an odd 32-block may be left over
}

var qtypes = []qtype{
	{"Q8_0", 68, 192, 64, true},
	{"Q4_0", 36, 192, 64, true},
	{"Q4_K", 144, 320, 256, false},
	{"Q6_K", 210, 320, 256, false},
	// AVX-512 only (they set fifth bits with mask registers); other levels
	// decode them to float32.
	{"Q5_0", 44, 192, 64, true},
	{"Q5_K", 176, 320, 256, false},
	{"Q4_1", 40, 192, 64, true},
	{"Q5_1", 48, 192, 64, true},
	{"IQ4_NL", 36, 192, 64, true},
	{"IQ4_XS", 136, 320, 256, false},
}

// onISA reports whether type t has kernels on ISA s.
func onISA(s isa, t qtype) bool {
	switch t.name {
	case "Q5_0", "Q5_K", "Q4_1", "Q5_1", "IQ4_NL", "IQ4_XS":
		return s.v == "Z"
	}
	return true
}

const qmrMax = 8

func qdotName(t qtype, s isa, mr int) string { return fmt.Sprintf("qdot%s_%s_%d", t.name, s.name, mr) }

// GPR roles in the integer kernels. The per-row values (start of the weight
// row, dst pointer, rows left) live in the frame.
var qxp = []string{"BX", "CX", "SI", "DI", "R11", "R12", "R13", "R14"} // token activation rows

const (
	qOW  = "R8"  // running weight pointer
	qOA  = "R9"  // activation offset within a row
	qCNT = "R10" // iterations left in this row
)

func genQdot(a *asm, g *goFile) {
	genQConsts(a)
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, t := range qtypes {
			if !onISA(s, t) {
				continue
			}
			g.f("var qdot%s_%s = []qdotFn{nil,", t.name, s.name)
			for mr := 1; mr <= qmrLimit(s, t); mr++ {
				g.f("%s,", qdotName(t, s, mr))
				qdotKernel(a, s, t, mr)
			}
			g.f("}\n")
		}
	}
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, t := range qtypes {
			if !onISA(s, t) {
				continue
			}
			for mr := 1; mr <= qmrLimit(s, t); mr++ {
				g.f("//go:noescape\nfunc %s(%s)\n", qdotName(t, s, mr), qdotArgs)
			}
		}
	}
}

func dataWords(a *asm, name string, words []uint32) {
	for i, w := range words {
		a.f("DATA %s<>+%d(SB)/4, $0x%08x", name, 4*i, w)
	}
	a.f("GLOBL %s<>(SB), RODATA|NOPTR, $%d\n", name, 4*len(words))
}

func genQConsts(a *asm) {
	// Lane index vectors for VPERMD/VPERMPS.
	var w []uint32
	for l := 0; l < 16; l++ { // two block scales → 8 lanes each
		w = append(w, uint32(l/8))
	}
	dataWords(a, "qidx2", w)
	w = nil
	for c := 0; c < 4; c++ { // Q4_K chunk c: sub-blocks 2c, 2c+1, 8 lanes each
		for l := 0; l < 16; l++ {
			w = append(w, uint32(2*c+l/8))
		}
	}
	dataWords(a, "qidx4k", w)
	w = nil
	for z := 0; z < 4; z++ { // Q6_K vector z: sub-blocks 4z..4z+3, 4 lanes each
		for l := 0; l < 16; l++ {
			w = append(w, uint32(4*z+l/4))
		}
	}
	dataWords(a, "qidx6k", w)
	// Q4_K scale unpacking masks (see q4kScalesAVX512).
	dataWords(a, "q4kmA", []uint32{0x3f3f3f3f, 0x3f3f3f3f, 0, 0})
	dataWords(a, "q4kmB", []uint32{0x0f0f0f0f, 0x0f0f0f0f, 0, 0})
	dataWords(a, "q4kmC", []uint32{0x30303030, 0x30303030, 0, 0})
	dataWords(a, "q4ksh", []uint32{0, 4, 0, 0})
	// VPERMW index: words 8..15 each twice (the mins, per pair of 16-sums).
	w = nil
	for i := 0; i < 8; i++ {
		v := uint32(8+i) | uint32(8+i)<<16
		w = append(w, v)
	}
	dataWords(a, "q4kmins", w)
	// AVX2 Q6_K: VPSHUFB masks that spread int16 scale p (low lane) and
	// p+1 (high lane) over 8 words, for p = 0, 2, 4, 6 within a lane.
	w = nil
	for p := 0; p < 4; p++ {
		for half := 0; half < 2; half++ {
			word := 2*p + half
			b0, b1 := uint32(2*word), uint32(2*word+1)
			v := b0 | b1<<8 | b0<<16 | b1<<24
			for i := 0; i < 4; i++ {
				w = append(w, v)
			}
		}
	}
	dataWords(a, "q6kshuf", w)
	// Q5_K fifth-bit masks: for chunk c, bit 2c of each qh byte (elements
	// 64c..64c+31), then bit 2c+1 (elements 64c+32..64c+63).
	w = nil
	for c := 0; c < 4; c++ {
		for half := 0; half < 2; half++ {
			b := uint32(1) << (2*c + half)
			for i := 0; i < 8; i++ {
				w = append(w, b|b<<8|b<<16|b<<24)
			}
		}
	}
	dataWords(a, "q5kbit", w)
	// IQ4_NL's code book plus 128 (unsigned for VPDPBUSD), in every
	// 128-bit lane (VPSHUFB looks up within lanes).
	vals := []int{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}
	w = nil
	for lane := 0; lane < 4; lane++ {
		for i := 0; i < 16; i += 4 {
			var v uint32
			for j := 0; j < 4; j++ {
				v |= uint32(vals[i+j]+128) << (8 * j)
			}
			w = append(w, v)
		}
	}
	dataWords(a, "iq4tab", w)
	// VPERMW index: words 0..7 each twice (IQ4_XS's scales, per pair of
	// 16-sums).
	w = nil
	for i := 0; i < 8; i++ {
		w = append(w, uint32(i)|uint32(i)<<16)
	}
	dataWords(a, "iq4xsw", w)
}

// qframe emits the row loop shared by all integer kernels. body emits one
// main-loop iteration, tail the odd-block tail (if any), init per-row state
// and consts the per-call constants.
type qkern struct {
	a      *asm
	s      isa
	t      qtype
	mr     int
	consts func()
	body   func(tail bool)
	acc    []int // accumulator register per token
	tmp    int   // a free vector register for the reduction
	tmp2   int
}

func (q *qkern) emit(name string) {
	a, s, t := q.a, q.s, q.t
	a.f("\n// func %s(%s)", name, qdotArgs)
	a.f("TEXT ·%s(SB), NOSPLIT, $176-64", name)
	// Iteration counts.
	a.i("MOVQ", "k+48(FP)", "AX")
	if t.eIter == 64 {
		a.i("MOVQ", "AX", "DX")
		a.i("SHRQ", "$5", "DX")
		a.i("ANDQ", "$1", "DX")
		a.i("MOVQ", "DX", "tail-16(SP)")
		a.i("SHRQ", "$6", "AX")
	} else {
		a.i("SHRQ", "$8", "AX")
	}
	a.i("MOVQ", "AX", "nfull-8(SP)")
	a.i("MOVQ", "x+16(FP)", qxp[0])
	a.i("MOVQ", "ldx+24(FP)", "AX")
	for i := 1; i < q.mr; i++ {
		a.i("LEAQ", fmt.Sprintf("(%s)(AX*1)", qxp[i-1]), qxp[i])
	}
	a.i("MOVQ", "w+32(FP)", "AX")
	a.i("MOVQ", "AX", "wp-24(SP)")
	a.i("MOVQ", "dst+0(FP)", "AX")
	a.i("MOVQ", "AX", "dp-32(SP)")
	a.i("MOVQ", "nrows+56(FP)", "AX")
	a.i("MOVQ", "AX", "rows-40(SP)")
	a.i("TESTQ", "AX", "AX")
	done := a.newLabel("done")
	a.i("JZ", done)
	q.consts()
	row := a.newLabel("row")
	iter := a.newLabel("iter")
	tail := a.newLabel("tail")
	store := a.newLabel("store")
	a.lbl(row)
	a.i("MOVQ", "wp-24(SP)", qOW)
	a.i("XORQ", qOA, qOA)
	a.i("MOVQ", "nfull-8(SP)", qCNT)
	for _, r := range q.acc {
		a.i("VXORPS", s.r(r), s.r(r), s.r(r))
	}
	a.i("TESTQ", qCNT, qCNT)
	a.i("JZ", tail)
	a.f("PCALIGN $32")
	a.lbl(iter)
	q.body(false)
	a.i("ADDQ", fmt.Sprintf("$%d", t.wIter), qOW)
	a.i("ADDQ", fmt.Sprintf("$%d", t.aIter), qOA)
	a.i("DECQ", qCNT)
	a.i("JNZ", iter)
	a.lbl(tail)
	if t.tail32 {
		a.i("CMPQ", "tail-16(SP)", "$0")
		a.i("JE", store)
		q.body(true)
	}
	a.lbl(store)
	a.i("MOVQ", "dp-32(SP)", "AX")
	a.i("MOVQ", "ldd+8(FP)", "DX")
	for i, r := range q.acc {
		if i > 0 {
			a.i("ADDQ", "DX", "AX")
		}
		hsum(a, s, r, q.tmp)
		a.i("VMOVSS", xr(r), "(AX)")
	}
	a.i("ADDQ", "$4", "dp-32(SP)")
	a.i("MOVQ", "ldw+40(FP)", "AX")
	a.i("ADDQ", "AX", "wp-24(SP)")
	a.i("DECQ", "rows-40(SP)")
	a.i("JNZ", row)
	a.lbl(done)
	a.i("VZEROUPPER")
	a.i("RET")
}

// hsum leaves the sum of all lanes of vector register r in its lowest lane.
func hsum(a *asm, s isa, r, t int) {
	if s.v == "Z" {
		a.i("VEXTRACTF64X4", "$1", zr(r), yr(t))
		a.i("VADDPS", yr(t), yr(r), yr(r))
		a.i("VEXTRACTF32X4", "$1", yr(r), xr(t))
	} else {
		a.i("VEXTRACTF128", "$1", yr(r), xr(t))
	}
	a.i("VADDPS", xr(t), xr(r), xr(r))
	a.i("VPERMILPS", "$0x4e", xr(r), xr(t))
	a.i("VADDPS", xr(t), xr(r), xr(r))
	a.i("VPERMILPS", "$0xb1", xr(r), xr(t))
	a.i("VADDSS", xr(t), xr(r), xr(r))
}

// xa is the address of byte off of token i's activations in this iteration.
func xa(i, off int) string {
	if off == 0 {
		return fmt.Sprintf("(%s)(%s*1)", qxp[i], qOA)
	}
	return fmt.Sprintf("%d(%s)(%s*1)", off, qxp[i], qOA)
}

func wa(off int) string { return mem(off, qOW) }

func qdotKernel(a *asm, s isa, t qtype, mr int) {
	q := &qkern{a: a, s: s, t: t, mr: mr}
	if s.v == "Z" {
		switch t.name {
		case "Q8_0", "Q4_0", "Q5_0", "Q4_1", "Q5_1", "IQ4_NL":
			q32AVX512(q)
		case "Q4_K", "Q5_K":
			q4kAVX512(q)
		case "IQ4_XS":
			iq4xsAVX512(q)
		case "Q6_K":
			q6kAVX512(q)
		}
	} else {
		switch t.name {
		case "Q8_0", "Q4_0":
			q32AVX2(q)
		case "Q4_K":
			q4kAVX2(q)
		case "Q6_K":
			q6kAVX2(q)
		}
	}
	q.emit(qdotName(t, s, mr))
}

// ---- AVX-512 ----

// Scale vector of two 32-blocks: lanes 0–7 the f16 scale at off0, lanes
// 8–15 the one at off1 (or 0 when off1 < 0).
func dwLanes512(a *asm, off0, off1 int, dst, idx int) {
	a.i("MOVWLZX", wa(off0), "AX")
	if off1 >= 0 {
		a.i("MOVWLZX", wa(off1), "DX")
		a.i("SHLL", "$16", "DX")
		a.i("ORL", "DX", "AX")
	}
	a.i("VMOVD", "AX", xr(dst))
	a.i("VCVTPH2PS", xr(dst), xr(dst))
	a.i("VPERMPS", zr(dst), zr(idx), zr(dst))
}

func q32AVX512(q *qkern) {
	a := q.a
	const (
		cM   = 0 // 0x0f bytes
		cIdx = 1 // qidx2
		cZ   = 2 // zero
		u    = 3 // unsigned weight operand
		dw   = 4 // weight scale lanes
		t0   = 5
		t1   = 6
		t2   = 7
		t3   = 8
		c10  = 9  // 0x10 bytes (the fifth bit of Q5_0, Q5_1)
		mw   = 10 // Q4_1/Q5_1: −m/8 lanes
		cN8  = 11 // −1/8
		cTab = 12 // IQ4_NL: code book + 128
	)
	for i := 0; i < q.mr; i++ {
		q.acc = append(q.acc, 16+i)
	}
	q.tmp = t0
	name := q.t.name
	isQ8 := name == "Q8_0"
	isQ5 := name == "Q5_0" || name == "Q5_1"
	hasMin := name == "Q4_1" || name == "Q5_1" // x = d·q + m
	isNL := name == "IQ4_NL"
	q.consts = func() {
		if isNL {
			a.i("VMOVDQU32", "iq4tab<>(SB)", zr(cTab))
		}
		a.i("MOVL", "$0x0f0f0f0f", "AX")
		a.i("VPBROADCASTD", "AX", zr(cM))
		a.i("VMOVDQU32", "qidx2<>(SB)", zr(cIdx))
		a.i("VPXORD", zr(cZ), zr(cZ), zr(cZ))
		if isQ5 {
			a.i("MOVL", "$0x10101010", "AX")
			a.i("VPBROADCASTD", "AX", zr(c10))
		}
		if hasMin {
			a.i("MOVL", "$0xbe000000", "AX") // −0.125
			a.i("VPBROADCASTD", "AX", zr(cN8))
		}
	}
	q.body = func(tail bool) {
		// Weight block bytes, offset of the quants, of the fifth bits.
		bs, qo, ho := 18, 2, 2
		switch name {
		case "Q8_0":
			bs = 34
		case "Q5_0":
			bs, qo = 22, 6
		case "Q4_1":
			bs, qo = 20, 4
		case "Q5_1":
			bs, qo, ho = 24, 8, 4
		}
		off1 := bs
		if tail {
			off1 = -1
		}
		dwLanes512(a, 0, off1, dw, cIdx)
		if hasMin {
			// The act32 lane corrections are −8·Σx: m·Σx = (−m/8)·corr.
			m1 := bs + 2
			if tail {
				m1 = -1
			}
			dwLanes512(a, 2, m1, mw, cIdx)
			a.i("VMULPS", zr(cN8), zr(mw), zr(mw))
		}
		if isQ8 {
			a.i("VMOVDQU8", wa(2), yr(t0))
			if !tail {
				a.i("VINSERTI64X4", "$1", wa(bs+2), zr(t0), zr(t0))
			}
			a.i("VPABSB", zr(t0), zr(u))
			a.i("VPMOVB2M", zr(t0), "K1")
		} else {
			a.i("VMOVDQU8", wa(qo), xr(t0))
			if !tail {
				a.i("VINSERTI32X4", "$1", wa(bs+qo), yr(t0), yr(t0))
			}
			a.i("VPSRLW", "$4", yr(t0), yr(t1))
			a.i("VPANDD", yr(cM), yr(t0), yr(t0))
			a.i("VPANDD", yr(cM), yr(t1), yr(t1))
			if tail {
				// One block: [lo, hi] is already in element order.
				a.i("VINSERTI32X4", "$1", xr(t1), yr(t0), yr(u))
			} else {
				a.i("VINSERTI64X4", "$1", yr(t1), zr(t0), zr(u))
				a.i("VSHUFI64X2", "$0xd8", zr(u), zr(u), zr(u))
			}
		}
		if isNL {
			// Indices → code-book values + 128.
			a.i("VPSHUFB", zr(u), zr(cTab), zr(u))
		}
		if isQ5 {
			// qh bit j is element j's fifth bit: the two blocks' words form
			// a 64-bit byte mask in element order; add 16 where it is set.
			a.i("MOVL", wa(ho), "AX")
			if !tail {
				a.i("MOVL", wa(bs+ho), "DX")
				a.i("SHLQ", "$32", "DX")
				a.i("ORQ", "DX", "AX")
			}
			a.i("KMOVQ", "AX", "K2")
			a.i("VPADDB", zr(c10), zr(u), "K2", zr(u))
		}
		for i := 0; i < q.mr; i++ {
			acc := zr(q.acc[i])
			if isQ8 {
				a.i("VMOVDQU8", xa(i, 0), zr(t1))
				a.i("VPSUBB", zr(t1), zr(cZ), "K1", zr(t1))
				a.i("VPXORD", zr(t2), zr(t2), zr(t2))
				a.i("VPDPBUSD", zr(t1), zr(u), zr(t2))
			} else if hasMin {
				a.i("VPXORD", zr(t2), zr(t2), zr(t2))
				a.i("VPDPBUSD", xa(i, 0), zr(u), zr(t2))
				a.i("VCVTDQ2PS", xa(i, 128), zr(t1))
				a.i("VMULPS", xa(i, 64), zr(mw), zr(t3))
				a.i("VFMADD231PS", zr(t1), zr(t3), acc)
			} else {
				a.i("VMOVDQU32", xa(i, 128), zr(t2))
				if isQ5 {
					a.i("VPSLLD", "$1", zr(t2), zr(t2)) // −16·Σx, not −8·Σx
				}
				if isNL {
					a.i("VPSLLD", "$4", zr(t2), zr(t2)) // −128·Σx
				}
				a.i("VPDPBUSD", xa(i, 0), zr(u), zr(t2))
			}
			a.i("VCVTDQ2PS", zr(t2), zr(t2))
			a.i("VMULPS", xa(i, 64), zr(dw), zr(t3))
			a.i("VFMADD231PS", zr(t2), zr(t3), acc)
		}
	}
}

// q4kScalesAVX512 unpacks the 12 scale bytes at wa(4) into xmm dst: bytes
// 0–7 the eight 6-bit scales, bytes 8–15 the eight 6-bit mins.
func q4kScales(a *asm, dst, t0, t1 int, evex bool) {
	and, or, mov := "VPAND", "VPOR", "VMOVDQU"
	if evex {
		and, or, mov = "VPANDD", "VPORD", "VMOVDQU32"
	}
	a.i(mov, wa(4), xr(dst))
	a.i("VPSHUFD", "$0x0a", xr(dst), xr(t0))
	a.i("VPSRLVD", "q4ksh<>(SB)", xr(t0), xr(t0))
	a.i(and, "q4kmB<>(SB)", xr(t0), xr(t0))
	a.i("VPSRLD", "$2", xr(dst), xr(t1))
	a.i(and, "q4kmC<>(SB)", xr(t1), xr(t1))
	a.i(or, xr(t1), xr(t0), xr(t0))
	a.i(and, "q4kmA<>(SB)", xr(dst), xr(dst))
	a.i("VPUNPCKLDQ", xr(t0), xr(dst), xr(dst))
}

// f16Bcast broadcasts the f16 value at wa(off) as float32 to all lanes of dst.
func f16Bcast(a *asm, s isa, off, dst int) {
	a.i("MOVWLZX", wa(off), "AX")
	a.i("VMOVD", "AX", xr(dst))
	a.i("VCVTPH2PS", xr(dst), xr(dst))
	a.i("VBROADCASTSS", xr(dst), s.r(dst))
}

func q4kAVX512(q *qkern) {
	a := q.a
	const (
		cM   = 0
		idx0 = 1 // 1..4: qidx4k
		cMin = 5 // q4kmins
		u0   = 6 // 6..9: weight quants
		sc0  = 10
		mnd  = 14
		vd   = 15
		vdm  = 16
		t0   = 17
		t1   = 18
		t2   = 19
		ai   = 20
		t3   = 21
		qhz  = 22 // Q5_K: the 32 qh bytes, twice
		c10  = 23 // Q5_K: 0x10 bytes
	)
	for i := 0; i < q.mr; i++ {
		q.acc = append(q.acc, 24+i)
	}
	q.tmp = t0
	isQ5 := q.t.name == "Q5_K"
	qo := 16 // offset of the 4-bit quants
	if isQ5 {
		qo = 48
	}
	q.consts = func() {
		a.i("MOVL", "$0x0f0f0f0f", "AX")
		a.i("VPBROADCASTD", "AX", zr(cM))
		for c := 0; c < 4; c++ {
			a.i("VMOVDQU32", fmt.Sprintf("qidx4k<>+%d(SB)", 64*c), zr(idx0+c))
		}
		a.i("VMOVDQU16", "q4kmins<>(SB)", yr(cMin))
		if isQ5 {
			a.i("MOVL", "$0x10101010", "AX")
			a.i("VPBROADCASTD", "AX", zr(c10))
		}
	}
	q.body = func(bool) {
		q4kScales(a, t0, t1, t2, true)
		a.i("VPMOVZXBD", xr(t0), yr(t1))
		for c := 0; c < 4; c++ {
			a.i("VPERMD", zr(t1), zr(idx0+c), zr(sc0+c))
		}
		a.i("VPMOVZXBW", xr(t0), yr(t1))
		a.i("VPERMW", yr(t1), yr(cMin), yr(mnd))
		f16Bcast(a, isaAVX512, 0, vd)
		f16Bcast(a, isaAVX512, 2, vdm)
		for h := 0; h < 2; h++ {
			a.i("VMOVDQU64", wa(qo+64*h), zr(t0))
			a.i("VPSRLW", "$4", zr(t0), zr(t1))
			a.i("VPANDD", zr(cM), zr(t0), zr(t0))
			a.i("VPANDD", zr(cM), zr(t1), zr(t1))
			a.i("VSHUFI64X2", "$0x44", zr(t1), zr(t0), zr(u0+2*h))
			a.i("VSHUFI64X2", "$0xee", zr(t1), zr(t0), zr(u0+2*h+1))
		}
		if isQ5 {
			// u0+c holds elements 64c..64c+63; their fifth bits are bit 2c
			// (first 32) and 2c+1 (last 32) of qh[0..31].
			a.i("VBROADCASTI64X4", wa(16), zr(qhz))
			for c := 0; c < 4; c++ {
				a.i("VPTESTMB", fmt.Sprintf("q5kbit<>+%d(SB)", 64*c), zr(qhz), "K2")
				a.i("VPADDB", zr(c10), zr(u0+c), "K2", zr(u0+c))
			}
		}
		for i := 0; i < q.mr; i++ {
			a.i("VPXORD", zr(ai), zr(ai), zr(ai))
			for c := 0; c < 4; c++ {
				a.i("VPXORD", zr(t0), zr(t0), zr(t0))
				a.i("VPDPBUSD", xa(i, 64*c), zr(u0+c), zr(t0))
				a.i("VPDPWSSD", zr(sc0+c), zr(t0), zr(ai))
			}
			a.i("VPMADDWD", xa(i, 256), yr(mnd), yr(t1))
			a.i("VCVTDQ2PS", zr(ai), zr(ai))
			a.i("VCVTDQ2PS", yr(t1), yr(t1))
			a.i("VBROADCASTSS", xa(i, 288), zr(t2))
			a.i("VMULPS", zr(t2), zr(vd), zr(t3))
			a.i("VMULPS", zr(t2), zr(vdm), zr(t2))
			a.i("VFMADD231PS", zr(ai), zr(t3), zr(q.acc[i]))
			a.i("VFNMADD231PS", zr(t1), zr(t2), zr(q.acc[i]))
		}
	}
}

// iq4xsAVX512: IQ4_XS super-blocks on act256 activations. The eight 6-bit
// scales are gathered with PDEP (low nibbles from scales_l, top bit pairs
// from scales_h) and offset by −32; indices become code-book values + 128
// (VPSHUFB), so each sub-block's integer sum is Σu·x − 128·Σx, the second
// term from the activations' 16-sums.
func iq4xsAVX512(q *qkern) {
	a := q.a
	const (
		cM    = 0
		idx0  = 1 // 1..4: qidx4k
		cWidx = 5 // iq4xsw
		u0    = 6 // 6..9
		sc0   = 10
		mnd   = 14
		vd    = 15
		t0    = 17
		t1    = 18
		t2    = 19
		ai    = 20
		cTab  = 21
		c32   = 22
	)
	for i := 0; i < q.mr; i++ {
		q.acc = append(q.acc, 24+i)
	}
	q.tmp = t0
	q.consts = func() {
		a.i("MOVL", "$0x0f0f0f0f", "AX")
		a.i("VPBROADCASTD", "AX", zr(cM))
		for c := 0; c < 4; c++ {
			a.i("VMOVDQU32", fmt.Sprintf("qidx4k<>+%d(SB)", 64*c), zr(idx0+c))
		}
		a.i("VMOVDQU16", "iq4xsw<>(SB)", yr(cWidx))
		a.i("VMOVDQU32", "iq4tab<>(SB)", zr(cTab))
		a.i("MOVL", "$0x20202020", "AX")
		a.i("VPBROADCASTD", "AX", zr(c32))
	}
	q.body = func(bool) {
		// Only AX and DX are free here (the other GPRs hold the
		// activation rows and loop state).
		a.i("MOVWLZX", wa(2), "AX")
		a.i("MOVQ", "$0x3030303030303030", "DX")
		a.i("PDEPQ", "DX", "AX", "AX")
		a.i("VMOVQ", "AX", xr(t1))
		a.i("MOVL", wa(4), "AX")
		a.i("MOVQ", "$0x0f0f0f0f0f0f0f0f", "DX")
		a.i("PDEPQ", "DX", "AX", "AX")
		a.i("VMOVQ", "AX", xr(t0))
		a.i("VPORQ", xr(t1), xr(t0), xr(t0))
		a.i("VPSUBB", xr(c32), xr(t0), xr(t0))
		a.i("VPMOVSXBD", xr(t0), yr(t1))
		for c := 0; c < 4; c++ {
			a.i("VPERMD", zr(t1), zr(idx0+c), zr(sc0+c))
		}
		a.i("VPMOVSXBW", xr(t0), xr(t1))
		a.i("VPERMW", yr(t1), yr(cWidx), yr(mnd))
		f16Bcast(a, isaAVX512, 0, vd)
		for c := 0; c < 4; c++ {
			a.i("VMOVDQU8", wa(8+32*c), yr(t0))
			a.i("VPSRLW", "$4", yr(t0), yr(t1))
			a.i("VPANDD", yr(cM), yr(t0), yr(t0))
			a.i("VPANDD", yr(cM), yr(t1), yr(t1))
			a.i("VINSERTI64X4", "$1", yr(t1), zr(t0), zr(u0+c))
			a.i("VSHUFI64X2", "$0xd8", zr(u0+c), zr(u0+c), zr(u0+c))
			a.i("VPSHUFB", zr(u0+c), zr(cTab), zr(u0+c))
		}
		for i := 0; i < q.mr; i++ {
			a.i("VPXORD", zr(ai), zr(ai), zr(ai))
			for c := 0; c < 4; c++ {
				a.i("VPXORD", zr(t0), zr(t0), zr(t0))
				a.i("VPDPBUSD", xa(i, 64*c), zr(u0+c), zr(t0))
				a.i("VPMULLD", zr(sc0+c), zr(t0), zr(t0))
				a.i("VPADDD", zr(t0), zr(ai), zr(ai))
			}
			a.i("VPMADDWD", xa(i, 256), yr(mnd), yr(t1))
			a.i("VPSLLD", "$7", yr(t1), yr(t1))
			a.i("VPSUBD", zr(t1), zr(ai), zr(ai))
			a.i("VCVTDQ2PS", zr(ai), zr(ai))
			a.i("VBROADCASTSS", xa(i, 288), zr(t2))
			a.i("VMULPS", zr(t2), zr(vd), zr(t2))
			a.i("VFMADD231PS", zr(ai), zr(t2), zr(q.acc[i]))
		}
	}
}

func q6kAVX512(q *qkern) {
	a := q.a
	const (
		cM   = 0 // 0x0f
		c30  = 1 // 0x30
		idx0 = 2 // 2..5: qidx6k
		cLo  = 6 // 0x0000ffff
		q0   = 7 // 7..10
		sc0  = 11
		sc16 = 15
		vd   = 16
		t0   = 17
		t1   = 18
		t2   = 19
		t3   = 20
		ai   = 21
		t4   = 22
	)
	for i := 0; i < q.mr; i++ {
		q.acc = append(q.acc, 24+i)
	}
	q.tmp = t0
	q.consts = func() {
		a.i("MOVL", "$0x0f0f0f0f", "AX")
		a.i("VPBROADCASTD", "AX", zr(cM))
		a.i("MOVL", "$0x30303030", "AX")
		a.i("VPBROADCASTD", "AX", zr(c30))
		a.i("MOVL", "$0xffff", "AX")
		a.i("VPBROADCASTD", "AX", zr(cLo))
		for z := 0; z < 4; z++ {
			a.i("VMOVDQU32", fmt.Sprintf("qidx6k<>+%d(SB)", 64*z), zr(idx0+z))
		}
	}
	q.body = func(bool) {
		for h := 0; h < 2; h++ {
			ql, qh, ha, hb := t0, t1, q0+2*h, q0+2*h+1
			a.i("VMOVDQU64", wa(64*h), zr(ql))
			a.i("VMOVDQU8", wa(128+32*h), yr(qh))
			// low nibbles | high bits: elements 128h .. 128h+63
			a.i("VPSLLW", "$4", yr(qh), yr(ha))
			a.i("VPSLLW", "$2", yr(qh), yr(hb))
			a.i("VINSERTI64X4", "$1", yr(hb), zr(ha), zr(ha))
			a.i("VPANDD", zr(c30), zr(ha), zr(ha))
			a.i("VPTERNLOGD", "$0xf8", zr(cM), zr(ql), zr(ha))
			// high nibbles | high bits: elements 128h+64 .. 128h+127
			a.i("VPSRLW", "$2", yr(qh), yr(hb))
			a.i("VINSERTI64X4", "$1", yr(hb), zr(qh), zr(hb))
			a.i("VPANDD", zr(c30), zr(hb), zr(hb))
			a.i("VPSRLW", "$4", zr(ql), zr(ql))
			a.i("VPTERNLOGD", "$0xf8", zr(cM), zr(ql), zr(hb))
		}
		a.i("VPMOVSXBD", wa(192), zr(t0))
		a.i("VPANDD", zr(cLo), zr(t0), zr(t0))
		for z := 0; z < 4; z++ {
			a.i("VPERMD", zr(t0), zr(idx0+z), zr(sc0+z))
		}
		a.i("VPMOVSXBW", wa(192), yr(sc16))
		f16Bcast(a, isaAVX512, 208, vd)
		for i := 0; i < q.mr; i++ {
			a.i("VPXORD", zr(ai), zr(ai), zr(ai))
			for z := 0; z < 4; z++ {
				a.i("VPXORD", zr(t0), zr(t0), zr(t0))
				a.i("VPDPBUSD", xa(i, 64*z), zr(q0+z), zr(t0))
				a.i("VPDPWSSD", zr(sc0+z), zr(t0), zr(ai))
			}
			a.i("VPMADDWD", xa(i, 256), yr(sc16), yr(t1))
			a.i("VPSLLD", "$5", yr(t1), yr(t1))
			a.i("VPSUBD", zr(t1), zr(ai), zr(ai))
			a.i("VCVTDQ2PS", zr(ai), zr(ai))
			a.i("VBROADCASTSS", xa(i, 288), zr(t2))
			a.i("VMULPS", zr(t2), zr(vd), zr(t2))
			a.i("VFMADD231PS", zr(ai), zr(t2), zr(q.acc[i]))
		}
	}
}

// ---- AVX2 ----

// qmrLimit is the most tokens one kernel of type t handles on ISA s.
func qmrLimit(s isa, t qtype) int {
	if s.v == "Z" {
		return 8
	}
	if t.name == "Q6_K" {
		return 3
	}
	return 4
}

func q32AVX2(q *qkern) {
	a := q.a
	const (
		cM    = 0
		cOnes = 1
		dw    = 2
		qq    = 3
		hh    = 4
		u     = 5
		t     = 6
		sv    = 7
		xx    = 8
	)
	for i := 0; i < q.mr; i++ {
		q.acc = append(q.acc, 9+i)
	}
	q.tmp = t
	q.consts = func() {
		a.i("MOVL", "$0x0f0f0f0f", "AX")
		a.i("VMOVD", "AX", xr(cM))
		a.i("VPBROADCASTD", xr(cM), yr(cM))
		a.i("MOVL", "$0x00010001", "AX")
		a.i("VMOVD", "AX", xr(cOnes))
		a.i("VPBROADCASTD", xr(cOnes), yr(cOnes))
	}
	isQ8 := q.t.name == "Q8_0"
	bs := 18
	if isQ8 {
		bs = 34
	}
	q.body = func(tail bool) {
		nb := 2
		if tail {
			nb = 1
		}
		for h := 0; h < nb; h++ {
			a.i("VPBROADCASTW", wa(bs*h), xr(dw))
			a.i("VCVTPH2PS", xr(dw), yr(dw))
			if isQ8 {
				a.i("VMOVDQU", wa(bs*h+2), yr(qq))
				a.i("VPABSB", yr(qq), yr(u))
			} else {
				a.i("VMOVDQU", wa(bs*h+2), xr(qq))
				a.i("VPSRLW", "$4", xr(qq), xr(hh))
				a.i("VPAND", xr(cM), xr(qq), xr(qq))
				a.i("VPAND", xr(cM), xr(hh), xr(hh))
				a.i("VINSERTI128", "$1", xr(hh), yr(qq), yr(u))
			}
			for i := 0; i < q.mr; i++ {
				if isQ8 {
					a.i("VMOVDQU", xa(i, 32*h), yr(xx))
					a.i("VPSIGNB", yr(qq), yr(xx), yr(xx))
					a.i("VPMADDUBSW", yr(xx), yr(u), yr(t))
				} else {
					a.i("VPMADDUBSW", xa(i, 32*h), yr(u), yr(t))
				}
				a.i("VPMADDWD", yr(cOnes), yr(t), yr(t))
				if !isQ8 {
					a.i("VPADDD", xa(i, 128+32*h), yr(t), yr(t))
				}
				a.i("VCVTDQ2PS", yr(t), yr(t))
				a.i("VMULPS", xa(i, 64+32*h), yr(dw), yr(sv))
				a.i("VFMADD231PS", yr(t), yr(sv), yr(q.acc[i]))
			}
		}
	}
}

// Stack slots of the AVX2 k-quant kernels (32 bytes each, below the five
// 8-byte locals of every kernel).
const (
	slotD   = 80  // d broadcast
	slotDM  = 112 // dmin broadcast
	slotMND = 144 // Q4_K mins, each twice, as int16
	slotS16 = 176 // sub-block scales as int16
)

func slot(name string, off, plus int) string { return fmt.Sprintf("%s-%d(SP)", name, off-plus) }

func f16ToSlot(a *asm, off int, t int, name string, so int) {
	a.i("MOVWLZX", wa(off), "AX")
	a.i("VMOVD", "AX", xr(t))
	a.i("VCVTPH2PS", xr(t), xr(t))
	a.i("VBROADCASTSS", xr(t), yr(t))
	a.i("VMOVUPS", yr(t), slot(name, so, 0))
}

func q4kAVX2(q *qkern) {
	a := q.a
	const (
		cM   = 0
		lo   = 1
		hi   = 2
		sclo = 3
		schi = 4
		t    = 5
		sv   = 6
	)
	ai := make([]int, q.mr)
	for i := 0; i < q.mr; i++ {
		ai[i] = 7 + i
		q.acc = append(q.acc, 7+q.mr+i)
	}
	q.tmp = t
	q.consts = func() {
		a.i("MOVL", "$0x0f0f0f0f", "AX")
		a.i("VMOVD", "AX", xr(cM))
		a.i("VPBROADCASTD", xr(cM), yr(cM))
	}
	q.body = func(bool) {
		q4kScales(a, t, sv, lo, false)
		a.i("VPMOVZXBW", xr(t), yr(lo))
		a.i("VMOVDQU", yr(lo), slot("s16", slotS16, 0))
		a.i("VPSRLDQ", "$8", xr(t), xr(t))
		a.i("VPMOVZXBW", xr(t), xr(t))
		a.i("VPUNPCKLWD", xr(t), xr(t), xr(lo))
		a.i("VPUNPCKHWD", xr(t), xr(t), xr(hi))
		a.i("VINSERTI128", "$1", xr(hi), yr(lo), yr(lo))
		a.i("VMOVDQU", yr(lo), slot("mnd", slotMND, 0))
		f16ToSlot(a, 0, t, "dv", slotD)
		f16ToSlot(a, 2, t, "dmv", slotDM)
		for i := range ai {
			a.i("VPXOR", yr(ai[i]), yr(ai[i]), yr(ai[i]))
		}
		for c := 0; c < 4; c++ {
			a.i("VMOVDQU", wa(16+32*c), yr(lo))
			a.i("VPSRLW", "$4", yr(lo), yr(hi))
			a.i("VPAND", yr(cM), yr(lo), yr(lo))
			a.i("VPAND", yr(cM), yr(hi), yr(hi))
			a.i("VPBROADCASTW", slot("s16", slotS16, 2*(2*c)), yr(sclo))
			a.i("VPBROADCASTW", slot("s16", slotS16, 2*(2*c+1)), yr(schi))
			for i := 0; i < q.mr; i++ {
				a.i("VPMADDUBSW", xa(i, 64*c), yr(lo), yr(t))
				a.i("VPMADDWD", yr(sclo), yr(t), yr(t))
				a.i("VPADDD", yr(t), yr(ai[i]), yr(ai[i]))
				a.i("VPMADDUBSW", xa(i, 64*c+32), yr(hi), yr(t))
				a.i("VPMADDWD", yr(schi), yr(t), yr(t))
				a.i("VPADDD", yr(t), yr(ai[i]), yr(ai[i]))
			}
		}
		for i := 0; i < q.mr; i++ {
			a.i("VCVTDQ2PS", yr(ai[i]), yr(ai[i]))
			a.i("VBROADCASTSS", xa(i, 288), yr(t))
			a.i("VMULPS", slot("dv", slotD, 0), yr(t), yr(sv))
			a.i("VFMADD231PS", yr(ai[i]), yr(sv), yr(q.acc[i]))
			a.i("VMULPS", slot("dmv", slotDM, 0), yr(t), yr(sv))
			a.i("VMOVDQU", xa(i, 256), yr(t))
			a.i("VPMADDWD", slot("mnd", slotMND, 0), yr(t), yr(t))
			a.i("VCVTDQ2PS", yr(t), yr(t))
			a.i("VFNMADD231PS", yr(t), yr(sv), yr(q.acc[i]))
		}
	}
}

func q6kAVX2(q *qkern) {
	a := q.a
	const (
		cM  = 0
		c30 = 1
		ql  = 2
		qh  = 3
		dlo = 4
		dhi = 5
		pp  = 6
		sc  = 7
		t   = 8
		hh  = 9
	)
	ai := make([]int, q.mr)
	for i := 0; i < q.mr; i++ {
		ai[i] = 10 + i
		q.acc = append(q.acc, 10+q.mr+i)
	}
	q.tmp = t
	q.consts = func() {
		a.i("MOVL", "$0x0f0f0f0f", "AX")
		a.i("VMOVD", "AX", xr(cM))
		a.i("VPBROADCASTD", xr(cM), yr(cM))
		a.i("MOVL", "$0x30303030", "AX")
		a.i("VMOVD", "AX", xr(c30))
		a.i("VPBROADCASTD", xr(c30), yr(c30))
	}
	q.body = func(bool) {
		a.i("VPMOVSXBW", wa(192), yr(t))
		a.i("VMOVDQU", yr(t), slot("s16", slotS16, 0))
		a.i("VPERMQ", "$0x44", yr(t), yr(dlo))
		a.i("VPERMQ", "$0xee", yr(t), yr(dhi))
		f16ToSlot(a, 208, t, "dv", slotD)
		for i := range ai {
			a.i("VPXOR", yr(ai[i]), yr(ai[i]), yr(ai[i]))
		}
		for h := 0; h < 2; h++ {
			a.i("VMOVDQU", wa(128+32*h), yr(qh))
			for half := 0; half < 2; half++ { // ql bytes 0..31 or 32..63 of this half
				a.i("VMOVDQU", wa(64*h+32*half), yr(ql))
				for nib := 0; nib < 2; nib++ {
					p := half + 2*nib // piece within the half: elements 128h+32p..
					j := 4*h + p      // piece within the super-block
					if nib == 0 {
						a.i("VPAND", yr(cM), yr(ql), yr(pp))
					} else {
						a.i("VPSRLW", "$4", yr(ql), yr(pp))
						a.i("VPAND", yr(cM), yr(pp), yr(pp))
					}
					switch p {
					case 0:
						a.i("VPSLLW", "$4", yr(qh), yr(hh))
					case 1:
						a.i("VPSLLW", "$2", yr(qh), yr(hh))
					case 2:
						a.i("VMOVDQA", yr(qh), yr(hh))
					case 3:
						a.i("VPSRLW", "$2", yr(qh), yr(hh))
					}
					a.i("VPAND", yr(c30), yr(hh), yr(hh))
					a.i("VPOR", yr(hh), yr(pp), yr(pp))
					src := dlo
					if j >= 4 {
						src = dhi
					}
					a.i("VPSHUFB", fmt.Sprintf("q6kshuf<>+%d(SB)", 32*(j%4)), yr(src), yr(sc))
					for i := 0; i < q.mr; i++ {
						a.i("VPMADDUBSW", xa(i, 32*j), yr(pp), yr(t))
						a.i("VPMADDWD", yr(sc), yr(t), yr(t))
						a.i("VPADDD", yr(t), yr(ai[i]), yr(ai[i]))
					}
				}
			}
		}
		for i := 0; i < q.mr; i++ {
			a.i("VMOVDQU", xa(i, 256), yr(t))
			a.i("VPMADDWD", slot("s16", slotS16, 0), yr(t), yr(t))
			a.i("VPSLLD", "$5", yr(t), yr(t))
			a.i("VPSUBD", yr(t), yr(ai[i]), yr(ai[i]))
			a.i("VCVTDQ2PS", yr(ai[i]), yr(ai[i]))
			a.i("VBROADCASTSS", xa(i, 288), yr(t))
			a.i("VMULPS", slot("dv", slotD, 0), yr(t), yr(t))
			a.i("VFMADD231PS", yr(ai[i]), yr(t), yr(q.acc[i]))
		}
	}
}
