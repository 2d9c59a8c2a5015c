package judge

import (
	"fmt"
	"math"
	"testing"

	"github.com/masque-ai/masque/openaiclient"
)

// tok builds a generated token with its alternatives (probabilities, not
// logprobs, for readability).
func tok(t string, alts ...any) openaiclient.TokenLogprob {
	tl := openaiclient.TokenLogprob{Token: t}
	for i := 0; i < len(alts); i += 2 {
		p := alts[i+1].(float64)
		tl.Top = append(tl.Top, openaiclient.Alt{Token: alts[i].(string), Logprob: math.Log(p)})
		if alts[i].(string) == t {
			tl.Logprob = math.Log(p)
		}
	}
	return tl
}

func TestScoreResponse(t *testing.T) {
	tests := []struct {
		name    string
		r       openaiclient.Response
		ok      bool
		refusal bool
		method  string
		value   float64
		mass    float64
	}{
		{
			// (0.5·85 + 0.2·90 + 0.1·80) / 0.8 = 68.5/0.8.
			name: "single-token integers",
			r: openaiclient.Response{Text: "85", Logprobs: []openaiclient.TokenLogprob{
				tok("85", "85", 0.5, "90", 0.2, "Sure", 0.15, "80", 0.1, "101", 0.03, "-", 0.02)}},
			ok: true, method: MethodLogprobs, value: 68.5 / 0.8, mass: 0.8,
		},
		{
			// Leading whitespace token skipped; " 70" trimmed; "05" is not
			// a canonical integer. (0.6·70 + 0.2·60)/0.8 = 54/0.8.
			name: "leading space token and spaced candidates",
			r: openaiclient.Response{Text: " 70", Logprobs: []openaiclient.TokenLogprob{
				tok(" ", " ", 0.9, "\n", 0.1),
				tok(" 70", " 70", 0.6, "60", 0.2, "05", 0.1, "x", 0.1)}},
			ok: true, method: MethodLogprobs, value: 54 / 0.8, mass: 0.8,
		},
		{
			// Digits split across tokens: "8" then "5", generation ends.
			// Numbers: 8 (0.6·0.2), 85 (0.6·0.5), 80 (0.6·0.3), 7 (0.3·0.2),
			// 75 (0.3·0.5), 70 (0.3·0.3); mass 0.9, Σ P·n = 58.83.
			name: "digits split across tokens",
			r: openaiclient.Response{Text: "85", Logprobs: []openaiclient.TokenLogprob{
				tok("8", "8", 0.6, "7", 0.3, "x", 0.1),
				tok("5", "5", 0.5, "0", 0.3, "\n", 0.2)}},
			ok: true, method: MethodLogprobsSplit, value: 58.83 / 0.9, mass: 0.9,
		},
		{
			// "1","0","0": 100 (0.9·1·1 at the end), 10 (0.9·P(stop at
			// level 2) = 0), 1 ends with stop mass 0 at level 1. Then "9"
			// "0" "0" = 900 is out of range, "90" ends at level 2 with stop
			// 0. Only 100 is valid: mass 0.9.
			name: "split 100",
			r: openaiclient.Response{Text: "100", Logprobs: []openaiclient.TokenLogprob{
				tok("1", "1", 0.9, "9", 0.1),
				tok("0", "0", 1.0),
				tok("0", "0", 1.0)}},
			ok: true, method: MethodLogprobsSplit, value: 100, mass: 0.9,
		},
		{
			name: "no digit mass, number in text",
			r: openaiclient.Response{Text: "Score: 72", Logprobs: []openaiclient.TokenLogprob{
				tok("Score", "Score", 0.7, "The", 0.3), tok(":", ":", 1.0), tok(" 72", " 72", 1.0)}},
			ok: true, method: MethodText, value: 72,
		},
		{
			name: "no digit mass, no number",
			r: openaiclient.Response{Text: "Once upon a time", Logprobs: []openaiclient.TokenLogprob{
				tok("Once", "Once", 0.8, "One", 0.2)}},
			method: MethodFailed,
		},
		{
			// Integer mass 0.1 < 0.25: the text decides.
			name: "mass below threshold falls back to text",
			r: openaiclient.Response{Text: "It is 40", Logprobs: []openaiclient.TokenLogprob{
				tok("It", "It", 0.9, "85", 0.1)}},
			ok: true, method: MethodText, value: 40, mass: 0.1,
		},
		{
			name: "REFUSAL first token",
			r: openaiclient.Response{Text: "REFUSAL", Logprobs: []openaiclient.TokenLogprob{
				tok("REF", "REF", 0.7, "50", 0.3), tok("USAL", "USAL", 1.0)}},
			refusal: true, method: MethodRefusal,
		},
		{name: "refusal in markdown", r: openaiclient.Response{Text: "**Refusal**"}, refusal: true, method: MethodRefusal},
		{name: "refusal later in text", r: openaiclient.Response{Text: "I must answer REFUSAL here."}, refusal: true, method: MethodRefusal},
		{name: "refusals word is not REFUSAL", r: openaiclient.Response{Text: "Refusals are rare; 60"}, ok: true, method: MethodText, value: 60},
		{name: "malformed words", r: openaiclient.Response{Text: "eighty-five"}, method: MethodFailed},
		{name: "out of range text", r: openaiclient.Response{Text: "150"}, method: MethodFailed},
		{name: "decimal text", r: openaiclient.Response{Text: "About 87.5 out of 100"}, ok: true, method: MethodText, value: 87.5},
		{name: "empty reply", r: openaiclient.Response{}, method: MethodFailed},
		{name: "whitespace-only logprobs", r: openaiclient.Response{Text: "  ", Logprobs: []openaiclient.TokenLogprob{tok(" ", " ", 1.0)}}, method: MethodFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ScoreResponse(&tc.r, 0, 100)
			if s.OK != tc.ok || s.Refusal != tc.refusal || s.Method != tc.method {
				t.Fatalf("got %+v, want ok=%v refusal=%v method=%s", s, tc.ok, tc.refusal, tc.method)
			}
			if tc.ok && math.Abs(s.Value-tc.value) > 1e-9 {
				t.Fatalf("value %v, want %v", s.Value, tc.value)
			}
			if math.Abs(s.Mass-tc.mass) > 1e-9 {
				t.Fatalf("mass %v, want %v", s.Mass, tc.mass)
			}
			if !s.OK && s.Reason == "" {
				t.Fatal("no reason given for a missing score")
			}
		})
	}
}

