package main

import "fmt"

// Outer-product tiles for the backward products (and any C += A·B with B
// row-major): for i < mr and the tile's nv vectors of columns,
//
//	C[i*ldc + col] (+)= Σ_{kk<k} A(kk, i) · B[kk*ldb + col]
//
// Each B vector loaded serves mr rows of A; A values are broadcast. Two A
// layouts: "P" (A(kk, i) at a + kk*lda + 4i: mr values contiguous per kk,
// the rows of dy for the weight gradient) and "R" (A(kk, i) at
// a + i*lda + 4kk: one row per i, the rows of dy for the input gradient).
// Strides are in bytes.

const outerArgs = "c *float32, ldc int, a *float32, lda int, b *float32, ldb int, k int, acc int"

type outerShape struct {
	mrMax int
}

func outerName(s isa, mode string, mr, nv int) string {
	return fmt.Sprintf("outer%s_%s_%dx%d", mode, s.name, mr, nv)
}

func outerMR(s isa) int {
	if s.v == "Z" {
		return 12
	}
	return 6
}

func genOuter(a *asm, g *goFile) {
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, mode := range []string{"P", "R"} {
			g.f("var outer%s_%s = [][3]outerFn{{},", mode, s.name)
			for mr := 1; mr <= outerMR(s); mr++ {
				g.f("{nil, %s, %s},", outerName(s, mode, mr, 1), outerName(s, mode, mr, 2))
				for nv := 1; nv <= 2; nv++ {
					outerKernel(a, s, mode, mr, nv)
				}
			}
			g.f("}\n")
		}
	}
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, mode := range []string{"P", "R"} {
			for mr := 1; mr <= outerMR(s); mr++ {
				for nv := 1; nv <= 2; nv++ {
					g.f("//go:noescape\nfunc %s(%s)\n", outerName(s, mode, mr, nv), outerArgs)
				}
			}
		}
	}
}

func outerKernel(a *asm, s isa, mode string, mr, nv int) {
	name := outerName(s, mode, mr, nv)
	a.f("\n// func %s(%s)", name, outerArgs)
	a.f("TEXT ·%s(SB), NOSPLIT, $0-64", name)
	const pa, pb, ldb, cnt, lda, lda3 = "AX", "BX", "CX", "DX", "SI", "DI"
	bases := []string{"R8", "R9", "R10"} // mode R: rows 0-3, 4-7, 8-11
	acc := func(i, v int) int { return i*nv + v }
	breg := mr * nv
	bc := breg + nv // broadcast register (AVX2)
	a.i("MOVQ", "a+16(FP)", pa)
	a.i("MOVQ", "lda+24(FP)", lda)
	a.i("MOVQ", "b+32(FP)", pb)
	a.i("MOVQ", "ldb+40(FP)", ldb)
	a.i("MOVQ", "k+48(FP)", cnt)
	if mode == "R" {
		a.i("LEAQ", fmt.Sprintf("(%s)(%s*2)", lda, lda), lda3)
		for q := 0; q*4 < mr; q++ {
			if q == 0 {
				a.i("MOVQ", pa, bases[0])
			} else {
				a.i("LEAQ", fmt.Sprintf("(%s)(%s*4)", bases[q-1], lda), bases[q])
			}
		}
	}
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			r := s.r(acc(i, v))
			a.i("VXORPS", r, r, r)
		}
	}
	loop := a.newLabel("oloop")
	store := a.newLabel("ostore")
	a.i("TESTQ", cnt, cnt)
	a.i("JZ", store)
	a.f("PCALIGN $32")
	a.lbl(loop)
	for v := 0; v < nv; v++ {
		a.i("VMOVUPS", mem(4*s.vec*v, pb), s.r(breg+v))
	}
	for i := 0; i < mr; i++ {
		var addr string
		if mode == "P" {
			addr = mem(4*i, pa)
		} else {
			base := bases[i/4]
			switch i % 4 {
			case 0:
				addr = "(" + base + ")"
			case 1:
				addr = fmt.Sprintf("(%s)(%s*1)", base, lda)
			case 2:
				addr = fmt.Sprintf("(%s)(%s*2)", base, lda)
			case 3:
				addr = fmt.Sprintf("(%s)(%s*1)", base, lda3)
			}
		}
		if s.v == "Z" {
			for v := 0; v < nv; v++ {
				a.i("VFMADD231PS.BCST", addr, s.r(breg+v), s.r(acc(i, v)))
			}
		} else {
			a.i("VBROADCASTSS", addr, s.r(bc))
			for v := 0; v < nv; v++ {
				a.i("VFMADD231PS", s.r(bc), s.r(breg+v), s.r(acc(i, v)))
			}
		}
	}
	if mode == "P" {
		a.i("ADDQ", lda, pa)
	} else {
		for q := 0; q*4 < mr; q++ {
			a.i("ADDQ", "$4", bases[q])
		}
	}
	a.i("ADDQ", ldb, pb)
	a.i("DECQ", cnt)
	a.i("JNZ", loop)
	a.lbl(store)
	const pc, ldc = "AX", "BX"
	a.i("MOVQ", "c+0(FP)", pc)
	a.i("MOVQ", "ldc+8(FP)", ldc)
	a.i("MOVQ", "acc+56(FP)", "CX")
	noacc := a.newLabel("noacc")
	done := a.newLabel("odone")
	for _, accum := range []bool{true, false} {
		if accum {
			a.i("TESTQ", "CX", "CX")
			a.i("JZ", noacc)
		} else {
			a.lbl(noacc)
			a.i("MOVQ", "c+0(FP)", pc)
		}
		for i := 0; i < mr; i++ {
			if i > 0 {
				a.i("ADDQ", ldc, pc)
			}
			for v := 0; v < nv; v++ {
				r := s.r(acc(i, v))
				if accum {
					a.i("VADDPS", mem(4*s.vec*v, pc), r, r)
				}
				a.i("VMOVUPS", r, mem(4*s.vec*v, pc))
			}
		}
		if accum {
			a.i("JMP", done)
		}
	}
	a.lbl(done)
	a.i("VZEROUPPER")
	a.i("RET")
}
