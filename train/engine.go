package train

import (
	"fmt"
	"math"

	"github.com/masque-ai/masque/model"
)

// The sequences of a batch are packed one after the other into N rows:
// every linear layer runs once over all N rows, attention runs per
// sequence (block-diagonal causal), and positions restart at 0 for each
// sequence.

type seg struct{ start, n int }

type packed struct {
	N                    int
	tokens, targets, pos []int
	segs                 []seg
	maxT, counted        int
	cos, sin             []float32 // [maxT·HeadDim/2] by position
	rowsWithTarget       []int
}

// layerActs are the activations one layer keeps for its backward pass.
type layerActs struct {
	rstd1, xn1   []float32 // attention RMSNorm: 1/rms per row, output [N,H]
	qPre, kPre   []float32 // q, k projections before the q/k norm (Qwen3)
	qRstd, kRstd []float32 // q/k norm 1/rms per row and head
	q, k, v      []float32 // q, k after norm and RoPE; v  [N,qd], [N,kvd]
	lse          []float32 // attention log-sum-exp [N·Heads]
	att          []float32 // attention output [N,qd] (o_proj input)
	xMid         []float32 // residual after attention [N,H]
	rstd2, xn2   []float32 // MLP RMSNorm
	gate, up     []float32 // [N,ff]: gate and up projections
	sig          []float32 // [N,ff]: σ(gate) (the down_proj input is recomputed from it)
	lora         [model.NumProj][]float32
}

type workspace struct {
	xs        [][]float32 // residual stream entering each layer, and the output [L+1][N·H]
	acts      []layerActs
	attn      []attnScratch
	ropeMax   int
	cos, sin  []float32
	tmpIn     []float32
	tmpOut    []float32
	tmpR      []float32
	tmpR2     []float32
	dx, dxn   []float32
	dq, dk    []float32
	dv, datt  []float32
	dh, dg    []float32
	du        []float32
	scratchX  []float32
	proj      []float32
	h         []float32
	xnf, rstf []float32
	hx, hdx   []float32
	logits    []float32
	lossRows  []float64
}

// Result is the outcome of a forward (and backward) pass.
type Result struct {
	LossSum float64 // Σ cross-entropy over the counted positions
	Count   int     // positions whose target is not IgnoreIndex
	Tokens  int     // positions processed
}

// Mean is the mean cross-entropy (0 when nothing was counted).
func (r Result) Mean() float64 {
	if r.Count == 0 {
		return 0
	}
	return r.LossSum / float64(r.Count)
}

// Add accumulates another result.
func (r *Result) Add(o Result) {
	r.LossSum += o.LossSum
	r.Count += o.Count
	r.Tokens += o.Tokens
}

// pack validates seqs and lays them out.
func (n *Net) pack(seqs []Sequence) (*packed, error) {
	c := &n.cfg
	pb := &packed{}
	for i, s := range seqs {
		if len(s.Tokens) == 0 {
			return nil, fmt.Errorf("train: sequence %d is empty", i)
		}
		if len(s.Targets) != len(s.Tokens) {
			return nil, fmt.Errorf("train: sequence %d has %d tokens but %d targets", i, len(s.Tokens), len(s.Targets))
		}
		if c.MaxSeq > 0 && len(s.Tokens) > c.MaxSeq {
			return nil, fmt.Errorf("train: sequence %d has %d tokens, more than the model's context of %d", i, len(s.Tokens), c.MaxSeq)
		}
		for j, t := range s.Tokens {
			if t < 0 || t >= c.Vocab {
				return nil, fmt.Errorf("train: sequence %d position %d: token id %d outside the vocabulary [0,%d)", i, j, t, c.Vocab)
			}
		}
		for j, t := range s.Targets {
			if t != IgnoreIndex && (t < 0 || t >= c.Vocab) {
				return nil, fmt.Errorf("train: sequence %d position %d: target id %d outside the vocabulary [0,%d)", i, j, t, c.Vocab)
			}
		}
		pb.segs = append(pb.segs, seg{pb.N, len(s.Tokens)})
		pb.N += len(s.Tokens)
		pb.maxT = max(pb.maxT, len(s.Tokens))
	}
	if pb.N == 0 {
		return nil, fmt.Errorf("train: empty batch")
	}
	pb.tokens = make([]int, 0, pb.N)
	pb.targets = make([]int, 0, pb.N)
	pb.pos = make([]int, 0, pb.N)
	for _, s := range seqs {
		pb.tokens = append(pb.tokens, s.Tokens...)
		for j, t := range s.Targets {
			pb.targets = append(pb.targets, t)
			pb.pos = append(pb.pos, j)
			if t != IgnoreIndex {
				pb.rowsWithTarget = append(pb.rowsWithTarget, len(pb.pos)-1)
			}
		}
	}
	pb.counted = len(pb.rowsWithTarget)
	// RoPE tables for positions 0..maxT-1, cached across calls.
	half := c.HeadDim / 2
	if n.ws.ropeMax < pb.maxT {
		m := max(pb.maxT, 2*n.ws.ropeMax)
		if c.MaxSeq > 0 {
			m = min(m, max(c.MaxSeq, pb.maxT))
		}
		cos, sin := make([]float32, m*half), make([]float32, m*half)
		for p := 0; p < m; p++ {
			n.Model.RopeCosSin(p, cos[p*half:(p+1)*half], sin[p*half:(p+1)*half])
		}
		n.ws.cos, n.ws.sin, n.ws.ropeMax = cos, sin, m
	}
	pb.cos, pb.sin = n.ws.cos, n.ws.sin
	return pb, nil
}

