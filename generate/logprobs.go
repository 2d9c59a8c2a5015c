package generate

import "math"

// logNormalizer is log(sum(exp(logits))), computed stably.
func logNormalizer(logits []float32) float64 {
	hi := math.Inf(-1)
	for _, x := range logits {
		if x == x {
			hi = max(hi, float64(x))
		}
	}
	if math.IsInf(hi, 0) {
		return hi
	}
	sum := 0.0
	for _, x := range logits {
		if x == x {
			sum += math.Exp(float64(x) - hi)
		}
	}
	return hi + math.Log(sum)
}

// LogProb returns log softmax(logits)[id] in float64 (NaN logits are left
// out of the normaliser).
func LogProb(logits []float32, id int) float64 {
	return float64(logits[id]) - logNormalizer(logits)
}

// NewLogprobEntry scores token id against one row of logits: its
// log-probability and the n most likely tokens (n ≤ 0: none), all under
// log_softmax of the logits as given, computed in float64. NaN logits are
// treated as -Inf. Generate uses it on the raw model logits; it is exported
// for callers that score tokens themselves (for example prompt tokens).
func NewLogprobEntry(logits []float32, id, n int) LogprobEntry {
	logZ := logNormalizer(logits)
	e := LogprobEntry{ID: id, Logprob: float32(float64(logits[id]) - logZ)}
	// Keep the best n ids in order: higher logit first, lower id on ties.
	n = max(n, 0)
	top := make([]int, 0, n)
	for j, x := range logits {
		if x != x {
			continue
		}
		if len(top) == n && (n == 0 || !(x > logits[top[n-1]])) {
			continue
		}
		// Find the insertion point after every entry at least as large.
		k := len(top)
		for k > 0 && x > logits[top[k-1]] {
			k--
		}
		if len(top) < n {
			top = append(top, 0)
		}
		copy(top[k+1:], top[k:len(top)-1])
		top[k] = j
	}
	e.Top = make([]TokenLogprob, len(top))
	for i, j := range top {
		e.Top[i] = TokenLogprob{ID: j, Logprob: float32(float64(logits[j]) - logZ)}
	}
	return e
}
