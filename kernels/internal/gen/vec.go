package main

import "fmt"

// Vector kernels for the elementwise methods. Each handles n rounded down
// to a multiple of the vector width (2 vectors for vcvt*); the Go
// wrapper does the rest.

func genMisc(a *asm, g *goFile) {
	genExpConsts(a)
	genPrefetch(a, g)
	for _, s := range []isa{isaAVX512, isaAVX2} {
		vecDot(a, g, s)
		vecSumsq(a, g, s)
		vecAxpy(a, g, s)
		vecMulScale(a, g, s)
		vecScale(a, g, s)
		vecMax(a, g, s)
		vecExpSub(a, g, s)
		vecSiluMul(a, g, s)
		vecCvt(a, g, s, "BF16")
		vecCvt(a, g, s, "F16")
	}
}

func fn(a *asm, g *goFile, name, args, ret string, frame int) {
	g.f("//go:noescape\nfunc %s(%s)%s\n", name, args, ret)
	a.f("\n// func %s(%s)%s", name, args, ret)
	a.f("TEXT ·%s(SB), NOSPLIT, $0-%d", name, frame)
}

// loop emits a loop over n (in CX, elements) in steps of step elements,
// calling body(off) with the byte offset register.
func vloop(a *asm, step int, body func()) {
	l := a.newLabel("vl")
	d := a.newLabel("vd")
	a.i("CMPQ", "CX", fmt.Sprintf("$%d", step))
	a.i("JB", d)
	a.lbl(l)
	body()
	a.i("SUBQ", fmt.Sprintf("$%d", step), "CX")
	a.i("CMPQ", "CX", fmt.Sprintf("$%d", step))
	a.i("JAE", l)
	a.lbl(d)
}

// hsumTo leaves the float sum of vector r in X r lane 0.
func hsumTo(a *asm, s isa, r, t int) { hsum(a, s, r, t) }

func vecDot(a *asm, g *goFile, s isa) {
	name := "vdot_" + s.name
	fn(a, g, name, "x, y *float32, n int", " float32", 28)
	a.i("MOVQ", "x+0(FP)", "SI")
	a.i("MOVQ", "y+8(FP)", "DI")
	a.i("MOVQ", "n+16(FP)", "CX")
	for r := 0; r < 4; r++ {
		a.i("VXORPS", s.r(r), s.r(r), s.r(r))
	}
	w := 4 * s.vec
	vloop(a, 4*s.vec, func() {
		for r := 0; r < 4; r++ {
			a.i("VMOVUPS", mem(4*s.vec*r, "SI"), s.r(4+r))
			a.i("VFMADD231PS", mem(4*s.vec*r, "DI"), s.r(4+r), s.r(r))
		}
		a.i("ADDQ", fmt.Sprintf("$%d", 4*w), "SI")
		a.i("ADDQ", fmt.Sprintf("$%d", 4*w), "DI")
	})
	vloop(a, s.vec, func() {
		a.i("VMOVUPS", "(SI)", s.r(4))
		a.i("VFMADD231PS", "(DI)", s.r(4), s.r(0))
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "SI")
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "DI")
	})
	a.i("VADDPS", s.r(1), s.r(0), s.r(0))
	a.i("VADDPS", s.r(3), s.r(2), s.r(2))
	a.i("VADDPS", s.r(2), s.r(0), s.r(0))
	hsum(a, s, 0, 1)
	a.i("VMOVSS", "X0", "ret+24(FP)")
	a.i("VZEROUPPER")
	a.i("RET")
}

func vecSumsq(a *asm, g *goFile, s isa) {
	name := "vsumsq_" + s.name
	fn(a, g, name, "x *float32, n int", " float32", 20)
	a.i("MOVQ", "x+0(FP)", "SI")
	a.i("MOVQ", "n+8(FP)", "CX")
	for r := 0; r < 4; r++ {
		a.i("VXORPS", s.r(r), s.r(r), s.r(r))
	}
	vloop(a, 4*s.vec, func() {
		for r := 0; r < 4; r++ {
			a.i("VMOVUPS", mem(4*s.vec*r, "SI"), s.r(4+r))
			a.i("VFMADD231PS", s.r(4+r), s.r(4+r), s.r(r))
		}
		a.i("ADDQ", fmt.Sprintf("$%d", 16*s.vec), "SI")
	})
	vloop(a, s.vec, func() {
		a.i("VMOVUPS", "(SI)", s.r(4))
		a.i("VFMADD231PS", s.r(4), s.r(4), s.r(0))
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "SI")
	})
	a.i("VADDPS", s.r(1), s.r(0), s.r(0))
	a.i("VADDPS", s.r(3), s.r(2), s.r(2))
	a.i("VADDPS", s.r(2), s.r(0), s.r(0))
	hsum(a, s, 0, 1)
	a.i("VMOVSS", "X0", "ret+16(FP)")
	a.i("VZEROUPPER")
	a.i("RET")
}

