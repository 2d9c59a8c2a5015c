package main

import "fmt"

// Activation quantisers: the act32 and act256 layouts of kernels/actq.go,
// bit for bit the same as the Go versions (same float32 operations, and
// VCVTPS2DQ rounds to nearest even like math.RoundToEven).

const actArgs = "dst *byte, x *float32, k int"

func genActQ(a *asm, g *goFile) {
	for _, s := range []isa{isaAVX512, isaAVX2} {
		for _, kind := range []string{"32", "256"} {
			name := fmt.Sprintf("actQ%s_%s", kind, s.name)
			g.f("//go:noescape\nfunc %s(%s)\n", name, actArgs)
			a.f("\n// func %s(%s)", name, actArgs)
			a.f("TEXT ·%s(SB), NOSPLIT, $0-24", name)
			a.i("MOVQ", "dst+0(FP)", "DI")
			a.i("MOVQ", "x+8(FP)", "SI")
			a.i("MOVQ", "k+16(FP)", "CX")
			if kind == "32" {
				actQ32(a, s)
			} else {
				actQ256(a, s)
			}
			a.i("VZEROUPPER")
			a.i("RET")
		}
	}
}

// Constant registers (low numbers so VEX forms can use them).
const (
	aAbs  = 15 // 0x7fffffff
	a127  = 14 // 127.0 (scalar in lane 0, broadcast on AVX-512)
	aC8   = 13 // bytes of 8
	aOnes = 12 // int16 ones (AVX2)
	aZero = 11
)

func actConsts(a *asm, s isa) {
	a.i("MOVL", "$0x7fffffff", "AX")
	a.i("VMOVD", "AX", xr(aAbs))
	a.i("VPBROADCASTD", xr(aAbs), s.r(aAbs))
	a.i("MOVL", "$0x42fe0000", "AX") // 127.0
	a.i("VMOVD", "AX", xr(a127))
	a.i("MOVL", "$0x08080808", "AX")
	a.i("VMOVD", "AX", xr(aC8))
	a.i("VPBROADCASTD", xr(aC8), s.r(aC8))
	a.i("MOVL", "$0x00010001", "AX")
	a.i("VMOVD", "AX", xr(aOnes))
	a.i("VPBROADCASTD", xr(aOnes), s.r(aOnes))
	a.i("VPXOR", yr(aZero), yr(aZero), yr(aZero))
}

// maxReduce leaves max over the lanes of vector r in lane 0 of xmm r.
func maxReduce(a *asm, s isa, r, t int) {
	if s.v == "Z" {
		a.i("VEXTRACTF64X4", "$1", zr(r), yr(t))
		a.i("VMAXPS", yr(t), yr(r), yr(r))
	}
	a.i("VEXTRACTF128", "$1", yr(r), xr(t))
	a.i("VMAXPS", xr(t), xr(r), xr(r))
	a.i("VPERMILPS", "$0x4e", xr(r), xr(t))
	a.i("VMAXPS", xr(t), xr(r), xr(r))
	a.i("VPERMILPS", "$0xb1", xr(r), xr(t))
	a.i("VMAXSS", xr(t), xr(r), xr(r))
}

// scales computes, from amax in xmm am, d = amax/127 into xmm d and the
// inverse 127/amax (0 when amax is 0) broadcast into vector id.
func scales(a *asm, s isa, am, d, id, t int) {
	a.i("VDIVSS", xr(a127), xr(am), xr(d))
	a.i("VDIVSS", xr(am), xr(a127), xr(id))
	a.i("VCMPSS", "$4", xr(aZero), xr(am), xr(t)) // amax != 0
	a.i("VANDPS", xr(t), xr(id), xr(id))
	a.i("VBROADCASTSS", xr(id), s.r(id))
}

// quantise32 turns 32 floats in vector registers v (2 zmm or 4 ymm),
// scaled by id, into 32 int8 in ymm dst (element order).
func quantise32(a *asm, s isa, v []int, id, dst, t int) {
	for _, r := range v {
		a.i("VMULPS", s.r(id), s.r(r), s.r(r))
		a.i("VCVTPS2DQ", s.r(r), s.r(r))
	}
	if s.v == "Z" {
		a.i("VPMOVDB", zr(v[0]), xr(dst))
		a.i("VPMOVDB", zr(v[1]), xr(t))
		a.i("VINSERTI128", "$1", xr(t), yr(dst), yr(dst))
		return
	}
	a.i("VPACKSSDW", yr(v[1]), yr(v[0]), yr(v[0])) // [a0-3 b0-3 | a4-7 b4-7]
	a.i("VPACKSSDW", yr(v[3]), yr(v[2]), yr(v[2]))
	a.i("VPACKSSWB", yr(v[2]), yr(v[0]), yr(dst)) // [a0-3 b0-3 c0-3 d0-3 | a4-7 ...]
	a.i("VMOVDQU", "actperm<>(SB)", yr(t))
	a.i("VPERMD", yr(dst), yr(t), yr(dst))
}