func (a *layerActs) alloc(n *Net, N int) {
	c := &n.cfg
	H, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	buf(&a.rstd1, N)
	buf(&a.xn1, N*H)
	if c.QKNorm {
		buf(&a.qPre, N*qd)
		buf(&a.kPre, N*kvd)
		buf(&a.qRstd, N*c.Heads)
		buf(&a.kRstd, N*c.KVHeads)
	}
	buf(&a.q, N*qd)
	buf(&a.k, N*kvd)
	buf(&a.v, N*kvd)
	buf(&a.lse, N*c.Heads)
	buf(&a.att, N*qd)
	buf(&a.xMid, N*H)
	buf(&a.rstd2, N)
	buf(&a.xn2, N*H)
	buf(&a.gate, N*ff)
	buf(&a.up, N*ff)
	buf(&a.sig, N*ff)
}

func (n *Net) allocLoRA(a *layerActs, l, N int) {
	if n.Adapter == nil {
		return
	}
	for p := model.Proj(0); p < model.NumProj; p++ {
		if n.Adapter.Pair(l, p) != nil {
			buf(&a.lora[p], N*n.Adapter.Config.Rank)
		}
	}
}

func (n *Net) maxWidth() int {
	c := &n.cfg
	return max(c.Hidden, c.QDim(), c.KVDim(), c.Intermediate)
}

// prepare sizes the workspace for N rows.
func (n *Net) prepare(N int, keep bool) {
	c := &n.cfg
	H := c.Hidden
	if len(n.ws.xs) != c.Layers+1 {
		n.ws.xs = make([][]float32, c.Layers+1)
	}
	for l := range n.ws.xs {
		if keep || l == 0 || l == c.Layers {
			buf(&n.ws.xs[l], N*H)
		}
	}
	nActs := 1
	if keep && !n.opt.Recompute {
		nActs = c.Layers
	}
	if len(n.ws.acts) < nActs {
		n.ws.acts = append(n.ws.acts, make([]layerActs, nActs-len(n.ws.acts))...)
	}
	for i := 0; i < nActs; i++ {
		n.ws.acts[i].alloc(n, N)
	}
	w := n.maxWidth()
	buf(&n.ws.tmpIn, N*w)
	buf(&n.ws.tmpOut, N*w)
	if n.Adapter != nil {
		buf(&n.ws.tmpR, N*n.Adapter.Config.Rank)
		buf(&n.ws.tmpR2, N*n.Adapter.Config.Rank)
	}
}

// actsFor returns the activation buffers of layer l.
func (n *Net) actsFor(l int, keep bool) *layerActs {
	if keep && !n.opt.Recompute {
		return &n.ws.acts[l]
	}
	return &n.ws.acts[0]
}