// y += alpha·x
func vecAxpy(a *asm, g *goFile, s isa) {
	name := "vaxpy_" + s.name
	fn(a, g, name, "x, y *float32, n int, alpha float32", "", 28)
	a.i("MOVQ", "x+0(FP)", "SI")
	a.i("MOVQ", "y+8(FP)", "DI")
	a.i("MOVQ", "n+16(FP)", "CX")
	a.i("VBROADCASTSS", "alpha+24(FP)", s.r(8))
	vloop(a, 2*s.vec, func() {
		for r := 0; r < 2; r++ {
			a.i("VMOVUPS", mem(4*s.vec*r, "DI"), s.r(r))
			a.i("VFMADD231PS", mem(4*s.vec*r, "SI"), s.r(8), s.r(r))
			a.i("VMOVUPS", s.r(r), mem(4*s.vec*r, "DI"))
		}
		a.i("ADDQ", fmt.Sprintf("$%d", 8*s.vec), "SI")
		a.i("ADDQ", fmt.Sprintf("$%d", 8*s.vec), "DI")
	})
	vloop(a, s.vec, func() {
		a.i("VMOVUPS", "(DI)", s.r(0))
		a.i("VFMADD231PS", "(SI)", s.r(8), s.r(0))
		a.i("VMOVUPS", s.r(0), "(DI)")
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "SI")
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "DI")
	})
	a.i("VZEROUPPER")
	a.i("RET")
}

// dst = x·s·w (rounded after each product, as the reference does)
func vecMulScale(a *asm, g *goFile, s isa) {
	name := "vmulscale_" + s.name
	fn(a, g, name, "dst, x, w *float32, n int, s float32", "", 36)
	a.i("MOVQ", "dst+0(FP)", "DI")
	a.i("MOVQ", "x+8(FP)", "SI")
	a.i("MOVQ", "w+16(FP)", "DX")
	a.i("MOVQ", "n+24(FP)", "CX")
	a.i("VBROADCASTSS", "s+32(FP)", s.r(8))
	vloop(a, s.vec, func() {
		a.i("VMULPS", "(SI)", s.r(8), s.r(0))
		a.i("VMULPS", "(DX)", s.r(0), s.r(0))
		a.i("VMOVUPS", s.r(0), "(DI)")
		for _, r := range []string{"SI", "DX", "DI"} {
			a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), r)
		}
	})
	a.i("VZEROUPPER")
	a.i("RET")
}

// x *= s
func vecScale(a *asm, g *goFile, s isa) {
	name := "vscale_" + s.name
	fn(a, g, name, "x *float32, n int, s float32", "", 20)
	a.i("MOVQ", "x+0(FP)", "SI")
	a.i("MOVQ", "n+8(FP)", "CX")
	a.i("VBROADCASTSS", "s+16(FP)", s.r(8))
	vloop(a, s.vec, func() {
		a.i("VMULPS", "(SI)", s.r(8), s.r(0))
		a.i("VMOVUPS", s.r(0), "(SI)")
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "SI")
	})
	a.i("VZEROUPPER")
	a.i("RET")
}

// max over x (n ≥ one vector; −Inf when n is 0)
func vecMax(a *asm, g *goFile, s isa) {
	name := "vmax_" + s.name
	fn(a, g, name, "x *float32, n int", " float32", 20)
	a.i("MOVQ", "x+0(FP)", "SI")
	a.i("MOVQ", "n+8(FP)", "CX")
	a.i("MOVL", "$0xff800000", "AX")
	a.i("VMOVD", "AX", "X0")
	a.i("VBROADCASTSS", "X0", s.r(0))
	vloop(a, s.vec, func() {
		a.i("VMAXPS", "(SI)", s.r(0), s.r(0))
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "SI")
	})
	maxReduce(a, s, 0, 1)
	a.i("VMOVSS", "X0", "ret+16(FP)")
	a.i("VZEROUPPER")
	a.i("RET")
}

