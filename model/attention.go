package model

import (
	"runtime"
	"sync"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
)

// attention computes causal multi-head attention for the rows of a batch
// over each sequence's cache, with matrix products: for one sequence and
// one KV head, the query heads that share that head (grouped-query
// attention) of a block of rows are stacked into a matrix Q, then
// S = Q·Kᵀ over the positions the block may see, each row's softmax over
// its own window (causal, and the sliding window where there is one), and
// O = S·V. The keys and values of a head are contiguous in the cache, so
// K and V are plain row-major matrices of the cache's types (see
// CacheType): the products run on the stored rows.
type attention struct {
	seqs    []BatchSeq
	off, p0 []int
	cfg     *Config
	k       kernels.Kernels
	items   []attItem
	workers int
	// Per-worker buffers: stacked queries, scores, outputs; a query row
	// quantised to Q8_0.
	bufs [][3][]float32
	qb   [][]byte
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
		n := p0[i] + len(seqs[i].Tokens)              // positions seen by the last row
		dq := max(seqs[i].Cache.dk, seqs[i].Cache.dv) // stored row width (≥ D)
		rb := max(1, attBlockFloats/(group*n))
		for h := 0; h < cfg.KVHeads; h++ {
			for r0 := off[i]; r0 < off[i+1]; r0 += rb {
				r1 := min(off[i+1], r0+rb)
				a.items = append(a.items, attItem{i, h, r0, r1})
				M := (r1 - r0) * group
				np := a.pos(i, r1-1) + 1 - a.lo(a.pos(i, r0))
				maxQ, maxS = max(maxQ, M*dq), max(maxS, M*np)
				work += 2 * M * np * D
			}
		}
	}
	a.workers = 1
	if work >= 1<<16 {
		a.workers = min(runtime.GOMAXPROCS(0), len(a.items))
	}
	a.bufs = make([][3][]float32, a.workers)
	a.qb = make([][]byte, a.workers)
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
			a.item(l, it, q, out, scale, group, a.bufs[0], &a.qb[0])
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < a.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for t := w; t < len(a.items); t += a.workers {
				a.item(l, a.items[t], q, out, scale, group, a.bufs[w], &a.qb[w])
			}
		}(w)
	}
	wg.Wait()
}

func (a *attention) item(l int, it attItem, q, out []float32, scale float32, group int, buf [3][]float32, qb *[]byte) {
	D, qd := a.cfg.HeadDim, a.cfg.QDim()
	c := a.seqs[it.seq].Cache
	dk, dv := c.dk, c.dv // D, or D padded to the cache type's block
	jlo := a.lo(a.pos(it.seq, it.r0))
	jhi := a.pos(it.seq, it.r1-1) + 1
	np := jhi - jlo
	M := (it.r1 - it.r0) * group
	Q, S, O := buf[0][:M*dk], buf[1][:M*np], buf[2][:M*dv]
	// Row (r−r0)·group + j of Q is query head it.head·group + j of batch row r.
	for r := it.r0; r < it.r1; r++ {
		for j := 0; j < group; j++ {
			src := q[r*qd+(it.head*group+j)*D : r*qd+(it.head*group+j+1)*D]
			dst := Q[((r-it.r0)*group+j)*dk : ((r-it.r0)*group+j+1)*dk]
			for e, v := range src {
				dst[e] = v * scale
			}
			clear(dst[D:])
			if c.ct.K.Quantized() {
				roundQ8(dst, qb)
			}
		}
	}
	K, V := c.headMatrices(l, it.head, jlo, jhi)
	a.k.MatMul(S, Q, K, M)
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
	a.k.MatMulBackInput(O, S, V, M)
	for r := it.r0; r < it.r1; r++ {
		for j := 0; j < group; j++ {
			copy(out[r*qd+(it.head*group+j)*D:r*qd+(it.head*group+j+1)*D], O[((r-it.r0)*group+j)*dv:])
		}
	}
}

// roundQ8 replaces a query row by its Q8_0 encoding decoded (blocks of 32:
// an f16 scale and 8-bit quants), the queries that multiply block-quantised
// keys, as llama.cpp's vec_dot_type q8_0 does. The kernels would quantise
// them for a few rows (integer dot products) and keep float32 for many
// (the keys decoded): with the queries rounded first, both compute the same
// products up to float32 rounding, so a sequence gets the same logits
// whether its tokens come one at a time, in a prompt or in a batch.
func roundQ8(x []float32, buf *[]byte) {
	n, _ := quant.Q8_0.RowBytes(len(x)) // len(x) is a multiple of 32
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	_ = quant.QuantizeRow(quant.Q8_0, x, b)
	_ = quant.DequantizeRow(quant.Q8_0, b, x)
}
