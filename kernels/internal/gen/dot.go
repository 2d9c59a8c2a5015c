package main

import "fmt"

// isa describes one vector instruction set the float kernels are written for.
type isa struct {
	name  string // "avx512" or "avx2"
	v     string // vector register prefix, "Z" or "Y"
	nregs int    // vector registers
	vec   int    // float32 lanes
	mrMax int    // most tokens per tile
	nrMax []int  // most weight rows per tile, by token count
}

var (
	isaAVX512 = isa{"avx512", "Z", 32, 16, 6, []int{0, 8, 8, 6, 5, 5, 4}}
	isaAVX2   = isa{"avx2", "Y", 16, 8, 4, []int{0, 6, 4, 3, 3}}
)

func (s isa) r(n int) string { return fmt.Sprintf("%s%d", s.v, n) }
func yr(n int) string        { return fmt.Sprintf("Y%d", n) }
func xr(n int) string        { return fmt.Sprintf("X%d", n) }
func zr(n int) string        { return fmt.Sprintf("Z%d", n) }
func mem(off int, base string) string {
	if off == 0 {
		return "(" + base + ")"
	}
	return fmt.Sprintf("%d(%s)", off, base)
}

// weight element types of the float kernels.
type wtype struct {
	name  string // "F32", "BF16", "F16", "BF16P"
	bytes int
	// pairs: the activations are bf16 too and VDPBF16PS multiplies them in
	// pairs (two elements per float32 lane); otherwise they are float32 and
	// the weights widen to float32 for FMA.
	pairs bool
}

var wtypes = []wtype{{"F32", 4, false}, {"BF16", 2, false}, {"F16", 2, false}}

// bf16Pairs is the AVX-512 BF16 extension's type: bf16 weights times bf16
// activations, products of pairs accumulated in float32.
var bf16Pairs = wtype{"BF16P", 2, true}

// evex emits an EVEX-encoded 512-bit instruction of map 0F38, prefix F3,
// W0 with register operands only (dst = ModRM.reg, src1 = EVEX.vvvv, src2 =
// ModRM.rm), as bytes: the Go assembler does not know the AVX-512 BF16
// instructions. Registers are numbered 0–31; comment is the instruction
// in Go syntax.
func evex(a *asm, comment string, opcode byte, src2, src1, dst int) {
	inv := func(v, bit int) byte { return byte(^(v >> bit) & 1) }
	p0 := inv(dst, 3)<<7 | inv(src2, 4)<<6 | inv(src2, 3)<<5 | inv(dst, 4)<<4 | 0x02
	p1 := byte(^src1&0xf)<<3 | 0x04 | 0x02
	p2 := byte(0x40) | inv(src1, 4)<<3
	modrm := byte(0xc0) | byte(dst&7)<<3 | byte(src2&7)
	a.f("\tBYTE $0x62; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x // %s",
		p0, p1, p2, opcode, modrm, comment)
}

// vdpbf16ps emits VDPBF16PS: dst.f32[i] += src1.bf16[2i]·src2.bf16[2i] +
// src1.bf16[2i+1]·src2.bf16[2i+1].
func vdpbf16ps(a *asm, src2, src1, dst int) {
	evex(a, fmt.Sprintf("VDPBF16PS Z%d, Z%d, Z%d", src2, src1, dst), 0x52, src2, src1, dst)
}

// vcvtneps2bf16 emits VCVTNEPS2BF16 Zsrc, Ydst: sixteen float32 rounded to
// bf16 (nearest even).
func vcvtneps2bf16(a *asm, src, dst int) {
	// vvvv is unused; register 0 encodes as the required 1111.
	evex(a, fmt.Sprintf("VCVTNEPS2BF16 Z%d, Y%d", src, dst), 0x72, src, 0, dst)
}

// loadW emits the load of one vector of weights (converted to float32) from
// addr into register dst.
func loadW(a *asm, s isa, t wtype, addr, dst string) {
	switch t.name {
	case "F32":
		a.i("VMOVUPS", addr, dst)
	case "BF16":
		a.i("VPMOVZXWD", addr, dst)
		a.i("VPSLLD", "$16", dst, dst)
	case "BF16P":
		a.i("VMOVDQU32", addr, dst)
	case "F16":
		a.i("VCVTPH2PS", addr, dst)
	}
}

