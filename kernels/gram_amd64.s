//go:build amd64

#include "textflag.h"

// Written by hand (not by kernels/internal/gen): AddGram's tile.

// func gram4x8_avx2(dst *float64, ldg int, a, b *float64, ld, n int)
// dst[r*ldg+c] += Σ_t a[t*ld+r]·b[t*ld+c] for r < 4, c < 8, in the order of
// t. The running sums stay in Y0–Y7; each product of float32 values is
// exact in float64, so VFMADD231PD rounds as a multiply and an add would.
TEXT ·gram4x8_avx2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ ldg+8(FP), R8
	SHLQ $3, R8
	MOVQ a+16(FP), SI
	MOVQ b+24(FP), BX
	MOVQ ld+32(FP), R9
	SHLQ $3, R9
	MOVQ n+40(FP), CX
	LEAQ (DI)(R8*1), R10
	LEAQ (DI)(R8*2), R11
	LEAQ (R10)(R8*2), R12
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	VMOVUPD (R10), Y2
	VMOVUPD 32(R10), Y3
	VMOVUPD (R11), Y4
	VMOVUPD 32(R11), Y5
	VMOVUPD (R12), Y6
	VMOVUPD 32(R12), Y7
	TESTQ CX, CX
	JZ gdone
PCALIGN $32
gloop:
	VMOVUPD (BX), Y8
	VMOVUPD 32(BX), Y9
	VBROADCASTSD (SI), Y10
	VFMADD231PD Y10, Y8, Y0
	VFMADD231PD Y10, Y9, Y1
	VBROADCASTSD 8(SI), Y11
	VFMADD231PD Y11, Y8, Y2
	VFMADD231PD Y11, Y9, Y3
	VBROADCASTSD 16(SI), Y12
	VFMADD231PD Y12, Y8, Y4
	VFMADD231PD Y12, Y9, Y5
	VBROADCASTSD 24(SI), Y13
	VFMADD231PD Y13, Y8, Y6
	VFMADD231PD Y13, Y9, Y7
	ADDQ R9, SI
	ADDQ R9, BX
	DECQ CX
	JNZ gloop
gdone:
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	VMOVUPD Y2, (R10)
	VMOVUPD Y3, 32(R10)
	VMOVUPD Y4, (R11)
	VMOVUPD Y5, 32(R11)
	VMOVUPD Y6, (R12)
	VMOVUPD Y7, 32(R12)
	VZEROUPPER
	RET
