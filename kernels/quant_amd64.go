//go:build amd64

package kernels

import "github.com/masque-ai/masque/quant"

func asmAct(f func(dst *byte, x *float32, k int)) func(dst []byte, x []float32) {
	return func(dst []byte, x []float32) {
		if len(x) > 0 {
			f(&dst[0], &x[0], len(x))
		}
	}
}

type decFn func(dst *float32, src *byte, nblocks int)

func asmDecode(f decFn, t quant.DType) func(dst []float32, src []byte, cols int) {
	be := t.BlockElems()
	return func(dst []float32, src []byte, cols int) {
		if len(dst) > 0 {
			f(&dst[0], &src[0], len(dst)/be)
		}
	}
}

func asmQuantKernels(tabs map[quant.DType][]qdotFn, a32, a256 func(dst *byte, x *float32, k int), decs map[quant.DType]decFn) quantKernels {
	q := goQuantKernels()
	for t, f := range decs {
		q.decode[t] = asmDecode(f, t)
	}
	q.act32, q.act256 = asmAct(a32), asmAct(a256)
	for t := range q.qdot {
		// Types without assembly tiles here are decoded to float32 and
		// multiplied by the float tiles, faster than the pure-Go tiles.
		if _, ok := tabs[quant.DType(t)]; !ok {
			q.qdot[t], q.qmr[t], q.maxM[t] = nil, 0, 0
		}
	}
	for t, tab := range tabs {
		q.qdot[t] = tab
		q.qmr[t] = len(tab) - 1
	}
	// The k-quant kernels apply their scales once per 256 elements and beat
	// decoding to float32 at every token count (by about 1.5× at 128), so
	// prompts use them too, with 8-bit activations like llama.cpp. Q8_0 and
	// Q4_0 scale every 32 elements and only match the float path, so longer
	// prompts keep exact float32 activations there.
	// Q4_1, Q5_0, Q5_1, Q5_K and IQ4_NL also: their only decoder is
	// package quant's Go one.
	for _, t := range []quant.DType{quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.Q4_1, quant.Q5_0, quant.Q5_1, quant.IQ4_NL, quant.IQ4_XS} {
		if q.qdot[t] != nil {
			q.maxM[t] = 1 << 30
		}
	}
	return q
}

func avx512QuantKernels() quantKernels {
	tabs := map[quant.DType][]qdotFn{
		quant.Q8_0:   qdotQ8_0_avx512,
		quant.Q4_0:   qdotQ4_0_avx512,
		quant.Q4_K:   qdotQ4_K_avx512,
		quant.Q6_K:   qdotQ6_K_avx512,
		quant.Q5_0:   qdotQ5_0_avx512,
		quant.Q5_K:   qdotQ5_K_avx512,
		quant.Q4_1:   qdotQ4_1_avx512,
		quant.Q5_1:   qdotQ5_1_avx512,
		quant.IQ4_NL: qdotIQ4_NL_avx512,
		quant.IQ4_XS: qdotIQ4_XS_avx512,
	}
	if !hasVNNI {
		tabs = avx2Tabs
	}
	return asmQuantKernels(tabs, actQ32_avx512, actQ256_avx512, map[quant.DType]decFn{
		quant.Q8_0: decQ8_0_avx512,
		quant.Q4_0: decQ4_0_avx512,
		quant.Q4_K: decQ4_K_avx512,
		quant.Q6_K: decQ6_K_avx512,
	})
}

var avx2Tabs = map[quant.DType][]qdotFn{
	quant.Q8_0: qdotQ8_0_avx2,
	quant.Q4_0: qdotQ4_0_avx2,
	quant.Q4_K: qdotQ4_K_avx2,
	quant.Q6_K: qdotQ6_K_avx2,
}

func avx2QuantKernels() quantKernels {
	return asmQuantKernels(avx2Tabs, actQ32_avx2, actQ256_avx2, map[quant.DType]decFn{
		quant.Q8_0: decQ8_0_avx2,
		quant.Q4_0: decQ4_0_avx2,
		quant.Q4_K: decQ4_K_avx2,
		quant.Q6_K: decQ6_K_avx2,
	})
}
