package main

import "fmt"

// Block decoders: whole blocks of Q8_0, Q4_0, Q4_K, Q6_K to float32, with
// exactly the float32 operations of kernels/qref.go (no FMA contraction), so
// the results are bit-identical. Used for prompt-sized products (decode a
// few weight rows, reuse them for every token) and for Row.

const decArgs = "dst *float32, src *byte, nblocks int"

func genDec(a *asm, g *goFile) {
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, t := range []string{"Q8_0", "Q4_0", "Q4_K", "Q6_K"} {
			name := fmt.Sprintf("dec%s_%s", t, s.name)
			g.f("//go:noescape\nfunc %s(%s)\n", name, decArgs)
			a.f("\n// func %s(%s)", name, decArgs)
			a.f("TEXT ·%s(SB), NOSPLIT, $320-24", name)
			a.i("MOVQ", "dst+0(FP)", "DI")
			a.i("MOVQ", "src+8(FP)", qOW)
			a.i("MOVQ", "nblocks+16(FP)", "CX")
			done := a.newLabel("ddone")
			loop := a.newLabel("dblk")
			a.i("TESTQ", "CX", "CX")
			a.i("JZ", done)
			decConsts(a, s, t)
			a.lbl(loop)
			switch t {
			case "Q8_0", "Q4_0":
				dec32(a, s, t)
			case "Q4_K":
				decQ4K(a, s)
			case "Q6_K":
				decQ6K(a, s)
			}
			a.i("DECQ", "CX")
			a.i("JNZ", loop)
			a.lbl(done)
			a.i("VZEROUPPER")
			a.i("RET")
		}
	}
}

const (
	dM   = 15 // 0x0f dwords
	d8   = 14 // int32 8 / 32
	dM30 = 13 // 0x30 bytes
	dM0F = 12 // 0x0f bytes
)

func bcastConst(a *asm, s isa, v uint32, r int) {
	a.i("MOVL", fmt.Sprintf("$0x%x", v), "AX")
	a.i("VMOVD", "AX", xr(r))
	a.i("VPBROADCASTD", xr(r), s.r(r))
}

func decConsts(a *asm, s isa, t string) {
	bcastConst(a, s, 0x0f, dM)
	switch t {
	case "Q4_0":
		bcastConst(a, s, 8, d8)
	case "Q6_K":
		bcastConst(a, s, 32, d8)
		bcastConst(a, s, 0x30303030, dM30)
		bcastConst(a, s, 0x0f0f0f0f, dM0F)
	}
}

// dec32 decodes one Q8_0 or Q4_0 block at qOW to 32 floats at DI.
func dec32(a *asm, s isa, t string) {
	const vd, v = 0, 1
	f16Scalar(a, 0, vd)
	a.i("VBROADCASTSS", xr(vd), s.r(vd))
	n := s.vec // elements per vector
	for e := 0; e < 32; e += n {
		if t == "Q8_0" {
			a.i("VPMOVSXBD", wa(2+e), s.r(v))
		} else {
			a.i("VPMOVZXBD", wa(2+e%16), s.r(v))
			if e >= 16 {
				a.i("VPSRLD", "$4", s.r(v), s.r(v))
			} else {
				a.i(pand(s), s.r(dM), s.r(v), s.r(v))
			}
			a.i("VPSUBD", s.r(d8), s.r(v), s.r(v))
		}
		a.i("VCVTDQ2PS", s.r(v), s.r(v))
		a.i("VMULPS", s.r(v), s.r(vd), s.r(v))
		a.i("VMOVUPS", s.r(v), mem(4*e, "DI"))
	}
	bs := 34
	if t == "Q4_0" {
		bs = 18
	}
	a.i("ADDQ", fmt.Sprintf("$%d", bs), qOW)
	a.i("ADDQ", "$128", "DI")
}

func pand(s isa) string {
	if s.v == "Z" {
		return "VPANDD"
	}
	return "VPAND"
}

// f16Scalar converts the f16 at wa(off) to float32 in lane 0 of xmm r.
func f16Scalar(a *asm, off, r int) {
	a.i("MOVWLZX", wa(off), "AX")
	a.i("VMOVD", "AX", xr(r))
	a.i("VCVTPH2PS", xr(r), xr(r))
}

