package judge

import (
	"cmp"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/masque-ai/masque/openaiclient"
)

// MinMass is the smallest probability mass of integer candidates for which
// a 0–100 score is read from logprobs; below it the reply text is parsed.
const MinMass = 0.25

// TopCandidates is how many candidates per position the logprob methods
// read: the most probable 20, as the method (and OpenAI's top_logprobs
// limit) has it. An endpoint that returns more does not change the score.
const TopCandidates = 20

// Score methods, recorded in Score.Method.
const (
	// MethodLogprobs: probability-weighted mean over the top candidates of
	// the first answer token that are integers in range, renormalised by
	// their mass.
	MethodLogprobs = "logprobs"
	// MethodLogprobsSplit: the same, for a judge whose tokenizer splits a
	// number into several tokens (see ScoreResponse).
	MethodLogprobsSplit = "logprobs-split"
	// MethodText: the first number in the reply text.
	MethodText = "text"
	// MethodFinalScore: a rubric reply's "Therefore, the final score is N".
	MethodFinalScore = "final-score"
	// MethodRefusal: the judge answered REFUSAL; no score.
	MethodRefusal = "refusal"
	// MethodFailed: nothing could be read; no score.
	MethodFailed = "failed"
)

// Score is one judge verdict read from a reply.
type Score struct {
	// Value is the score; meaningful only when OK.
	Value float64 `json:"value"`
	// OK says a score was read. Refusals and failures are not OK and are
	// excluded from means (and counted).
	OK bool `json:"ok"`
	// Refusal says the judge answered REFUSAL.
	Refusal bool `json:"refusal,omitempty"`
	// Method is how the value was read (Method* constants).
	Method string `json:"method"`
	// Mass is the probability mass of the integer candidates (logprob
	// methods; also recorded when it was too small and the text was used).
	Mass float64 `json:"mass,omitempty"`
	// Reason says why there is no score.
	Reason string `json:"reason,omitempty"`
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// canonicalInt parses s as an integer written without leading zeros ("0"
// itself is fine) and reports whether it is in [lo, hi].
func canonicalInt(s string, lo, hi int) (int, bool) {
	if !isDigits(s) || len(s) > 4 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, n >= lo && n <= hi
}

// isRefusal reports whether the reply starts with the word REFUSAL (any
// case, after quotes, asterisks or other punctuation).
func isRefusal(text string) bool {
	t := strings.TrimLeftFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(t) < 7 || !strings.EqualFold(t[:7], "REFUSAL") {
		return false
	}
	return len(t) == 7 || !unicode.IsLetter(rune(t[7]))
}

// ScoreResponse reads a 0–100 score (or any [lo, hi] integer scale) from a
// judge reply the Persona-Pruner way:
//
//  1. A reply that starts with REFUSAL is a refusal: no score.
//  2. With logprobs: p is the first generated token that is not pure
//     whitespace. If the reply's number is one token (the judge's
//     tokenizer has multi-digit tokens, as Llama 3's does), the score is
//     Σ P(c)·c / Σ P(c) over the candidates c at p (top_logprobs,
//     whitespace trimmed) that are integers in [lo, hi] written without
//     leading zeros. This is the published rule. Only the TopCandidates
//     most probable candidates of a position are read (an endpoint may
//     return more, or return them unordered).
//  3. If the reply's number spans several consecutive all-digit tokens (a
//     tokenizer with one token per digit, as Llama 2's), the candidates at
//     p are only leading digits, so a tree is expanded instead: a number
//     is a sequence of all-digit candidates, one per position from p on;
//     it ends at position k with the mass of the non-digit candidates at
//     k (1 after the last generated token); its probability is the
//     product along the way. Positions after p only have the candidates
//     that follow the greedy prefix, so every branch uses those
//     conditionals: an approximation, exact on the greedy path. The score
//     is the renormalised mean over numbers in [lo, hi] (at most 4 digits
//     are expanded).
//  4. When the integer mass is below MinMass (or there are no logprobs),
//     the first number in the text is used if it lies in [lo, hi]
//     (decimals allowed); a reply with no number but the word REFUSAL is a
//     refusal; anything else is a failure.
func ScoreResponse(r *openaiclient.Response, lo, hi int) Score {
	if isRefusal(r.Text) {
		return Score{Refusal: true, Method: MethodRefusal, Reason: "the judge answered REFUSAL"}
	}
	var mass float64
	if len(r.Logprobs) > 0 {
		var sc Score
		sc, mass = scoreLogprobs(r.Logprobs, lo, hi)
		if sc.OK {
			return sc
		}
	}
	if v, ok := firstNumber(r.Text); ok {
		if v >= float64(lo) && v <= float64(hi) {
			return Score{Value: v, OK: true, Method: MethodText, Mass: mass}
		}
		return Score{Method: MethodFailed, Mass: mass, Reason: "the number in the judge's reply is outside [" + strconv.Itoa(lo) + "," + strconv.Itoa(hi) + "]"}
	}
	if refusalRE.MatchString(r.Text) {
		return Score{Refusal: true, Method: MethodRefusal, Mass: mass, Reason: "the judge answered REFUSAL"}
	}
	return Score{Method: MethodFailed, Mass: mass, Reason: "no score in the judge's reply"}
}

var (
	numberRE  = regexp.MustCompile(`\d+(?:\.\d+)?`)
	refusalRE = regexp.MustCompile(`(?i)\bREFUSAL\b`)
)

// firstNumber returns the first number written in text.
func firstNumber(text string) (float64, bool) {
	m := numberRE.FindString(text)
	if m == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(m, 64)
	return v, err == nil
}

// scoreLogprobs applies steps 2 and 3 of ScoreResponse; mass is the integer
// mass found (also when below MinMass).
func scoreLogprobs(toks []openaiclient.TokenLogprob, lo, hi int) (Score, float64) {
	p := 0
	for p < len(toks) && strings.TrimSpace(toks[p].Token) == "" {
		p++
	}
	if p == len(toks) {
		return Score{}, 0
	}
	// How many consecutive all-digit tokens make up the reply's number.
	m := 0
	for k := p; k < len(toks); k++ {
		t := toks[k].Token
		if k == p {
			t = strings.TrimLeftFunc(t, unicode.IsSpace)
		}
		if !isDigits(t) {
			break
		}
		m++
	}
	var sum, mass float64
	method := MethodLogprobs
	if m >= 2 {
		method = MethodLogprobsSplit
		sum, mass = expandDigits(toks, p, lo, hi)
	} else {
		for _, a := range topCandidates(toks[p].Top) {
			if n, ok := canonicalInt(strings.TrimSpace(a.Token), lo, hi); ok {
				pr := math.Exp(a.Logprob)
				mass += pr
				sum += pr * float64(n)
			}
		}
	}
	if mass < MinMass || mass <= 0 {
		return Score{}, mass
	}
	return Score{Value: sum / mass, OK: true, Method: method, Mass: mass}, mass
}

// topCandidates returns the TopCandidates most probable of alts (all of
// them when there are no more), most probable first; ties keep the
// endpoint's order.
func topCandidates(alts []openaiclient.Alt) []openaiclient.Alt {
	if len(alts) <= TopCandidates {
		return alts
	}
	s := slices.Clone(alts)
	slices.SortStableFunc(s, func(a, b openaiclient.Alt) int { return cmp.Compare(b.Logprob, a.Logprob) })
	return s[:TopCandidates]
}

// expandDigits is step 3 of ScoreResponse: Σ P·value and Σ P over the
// numbers in [lo, hi] reachable from position p.
func expandDigits(toks []openaiclient.TokenLogprob, p, lo, hi int) (sum, mass float64) {
	const maxDigits = 4
	type cand struct {
		digits string
		pr     float64
	}
	// digits[k] are the all-digit candidates at position p+k; stop[k] the
	// mass of the others (a number ends there).
	var levels [][]cand
	var stop []float64
	for k := p; k < len(toks) && k-p <= maxDigits; k++ {
		var ds []cand
		st := 0.0
		for _, a := range topCandidates(toks[k].Top) {
			t := a.Token
			if k == p {
				t = strings.TrimLeftFunc(t, unicode.IsSpace)
			}
			pr := math.Exp(a.Logprob)
			if isDigits(t) {
				ds = append(ds, cand{t, pr})
			} else {
				st += pr
			}
		}
		levels = append(levels, ds)
		stop = append(stop, st)
	}
	var walk func(k int, s string, pr float64)
	walk = func(k int, s string, pr float64) {
		if len(s) > maxDigits || pr <= 0 {
			return
		}
		end := 1.0 // after the last generated token the number ends
		if k < len(levels) {
			end = stop[k]
		}
		if n, ok := canonicalInt(s, lo, hi); ok {
			mass += pr * end
			sum += pr * end * float64(n)
		}
		if k < len(levels) {
			for _, c := range levels[k] {
				walk(k+1, s+c.digits, pr*c.pr)
			}
		}
	}
	for _, c := range levels[0] {
		walk(1, c.digits, c.pr)
	}
	return sum, mass
}

var finalScoreRE = regexp.MustCompile(`(?is)therefore,?\s*the\s+final\s+score\s+is\s*[:=]?\s*[*_"'\x60]*\s*(\d+(?:\.\d+)?)`)

// ParseFinalScore reads a PersonaGym-style rubric verdict: the number after
// the last "Therefore, the final score is" (case-insensitive; markdown
// emphasis and a colon tolerated), which must be an integer in [1, 5], as
// the rubric asks. A number with a fractional part ("4.5", also "4.0") is
// not a rubric score: the verdict is unreadable (MethodFailed, counted with
// the other failures and left out of the mean), not rounded or kept.
func ParseFinalScore(text string) Score {
	ms := finalScoreRE.FindAllStringSubmatch(text, -1)
	if len(ms) == 0 {
		return Score{Method: MethodFailed, Reason: `no "Therefore, the final score is N" in the judge's reply`}
	}
	num := ms[len(ms)-1][1]
	if strings.Contains(num, ".") {
		return Score{Method: MethodFailed, Reason: "the final score " + num + " is not an integer 1–5"}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 1 || v > 5 {
		return Score{Method: MethodFailed, Reason: "the final score is outside [1,5]"}
	}
	return Score{Value: v, OK: true, Method: MethodFinalScore}
}

// Verdicts of one pairwise comparison, as read by ParseVerdict.
const (
	VerdictFirst   = "first"   // the response shown first is better
	VerdictSecond  = "second"  // the response shown second is better
	VerdictTie     = "tie"     // neither
	VerdictInvalid = "invalid" // unreadable
)

// ParseVerdict reads a pairwise reply: its first word must be A, B or TIE
// (any case, after punctuation or markdown).
func ParseVerdict(text string) string {
	t := strings.TrimLeftFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	end := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if end >= 0 {
		t = t[:end]
	}
	switch strings.ToUpper(t) {
	case "A":
		return VerdictFirst
	case "B":
		return VerdictSecond
	case "TIE":
		return VerdictTie
	}
	return VerdictInvalid
}
