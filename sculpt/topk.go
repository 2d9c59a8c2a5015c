package sculpt

import (
	"fmt"
	"math"
	"slices"
)

// KeepCount is the number of FFN channels kept per layer at ratio: k =
// round((1 − ratio)·dff). It fails for a ratio outside (0, 1) and when k
// would be 0 (nothing kept) or dff (nothing pruned).
func KeepCount(dff int, ratio float64) (int, error) {
	if math.IsNaN(ratio) || ratio <= 0 || ratio >= 1 {
		return 0, fmt.Errorf("sculpt: ratio %v is outside (0, 1): it is the share of FFN channels removed, e.g. 0.25", ratio)
	}
	k := int(math.Round((1 - ratio) * float64(dff)))
	switch {
	case k <= 0:
		return 0, fmt.Errorf("sculpt: ratio %v keeps k = 0 of the %d FFN channels of each layer; use a smaller ratio", ratio, dff)
	case k >= dff:
		return 0, fmt.Errorf("sculpt: ratio %v keeps all %d FFN channels of each layer (k = round((1 − ratio)·%d) = %d); use a larger ratio", ratio, dff, dff, k)
	}
	return k, nil
}

// rankOrder returns the channel indices ordered best first: larger score
// first, ties (and NaN, which ranks last) broken by the smaller index. The
// order is a total order, so the result is deterministic.
func rankOrder(score []float64) []int {
	idx := make([]int, len(score))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		sa, sb := score[a], score[b]
		na, nb := math.IsNaN(sa), math.IsNaN(sb)
		switch {
		case na && !nb:
			return 1
		case nb && !na:
			return -1
		case !na && sa != sb:
			if sa > sb {
				return -1
			}
			return 1
		}
		return a - b
	})
	return idx
}

// TopK returns the k best-scoring channels in ascending index order (the
// order in which an exported model keeps them). Ties are broken by the
// smaller channel index.
func TopK(score []float64, k int) []int {
	k = max(0, min(k, len(score)))
	keep := slices.Clone(rankOrder(score)[:k])
	slices.Sort(keep)
	return keep
}

// TopK32 is TopK over float32 scores.
func TopK32(score []float32, k int) []int {
	s := make([]float64, len(score))
	for i, v := range score {
		s[i] = float64(v)
	}
	return TopK(s, k)
}

// KeepTop applies TopK to the scores of every layer.
func KeepTop(scores [][]float64, k int) [][]int {
	out := make([][]int, len(scores))
	for l, s := range scores {
		out[l] = TopK(s, k)
	}
	return out
}

// maskOf writes the 0/1 mask of the kept channels into dst (len dff).
func maskOf(dst []float32, keep []int) {
	clear(dst)
	for _, i := range keep {
		dst[i] = 1
	}
}
