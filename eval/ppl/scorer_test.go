package ppl

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/masque-ai/masque/model"
)

// TestScorer: a Scorer's sums equal Evaluate's on samples that share
// prefixes under one key and not under another, with and without score
// flags (a sample with nothing scored gives 0 tokens), and the samples that
// share a prefix with the key's previous sample run only their own tokens
// (counted with a hook on the first layer's input).
func TestScorer(t *testing.T) {
	m, err := model.LoadLlama2C("../../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	randIDs := func(n int) []int {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = 1 + rng.IntN(m.Config.Vocab-1)
		}
		return ids
	}
	system := randIDs(40)
	sample := func(user, answer int, flags bool) Sample {
		ids := slices.Concat(system, randIDs(user), randIDs(answer))
		s := Sample{IDs: ids}
		if flags {
			s.Score = make([]bool, len(ids))
			for j := len(ids) - answer; j < len(ids); j++ {
				s.Score[j] = true
			}
		}
		return s
	}
	samples := []Sample{sample(5, 20, true), sample(9, 12, true), sample(3, 30, true), {IDs: randIDs(25)}, sample(6, 1, true)}
	keys := []string{"a", "a", "a", "b", "a"}
	var rows int
	view := m.With(nil, &model.Hooks{LinearInput: func(l int, p model.Proj, _ []float32, r, _ int) {
		if l == 0 && p == model.ProjQ {
			rows += r
		}
	}})
	sc := NewScorer(view)
	for i, s := range samples {
		want, err := Evaluate(context.Background(), m, "", []Sample{s}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows = 0
		nll, n, err := sc.NLL(context.Background(), keys[i], s)
		if err != nil {
			t.Fatal(err)
		}
		if n != want.Tokens || math.Abs(nll/float64(n)-want.NLL) > 1e-5*want.NLL {
			t.Errorf("sample %d: %d tokens, mean nll %.7f; Evaluate: %d, %.7f", i, n, nll/float64(n), want.Tokens, want.NLL)
		}
		ran := len(s.IDs) - 1
		if i == 1 || i == 2 || i == 4 {
			ran -= len(system) // the previous sample of key a shares the system prompt
		}
		if rows != ran {
			t.Errorf("sample %d: %d positions run, want %d", i, rows, ran)
		}
	}
	none := Sample{IDs: randIDs(5), Score: make([]bool, 5)}
	if nll, n, err := sc.NLL(context.Background(), "a", none); err != nil || n != 0 || nll != 0 {
		t.Errorf("nothing scored: %g %d %v", nll, n, err)
	}
	if _, _, err := sc.NLL(context.Background(), "a", Sample{IDs: randIDs(4), Score: []bool{true}}); err == nil {
		t.Error("score flags of the wrong length were accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := sc.NLL(ctx, "a", samples[0]); err == nil {
		t.Error("a cancelled context was not reported")
	}
}