// dropoutMask applies LoRA dropout to x (into dst) for layer l, projection
// p: element i is kept with probability 1−rate and scaled by 1/(1−rate). The
// mask is a hash of (Seed, Counter, l, p, i), so the backward pass and a
// recomputation regenerate it exactly.
func (n *Net) dropoutMask(dst, x []float32, l int, p model.Proj, rate float64) {
	base := splitmix(n.Seed ^ splitmix(n.Counter+1) ^ uint64(l)<<20 ^ uint64(p)<<8)
	thresh := uint64(rate * (1 << 32))
	s := float32(1 / (1 - rate))
	for i, v := range x {
		if splitmix(base+uint64(i))>>32 < thresh {
			dst[i] = 0
		} else {
			dst[i] = v * s
		}
	}
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// loraInput returns the adapter input of projection p: x itself, or x with
// dropout applied (in scratch) while training.
func (n *Net) loraInput(x, scratch []float32, l int, p model.Proj) []float32 {
	if !n.Training || n.Adapter.Config.Dropout <= 0 {
		return x
	}
	n.dropoutMask(scratch, x, l, p, n.Adapter.Config.Dropout)
	return scratch
}

// linearFwd computes dst = x·Wᵀ + b (+ scale·B·A·drop(x)) for projection p
// of layer l over N rows; u receives A·drop(x)·scale for the backward pass.
func (n *Net) linearFwd(l int, p model.Proj, dst, x []float32, N int, u []float32) {
	ly := &n.Model.Layers[l]
	w := ly.Weight(p)
	n.K.MatMul(dst[:N*w.Rows], x[:N*w.Cols], w, N)
	if b := ly.Bias(p); b != nil {
		addRowVec(dst[:N*w.Rows], b)
	}
	if pr := n.Adapter.Pair(l, p); pr != nil {
		r := n.Adapter.Config.Rank
		xin := n.loraInput(x[:N*w.Cols], n.ws.tmpIn[:N*w.Cols], l, p)
		n.K.MatMul(u[:N*r], xin, pr.MatA(r), N)
		scaleBy(u[:N*r], n.Adapter.Scale())
		out := n.ws.tmpOut[:N*w.Rows]
		n.K.MatMul(out, u[:N*r], pr.MatB(r), N)
		addTo(dst[:N*w.Rows], out)
	}
}

// linearBwd accumulates the weight, bias and adapter gradients of
// projection p of layer l and stores (acc: adds) the input gradient in dx.
// x is the forward input and u the adapter activations linearFwd recorded.
func (n *Net) linearBwd(l int, p model.Proj, dx, dy, x []float32, N int, u []float32, acc bool) {
	ly := &n.Model.Layers[l]
	lp := &n.layers[l]
	w := ly.Weight(p)
	out, in := w.Rows, w.Cols
	dy, x = dy[:N*out], x[:N*in]
	if g := lp.w[p]; g != nil {
		n.K.MatMulBackWeight(g.Grad, dy, x, N, out, in)
	}
	if g := lp.b[p]; g != nil {
		colSum(g.Grad, dy)
	}
	target := dx[:N*in]
	if acc {
		target = n.ws.tmpOut[:N*in]
	}
	n.K.MatMulBackInput(target, dy, w, N)
	if acc {
		addTo(dx[:N*in], target)
	}
	if pr := n.Adapter.Pair(l, p); pr != nil {
		r := n.Adapter.Config.Rank
		n.K.MatMulBackWeight(lp.loraB[p].Grad, dy, u[:N*r], N, out, r)
		du := n.ws.tmpR[:N*r]
		n.K.MatMulBackInput(du, dy, pr.MatB(r), N)
		scaleBy(du, n.Adapter.Scale())
		xin := n.loraInput(x, n.ws.tmpIn[:N*in], l, p)
		n.K.MatMulBackWeight(lp.loraA[p].Grad, du, xin, N, r, in)
		dxd := n.ws.tmpOut[:N*in]
		n.K.MatMulBackInput(dxd, du, pr.MatA(r), N)
		if n.Training && n.Adapter.Config.Dropout > 0 {
			// The mask's derivative: the same keep/scale pattern applied to ones.
			ones := n.ws.tmpIn[:N*in]
			for i := range ones {
				ones[i] = 1
			}
			n.dropoutMask(ones, ones, l, p, n.Adapter.Config.Dropout)
			for i := range dxd {
				dxd[i] *= ones[i]
			}
		}
		addTo(dx[:N*in], dxd)
	}
}

// layerFwd runs decoder layer l on xin (N rows), storing what backward
// needs in a, and writes the layer's output to xout.
func (n *Net) layerFwd(l int, a *layerActs, xin, xout []float32, pb *packed) {
	c := &n.cfg
	ly := &n.Model.Layers[l]
	N, H, D := pb.N, c.Hidden, c.HeadDim
	qd, kvd, ff := c.QDim(), c.KVDim(), c.Intermediate
	n.allocLoRA(a, l, N)
	t := n.threads

	parRows(t, N, H, func(lo, hi int) {
		rmsnormFwd(a.xn1[lo*H:hi*H], a.rstd1[lo:hi], xin[lo*H:hi*H], ly.AttnNorm, H, c.NormEps)
	})
	if c.QKNorm {
		n.linearFwd(l, model.ProjQ, a.qPre, a.xn1, N, a.lora[model.ProjQ])
		n.linearFwd(l, model.ProjK, a.kPre, a.xn1, N, a.lora[model.ProjK])
		parRows(t, N, qd, func(lo, hi int) {
			rmsnormFwd(a.q[lo*qd:hi*qd], a.qRstd[lo*c.Heads:hi*c.Heads], a.qPre[lo*qd:hi*qd], ly.QNorm, D, c.NormEps)
			rmsnormFwd(a.k[lo*kvd:hi*kvd], a.kRstd[lo*c.KVHeads:hi*c.KVHeads], a.kPre[lo*kvd:hi*kvd], ly.KNorm, D, c.NormEps)
		})
	} else {
		n.linearFwd(l, model.ProjQ, a.q, a.xn1, N, a.lora[model.ProjQ])
		n.linearFwd(l, model.ProjK, a.k, a.xn1, N, a.lora[model.ProjK])
	}
	n.linearFwd(l, model.ProjV, a.v, a.xn1, N, a.lora[model.ProjV])
	parRows(t, N, qd, func(lo, hi int) {
		ropeFwd(a.q[lo*qd:hi*qd], pb.pos[lo:hi], c.Heads, D, pb.cos, pb.sin)
		ropeFwd(a.k[lo*kvd:hi*kvd], pb.pos[lo:hi], c.KVHeads, D, pb.cos, pb.sin)
	})
	n.attnFwd(a.att, a.lse, a.q, a.k, a.v, pb)
	proj := buf(&n.ws.proj, N*H)
	n.linearFwd(l, model.ProjO, proj, a.att, N, a.lora[model.ProjO])
	for i := range a.xMid {
		a.xMid[i] = xin[i] + proj[i]
	}
	parRows(t, N, H, func(lo, hi int) {
		rmsnormFwd(a.xn2[lo*H:hi*H], a.rstd2[lo:hi], a.xMid[lo*H:hi*H], ly.MLPNorm, H, c.NormEps)
	})
	n.linearFwd(l, model.ProjGate, a.gate, a.xn2, N, a.lora[model.ProjGate])
	n.linearFwd(l, model.ProjUp, a.up, a.xn2, N, a.lora[model.ProjUp])
	mask := n.FFNMask[l]
	if mask != nil && len(mask) != ff {
		mask = nil
	}
	h := buf(&n.ws.h, N*ff)
	parRows(t, N, ff, func(lo, hi int) {
		swigluFwd(h[lo*ff:hi*ff], a.sig[lo*ff:hi*ff], a.gate[lo*ff:hi*ff], a.up[lo*ff:hi*ff], mask, ff)
	})
	n.linearFwd(l, model.ProjDown, proj, h, N, a.lora[model.ProjDown])
	for i := range xout[:N*H] {
		xout[i] = a.xMid[i] + proj[i]
	}
}

// layerBwd turns dx = d loss/d (output of layer l) into d loss/d (input of
// layer l), in place, accumulating parameter gradients.
func (n *Net) layerBwd(l int, a *layerActs, xin, dx []float32, pb *packed) {
	c := &n.cfg
	ly := &n.Model.Layers[l]
	lp := &n.layers[l]
	N, H, D := pb.N, c.Hidden, c.HeadDim
	qd, kvd, ff := c.QDim(), c.KVDim(), c.Intermediate
	t := n.threads
	grad := func(p *Param) []float32 {
		if p == nil {
			return nil
		}
		return p.Grad
	}

	// MLP branch: x = xMid + down(swiglu(gate(xn2), up(xn2))).
	mask := n.FFNMask[l]
	var gmask []float32
	if mask != nil && len(mask) == ff {
		if len(n.FFNMaskGrad[l]) != ff {
			n.FFNMaskGrad[l] = make([]float32, ff)
		}
		gmask = n.FFNMaskGrad[l]
	} else {
		mask = nil
	}
	h := buf(&n.ws.h, N*ff)
	parRows(t, N, ff, func(lo, hi int) {
		swigluRedo(h[lo*ff:hi*ff], a.sig[lo*ff:hi*ff], a.gate[lo*ff:hi*ff], a.up[lo*ff:hi*ff], mask, ff)
	})
	dh := buf(&n.ws.dh, N*ff)
	n.linearBwd(l, model.ProjDown, dh, dx, h, N, a.lora[model.ProjDown], false)
	dg, du := buf(&n.ws.dg, N*ff), buf(&n.ws.du, N*ff)
	if gmask != nil {
		swigluBwd(dg, du, dh, a.gate, a.up, a.sig, mask, gmask, ff)
	} else {
		parRows(t, N, ff, func(lo, hi int) {
			swigluBwd(dg[lo*ff:hi*ff], du[lo*ff:hi*ff], dh[lo*ff:hi*ff], a.gate[lo*ff:hi*ff], a.up[lo*ff:hi*ff], a.sig[lo*ff:hi*ff], nil, nil, ff)
		})
	}
	dxn := buf(&n.ws.dxn, N*H)
	n.linearBwd(l, model.ProjGate, dxn, dg, a.xn2, N, a.lora[model.ProjGate], false)
	n.linearBwd(l, model.ProjUp, dxn, du, a.xn2, N, a.lora[model.ProjUp], true)
	n.normBwd(dx, dxn, a.xMid, a.rstd2, ly.MLPNorm, grad(lp.mlpNorm), N, H)

	// Attention branch: xMid = xin + o(attention(q, k, v)).
	datt := buf(&n.ws.datt, N*qd)
	n.linearBwd(l, model.ProjO, datt, dx, a.att, N, a.lora[model.ProjO], false)
	dq, dk, dv := buf(&n.ws.dq, N*qd), buf(&n.ws.dk, N*kvd), buf(&n.ws.dv, N*kvd)
	n.attnBwd(dq, dk, dv, datt, a.att, a.lse, a.q, a.k, a.v, pb)
	parRows(t, N, qd, func(lo, hi int) {
		ropeBwd(dq[lo*qd:hi*qd], pb.pos[lo:hi], c.Heads, D, pb.cos, pb.sin)
		ropeBwd(dk[lo*kvd:hi*kvd], pb.pos[lo:hi], c.KVHeads, D, pb.cos, pb.sin)
	})
	if c.QKNorm {
		// The q/k norms act per head: rows of D values.
		dqPre, dkPre := buf(&n.ws.dg, N*qd), buf(&n.ws.du, N*kvd)
		n.normBwdSet(dqPre, dq, a.qPre, a.qRstd, ly.QNorm, grad(lp.qNorm), N*c.Heads, D)
		n.normBwdSet(dkPre, dk, a.kPre, a.kRstd, ly.KNorm, grad(lp.kNorm), N*c.KVHeads, D)
		dq, dk = dqPre, dkPre
	}
	n.linearBwd(l, model.ProjQ, dxn, dq, a.xn1, N, a.lora[model.ProjQ], false)
	n.linearBwd(l, model.ProjK, dxn, dk, a.xn1, N, a.lora[model.ProjK], true)
	n.linearBwd(l, model.ProjV, dxn, dv, a.xn1, N, a.lora[model.ProjV], true)
	n.normBwd(dx, dxn, xin, a.rstd1, ly.AttnNorm, grad(lp.attnNorm), N, H)
}

// normBwd adds the input gradient of an RMSNorm (rows of d) to dx.
func (n *Net) normBwd(dx, dy, x, rstd, w, gw []float32, rows, d int) {
	n.normBwdMode(dx, dy, x, rstd, w, gw, rows, d, true)
}

// normBwdSet stores the input gradient of an RMSNorm in dx.
func (n *Net) normBwdSet(dx, dy, x, rstd, w, gw []float32, rows, d int) {
	n.normBwdMode(dx, dy, x, rstd, w, gw, rows, d, false)
}

func (n *Net) normBwdMode(dx, dy, x, rstd, w, gw []float32, rows, d int, acc bool) {
	parRows(n.threads, rows, d, func(lo, hi int) {
		rmsnormBwd(dx[lo*d:hi*d], dy[lo*d:hi*d], x[lo*d:hi*d], rstd[lo:hi], w, nil, d, acc)
	})
	if gw != nil {
		for i := 0; i < rows; i++ {
			xr, dyr, r := x[i*d:(i+1)*d], dy[i*d:(i+1)*d], rstd[i]
			for j, v := range xr {
				gw[j] += dyr[j] * v * r
			}
		}
	}
}

// forward runs the embeddings and all layers; keep stores activations for
// a backward pass. It returns the final residual stream [N,H].
func (n *Net) forward(pb *packed, keep bool) []float32 {
	c := &n.cfg
	N, H := pb.N, c.Hidden
	n.prepare(N, keep)
	x0 := n.ws.xs[0][:N*H]
	for i, t := range pb.tokens {
		n.K.Row(x0[i*H:(i+1)*H], n.Model.Embed, t)
	}
	x := x0
	for l := 0; l < c.Layers; l++ {
		var out []float32
		switch {
		case keep:
			out = n.ws.xs[l+1]
		case &x[0] == &n.ws.xs[0][0]:
			// Without a backward pass, two buffers alternate.
			out = n.ws.xs[c.Layers]
		default:
			out = n.ws.xs[0]
		}
		n.layerFwd(l, n.actsFor(l, keep), x, out[:N*H], pb)
		x = out[:N*H]
	}
	return x
}

// backward propagates dx = d loss/d (final residual stream) through the
// layers and the embeddings.
func (n *Net) backward(pb *packed, dx []float32) {
	c := &n.cfg
	N, H := pb.N, c.Hidden
	for l := c.Layers - 1; l >= 0; l-- {
		a := n.actsFor(l, true)
		xin := n.ws.xs[l][:N*H]
		if n.opt.Recompute {
			n.layerFwd(l, a, xin, buf(&n.ws.scratchX, N*H), pb)
		}
		n.layerBwd(l, a, xin, dx, pb)
	}
	if n.embed != nil {
		g := n.embed.Grad
		for i, t := range pb.tokens {
			addTo(g[t*H:(t+1)*H], dx[i*H:(i+1)*H])
		}
	}
	if n.opt.InputGrad {
		n.InputGrad = append(n.InputGrad[:0], dx[:N*H]...)
		n.inputRows = n.inputRows[:0]
		for _, s := range pb.segs {
			n.inputRows = append(n.inputRows, s.start)
		}
		n.inputRows = append(n.inputRows, N)
	}
}

// headChunkElems bounds the logits held at once (rows × vocabulary).
const headChunkElems = 1 << 22

// lmHead runs the final norm, the LM head and the cross-entropy over the rows
// that have a target, chunk by chunk, so the full [N, vocab] logits never
// exist. With backward, it returns d(scale·loss)/d(final residual) [N,H]
// and accumulates the head and final-norm gradients.
func (n *Net) lmHead(pb *packed, xf []float32, backward bool, scale float32) (float64, []float32) {
	c := &n.cfg
	N, H, V := pb.N, c.Hidden, c.Vocab
	rows := pb.rowsWithTarget
	xnf, rstd := buf(&n.ws.xnf, N*H), buf(&n.ws.rstf, N)
	parRows(n.threads, N, H, func(lo, hi int) {
		rmsnormFwd(xnf[lo*H:hi*H], rstd[lo:hi], xf[lo*H:hi*H], n.Model.Norm, H, c.NormEps)
	})
	var dxnf []float32
	if backward {
		dxnf = buf(&n.ws.dxn, N*H)
		clear(dxnf)
	}
	chunk := max(1, min(len(rows), headChunkElems/V))
	var loss float64
	for c0 := 0; c0 < len(rows); c0 += chunk {
		r := rows[c0:min(len(rows), c0+chunk)]
		m := len(r)
		X := buf(&n.ws.hx, m*H)
		for i, row := range r {
			copy(X[i*H:(i+1)*H], xnf[row*H:(row+1)*H])
		}
		logits := buf(&n.ws.logits, m*V)
		n.K.MatMul(logits, X, n.Model.LMHead, m)
		lr := n.ws.lossRows
		if cap(lr) < m {
			lr = make([]float64, m)
			n.ws.lossRows = lr
		}
		lr = lr[:m]
		parRows(n.threads, m, V, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				lg := logits[i*V : (i+1)*V]
				t := pb.targets[r[i]]
				mx := lg[0]
				for _, v := range lg[1:] {
					mx = max(mx, v)
				}
				lt := lg[t]
				var sum float64
				for j, v := range lg {
					e := expNeg(v - mx)
					lg[j] = e
					sum += float64(e)
				}
				lse := float64(mx) + math.Log(sum)
				lr[i] = lse - float64(lt)
				if backward {
					s := float32(float64(scale) / sum)
					for j := range lg {
						lg[j] *= s
					}
					lg[t] -= scale
				}
			}
		})
		for _, v := range lr {
			loss += v
		}
		if backward {
			dX := buf(&n.ws.hdx, m*H)
			n.K.MatMulBackInput(dX, logits, n.Model.LMHead, m)
			for i, row := range r {
				copy(dxnf[row*H:(row+1)*H], dX[i*H:(i+1)*H])
			}
			if n.head != nil {
				n.K.MatMulBackWeight(n.head.Grad, logits, X, m, V, H)
			}
		}
	}
	if !backward {
		return loss, nil
	}
	dx := buf(&n.ws.dx, N*H)
	var gw []float32
	if n.norm != nil {
		gw = n.norm.Grad
	}
	n.normBwdSet(dx, dxnf, xf, rstd, n.Model.Norm, gw, N, H)
	return loss, dx
}