// TestScoreTopCandidates: only the 20 most probable candidates count, in
// whatever order the endpoint lists them (legacy completions give a map).
// With all 25 the score would be (0.4·40 + 5·0.01·100)/0.45 = 46.67.
func TestScoreTopCandidates(t *testing.T) {
	var alts []any
	for range 5 {
		alts = append(alts, "100", 0.01) // candidates 21–25, listed first
	}
	alts = append(alts, "40", 0.4)
	for i := range 19 {
		alts = append(alts, fmt.Sprintf("w%d", i), 0.02)
	}
	r := openaiclient.Response{Text: "40", Logprobs: []openaiclient.TokenLogprob{tok("40", alts...)}}
	s := ScoreResponse(&r, 0, 100)
	if !s.OK || s.Method != MethodLogprobs || math.Abs(s.Value-40) > 1e-9 || math.Abs(s.Mass-0.4) > 1e-9 {
		t.Fatalf("got %+v, want 40 from the top 20 candidates (mass 0.4)", s)
	}
	// The same cap on every position of a number split into digits: "4"
	// then "0"; the five extra "5" candidates at the second position lie
	// outside the top 20.
	second := []any{}
	for range 5 {
		second = append(second, "5", 0.001)
	}
	second = append(second, "0", 0.9)
	for i := range 19 {
		second = append(second, fmt.Sprintf("w%d", i), 0.005)
	}
	r = openaiclient.Response{Text: "40", Logprobs: []openaiclient.TokenLogprob{tok("4", "4", 1.0), tok("0", second...)}}
	s = ScoreResponse(&r, 0, 100)
	// 40 (0.9, ends after the last token), 4 (stop mass 19·0.005 = 0.095).
	want := (0.9*40 + 0.095*4) / 0.995
	if !s.OK || s.Method != MethodLogprobsSplit || math.Abs(s.Value-want) > 1e-9 {
		t.Fatalf("split: got %+v, want %v", s, want)
	}
}

func TestParseFinalScore(t *testing.T) {
	tests := []struct {
		text  string
		ok    bool
		value float64
	}{
		{"Good voice.\nTherefore, the final score is 4", true, 4},
		{"therefore the final score is: **5**", true, 5},
		{"Therefore, the final score is 2. Wait. Therefore, the final score is 3.", true, 3},
		{"Therefore, the final score is 4.5", false, 0}, // the rubric asks for an integer
		{"Therefore, the final score is 4.0", false, 0},
		{"Therefore, the final score is 3.\n", true, 3}, // a full stop is not a decimal
		{"Therefore, the final score is 7", false, 0},
		{"Therefore, the final score is 0", false, 0},
		{"I give it a 4.", false, 0},
		{"", false, 0},
	}
	for _, tc := range tests {
		s := ParseFinalScore(tc.text)
		if s.OK != tc.ok || (tc.ok && s.Value != tc.value) {
			t.Errorf("ParseFinalScore(%q) = %+v, want ok=%v value=%v", tc.text, s, tc.ok, tc.value)
		}
	}
}

func TestPairwiseVerdicts(t *testing.T) {
	verdicts := []struct {
		text, want string
	}{
		{"A", VerdictFirst}, {" b.", VerdictSecond}, {"**TIE**", VerdictTie}, {"Tie", VerdictTie},
		{"Answer: A", VerdictInvalid}, {"AB", VerdictInvalid}, {"", VerdictInvalid},
	}
	for _, tc := range verdicts {
		if got := ParseVerdict(tc.text); got != tc.want {
			t.Errorf("ParseVerdict(%q) = %s, want %s", tc.text, got, tc.want)
		}
	}
	combos := []struct {
		v1, v2     string
		winner     string
		consistent bool
	}{
		{VerdictFirst, VerdictSecond, WinA, true},   // A both times
		{VerdictSecond, VerdictFirst, WinB, true},   // B both times
		{VerdictFirst, VerdictFirst, Tie, false},    // always the first shown: position bias
		{VerdictTie, VerdictTie, Tie, true},         // tie both times
		{VerdictFirst, VerdictTie, WinA, false},     // A once, tie once
		{VerdictInvalid, VerdictFirst, WinB, false}, // only the second order counts
		{VerdictInvalid, VerdictInvalid, Invalid, false},
	}
	for _, tc := range combos {
		o := CombineVerdicts(tc.v1, tc.v2)
		if o.Winner != tc.winner || o.Consistent != tc.consistent {
			t.Errorf("CombineVerdicts(%s, %s) = %+v, want %s consistent=%v", tc.v1, tc.v2, o, tc.winner, tc.consistent)
		}
	}
}
