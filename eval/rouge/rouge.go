// Package rouge computes ROUGE-L, the longest-common-subsequence overlap of a
// candidate text with a reference, as RoleBench reports it (F-measure of the
// candidate against the first reference answer).
//
// Tokenisation (Tokenize) is fixed and documented so that scores are
// comparable across runs:
//
//  1. the text is lower-cased (Unicode simple case folding via
//     unicode.ToLower, rune by rune);
//  2. a token is a maximal run of letters, digits and combining marks
//     (Unicode categories L, N and M);
//  3. every other rune (whitespace, punctuation, symbols, emoji) separates
//     tokens and is dropped, so "don't" gives "don" and "t" and "co-op"
//     gives "co" and "op";
//  4. each Han ideograph, Hiragana or Katakana character is a token of its
//     own (these scripts do not separate words with spaces; RoleBench has
//     Chinese roles);
//  5. no stemming and no stopword removal.
//
// Steps 1–3 match the default tokenizer of Google's rouge-score package on
// ASCII text (which keeps only [a-z0-9] runs); steps 2 and 4 extend it to
// other scripts instead of dropping them.
package rouge

import (
	"strings"
	"unicode"
)

// Score is ROUGE-L of a candidate against one reference.
type Score struct {
	Precision float64 `json:"precision"` // LCS / candidate tokens
	Recall    float64 `json:"recall"`    // LCS / reference tokens
	F         float64 `json:"f"`         // 2PR/(P+R), 0 when P+R = 0
	LCS       int     `json:"lcs"`       // length of the longest common subsequence
}

// Tokenize splits s into ROUGE tokens as described in the package comment.
func Tokenize(s string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana):
			flush()
			out = append(out, string(unicode.ToLower(r)))
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.IsMark(r):
			cur.WriteRune(unicode.ToLower(r))
		default:
			flush()
		}
	}
	flush()
	return out
}

// LCS returns the length of the longest common subsequence of a and b.
func LCS(a, b []string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			case prev[j+1] >= cur[j]:
				cur[j+1] = prev[j+1]
			default:
				cur[j+1] = cur[j]
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// L computes ROUGE-L of candidate against reference, both tokenized with
// Tokenize. An empty candidate or reference scores 0.
func L(candidate, reference string) Score {
	return LTokens(Tokenize(candidate), Tokenize(reference))
}

// LTokens computes ROUGE-L on already tokenized texts.
func LTokens(cand, ref []string) Score {
	if len(cand) == 0 || len(ref) == 0 {
		return Score{}
	}
	n := LCS(cand, ref)
	s := Score{LCS: n, Precision: float64(n) / float64(len(cand)), Recall: float64(n) / float64(len(ref))}
	if s.Precision+s.Recall > 0 {
		s.F = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
	}
	return s
}