// ForwardBackward runs seqs forward and backward and accumulates into the
// parameter gradients (and FFN-mask gradients) the gradient of
// scale·(summed cross-entropy). scale ≤ 0 means 1/(number of counted
// positions in seqs), i.e. the gradient of this batch's mean loss.
// Gradients add up across calls until ZeroGrad, which is how gradient
// accumulation works. Counter is incremented (dropout masks).
func (n *Net) ForwardBackward(seqs []Sequence, scale float32) (Result, error) {
	pb, err := n.pack(seqs)
	if err != nil {
		return Result{}, err
	}
	if scale <= 0 {
		scale = 1 / float32(max(1, pb.counted))
	}
	xf := n.forward(pb, true)
	loss, dx := n.lmHead(pb, xf, true, scale)
	n.backward(pb, dx)
	n.Counter++
	return Result{LossSum: loss, Count: pb.counted, Tokens: pb.N}, nil
}

// Loss runs seqs forward only (no dropout, nothing kept) and returns the
// summed cross-entropy.
func (n *Net) Loss(seqs []Sequence) (Result, error) {
	pb, err := n.pack(seqs)
	if err != nil {
		return Result{}, err
	}
	tr := n.Training
	n.Training = false
	defer func() { n.Training = tr }()
	xf := n.forward(pb, false)
	loss, _ := n.lmHead(pb, xf, false, 0)
	return Result{LossSum: loss, Count: pb.counted, Tokens: pb.N}, nil
}

// Logits runs one sequence forward (no dropout) and returns its logits
// [len(tokens)·Vocab], adapters and FFN masks included.
func (n *Net) Logits(tokens []int) ([]float32, error) {
	tg := make([]int, len(tokens))
	for i := range tg {
		tg[i] = IgnoreIndex
	}
	pb, err := n.pack([]Sequence{{Tokens: tokens, Targets: tg}})
	if err != nil {
		return nil, err
	}
	tr := n.Training
	n.Training = false
	defer func() { n.Training = tr }()
	c := &n.cfg
	xf := n.forward(pb, false)
	N, H := pb.N, c.Hidden
	xnf, rstd := make([]float32, N*H), make([]float32, N)
	rmsnormFwd(xnf, rstd, xf, n.Model.Norm, H, c.NormEps)
	out := make([]float32, N*c.Vocab)
	n.K.MatMul(out, xnf, n.Model.LMHead, N)
	return out, nil
}
