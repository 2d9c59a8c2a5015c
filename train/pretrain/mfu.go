package pretrain

import (
	"github.com/masque-ai/masque/internal/cputime"
	"math/rand/v2"
	"time"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
)

// Throughput accounting: model FLOPs utilisation (MFU) is the rate of
// model FLOPs the run achieves (tokens/s × FLOPs per token) over the peak
// rate of the kernels' matrix product on this machine, measured with the
// same kernels and threads.

// FlopsPerToken is the mean model FLOPs of training on one token of seqs
// (forward and backward: 6 per weight per token): 6·(weights of the
// decoder's matrices) for every token, 6·vocab·hidden for the LM head on
// the tokens that carry loss (the engine runs the head only there), and
// causal attention, 6·layers·q_dim·(n+1) per token of a sequence of n
// tokens (QKᵀ and AV, each 2·q_dim·(i+1) FLOPs for query i, times three for
// the backward pass). Embedding lookups, norms and activations are not
// counted.
func FlopsPerToken(cfg model.Config, seqs []train.Sequence) float64 {
	H, qd, kvd, ff := float64(cfg.Hidden), float64(cfg.QDim()), float64(cfg.KVDim()), float64(cfg.Intermediate)
	mats := float64(cfg.Layers) * (2*qd*H + 2*kvd*H + 3*ff*H)
	var tokens, counted, attn float64
	for _, s := range seqs {
		n := float64(len(s.Tokens))
		tokens += n
		attn += n * (n + 1)
		for _, t := range s.Targets {
			if t != train.IgnoreIndex {
				counted++
			}
		}
	}
	if tokens == 0 {
		return 0
	}
	return 6*mats + 6*float64(cfg.Layers)*qd*attn/tokens + 6*float64(cfg.Vocab)*H*counted/tokens
}

// Peak is the measured matrix-product peak.
type Peak struct {
	// FLOPS is the best wall-clock rate (FLOP/s) of one product.
	FLOPS float64
	// PerCPUSecond is FLOPs per second of CPU time (all threads together)
	// over the whole measurement: a figure a loaded machine disturbs much
	// less than the wall-clock rate.
	PerCPUSecond float64
}

// MeasurePeak measures k's MatMul, on the threads the kernels are set to,
// over float32 products of square-ish shapes (512 rows of 1024×1024 and
// 768×768 weights) repeated for about budget.
func MeasurePeak(k kernels.Kernels, budget time.Duration) Peak {
	rng := rand.New(rand.NewPCG(1, 2))
	var p Peak
	var flopsAll float64
	var cpuAll time.Duration
	for _, sh := range [][3]int{{512, 1024, 1024}, {512, 768, 768}} {
		m, rows, cols := sh[0], sh[1], sh[2]
		w := make([]float32, rows*cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		x := make([]float32, m*cols)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		W := kernels.FromF32(rows, cols, w)
		dst := make([]float32, m*rows)
		k.MatMul(dst, x, W, m) // warm-up (and any preparation of W)
		flops := 2 * float64(m) * float64(rows) * float64(cols)
		end := time.Now().Add(budget / 2)
		c0 := cputime.Used()
		for i := 0; i < 3 || time.Now().Before(end); i++ {
			t0 := time.Now()
			k.MatMul(dst, x, W, m)
			if r := flops / time.Since(t0).Seconds(); r > p.FLOPS {
				p.FLOPS = r
			}
			flopsAll += flops
			if i > 200 {
				break
			}
		}
		cpuAll += cputime.Used() - c0
	}
	if cpuAll > 0 {
		p.PerCPUSecond = flopsAll / cpuAll.Seconds()
	}
	return p
}
