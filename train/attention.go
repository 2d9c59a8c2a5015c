package train

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/masque-ai/masque/kernels"
)

// Grouped-query causal attention, forward and backward.
//
// The forward pass keeps, per query and head, only the log-sum-exp of the
// scaled scores (lse); the backward pass recomputes the probabilities from
// q, k and lse block by block, so memory stays O(tokens·heads) however long
// the sequence. Every product (Q·Kᵀ, P·V, dO·Vᵀ, Pᵀ·dO, dS·K, dSᵀ·Q) is a
// kernels call over one block of attnBlock queries and the keys they see.

const attnBlock = 64

type attnScratch struct {
	q, k, v, o, do, dq, dk, dv []float32 // [T·D] per head
	s, p                       []float32 // [attnBlock·T]
	di                         []float32 // [T]
}

func (sc *attnScratch) size(T, D int) {
	for _, p := range []*[]float32{&sc.q, &sc.k, &sc.v, &sc.o, &sc.do, &sc.dq, &sc.dk, &sc.dv} {
		buf(p, T*D)
	}
	buf(&sc.s, min(attnBlock, T)*T)
	buf(&sc.p, min(attnBlock, T)*T)
	buf(&sc.di, T)
}

// gatherHead copies the columns [col, col+D) of rows t0..t0+T of src (row
// width w) into dst [T·D].
func gatherHead(dst, src []float32, t0, T, w, col, D int) {
	for i := 0; i < T; i++ {
		copy(dst[i*D:(i+1)*D], src[(t0+i)*w+col:(t0+i)*w+col+D])
	}
}

// scatterHead is the reverse of gatherHead (add: accumulate).
func scatterHead(dst, src []float32, t0, T, w, col, D int, add bool) {
	for i := 0; i < T; i++ {
		d := dst[(t0+i)*w+col : (t0+i)*w+col+D]
		if add {
			addTo(d, src[i*D:(i+1)*D])
		} else {
			copy(d, src[i*D:(i+1)*D])
		}
	}
}

// forEachItem runs fn(worker, item) for item in [0,items) on up to threads
// goroutines; worker indexes per-goroutine scratch.
func forEachItem(threads, items int, fn func(worker, item int)) {
	t := min(threads, items)
	if t <= 1 {
		for i := 0; i < items; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < t; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= items {
					return
				}
				fn(w, i)
			}
		}()
	}
	wg.Wait()
}

// keyRange returns the keys query i may see: [lo, i] (sliding window W > 0
// keeps only the last W positions, as Hugging Face's kv > q − W).
func keyRange(i, W int) int {
	if W > 0 && i-W+1 > 0 {
		return i - W + 1
	}
	return 0
}

func (n *Net) attnScratch(workers int) []attnScratch {
	if len(n.ws.attn) < workers {
		n.ws.attn = make([]attnScratch, workers)
	}
	return n.ws.attn
}

// attnFwd computes att [N, Heads·D] and lse [N·Heads] from q [N, Heads·D]
// and k, v [N, KVHeads·D] (after RoPE), each sequence of pb on its own.
func (n *Net) attnFwd(att, lse, q, k, v []float32, pb *packed) {
	c := &n.cfg
	D, H, KV := c.HeadDim, c.Heads, c.KVHeads
	group := H / KV
	qd, kvd := H*D, KV*D
	scale := float32(1 / math.Sqrt(float64(D)))
	W := c.SlidingWindow
	items := len(pb.segs) * KV
	workers := min(n.threads, items)
	scr := n.attnScratch(workers)
	forEachItem(n.threads, items, func(w, it int) {
		sg := pb.segs[it/KV]
		g := it % KV
		t0, T := sg.start, sg.n
		sc := &scr[w]
		sc.size(T, D)
		gatherHead(sc.k, k, t0, T, kvd, g*D, D)
		gatherHead(sc.v, v, t0, T, kvd, g*D, D)
		for hq := g * group; hq < (g+1)*group; hq++ {
			gatherHead(sc.q, q, t0, T, qd, hq*D, D)
			for i0 := 0; i0 < T; i0 += attnBlock {
				i1 := min(T, i0+attnBlock)
				bq := i1 - i0
				jlo := keyRange(i0, W)
				nk := i1 - jlo
				S := sc.s[:bq*nk]
				n.K.MatMul(S, sc.q[i0*D:i1*D], kernels.FromF32(nk, D, sc.k[jlo*D:i1*D]), bq)
				for r := 0; r < bq; r++ {
					i := i0 + r
					lo := keyRange(i, W)
					row := S[r*nk : (r+1)*nk]
					valid := row[lo-jlo : i-jlo+1]
					mx := float32(math.Inf(-1))
					for j := range valid {
						valid[j] *= scale
						mx = max(mx, valid[j])
					}
					var sum float32
					for j, s := range valid {
						e := expNeg(s - mx)
						valid[j] = e
						sum += e
					}
					inv := 1 / sum
					for j := range valid {
						valid[j] *= inv
					}
					clear(row[:lo-jlo])
					clear(row[i-jlo+1:])
					lse[(t0+i)*H+hq] = mx + float32(math.Log(float64(sum)))
				}
				n.K.MatMulBackInput(sc.o[i0*D:i1*D], S, kernels.FromF32(nk, D, sc.v[jlo*D:i1*D]), bq)
			}
			scatterHead(att, sc.o, t0, T, qd, hq*D, D, false)
		}
	})
}