var gprPool = []string{"BX", "CX", "SI", "DI", "R8", "R9", "R10", "R11", "R12", "R13", "R14"}

func dotName(t wtype, s isa, mr, nr int) string {
	return fmt.Sprintf("dot%s_%s_%dx%d", t.name, s.name, mr, nr)
}

const dotArgs = "dst *float32, ldd int, x unsafe.Pointer, ldx int, w unsafe.Pointer, ldw int, k int, ngroups int, acc int"

// genDot writes the float dot-product tiles: for ngroups groups of nr weight
// rows, dst[i*ldd + j] (+)= Σ_c x[i*ldx + c]·w[j*ldw + c] for i < mr, j < nr,
// c < k (k a multiple of the vector width; strides in bytes). Each weight
// vector loaded is used for mr tokens, each activation vector for nr rows.
func genDot(a *asm, g *goFile) {
	table := func(s isa, t wtype) {
		g.f("var %s = [][]dotFn{nil,", "dot"+t.name+"_"+s.name)
		for mr := 1; mr <= s.mrMax; mr++ {
			g.f("{nil,")
			for nr := 1; nr <= s.nrMax[mr]; nr++ {
				g.f("%s,", dotName(t, s, mr, nr))
				dotKernel(a, s, t, mr, nr)
			}
			g.f("},")
		}
		g.f("}\n")
	}
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, t := range wtypes {
			table(s, t)
		}
	}
	// bf16 × bf16 pairs (AVX-512 BF16): x points at bf16 activations.
	table(isaAVX512, bf16Pairs)
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, t := range append(wtypes, bf16Pairs) {
			if t.pairs && s.v != "Z" {
				continue
			}
			for mr := 1; mr <= s.mrMax; mr++ {
				for nr := 1; nr <= s.nrMax[mr]; nr++ {
					g.f("//go:noescape\nfunc %s(%s)\n", dotName(t, s, mr, nr), dotArgs)
				}
			}
		}
	}
	genCvtBF16(a, g)
	genMaskRows(a, g)
	genMaskRowsAVX2(a, g)
}

// genMaskRows writes the masked row copies of MatMulMasked: for n elements
// (a multiple of the elements per mask word), dst[i] = src[i] where bit i
// of bits (LSB first) is set, 0 where it is clear; dst may be src.
//
//	maskW16_avx512(dst, src *uint16, bits *byte, n int)  (F16/BF16, 32 per step)
//	maskF32_avx512(dst, src *float32, bits *byte, n int) (16 per step)
func genMaskRows(a *asm, g *goFile) {
	for _, k := range []struct {
		name, elem, kmov, mov string
		lanes                 int
	}{{"maskW16_avx512", "uint16", "KMOVD", "VMOVDQU16", 32}, {"maskF32_avx512", "float32", "KMOVW", "VMOVUPS", 16}} {
		fn(a, g, k.name, fmt.Sprintf("dst, src *%s, bits *byte, n int", k.elem), "", 32)
		a.i("MOVQ", "dst+0(FP)", "DI")
		a.i("MOVQ", "src+8(FP)", "SI")
		a.i("MOVQ", "bits+16(FP)", "BX")
		a.i("MOVQ", "n+24(FP)", "CX")
		a.i("SHRQ", fmt.Sprintf("$%d", bitsLog2(k.lanes)), "CX")
		done := a.newLabel("done")
		loop := a.newLabel("loop")
		a.i("JZ", done)
		a.lbl(loop)
		a.i("PREFETCHT0", "2048(SI)")
		a.i(k.kmov, "(BX)", "K1")
		a.i(k.mov+".Z", "(SI)", "K1", "Z0")
		a.i(k.mov, "Z0", "(DI)")
		a.i("ADDQ", "$64", "SI")
		a.i("ADDQ", "$64", "DI")
		a.i("ADDQ", fmt.Sprintf("$%d", k.lanes/8), "BX")
		a.i("DECQ", "CX")
		a.i("JNZ", loop)
		a.lbl(done)
		a.i("VZEROUPPER")
		a.i("RET")
	}
}