// Exp: exp(x) = 2^n·exp(r), n = round(x·log2 e), r = x − n·ln 2 (ln 2 in
// two parts), exp(r) ≈ 1 + r + r²·p(r) with the classic single-precision
// degree-5 p; about 1 ulp. AVX-512 scales with VSCALEFPS (so overflow gives
// +Inf and underflow 0); AVX2 clamps x to [−87.3, 88.38] and builds 2^n in
// the exponent bits.
func genExpConsts(a *asm) {
	dataWords(a, "expc", []uint32{
		0x3fb8aa3b, // 0 log2 e
		0x3f318000, // 1 ln2 hi 0.693359375
		0xb95e8083, // 2 ln2 lo -2.12194440e-4
		0x42b0c0a5, // 3 88.3762626647949
		0xc2ae999a, // 4 -87.3
		0x3f800000, // 5 1
		0x39506967, // 6 1.9875691500e-4
		0x3ab743ce, // 7 1.3981999507e-3
		0x3c088908, // 8 8.3334519073e-3
		0x3d2aa9c1, // 9 4.1665795894e-2
		0x3e2aaaaa, // 10 1.6666665459e-1
		0x3f000000, // 11 5.0000001201e-1
		0xc2d00000, // 12 -104
		0x42b20000, // 13 89
		0x0000007f, // 14 127 (int)
		0x80000000, // 15 sign bit
	})
}

func ec(i int) string { return fmt.Sprintf("expc<>+%d(SB)", 4*i) }

// expV computes exp of vector register x in place (temps t0, t1, t2).
func expV(a *asm, s isa, x, t0, t1, t2 int) {
	X, T0, T1, T2 := s.r(x), s.r(t0), s.r(t1), s.r(t2)
	if s.v == "Z" {
		a.i("VMINPS.BCST", ec(13), X, X)
		a.i("VMAXPS.BCST", ec(12), X, X)
		a.i("VMULPS.BCST", ec(0), X, T0)
		a.i("VRNDSCALEPS", "$0", T0, T0) // n, nearest even
		a.i("VFNMADD231PS.BCST", ec(1), T0, X)
		a.i("VFNMADD231PS.BCST", ec(2), T0, X) // r
		a.i("VBROADCASTSS", ec(6), T1)
		for i := 7; i <= 11; i++ {
			a.i("VFMADD213PS.BCST", ec(i), X, T1) // p = p·r + c
		}
		a.i("VFMADD213PS.BCST", ec(5), X, T1) // p·r + 1
		a.i("VFMADD213PS.BCST", ec(5), X, T1) // (p·r + 1)·r + 1
		a.i("VSCALEFPS", T0, T1, X)
		return
	}
	a.i("VBROADCASTSS", ec(3), T0)
	a.i("VMINPS", T0, X, X)
	a.i("VBROADCASTSS", ec(4), T0)
	a.i("VMAXPS", T0, X, X)
	a.i("VBROADCASTSS", ec(0), T0)
	a.i("VMULPS", T0, X, T0)
	a.i("VROUNDPS", "$0", T0, T0) // n
	a.i("VBROADCASTSS", ec(1), T1)
	a.i("VFNMADD231PS", T1, T0, X)
	a.i("VBROADCASTSS", ec(2), T1)
	a.i("VFNMADD231PS", T1, T0, X) // r
	a.i("VCVTPS2DQ", T0, T0)
	a.i("VPBROADCASTD", ec(14), T1)
	a.i("VPADDD", T1, T0, T0)
	a.i("VPSLLD", "$23", T0, T0) // 2^n as float bits
	a.i("VBROADCASTSS", ec(6), T1)
	for i := 7; i <= 11; i++ {
		a.i("VBROADCASTSS", ec(i), T2)
		a.i("VFMADD213PS", T2, X, T1)
	}
	a.i("VBROADCASTSS", ec(5), T2)
	a.i("VFMADD213PS", T2, X, T1)
	a.i("VFMADD213PS", T2, X, T1)
	a.i("VMULPS", T0, T1, X)
}

// x = exp(x − mx); returns the sum of the new x.
func vecExpSub(a *asm, g *goFile, s isa) {
	name := "vexpsub_" + s.name
	fn(a, g, name, "x *float32, n int, mx float32", " float32", 28)
	a.i("MOVQ", "x+0(FP)", "SI")
	a.i("MOVQ", "n+8(FP)", "CX")
	a.i("VBROADCASTSS", "mx+16(FP)", s.r(8))
	a.i("VXORPS", s.r(9), s.r(9), s.r(9))
	vloop(a, s.vec, func() {
		a.i("VMOVUPS", "(SI)", s.r(0))
		a.i("VSUBPS", s.r(8), s.r(0), s.r(0))
		expV(a, s, 0, 1, 2, 3)
		a.i("VMOVUPS", s.r(0), "(SI)")
		a.i("VADDPS", s.r(0), s.r(9), s.r(9))
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "SI")
	})
	hsum(a, s, 9, 1)
	a.i("VMOVSS", "X9", "ret+24(FP)")
	a.i("VZEROUPPER")
	a.i("RET")
}

