package subnet

import (
	"math"
	"slices"
)

// ranker orders the entries of one row: a ranks before b when its primary
// score is larger, then its secondary score (when present), then its index
// is smaller. NaN scores rank last.
type ranker struct {
	p, s []float64
}

func (r *ranker) before(a, b int) bool {
	pa, pb := r.p[a], r.p[b]
	if pa != pb {
		return pa > pb
	}
	if r.s != nil {
		if sa, sb := r.s[a], r.s[b]; sa != sb {
			return sa > sb
		}
	}
	return a < b
}

// sanitize replaces NaN by −Inf so that every comparison is a total order.
func sanitize(v []float64) {
	for i, x := range v {
		if math.IsNaN(x) {
			v[i] = math.Inf(-1)
		}
	}
}

// selectTop reorders idx so that its first k elements are the k best-ranked
// (in no particular order). It runs in expected linear time and falls back
// to sorting on degenerate inputs.
func (r *ranker) selectTop(idx []int, k int) {
	if k <= 0 || k >= len(idx) {
		return
	}
	lo, hi := 0, len(idx) // the k-th boundary lies in [lo, hi)
	budget := 2*bitsLen(len(idx)) + 16
	for hi-lo > 16 {
		if budget == 0 {
			slices.SortFunc(idx[lo:hi], r.cmp)
			return
		}
		budget--
		// median of three as pivot
		a, b, c := lo, lo+(hi-lo)/2, hi-1
		if r.before(idx[b], idx[a]) {
			a, b = b, a
		}
		if r.before(idx[c], idx[b]) {
			b, c = c, b
			if r.before(idx[b], idx[a]) {
				a, b = b, a
			}
		}
		_ = a
		_ = c
		pivot := idx[b]
		// three-way partition: before pivot | pivot | after pivot
		i, j := lo, hi-1
		idx[b], idx[j] = idx[j], idx[b]
		store := lo
		for i = lo; i < j; i++ {
			if r.before(idx[i], pivot) {
				idx[i], idx[store] = idx[store], idx[i]
				store++
			}
		}
		idx[store], idx[j] = idx[j], idx[store]
		switch {
		case store == k || store == k-1:
			return
		case store < k:
			lo = store + 1
		default:
			hi = store
		}
	}
	slices.SortFunc(idx[lo:hi], r.cmp)
}

func (r *ranker) cmp(a, b int) int {
	if a == b {
		return 0
	}
	if r.before(a, b) {
		return -1
	}
	return 1
}

func bitsLen(n int) int {
	b := 0
	for n > 0 {
		b++
		n >>= 1
	}
	return b
}

// keepRanks sets keep[j] for the entries ranked in [from, to) of the row
// (0-based ranks, best first) and clears the others. idx is scratch of len(keep).
func (r *ranker) keepRanks(keep []bool, idx []int, from, to int) {
	n := len(keep)
	to = min(to, n)
	from = max(from, 0)
	for i := range idx[:n] {
		idx[i] = i
	}
	clear(keep)
	if from >= to {
		return
	}
	idx = idx[:n]
	r.selectTop(idx, to)
	if from > 0 {
		r.selectTop(idx[:to], from)
	}
	for _, j := range idx[from:to] {
		keep[j] = true
	}
}

// keepNM keeps, in every group of m consecutive entries, those ranked in
// [from, to) within the group (from = 0, to = n for plain n:m).
func (r *ranker) keepNM(keep []bool, from, to, m int) {
	var g [64]int
	for off := 0; off+m <= len(keep); off += m {
		grp := g[:m]
		for i := range grp {
			grp[i] = off + i
		}
		slices.SortFunc(grp, r.cmp)
		for i, j := range grp {
			keep[j] = i >= from && i < to
		}
	}
}