func actQ32(a *asm, s isa) {
	actConsts(a, s)
	// Registers: data 0..3, amax 4, d 5, id 6, q 7, temps 8, 9, 10.
	var v []int
	if s.v == "Z" {
		v = []int{0, 1}
	} else {
		v = []int{0, 1, 2, 3}
	}
	const am, d, id, q, t, t2, t3 = 4, 5, 6, 7, 8, 9, 10
	block := func(h int) {
		for i, r := range v {
			a.i("VMOVUPS", mem(4*s.vec*i, "SI"), s.r(r))
		}
		a.i("VANDPS", s.r(aAbs), s.r(v[0]), s.r(am))
		for _, r := range v[1:] {
			a.i("VANDPS", s.r(aAbs), s.r(r), s.r(t))
			a.i("VMAXPS", s.r(t), s.r(am), s.r(am))
		}
		maxReduce(a, s, am, t)
		scales(a, s, am, d, id, t)
		quantise32(a, s, v, id, q, t)
		a.i("VMOVDQU", yr(q), mem(32*h, "DI"))
		a.i("VBROADCASTSS", xr(d), yr(d))
		a.i("VMOVUPS", yr(d), mem(64+32*h, "DI"))
		// −8 × the sum of each lane's four quants.
		a.i("VPMADDUBSW", yr(q), yr(aC8), yr(t2))
		a.i("VPMADDWD", yr(aOnes), yr(t2), yr(t2))
		a.i("VPSUBD", yr(t2), yr(aZero), yr(t2))
		a.i("VMOVDQU", yr(t2), mem(128+32*h, "DI"))
		a.i("ADDQ", "$128", "SI")
		_ = t3
	}
	loop := a.newLabel("chunk")
	tail := a.newLabel("tail")
	done := a.newLabel("adone")
	a.i("CMPQ", "CX", "$64")
	a.i("JB", tail)
	a.lbl(loop)
	block(0)
	block(1)
	a.i("ADDQ", fmt.Sprintf("$%d", 192), "DI")
	a.i("SUBQ", "$64", "CX")
	a.i("CMPQ", "CX", "$64")
	a.i("JAE", loop)
	a.lbl(tail)
	a.i("CMPQ", "CX", "$32")
	a.i("JB", done)
	block(0)
	for _, o := range []int{32, 96, 160} {
		a.i("VMOVDQU", yr(aZero), mem(o, "DI"))
	}
	a.lbl(done)
}

func actQ256(a *asm, s isa) {
	actConsts(a, s)
	const am, d, id, t, t2 = 4, 5, 6, 7, 8
	loop := a.newLabel("sblk")
	done := a.newLabel("sdone")
	a.i("SHRQ", "$8", "CX")
	a.i("JZ", done)
	a.lbl(loop)
	n := 256 / s.vec // vectors per super-block
	// amax over the super-block
	a.i("VANDPS", mem(0, "SI"), s.r(aAbs), s.r(am))
	for i := 1; i < n; i++ {
		a.i("VANDPS", mem(4*s.vec*i, "SI"), s.r(aAbs), s.r(t))
		a.i("VMAXPS", s.r(t), s.r(am), s.r(am))
	}
	maxReduce(a, s, am, t)
	scales(a, s, am, d, id, t)
	a.i("VMOVDQU", yr(aZero), mem(288, "DI"))
	a.i("VMOVSS", xr(d), mem(288, "DI"))
	// 16 elements at a time: quantise, store, and sum into int16.
	for g := 0; g < 16; g++ {
		var v []int
		if s.v == "Z" {
			v = []int{0}
		} else {
			v = []int{0, 1}
		}
		for i, r := range v {
			a.i("VMULPS", mem(64*g+32*i, "SI"), s.r(id), s.r(r))
			a.i("VCVTPS2DQ", s.r(r), s.r(r))
		}
		if s.v == "Z" {
			a.i("VPMOVDB", zr(0), mem(16*g, "DI"))
			a.i("VEXTRACTI64X4", "$1", zr(0), yr(t))
			a.i("VPADDD", yr(t), yr(0), yr(0))
		} else {
			a.i("VPACKSSDW", yr(1), yr(0), yr(t)) // [a0-3 b0-3 | a4-7 b4-7] as int16
			a.i("VPACKSSWB", yr(t), yr(t), yr(t)) // bytes [a0-3 b0-3 x8 | a4-7 b4-7 x8]
			a.i("VMOVDQU", "actperm<>(SB)", yr(t2))
			a.i("VPERMD", yr(t), yr(t2), yr(t)) // dwords 0, 4, 1, 5: a0-7 b0-7
			a.i("VMOVDQU", xr(t), mem(16*g, "DI"))
			a.i("VPADDD", yr(1), yr(0), yr(0))
		}
		a.i("VEXTRACTI128", "$1", yr(0), xr(t))
		a.i("VPADDD", xr(t), xr(0), xr(0))
		a.i("VPSHUFD", "$0x4e", xr(0), xr(t))
		a.i("VPADDD", xr(t), xr(0), xr(0))
		a.i("VPSHUFD", "$0xb1", xr(0), xr(t))
		a.i("VPADDD", xr(t), xr(0), xr(0))
		a.i("VPEXTRW", "$0", xr(0), mem(256+2*g, "DI"))
	}
	_ = t2
	a.i("ADDQ", "$1024", "SI")
	a.i("ADDQ", fmt.Sprintf("$%d", 320), "DI")
	a.i("DECQ", "CX")
	a.i("JNZ", loop)
	a.lbl(done)
}

func genActConsts(a *asm) {
	dataWords(a, "actperm", []uint32{0, 4, 1, 5, 2, 6, 3, 7})
}