func decQ4K(a *asm, s isa) {
	const S, t0, t1, vd, vdm, v, bd, bm = 0, 1, 2, 3, 4, 5, 6, 7
	q4kScales(a, S, t0, t1, false)
	f16Scalar(a, 0, vd)
	f16Scalar(a, 2, vdm)
	if s.v == "Z" {
		a.i("VPMOVZXBD", xr(S), zr(t0))
		a.i("VCVTDQ2PS", zr(t0), zr(t0))
		a.i("VBROADCASTSS", xr(vd), yr(vd))
		a.i("VBROADCASTSS", xr(vdm), yr(vdm))
		a.i("VINSERTF64X4", "$1", yr(vdm), zr(vd), zr(vd))
		a.i("VMULPS", zr(vd), zr(t0), zr(t0))
		a.i("VMOVUPS", zr(t0), "tab-64(SP)")
	} else {
		a.i("VPMOVZXBD", xr(S), yr(t0))
		a.i("VPSRLDQ", "$8", xr(S), xr(S))
		a.i("VPMOVZXBD", xr(S), yr(t1))
		a.i("VCVTDQ2PS", yr(t0), yr(t0))
		a.i("VCVTDQ2PS", yr(t1), yr(t1))
		a.i("VBROADCASTSS", xr(vd), yr(vd))
		a.i("VBROADCASTSS", xr(vdm), yr(vdm))
		a.i("VMULPS", yr(vd), yr(t0), yr(t0))
		a.i("VMULPS", yr(vdm), yr(t1), yr(t1))
		a.i("VMOVUPS", yr(t0), "tab-64(SP)")
		a.i("VMOVUPS", yr(t1), "tab-32(SP)")
	}
	for c := 0; c < 4; c++ {
		for hh := 0; hh < 2; hh++ {
			j := 2*c + hh
			a.i("VBROADCASTSS", fmt.Sprintf("tab-%d(SP)", 64-4*j), s.r(bd))
			a.i("VBROADCASTSS", fmt.Sprintf("tab-%d(SP)", 32-4*j), s.r(bm))
			for e := 0; e < 32; e += s.vec {
				a.i("VPMOVZXBD", wa(16+32*c+e), s.r(v))
				if hh == 0 {
					a.i(pand(s), s.r(dM), s.r(v), s.r(v))
				} else {
					a.i("VPSRLD", "$4", s.r(v), s.r(v))
				}
				a.i("VCVTDQ2PS", s.r(v), s.r(v))
				a.i("VMULPS", s.r(bd), s.r(v), s.r(v))
				a.i("VSUBPS", s.r(bm), s.r(v), s.r(v))
				a.i("VMOVUPS", s.r(v), mem(4*(64*c+32*hh+e), "DI"))
			}
		}
	}
	a.i("ADDQ", "$144", qOW)
	a.i("ADDQ", "$1024", "DI")
}

// q6kUnpackToStack writes the 256 six-bit quants (0..63) of the Q6_K
// super-block at qOW in element order to buf-320(SP).
func q6kUnpackToStack(a *asm, s isa) {
	const ql, qh, hh, pp = 0, 1, 2, 3
	for h := 0; h < 2; h++ {
		a.i("VMOVDQU", wa(128+32*h), yr(qh))
		for half := 0; half < 2; half++ {
			a.i("VMOVDQU", wa(64*h+32*half), yr(ql))
			for nib := 0; nib < 2; nib++ {
				p := half + 2*nib
				if nib == 0 {
					a.i("VPAND", yr(dM0F), yr(ql), yr(pp))
				} else {
					a.i("VPSRLW", "$4", yr(ql), yr(pp))
					a.i("VPAND", yr(dM0F), yr(pp), yr(pp))
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
				a.i("VPAND", yr(dM30), yr(hh), yr(hh))
				a.i("VPOR", yr(hh), yr(pp), yr(pp))
				a.i("VMOVDQU", yr(pp), fmt.Sprintf("buf-%d(SP)", 320-32*(4*h+p)))
			}
		}
	}
}

func decQ6K(a *asm, s isa) {
	const vd, t0, t1, v, b = 4, 5, 6, 7, 8
	q6kUnpackToStack(a, s)
	f16Scalar(a, 208, vd)
	if s.v == "Z" {
		a.i("VBROADCASTSS", xr(vd), zr(vd))
		a.i("VPMOVSXBD", wa(192), zr(t0))
		a.i("VCVTDQ2PS", zr(t0), zr(t0))
		a.i("VMULPS", zr(t0), zr(vd), zr(t0))
		a.i("VMOVUPS", zr(t0), "tab-64(SP)")
	} else {
		a.i("VBROADCASTSS", xr(vd), yr(vd))
		a.i("VPMOVSXBD", wa(192), yr(t0))
		a.i("VPMOVSXBD", wa(200), yr(t1))
		a.i("VCVTDQ2PS", yr(t0), yr(t0))
		a.i("VCVTDQ2PS", yr(t1), yr(t1))
		a.i("VMULPS", yr(t0), yr(vd), yr(t0))
		a.i("VMULPS", yr(t1), yr(vd), yr(t1))
		a.i("VMOVUPS", yr(t0), "tab-64(SP)")
		a.i("VMOVUPS", yr(t1), "tab-32(SP)")
	}
	for sb := 0; sb < 16; sb++ {
		a.i("VBROADCASTSS", fmt.Sprintf("tab-%d(SP)", 64-4*sb), s.r(b))
		for e := 0; e < 16; e += s.vec {
			a.i("VPMOVZXBD", fmt.Sprintf("buf-%d(SP)", 320-(16*sb+e)), s.r(v))
			a.i("VPSUBD", s.r(d8), s.r(v), s.r(v))
			a.i("VCVTDQ2PS", s.r(v), s.r(v))
			a.i("VMULPS", s.r(v), s.r(b), s.r(v))
			a.i("VMOVUPS", s.r(v), mem(4*(16*sb+e), "DI"))
		}
	}
	a.i("ADDQ", "$210", qOW)
	a.i("ADDQ", "$1024", "DI")
}
