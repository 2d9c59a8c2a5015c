package generate

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// sameResult reports how got differs from want in the fields GenerateBatch
// shares with Generate (every field but the timings), logprobs compared
// within tol ("" when they agree).
func sameResult(got, want *Result, tol float64) string {
	switch {
	case !slices.Equal(got.PromptIDs, want.PromptIDs) || got.PromptTokens != want.PromptTokens || got.CachedTokens != want.CachedTokens:
		return "prompt differs"
	case !slices.Equal(got.IDs, want.IDs):
		return fmt.Sprintf("ids differ:\n got %v\nwant %v", got.IDs, want.IDs)
	case got.Text != want.Text:
		return fmt.Sprintf("text differs:\n got %q\nwant %q", got.Text, want.Text)
	case got.FinishReason != want.FinishReason:
		return "finish " + got.FinishReason + ", want " + want.FinishReason
	case got.CompletionTokens != want.CompletionTokens:
		return "completion tokens differ"
	case len(got.Logprobs) != len(want.Logprobs):
		return "logprob entries differ in number"
	}
	for i, e := range got.Logprobs {
		w := want.Logprobs[i]
		if e.ID != w.ID || len(e.Top) != len(w.Top) || math.Abs(float64(e.Logprob-w.Logprob)) > tol {
			return "logprob entry differs"
		}
		for j, a := range e.Top {
			if a.ID != w.Top[j].ID || math.Abs(float64(a.Logprob-w.Top[j].Logprob)) > tol {
				return "logprob alternative differs"
			}
		}
	}
	return ""
}

// TestGenerateBatchOfOne checks that a batch of one request gives exactly
// Generate's result: ids, text, finish, counts and logprobs bit for bit.
func TestGenerateBatchOfOne(t *testing.T) {
	m, cases, vocab := stories(t)
	ctx := context.Background()
	opts := []Options{
		runC(48),
		{MaxTokens: 48, Temperature: 0.8, Seed: 42, Logprobs: 3},
		{MaxTokens: 30, Temperature: 1, TopP: 0.9, RepetitionPenalty: 1.3, Seed: 7, SkipSpecial: true},
	}
	for _, tc := range cases {
		for oi, o := range opts {
			want, err := Generate(ctx, m, vocab, tc.PromptIDs, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := GenerateBatch(ctx, m, vocab, []BatchRequest{{Prompt: tc.PromptIDs, Options: o}})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d results for one request", len(got))
			}
			if d := sameResult(got[0], want, 0); d != "" {
				t.Errorf("%s, options %d: %s", tc.Name, oi, d)
			}
			if got[0].PrefillDur <= 0 || got[0].DecodeDur <= 0 {
				t.Errorf("%s, options %d: timings %v %v", tc.Name, oi, got[0].PrefillDur, got[0].DecodeDur)
			}
		}
	}
}