// genMaskRowsAVX2 writes maskF32_avx2, maskF32_avx512's contract on AVX2:
// 8 float32s per mask byte, the byte broadcast to every lane, each lane
// tested against its own bit (lane i: 1<<i, the maskbits8 constant) and
// the weights ANDed with the all-ones or all-zeros result.
//
//	maskF32_avx2(dst, src *float32, bits *byte, n int) (8 per step)
func genMaskRowsAVX2(a *asm, g *goFile) {
	dataWords(a, "maskbits8", []uint32{1, 2, 4, 8, 16, 32, 64, 128})
	fn(a, g, "maskF32_avx2", "dst, src *float32, bits *byte, n int", "", 32)
	a.i("MOVQ", "dst+0(FP)", "DI")
	a.i("MOVQ", "src+8(FP)", "SI")
	a.i("MOVQ", "bits+16(FP)", "BX")
	a.i("MOVQ", "n+24(FP)", "CX")
	a.i("SHRQ", "$3", "CX")
	done := a.newLabel("done")
	loop := a.newLabel("loop")
	a.i("JZ", done)
	a.i("VMOVDQU", "maskbits8<>(SB)", "Y15")
	a.lbl(loop)
	a.i("PREFETCHT0", "1024(SI)")
	a.i("MOVBLZX", "(BX)", "AX")
	a.i("VMOVD", "AX", "X1")
	a.i("VPBROADCASTD", "X1", "Y1")
	a.i("VPAND", "Y15", "Y1", "Y1")
	a.i("VPCMPEQD", "Y15", "Y1", "Y1")
	a.i("VANDPS", "(SI)", "Y1", "Y0")
	a.i("VMOVUPS", "Y0", "(DI)")
	a.i("ADDQ", "$32", "SI")
	a.i("ADDQ", "$32", "DI")
	a.i("INCQ", "BX")
	a.i("DECQ", "CX")
	a.i("JNZ", loop)
	a.lbl(done)
	a.i("VZEROUPPER")
	a.i("RET")
}

func bitsLog2(n int) int {
	l := 0
	for n > 1 {
		n >>= 1
		l++
	}
	return l
}

// genCvtBF16 writes cvtF32BF16_avx512(dst *uint16, src *float32, n int):
// n float32 (a multiple of 16) rounded to bf16 with VCVTNEPS2BF16.
func genCvtBF16(a *asm, g *goFile) {
	fn(a, g, "cvtF32BF16_avx512", "dst *uint16, src *float32, n int", "", 24)
	a.i("MOVQ", "dst+0(FP)", "DI")
	a.i("MOVQ", "src+8(FP)", "SI")
	a.i("MOVQ", "n+16(FP)", "CX")
	a.i("SHRQ", "$4", "CX")
	done := a.newLabel("done")
	loop := a.newLabel("loop")
	a.i("JZ", done)
	a.lbl(loop)
	a.i("VMOVUPS", "(SI)", "Z0")
	vcvtneps2bf16(a, 0, 1)
	a.i("VMOVDQU", "Y1", "(DI)")
	a.i("ADDQ", "$64", "SI")
	a.i("ADDQ", "$32", "DI")
	a.i("DECQ", "CX")
	a.i("JNZ", loop)
	a.lbl(done)
	a.i("VZEROUPPER")
	a.i("RET")
}

