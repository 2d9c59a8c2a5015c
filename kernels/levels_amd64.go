//go:build amd64

package kernels

import "github.com/masque-ai/masque/quant"

var (
	levelAVX512 = newAsmLevel("avx512", 16, 6, []int{0, 8, 8, 6, 5, 5, 4},
		[3][][]dotFn{
			quant.F32:  dotF32_avx512,
			quant.F16:  dotF16_avx512,
			quant.BF16: dotBF16_avx512,
		}, avx512QuantKernels())
	levelAVX2 = newAsmLevel("avx2", 8, 4, []int{0, 6, 4, 3, 3},
		[3][][]dotFn{
			quant.F32:  dotF32_avx2,
			quant.F16:  dotF16_avx2,
			quant.BF16: dotBF16_avx2,
		}, avx2QuantKernels())
)

func newAsmLevel(name string, kvec, mrMax int, nrMax []int, dot [3][][]dotFn, q quantKernels) *level {
	l := &level{name: name, kvec: kvec, mrMax: mrMax, nrMax: nrMax, dot: dot, q: q, outVec: kvec}
	if name == "avx512" && hasBF16 {
		l.dotPairs = dotBF16P_avx512
		l.cvtPairs = func(dst []uint16, src []float32) {
			n := len(src) &^ 15
			if n > 0 {
				cvtF32BF16_avx512(&dst[0], &src[0], n)
			}
			for i := n; i < len(src); i++ {
				dst[i] = quant.F32ToBF16(src[i])
			}
		}
	}
	l.gram = gram4x8_avx2
	if name == "avx512" {
		l.maskW16, l.maskF32 = maskW16_avx512, maskF32_avx512
		l.outerP, l.outerR, l.outMR = outerP_avx512, outerR_avx512, 12
		l.v = vecKernels{w: 16, dot: vdot_avx512, sumsq: vsumsq_avx512, axpy: vaxpy_avx512,
			mulScale: vmulscale_avx512, scale: vscale_avx512, max: vmax_avx512, expSub: vexpsub_avx512,
			siluMul: vsilumul_avx512, cvtBF16: vcvtBF16_avx512, cvtF16: vcvtF16_avx512}
	} else {
		l.maskF32 = maskF32_avx2
		l.outerP, l.outerR, l.outMR = outerP_avx2, outerR_avx2, 6
		l.v = vecKernels{w: 8, dot: vdot_avx2, sumsq: vsumsq_avx2, axpy: vaxpy_avx2,
			mulScale: vmulscale_avx2, scale: vscale_avx2, max: vmax_avx2, expSub: vexpsub_avx2,
			siluMul: vsilumul_avx2, cvtBF16: vcvtBF16_avx2, cvtF16: vcvtF16_avx2}
	}
	return l
}