// TestGenerateBatchMixed runs prompts of different lengths with different
// options together (greedy, seeded sampling, a stop token, a stop string,
// MaxTokens, a stop token that ends a sequence at once, logprobs) and
// compares every result with Generate's on its own.
func TestGenerateBatchMixed(t *testing.T) {
	m, cases, vocab := stories(t)
	ctx := context.Background()
	once := goldenByName(t, "once_upon_a_time")
	g := once.GeneratedIDs
	k := 5 // a stop token that first appears at position k
	for slices.Contains(g[:k], g[k]) {
		k++
	}
	ref, err := Generate(ctx, m, vocab, once.PromptIDs, runC(40), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := ref.Text[len(ref.Text)/2 : len(ref.Text)/2+4]
	var reqs []BatchRequest
	for _, tc := range cases {
		reqs = append(reqs,
			BatchRequest{Prompt: tc.PromptIDs, Options: runC(40)},
			BatchRequest{Prompt: tc.PromptIDs, Options: Options{MaxTokens: 25, Temperature: 0.8, Seed: 9, Logprobs: 2}})
	}
	reqs = append(reqs,
		BatchRequest{Prompt: once.PromptIDs, Options: Options{MaxTokens: 64, IgnoreEOS: true, StopTokens: []int{1, g[k]}}},
		BatchRequest{Prompt: once.PromptIDs, Options: Options{MaxTokens: 64, StopTokens: []int{g[0]}}},
		BatchRequest{Prompt: once.PromptIDs, Options: Options{MaxTokens: 64, IgnoreEOS: true, Stop: []string{stop}}},
		BatchRequest{Prompt: once.PromptIDs, Options: runC(3)},
		BatchRequest{Prompt: once.PromptIDs, Options: Options{MaxTokens: 64, IgnoreEOS: true, Temperature: 1.2, TopK: 20, Seed: 5, Stop: []string{"."}}},
	)
	got, err := GenerateBatch(ctx, m, vocab, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(got), len(reqs))
	}
	finishes := map[string]int{}
	for i, r := range reqs {
		want, err := Generate(ctx, m, vocab, r.Prompt, r.Options, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := sameResult(got[i], want, 1e-4); d != "" {
			t.Errorf("request %d: %s", i, d)
		}
		finishes[got[i].FinishReason]++
	}
	n := len(reqs)
	if got[n-5].FinishReason != FinishStop || len(got[n-5].IDs) != k || got[n-4].CompletionTokens != 1 || len(got[n-4].IDs) != 0 ||
		got[n-3].FinishReason != FinishStop || strings.Contains(got[n-3].Text, stop) || len(got[n-2].IDs) != 3 {
		t.Errorf("stop token %+v, immediate stop %+v, stop string %q (%s), max 3 %v", got[n-5], got[n-4], got[n-3].Text, got[n-3].FinishReason, got[n-2].IDs)
	}
	if finishes[FinishStop] < 3 || finishes[FinishLength] < 2 {
		t.Errorf("finish reasons %v", finishes)
	}
}

// TestGenerateBatchGroups prefills more prompt tokens than MaxBatchRows, so
// the prefill runs in several passes, and still matches Generate.
func TestGenerateBatchGroups(t *testing.T) {
	m, _, vocab := stories(t)
	ctx := context.Background()
	long := goldenByName(t, "punct_digits")
	var reqs []BatchRequest
	rows := 0
	for i := 0; rows <= MaxBatchRows; i++ {
		p := long.PromptIDs[:len(long.PromptIDs)-i%7]
		reqs = append(reqs, BatchRequest{Prompt: p, Options: runC(6)})
		rows += len(p)
	}
	got, err := GenerateBatch(ctx, m, vocab, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		want, err := Generate(ctx, m, vocab, r.Prompt, r.Options, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := sameResult(got[i], want, 1e-4); d != "" {
			t.Errorf("request %d: %s", i, d)
		}
	}
}

// cancelTok is a byteVocab whose streams cancel a context at the n-th Add
// of the first stream made (the priming Add counts).
type cancelTok struct {
	v      *byteVocab
	n      int
	cancel func()
	made   int
}

func (c *cancelTok) NewTextStream(skip bool) TextStream {
	c.made++
	s := c.v.NewTextStream(skip)
	if c.made > 1 {
		return s
	}
	return &cancelStream{TextStream: s, c: c}
}

type cancelStream struct {
	TextStream
	c    *cancelTok
	adds int
}

func (s *cancelStream) Add(id int) string {
	s.adds++
	if s.adds == s.c.n {
		s.c.cancel()
	}
	return s.TextStream.Add(id)
}

func TestGenerateBatchCancel(t *testing.T) {
	m, cases, vocab := stories(t)
	t.Run("during generation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// The 5th Add of request 0's stream is its 4th generated token: the
		// step ends (every sequence samples its 4th token), then nothing
		// more is fed.
		tok := &cancelTok{v: vocab, n: 5, cancel: cancel}
		var reqs []BatchRequest
		for _, tc := range cases[:4] {
			reqs = append(reqs, BatchRequest{Prompt: tc.PromptIDs, Options: runC(0)})
		}
		reqs = append(reqs, BatchRequest{Prompt: cases[1].PromptIDs, Options: runC(2)})
		// A stop string that begins with the last character of the text of
		// 4 tokens but never completes: that character is held back when
		// the context is cancelled, and must be released.
		four, err := Generate(context.Background(), m, vocab, cases[2].PromptIDs, runC(4), nil)
		if err != nil || four.Text == "" {
			t.Fatalf("%v, text %q", err, four.Text)
		}
		held := runC(0)
		held.Stop = []string{four.Text[len(four.Text)-1:] + "\x01\x02"}
		reqs = append(reqs, BatchRequest{Prompt: cases[2].PromptIDs, Options: held})
		got, err := GenerateBatch(ctx, m, tok, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs {
			o := r.Options
			if o.MaxTokens == 0 {
				o.MaxTokens = 4
			}
			want, err := Generate(context.Background(), m, vocab, r.Prompt, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Options.MaxTokens == 0 {
				want.FinishReason = FinishCancelled
			}
			if d := sameResult(got[i], want, 1e-4); d != "" {
				t.Errorf("request %d: %s", i, d)
			}
		}
	})
	t.Run("before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got, err := GenerateBatch(ctx, m, vocab, []BatchRequest{{Prompt: cases[1].PromptIDs}, {Prompt: cases[2].PromptIDs}})
		if err != nil || len(got) != 2 {
			t.Fatalf("%v, %d results", err, len(got))
		}
		for i, r := range got {
			if r.FinishReason != FinishCancelled || len(r.IDs) != 0 || r.PromptTokens != len(cases[i+1].PromptIDs) {
				t.Errorf("result %d: %+v", i, r)
			}
		}
	})
}

func TestGenerateBatchErrors(t *testing.T) {
	m, _, vocab := stories(t)
	ctx := context.Background()
	ok := BatchRequest{Prompt: []int{1, 400}}
	long := make([]int, m.NewCache(0).Max()+1)
	for i := range long {
		long[i] = 1
	}
	tests := []struct {
		name string
		tok  Tokenizer
		bad  BatchRequest
		want string
	}{
		{"empty prompt", vocab, BatchRequest{}, "request 2: empty prompt"},
		{"logprobs", vocab, BatchRequest{Prompt: []int{1}, Options: Options{Logprobs: MaxLogprobs + 1}}, "request 2: logprobs 21"},
		{"negative logprobs", vocab, BatchRequest{Prompt: []int{1}, Options: Options{Logprobs: -1}}, "request 2: logprobs -1"},
		{"stop strings", nil, BatchRequest{Prompt: []int{1}, Options: Options{Stop: []string{"x"}}}, "request 2: stop strings need a tokenizer"},
		{"too long", vocab, BatchRequest{Prompt: long}, "request 2: prompt of"},
		{"vocabulary", vocab, BatchRequest{Prompt: []int{1, 99999}}, "request 2: token id 99999"},
	}
	for _, tt := range tests {
		res, err := GenerateBatch(ctx, m, tt.tok, []BatchRequest{ok, ok, tt.bad, ok})
		if err == nil || !strings.Contains(err.Error(), tt.want) || res != nil {
			t.Errorf("%s: %v (%d results), want an error with %q", tt.name, err, len(res), tt.want)
		}
	}
	if _, err := GenerateBatch(ctx, m, vocab, nil); err == nil {
		t.Error("no requests accepted")
	}
}