func maxInts(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func dotKernel(a *asm, s isa, t wtype, mr, nr int) {
	if mr*nr+nr+1 > s.nregs || mr*nr > s.nregs-3 || mr+nr > len(gprPool) {
		panic(fmt.Sprintf("tile %dx%d too big for %s", mr, nr, s.name))
	}
	name := dotName(t, s, mr, nr)
	a.f("\n// func %s(%s)", name, dotArgs)
	a.f("TEXT ·%s(SB), NOSPLIT, $24-72", name)
	const off, end = "AX", "DX"
	xp := gprPool[:mr]
	wp := gprPool[mr : mr+nr]
	acc := func(i, j int) int { return i*nr + j }
	wreg := func(j int) int { return mr*nr + j }
	xreg := mr*nr + nr
	t0, t1, zero := s.nregs-1, s.nregs-2, s.nregs-3
	xscale := 4 / t.bytes   // x bytes per weight byte
	step := s.vec * t.bytes // weight bytes per iteration
	if t.pairs {
		if s.v != "Z" {
			panic("bf16 pairs need AVX-512")
		}
		xscale, step = 1, 2*s.vec*t.bytes
	}

	a.i("MOVQ", "w+32(FP)", end)
	a.i("MOVQ", end, "wcur-8(SP)")
	a.i("MOVQ", "dst+0(FP)", end)
	a.i("MOVQ", end, "dcur-16(SP)")
	a.i("MOVQ", "ngroups+56(FP)", end)
	a.i("MOVQ", end, "cnt-24(SP)")
	group := a.newLabel("group")
	loop := a.newLabel("loop")
	reduce := a.newLabel("reduce")
	accPath := a.newLabel("accum")
	next := a.newLabel("next")
	a.lbl(group)
	a.i("MOVQ", "x+16(FP)", xp[0])
	a.i("MOVQ", "ldx+24(FP)", end)
	for i := 1; i < mr; i++ {
		if i == 1 {
			a.i("LEAQ", fmt.Sprintf("(%s)(%s*1)", xp[0], end), xp[1])
		} else {
			a.i("LEAQ", fmt.Sprintf("(%s)(%s*2)", xp[i-2], end), xp[i])
		}
	}
	a.i("MOVQ", "wcur-8(SP)", wp[0])
	a.i("MOVQ", "ldw+40(FP)", end)
	for j := 1; j < nr; j++ {
		if j == 1 {
			a.i("LEAQ", fmt.Sprintf("(%s)(%s*1)", wp[0], end), wp[1])
		} else {
			a.i("LEAQ", fmt.Sprintf("(%s)(%s*2)", wp[j-2], end), wp[j])
		}
	}
	a.i("LEAQ", fmt.Sprintf("(%s)(%s*1)", wp[nr-1], end), off)
	a.i("MOVQ", off, "wcur-8(SP)")
	a.i("MOVQ", "k+48(FP)", end)
	if t.bytes == 4 {
		a.i("SHLQ", "$2", end)
	} else {
		a.i("SHLQ", "$1", end)
	}
	for i := 0; i < mr; i++ {
		for j := 0; j < nr; j++ {
			r := s.r(acc(i, j))
			a.i("VXORPS", r, r, r)
		}
	}
	a.i("XORQ", off, off)
	a.i("TESTQ", end, end)
	a.i("JZ", reduce)
	a.f("PCALIGN $32")
	a.lbl(loop)
	for j := 0; j < nr; j++ {
		loadW(a, s, t, fmt.Sprintf("(%s)(%s*1)", wp[j], off), s.r(wreg(j)))
	}
	for i := 0; i < mr; i++ {
		xa := fmt.Sprintf("(%s)(%s*%d)", xp[i], off, xscale)
		if t.pairs {
			a.i("VMOVDQU32", xa, s.r(xreg))
			for j := 0; j < nr; j++ {
				vdpbf16ps(a, wreg(j), xreg, acc(i, j))
			}
			continue
		}
		if nr == 1 {
			a.i("VFMADD231PS", xa, s.r(wreg(0)), s.r(acc(i, 0)))
			continue
		}
		a.i("VMOVUPS", xa, s.r(xreg))
		for j := 0; j < nr; j++ {
			a.i("VFMADD231PS", s.r(wreg(j)), s.r(xreg), s.r(acc(i, j)))
		}
	}
	a.i("ADDQ", fmt.Sprintf("$%d", step), off)
	a.i("CMPQ", off, end)
	a.i("JB", loop)

	a.lbl(reduce)
	// Horizontal sums: for each token, groups of up to four accumulators are
	// folded into one xmm register holding their four sums.
	if nr%4 != 0 {
		a.i("VXORPS", s.r(zero), s.r(zero), s.r(zero))
	}
	for i := 0; i < mr; i++ {
		for g0 := 0; g0 < nr; g0 += 4 {
			n := min(4, nr-g0)
			reg := func(q int) int {
				if q < n {
					return acc(i, g0+q)
				}
				return zero
			}
			ra, rb, rc, rd := reg(0), reg(1), reg(2), reg(3)
			a.i("VUNPCKLPS", s.r(rb), s.r(ra), s.r(t0))
			a.i("VUNPCKHPS", s.r(rb), s.r(ra), s.r(t1))
			a.i("VADDPS", s.r(t1), s.r(t0), s.r(ra))
			if n > 2 {
				a.i("VUNPCKLPS", s.r(rd), s.r(rc), s.r(t0))
				a.i("VUNPCKHPS", s.r(rd), s.r(rc), s.r(t1))
				a.i("VADDPS", s.r(t1), s.r(t0), s.r(rc))
			}
			a.i("VUNPCKLPD", s.r(rc), s.r(ra), s.r(t0))
			a.i("VUNPCKHPD", s.r(rc), s.r(ra), s.r(t1))
			a.i("VADDPS", s.r(t1), s.r(t0), s.r(ra))
			if s.v == "Z" {
				a.i("VEXTRACTF64X4", "$1", zr(ra), yr(t0))
				a.i("VADDPS", yr(t0), yr(ra), yr(ra))
				a.i("VEXTRACTF32X4", "$1", yr(ra), xr(t0))
			} else {
				a.i("VEXTRACTF128", "$1", yr(ra), xr(t0))
			}
			a.i("VADDPS", xr(t0), xr(ra), xr(ra))
		}
	}
	const dp, ldd = "AX", "DX"
	a.i("MOVQ", "dcur-16(SP)", dp)
	a.i("MOVQ", "ldd+8(FP)", ldd)
	a.i("MOVQ", "acc+64(FP)", "BX")
	a.i("TESTQ", "BX", "BX")
	a.i("JNZ", accPath)
	for _, accum := range []bool{false, true} {
		if accum {
			a.lbl(accPath)
		}
		for i := 0; i < mr; i++ {
			rowp := dp
			if i > 0 {
				rowp = "CX"
				if i == 1 {
					a.i("LEAQ", fmt.Sprintf("(%s)(%s*1)", dp, ldd), rowp)
				} else {
					a.i("ADDQ", ldd, rowp)
				}
			}
			for g0 := 0; g0 < nr; g0 += 4 {
				n := min(4, nr-g0)
				ra := xr(acc(i, g0))
				o := 4 * g0
				if accum {
					switch n {
					case 4:
						a.i("VADDPS", mem(o, rowp), ra, ra)
					case 1:
						a.i("VMOVSS", mem(o, rowp), xr(t0))
						a.i("VADDPS", xr(t0), ra, ra)
					case 2:
						a.i("VMOVSD", mem(o, rowp), xr(t0))
						a.i("VADDPS", xr(t0), ra, ra)
					case 3:
						a.i("VMOVSD", mem(o, rowp), xr(t0))
						a.i("VINSERTPS", "$0x20", mem(o+8, rowp), xr(t0), xr(t0))
						a.i("VADDPS", xr(t0), ra, ra)
					}
				}
				switch n {
				case 4:
					a.i("VMOVUPS", ra, mem(o, rowp))
				case 1:
					a.i("VMOVSS", ra, mem(o, rowp))
				case 2:
					a.i("VMOVSD", ra, mem(o, rowp))
				case 3:
					a.i("VMOVSD", ra, mem(o, rowp))
					a.i("VEXTRACTPS", "$2", ra, mem(o+8, rowp))
				}
			}
		}
		if !accum {
			a.i("JMP", next)
		}
	}
	a.lbl(next)
	a.i("ADDQ", fmt.Sprintf("$%d", 4*nr), dp)
	a.i("MOVQ", dp, "dcur-16(SP)")
	a.i("DECQ", "cnt-24(SP)")
	a.i("JNZ", group)
	a.i("VZEROUPPER")
	a.i("RET")
}
