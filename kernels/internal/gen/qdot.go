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
}

const qmrMax = 4

func qdotName(t qtype, s isa, mr int) string { return fmt.Sprintf("qdot%s_%s_%d", t.name, s.name, mr) }

// GPR roles in the integer kernels.
var qxp = []string{"BX", "CX", "SI", "DI"} // token activation rows

const (
	qOW   = "R8"  // running weight pointer
	qOA   = "R9"  // activation offset within a row
	qCNT  = "R10" // iterations left in this row
	qWP   = "R11" // start of the current weight row
	qDP   = "R12" // dst for the current row, token 0
	qLDD  = "R13"
	qROWS = "R14"
)

func genQdot(a *asm, g *goFile) {
	genQConsts(a)
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, t := range qtypes {
			g.f("var qdot%s_%s = []qdotFn{nil,", t.name, s.name)
			for mr := 1; mr <= qmrMax; mr++ {
				g.f("%s,", qdotName(t, s, mr))
				qdotKernel(a, s, t, mr)
			}
			g.f("}\n")
		}
	}
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, t := range qtypes {
			for mr := 1; mr <= qmrMax; mr++ {
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
	a.f("TEXT ·%s(SB), NOSPLIT, $16-64", name)
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
	a.i("MOVQ", "w+32(FP)", qWP)
	a.i("MOVQ", "dst+0(FP)", qDP)
	a.i("MOVQ", "ldd+8(FP)", qLDD)
	a.i("MOVQ", "nrows+56(FP)", qROWS)
	a.i("TESTQ", qROWS, qROWS)
	done := a.newLabel("done")
	a.i("JZ", done)
	q.consts()
	row := a.newLabel("row")
	iter := a.newLabel("iter")
	tail := a.newLabel("tail")
	store := a.newLabel("store")
	a.lbl(row)
	a.i("MOVQ", qWP, qOW)
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
	a.i("MOVQ", qDP, "AX")
	for i, r := range q.acc {
		if i > 0 {
			a.i("ADDQ", qLDD, "AX")
		}
		hsum(a, s, r, q.tmp)
		a.i("VMOVSS", xr(r), "(AX)")
	}
	a.i("ADDQ", "$4", qDP)
	a.i("ADDQ", "ldw+40(FP)", qWP)
	a.i("DECQ", qROWS)
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
		case "Q8_0", "Q4_0":
			q32AVX512(q)
		case "Q4_K":
			q4kAVX512(q)
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
	)
	for i := 0; i < q.mr; i++ {
		q.acc = append(q.acc, 16+i)
	}
	q.tmp = t0
	q.consts = func() {
		a.i("MOVL", "$0x0f0f0f0f", "AX")
		a.i("VPBROADCASTD", "AX", zr(cM))
		a.i("VMOVDQU32", "qidx2<>(SB)", zr(cIdx))
		a.i("VPXORD", zr(cZ), zr(cZ), zr(cZ))
	}
	isQ8 := q.t.name == "Q8_0"
	q.body = func(tail bool) {
		bs := 18 // weight block bytes
		if isQ8 {
			bs = 34
		}
		off1 := bs
		if tail {
			off1 = -1
		}
		dwLanes512(a, 0, off1, dw, cIdx)
		if isQ8 {
			a.i("VMOVDQU8", wa(2), yr(t0))
			if !tail {
				a.i("VINSERTI64X4", "$1", wa(bs+2), zr(t0), zr(t0))
			}
			a.i("VPABSB", zr(t0), zr(u))
			a.i("VPMOVB2M", zr(t0), "K1")
		} else {
			a.i("VMOVDQU8", wa(2), xr(t0))
			if !tail {
				a.i("VINSERTI32X4", "$1", wa(bs+2), yr(t0), yr(t0))
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
		for i := 0; i < q.mr; i++ {
			acc := zr(q.acc[i])
			if isQ8 {
				a.i("VMOVDQU8", xa(i, 0), zr(t1))
				a.i("VPSUBB", zr(t1), zr(cZ), "K1", zr(t1))
				a.i("VPXORD", zr(t2), zr(t2), zr(t2))
				a.i("VPDPBUSD", zr(t1), zr(u), zr(t2))
			} else {
				a.i("VMOVDQU32", xa(i, 128), zr(t2))
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
		a.i("VMOVDQU16", "q4kmins<>(SB)", yr(cMin))
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
			a.i("VMOVDQU64", wa(16+64*h), zr(t0))
			a.i("VPSRLW", "$4", zr(t0), zr(t1))
			a.i("VPANDD", zr(cM), zr(t0), zr(t0))
			a.i("VPANDD", zr(cM), zr(t1), zr(t1))
			a.i("VSHUFI64X2", "$0x44", zr(t1), zr(t0), zr(u0+2*h))
			a.i("VSHUFI64X2", "$0xee", zr(t1), zr(t0), zr(u0+2*h+1))
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
			a.i("VMOVDQU", wa(128+32*h), yr(qh))
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

func q32AVX2(q *qkern) {}
func q4kAVX2(q *qkern) {}
func q6kAVX2(q *qkern) {}
