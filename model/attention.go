package model

import (
	"runtime"
	"sync"

	"github.com/masque-ai/masque/kernels"
)

// attention computes causal multi-head attention for the rows of a batch
// over each sequence's cache, with matrix products: for one sequence and
// one KV head, the query heads that share that head (grouped-query
// attention) of a block of rows are stacked into a matrix Q, then
// S = Q·Kᵀ over the positions the block may see, each row's softmax over
// its own window (causal, and the sliding window where there is one), and
// O = S·V. The keys and values of a head are contiguous in the cache, so
// K and V are plain row-major matrices.
type attention struct {
	seqs    []BatchSeq
	off, p0 []int
	cfg     *Config
	k       kernels.Kernels
	items   []attItem
	workers int
	// Per-worker buffers: stacked queries, scores, outputs.
	bufs [][3][]float32
}

// attItem is one unit of attention work: rows [r0, r1) of sequence seq
// (batch rows), KV head head.
type attItem struct{ seq, head, r0, r1 int }

// attBlockFloats bounds the score matrix of one item (rows × positions).
var attBlockFloats = 1 << 18

func newAttention(seqs []BatchSeq, off, p0 []int, cfg *Config, k kernels.Kernels) *attention {
	a := &attention{seqs: seqs, off: off, p0: p0, cfg: cfg, k: k}
	group, D := cfg.Heads/cfg.KVHeads, cfg.HeadDim
	maxQ, maxS, work := 0, 0, 0
	for i := range seqs {
		n := p0[i] + len(seqs[i].Tokens) // positions seen by the last row
		rb := max(1, attBlockFloats/(group*n))
		for h := 0; h < cfg.KVHeads; h++ {
			for r0 := off[i]; r0 < off[i+1]; r0 += rb {
				r1 := min(off[i+1], r0+rb)
				a.items = append(a.items, attItem{i, h, r0, r1})
				M := (r1 - r0) * group
				np := a.pos(i, r1-1) + 1 - a.lo(a.pos(i, r0))
				maxQ, maxS = max(maxQ, M*D), max(maxS, M*np)
				work += 2 * M * np * D
			}
		}
	}
	a.workers = 1
	if work >= 1<<16 {
		a.workers = min(runtime.GOMAXPROCS(0), len(a.items))
	}
	a.bufs = make([][3][]float32, a.workers)
	for w := range a.bufs {
		a.bufs[w] = [3][]float32{make([]float32, maxQ), make([]float32, maxS), make([]float32, maxQ)}
	}
	return a
}

// pos is the position of batch row r of sequence i.
func (a *attention) pos(i, r int) int { return a.p0[i] + r - a.off[i] }

// lo is the first position a row at pos attends to.
func (a *attention) lo(pos int) int {
	if w := a.cfg.SlidingWindow; w > 0 && pos-w+1 > 0 {
		return pos - w + 1
	}
	return 0
}

// run computes layer l's attention of every row: q holds the rows' query
// heads ([rows × Heads·HeadDim]), out receives the heads' outputs in the
// same layout. The caches must already hold the rows' keys and values.
func (a *attention) run(l int, q, out []float32, scale float32, group int) {
	if a.workers == 1 {
		for _, it := range a.items {
			a.item(l, it, q, out, scale, group, a.bufs[0])
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < a.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for t := w; t < len(a.items); t += a.workers {
				a.item(l, a.items[t], q, out, scale, group, a.bufs[w])
			}
		}(w)
	}
	wg.Wait()
}

func (a *attention) item(l int, it attItem, q, out []float32, scale float32, group int, buf [3][]float32) {
	D, qd := a.cfg.HeadDim, a.cfg.QDim()
	kh, vh := a.seqs[it.seq].Cache.head(l, it.head)
	jlo := a.lo(a.pos(it.seq, it.r0))
	jhi := a.pos(it.seq, it.r1-1) + 1
	np := jhi - jlo
	M := (it.r1 - it.r0) * group
	gw := group * D // the query heads of this KV head, side by side in a row
	Q, S, O := buf[0][:M*D], buf[1][:M*np], buf[2][:M*D]
	for r := it.r0; r < it.r1; r++ {
		src := q[r*qd+it.head*gw : r*qd+(it.head+1)*gw]
		dst := Q[(r-it.r0)*gw : (r-it.r0+1)*gw]
		for j, v := range src {
			dst[j] = v * scale
		}
	}
	a.k.MatMul(S, Q, kernels.FromF32(np, D, kh[jlo*D:jhi*D]), M)
	for r := it.r0; r < it.r1; r++ {
		pos := a.pos(it.seq, r)
		from, to := a.lo(pos)-jlo, pos+1-jlo
		for j := 0; j < group; j++ {
			row := S[((r-it.r0)*group+j)*np : ((r-it.r0)*group+j+1)*np]
			a.k.Softmax(row[from:to])
			clear(row[:from])
			clear(row[to:])
		}
	}
	a.k.MatMulBackInput(O, S, kernels.FromF32(np, D, vh[jlo*D:jhi*D]), M)
	for r := it.r0; r < it.r1; r++ {
		copy(out[r*qd+it.head*gw:r*qd+(it.head+1)*gw], O[(r-it.r0)*gw:(r-it.r0+1)*gw])
	}
}
