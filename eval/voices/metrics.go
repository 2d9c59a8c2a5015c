package voices

import (
	"math"
	"strings"
)

// RepetitionN is the n-gram length of the repetition rate.
const RepetitionN = 4

// wordTokens returns the lower-cased word tokens of text as the classifier
// sees them (Features).
func wordTokens(text string) []string {
	e := newExtractor(Features{WordMax: 1, Buckets: 2})
	e.tokenize(text)
	out := make([]string, len(e.words))
	for i, w := range e.words {
		out[i] = string(w)
	}
	return out
}

// Distinct is distinct-n (Li et al., 2016) over a set of texts: the number
// of distinct word n-grams divided by the number of word n-grams, counted
// over all texts together. NaN when the texts have no n-gram.
func Distinct(texts []string, n int) float64 {
	seen := map[string]bool{}
	total := 0
	for _, t := range texts {
		w := wordTokens(t)
		for i := 0; i+n <= len(w); i++ {
			seen[strings.Join(w[i:i+n], "\x1f")] = true
			total++
		}
	}
	if total == 0 {
		return math.NaN()
	}
	return float64(len(seen)) / float64(total)
}

// Repetition is the share of a text's word n-grams (n = RepetitionN) that
// repeat an earlier n-gram of the same text: 1 − distinct/total (seq-rep-n
// of Welleck et al., 2019). NaN when the text has fewer than n words.
func Repetition(text string, n int) float64 {
	w := wordTokens(text)
	if len(w) < n {
		return math.NaN()
	}
	seen := map[string]bool{}
	total := 0
	for i := 0; i+n <= len(w); i++ {
		seen[strings.Join(w[i:i+n], "\x1f")] = true
		total++
	}
	return 1 - float64(len(seen))/float64(total)
}

// meanRepetition averages Repetition over the texts long enough to have
// one (NaN when none is).
func meanRepetition(texts []string) float64 {
	var s float64
	k := 0
	for _, t := range texts {
		if r := Repetition(t, RepetitionN); !math.IsNaN(r) {
			s += r
			k++
		}
	}
	if k == 0 {
		return math.NaN()
	}
	return s / float64(k)
}