// attnBwd computes dq [N, Heads·D] and dk, dv [N, KVHeads·D] (all
// overwritten) from datt, given the forward's q, k, v, att and lse.
func (n *Net) attnBwd(dq, dk, dv, datt, att, lse, q, k, v []float32, pb *packed) {
	c := &n.cfg
	D, H, KV := c.HeadDim, c.Heads, c.KVHeads
	group := H / KV
	qd, kvd := H*D, KV*D
	scale := float32(1 / math.Sqrt(float64(D)))
	W := c.SlidingWindow
	items := len(pb.segs) * KV
	workers := min(n.threads, items)
	scr := n.attnScratch(workers)
	forEachItem(n.threads, items, func(w, it int) {
		sg := pb.segs[it/KV]
		g := it % KV
		t0, T := sg.start, sg.n
		sc := &scr[w]
		sc.size(T, D)
		gatherHead(sc.k, k, t0, T, kvd, g*D, D)
		gatherHead(sc.v, v, t0, T, kvd, g*D, D)
		clear(sc.dk)
		clear(sc.dv)
		for hq := g * group; hq < (g+1)*group; hq++ {
			gatherHead(sc.q, q, t0, T, qd, hq*D, D)
			gatherHead(sc.o, att, t0, T, qd, hq*D, D)
			gatherHead(sc.do, datt, t0, T, qd, hq*D, D)
			for i := 0; i < T; i++ {
				var s float32
				o, do := sc.o[i*D:(i+1)*D], sc.do[i*D:(i+1)*D]
				for j, x := range o {
					s += x * do[j]
				}
				sc.di[i] = s
			}
			for i0 := 0; i0 < T; i0 += attnBlock {
				i1 := min(T, i0+attnBlock)
				bq := i1 - i0
				jlo := keyRange(i0, W)
				nk := i1 - jlo
				kb := kernels.FromF32(nk, D, sc.k[jlo*D:i1*D])
				vb := kernels.FromF32(nk, D, sc.v[jlo*D:i1*D])
				P := sc.s[:bq*nk]
				n.K.MatMul(P, sc.q[i0*D:i1*D], kb, bq)
				for r := 0; r < bq; r++ {
					i := i0 + r
					lo := keyRange(i, W)
					row := P[r*nk : (r+1)*nk]
					l := lse[(t0+i)*H+hq]
					valid := row[lo-jlo : i-jlo+1]
					for j, s := range valid {
						valid[j] = expNeg(min(s*scale-l, 0))
					}
					clear(row[:lo-jlo])
					clear(row[i-jlo+1:])
				}
				dP := sc.p[:bq*nk]
				n.K.MatMul(dP, sc.do[i0*D:i1*D], vb, bq)
				n.K.MatMulBackWeight(sc.dv[jlo*D:i1*D], P, sc.do[i0*D:i1*D], bq, nk, D)
				for r := 0; r < bq; r++ {
					di := sc.di[i0+r]
					pr, dr := P[r*nk:(r+1)*nk], dP[r*nk:(r+1)*nk]
					for j, p := range pr {
						dr[j] = p * (dr[j] - di) * scale
					}
				}
				n.K.MatMulBackInput(sc.dq[i0*D:i1*D], dP, kb, bq)
				n.K.MatMulBackWeight(sc.dk[jlo*D:i1*D], dP, sc.q[i0*D:i1*D], bq, nk, D)
			}
			scatterHead(dq, sc.dq, t0, T, qd, hq*D, D, false)
		}
		scatterHead(dk, sc.dk, t0, T, kvd, g*D, D, false)
		scatterHead(dv, sc.dv, t0, T, kvd, g*D, D, false)
	})
}