// dst = g / (1 + exp(−g)) · u
func vecSiluMul(a *asm, g *goFile, s isa) {
	name := "vsilumul_" + s.name
	fn(a, g, name, "dst, gate, up *float32, n int", "", 32)
	a.i("MOVQ", "dst+0(FP)", "DI")
	a.i("MOVQ", "gate+8(FP)", "SI")
	a.i("MOVQ", "up+16(FP)", "DX")
	a.i("MOVQ", "n+24(FP)", "CX")
	a.i("VBROADCASTSS", ec(15), s.r(8)) // sign bit
	a.i("VBROADCASTSS", ec(5), s.r(9))  // 1
	vloop(a, s.vec, func() {
		a.i("VMOVUPS", "(SI)", s.r(4))
		a.i("VXORPS", s.r(8), s.r(4), s.r(0)) // −g
		expV(a, s, 0, 1, 2, 3)
		a.i("VADDPS", s.r(9), s.r(0), s.r(0))
		a.i("VDIVPS", s.r(0), s.r(4), s.r(0))
		a.i("VMULPS", "(DX)", s.r(0), s.r(0))
		a.i("VMOVUPS", s.r(0), "(DI)")
		for _, r := range []string{"SI", "DX", "DI"} {
			a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), r)
		}
	})
	a.i("VZEROUPPER")
	a.i("RET")
}

// dst = float32 of n bf16 or f16 values at src
func vecCvt(a *asm, g *goFile, s isa, t string) {
	name := fmt.Sprintf("vcvt%s_%s", t, s.name)
	fn(a, g, name, "dst *float32, src *byte, n int", "", 24)
	a.i("MOVQ", "dst+0(FP)", "DI")
	a.i("MOVQ", "src+8(FP)", "SI")
	a.i("MOVQ", "n+16(FP)", "CX")
	vloop(a, 2*s.vec, func() {
		for r := 0; r < 2; r++ {
			if t == "BF16" {
				a.i("VPMOVZXWD", mem(2*s.vec*r, "SI"), s.r(r))
				a.i("VPSLLD", "$16", s.r(r), s.r(r))
			} else {
				a.i("VCVTPH2PS", mem(2*s.vec*r, "SI"), s.r(r))
			}
			a.i("VMOVUPS", s.r(r), mem(4*s.vec*r, "DI"))
		}
		a.i("ADDQ", fmt.Sprintf("$%d", 4*s.vec), "SI")
		a.i("ADDQ", fmt.Sprintf("$%d", 8*s.vec), "DI")
	})
	a.i("VZEROUPPER")
	a.i("RET")
}

// prefetchL2 asks for rows runs of n bytes, stride bytes apart from p, to
// be brought into L2, one cache line per instruction (a weight block about
// to be reused by many token tiles, or the output rows a task will write).
func genPrefetch(a *asm, g *goFile) {
	fn(a, g, "prefetchL2", "p *byte, n, stride, rows int", "", 32)
	a.i("MOVQ", "p+0(FP)", "DI")
	a.i("MOVQ", "n+8(FP)", "DX")
	a.i("MOVQ", "stride+16(FP)", "BX")
	a.i("MOVQ", "rows+24(FP)", "AX")
	row := a.newLabel("pfr")
	l := a.newLabel("pf")
	next := a.newLabel("pfn")
	d := a.newLabel("pfd")
	a.i("TESTQ", "AX", "AX")
	a.i("JZ", d)
	a.lbl(row)
	a.i("MOVQ", "DI", "SI")
	a.i("LEAQ", "(DI)(DX*1)", "CX")
	a.i("CMPQ", "SI", "CX")
	a.i("JAE", next)
	a.lbl(l)
	a.i("PREFETCHT1", "(SI)")
	a.i("ADDQ", "$64", "SI")
	a.i("CMPQ", "SI", "CX")
	a.i("JB", l)
	a.lbl(next)
	a.i("ADDQ", "BX", "DI")
	a.i("DECQ", "AX")
	a.i("JNZ", row)
	a.lbl(d)
	a.i("RET")
}
