package rouge

import (
	"math"
	"slices"
	"testing"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello, World!", []string{"hello", "world"}},
		{"don't stop -- co-op", []string{"don", "t", "stop", "co", "op"}},
		{"  \t\n", nil},
		{"3.14 is π", []string{"3", "14", "is", "π"}},
		{"Café naïve", []string{"café", "naïve"}},
		{"我是孙悟空!", []string{"我", "是", "孙", "悟", "空"}},
		{"abc漢字def", []string{"abc", "漢", "字", "def"}},
		{"emoji😀here", []string{"emoji", "here"}},
	}
	for _, tc := range tests {
		if got := Tokenize(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The expected values are computed by hand in the comments.
func TestRougeLHandComputed(t *testing.T) {
	tests := []struct {
		name      string
		cand, ref string
		lcs       int
		p, r, f   float64
	}{
		// ref:  the cat the cat sat on the mat (8 tokens)
		// cand: the mat the cat sat (5 tokens)
		// LCS "the the cat sat" = 4 (mat comes last in ref, so it cannot
		// join). P = 4/5, R = 4/8, F = 2·0.8·0.5/1.3 = 8/13.
		{"repeated tokens and punctuation", "the mat: the cat sat.", "The cat, the cat sat on the mat!", 4, 0.8, 0.5, 8.0 / 13},
		// Punctuation and case only: identical token lists.
		{"identical after tokenizing", "Yes!!! YES... yes?", "yes yes, yes", 3, 1, 1, 1},
		// ref: a b a b a (5), cand: b a b (3) → LCS 3. P = 1, R = 3/5,
		// F = 2·0.6/1.6 = 0.75.
		{"repeats in both", "b, a; b", "a b a b a", 3, 1, 0.6, 0.75},
		// ref: x y z (3), cand: z y x (3): LCS 1. P = R = F = 1/3.
		{"reversed", "z y x", "x y z", 1, 1.0 / 3, 1.0 / 3, 1.0 / 3},
		{"no overlap", "alpha beta", "gamma", 0, 0, 0, 0},
		{"empty candidate", "...", "gamma", 0, 0, 0, 0},
		// ref: 我 是 孙 悟 空 (5), cand: 孙 悟 空 来 了 (5): LCS 3, F = 0.6.
		{"chinese characters", "孙悟空来了", "我是孙悟空", 3, 0.6, 0.6, 0.6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := L(tc.cand, tc.ref)
			if s.LCS != tc.lcs || math.Abs(s.Precision-tc.p) > 1e-12 || math.Abs(s.Recall-tc.r) > 1e-12 || math.Abs(s.F-tc.f) > 1e-12 {
				t.Fatalf("got %+v, want lcs %d P %v R %v F %v", s, tc.lcs, tc.p, tc.r, tc.f)
			}
		})
	}
}

func TestLCSSymmetric(t *testing.T) {
	a := Tokenize("one two three two one three one")
	b := Tokenize("three one two one")
	if LCS(a, b) != LCS(b, a) {
		t.Fatal("LCS is not symmetric")
	}
}
