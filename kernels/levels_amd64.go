//go:build amd64

package kernels

import "github.com/masque-ai/masque/quant"

//go:generate go run ./internal/gen

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
	return &level{name: name, kvec: kvec, mrMax: mrMax, nrMax: nrMax, dot: dot, q: q}
}

