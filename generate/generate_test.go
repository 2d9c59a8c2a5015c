package generate

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/masque-ai/masque/tokenizer"
)

// TestGoldenGreedy reproduces llama2.c run.c's greedy generations, with the
// test decoder and with the real tokenizer package.
func TestGoldenGreedy(t *testing.T) {
	m, cases, vocab := stories(t)
	real, err := tokenizer.LoadLlama2C(storiesTok)
	if err != nil {
		t.Fatal(err)
	}
	toks := []struct {
		name string
		tok  Tokenizer
	}{{"testvocab", vocab}, {"tokenizer", FromTokenizer(real)}}
	for _, tc := range cases {
		for _, tk := range toks {
			t.Run(tc.Name+"/"+tk.name, func(t *testing.T) {
				var rec recorder
				o := runC(64)
				o.SkipSpecial = tk.name == "tokenizer"
				res, err := Generate(context.Background(), m, tk.tok, tc.PromptIDs, o, rec.onText)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(res.IDs, tc.GeneratedIDs) {
					t.Fatalf("ids\n got %v\nwant %v", res.IDs, tc.GeneratedIDs)
				}
				if res.FinishReason != FinishLength || res.CompletionTokens != 64 || res.PromptTokens != len(tc.PromptIDs) {
					t.Errorf("finish %q, completion %d, prompt %d", res.FinishReason, res.CompletionTokens, res.PromptTokens)
				}
				if res.Text != tc.GeneratedTextRaw {
					t.Errorf("text\n got %q\nwant %q", res.Text, tc.GeneratedTextRaw)
				}
				if rec.joined() != res.Text {
					t.Errorf("streamed %q, Text %q", rec.joined(), res.Text)
				}
			})
		}
	}
}

// TestGoldenWithCache splits each golden case across a pre-filled cache, a
// first GenerateWithCache call and a continuation, and must give the same ids.
func TestGoldenWithCache(t *testing.T) {
	m, cases, _ := stories(t)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			c := m.NewCache(0)
			split := len(tc.PromptIDs) / 2
			if split > 0 {
				if _, err := m.Forward(c, tc.PromptIDs[:split], false); err != nil {
					t.Fatal(err)
				}
			}
			r1, err := GenerateWithCache(context.Background(), m, c, nil, tc.PromptIDs[split:], runC(20), nil)
			if err != nil {
				t.Fatal(err)
			}
			if r1.CachedTokens != split || !slices.Equal(r1.IDs, tc.GeneratedIDs[:20]) {
				t.Fatalf("first part: cached %d, ids %v", r1.CachedTokens, r1.IDs)
			}
			// The last sampled token is not in the cache yet.
			if c.Len() != len(tc.PromptIDs)+19 {
				t.Fatalf("cache holds %d, want %d", c.Len(), len(tc.PromptIDs)+19)
			}
			r2, err := GenerateWithCache(context.Background(), m, c, nil, r1.IDs[19:], runC(44), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r2.IDs, tc.GeneratedIDs[20:]) {
				t.Fatalf("continuation\n got %v\nwant %v", r2.IDs, tc.GeneratedIDs[20:])
			}
		})
	}
}

func TestSession(t *testing.T) {
	m, _, vocab := stories(t)
	tc := goldenByName(t, "once_upon_a_time")
	s := NewSession(m, 0)
	ctx := context.Background()
	r1, err := s.Generate(ctx, vocab, tc.PromptIDs, runC(20), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r1.IDs, tc.GeneratedIDs[:20]) || r1.CachedTokens != 0 {
		t.Fatalf("turn 1: %v cached %d", r1.IDs, r1.CachedTokens)
	}
	if want := append(slices.Clone(tc.PromptIDs), r1.IDs[:19]...); !slices.Equal(s.Tokens(), want) || s.Cache.Len() != len(want) {
		t.Fatalf("session tokens %v, want %v", s.Tokens(), want)
	}
	// Continue the full sequence: everything but the last token is reused.
	full := append(slices.Clone(tc.PromptIDs), r1.IDs...)
	r2, err := s.Generate(ctx, vocab, full, runC(44), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r2.CachedTokens != len(full)-1 || r2.PromptTokens != 1 || !slices.Equal(r2.IDs, tc.GeneratedIDs[20:]) {
		t.Fatalf("turn 2: cached %d, prompt %d, ids %v", r2.CachedTokens, r2.PromptTokens, r2.IDs)
	}
	// A sequence that diverges after 3 tokens reuses 3 and matches a fresh run.
	other := goldenByName(t, "lily_and_tom")
	div := append(slices.Clone(tc.PromptIDs[:3]), other.PromptIDs[3:]...)
	r3, err := s.Generate(ctx, vocab, div, runC(10), nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Generate(ctx, m, vocab, div, runC(10), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r3.CachedTokens != 3 || !slices.Equal(r3.IDs, fresh.IDs) || r3.Text != fresh.Text {
		t.Fatalf("diverged: cached %d, %v vs fresh %v", r3.CachedTokens, r3.IDs, fresh.IDs)
	}
	// The same sequence again: all but the last token are reused.
	r4, err := s.Generate(ctx, vocab, div, runC(10), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r4.CachedTokens != len(div)-1 || !slices.Equal(r4.IDs, fresh.IDs) {
		t.Fatalf("repeat: cached %d, %v", r4.CachedTokens, r4.IDs)
	}
	s.Reset()
	if s.Cache.Len() != 0 || len(s.Tokens()) != 0 {
		t.Fatal("Reset left state")
	}
}

func TestStopConditions(t *testing.T) {
	m, _, vocab := stories(t)
	tc := goldenByName(t, "once_upon_a_time")
	g := tc.GeneratedIDs
	// A stop token that first appears at position k.
	k := 5
	for slices.Contains(g[:k], g[k]) {
		k++
	}
	small := m.NewCache(len(tc.PromptIDs) + 4)
	tests := []struct {
		name       string
		o          Options
		useCache   bool
		wantIDs    []int
		wantFinish string
		wantCompl  int
	}{
		{"max 1", runC(1), false, g[:1], FinishLength, 1},
		{"max 7", runC(7), false, g[:7], FinishLength, 7},
		{"max 17", runC(17), false, g[:17], FinishLength, 17},
		{"stop token", Options{MaxTokens: 64, IgnoreEOS: true, StopTokens: []int{1, g[k]}}, false, g[:k], FinishStop, k + 1},
		{"stop token first", Options{MaxTokens: 64, StopTokens: []int{g[0]}}, false, nil, FinishStop, 1},
		// The model's EOS (2) never comes in the first 64 greedy tokens here;
		// making the first token an EOS through the config is not possible,
		// so EOS handling is covered by "stop token" plus IgnoreEOS below.
		{"context end", Options{IgnoreEOS: true}, true, g[:5], FinishLength, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res *Result
			var err error
			var rec recorder
			if tt.useCache {
				small.Reset()
				res, err = GenerateWithCache(context.Background(), m, small, vocab, tc.PromptIDs, tt.o, rec.onText)
			} else {
				res, err = Generate(context.Background(), m, vocab, tc.PromptIDs, tt.o, rec.onText)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.IDs, tt.wantIDs) || res.FinishReason != tt.wantFinish || res.CompletionTokens != tt.wantCompl {
				t.Fatalf("got ids %v finish %q completion %d; want %v %q %d", res.IDs, res.FinishReason, res.CompletionTokens, tt.wantIDs, tt.wantFinish, tt.wantCompl)
			}
			if rec.joined() != res.Text {
				t.Fatalf("streamed %q, Text %q", rec.joined(), res.Text)
			}
			if tt.useCache && small.Len() != small.Max() {
				t.Fatalf("cache %d of %d", small.Len(), small.Max())
			}
		})
	}
}

// TestEOS checks that the model's EOS ids stop generation unless IgnoreEOS.
func TestEOS(t *testing.T) {
	m, _, vocab := stories(t)
	tc := goldenByName(t, "once_upon_a_time")
	saved := m.Config.EOS
	defer func() { m.Config.EOS = saved }()
	m.Config.EOS = []int{tc.GeneratedIDs[3]}
	res, err := Generate(context.Background(), m, vocab, tc.PromptIDs, Options{MaxTokens: 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.FinishReason != FinishStop || !slices.Equal(res.IDs, tc.GeneratedIDs[:3]) {
		t.Fatalf("EOS: %q %v", res.FinishReason, res.IDs)
	}
	res, err = Generate(context.Background(), m, vocab, tc.PromptIDs, Options{MaxTokens: 20, IgnoreEOS: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.FinishReason != FinishLength || !slices.Equal(res.IDs, tc.GeneratedIDs[:20]) {
		t.Fatalf("IgnoreEOS: %q %v", res.FinishReason, res.IDs)
	}
}

// pieces decodes each generated id of a golden case on its own.
func goldenPieces(t *testing.T, tc goldenCase) []string {
	_, _, vocab := stories(t)
	st := vocab.NewTextStream(false)
	st.Add(tc.PromptIDs[len(tc.PromptIDs)-1])
	var out []string
	for _, id := range tc.GeneratedIDs {
		out = append(out, st.Add(id))
	}
	return out
}

func TestStopStrings(t *testing.T) {
	m, _, vocab := stories(t)
	tc := goldenByName(t, "once_upon_a_time")
	pieces := goldenPieces(t, tc)
	full := strings.Join(pieces, "")
	// A stop string straddling the boundary between tokens i and i+1, with
	// at least two characters on each side, and unique in the text.
	straddle := ""
	for i := 10; i+1 < len(pieces); i++ {
		a, b := pieces[i], pieces[i+1]
		if len(a) >= 2 && len(b) >= 2 {
			s := a[len(a)-2:] + b[:2]
			if strings.Count(full, s) == 1 {
				straddle = s
				break
			}
		}
	}
	if straddle == "" {
		t.Fatal("no straddling stop string found")
	}
	// A stop string spanning three tokens.
	three := pieces[20][len(pieces[20])-1:] + pieces[21] + pieces[22][:1]
	tests := []struct {
		name     string
		stop     []string
		wantText string
		finish   string
	}{
		{"straddle", []string{straddle}, full[:strings.Index(full, straddle)], FinishStop},
		{"three tokens", []string{three}, full[:strings.Index(full, three)], FinishStop},
		{"first of several", []string{"zzz", "Lily", ", "}, full[:strings.Index(full, ", ")], FinishStop},
		{"earliest wins", []string{"park", "little"}, full[:strings.Index(full, "little")], FinishStop},
		{"never matches", []string{"dragon", ""}, full, FinishLength},
		{"prefix seen but never completed", []string{"Lily!!"}, full, FinishLength},
		{"newline", []string{"\n"}, full[:strings.Index(full, "\n")], FinishStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			o := runC(64)
			o.Stop = tt.stop
			res, err := Generate(context.Background(), m, vocab, tc.PromptIDs, o, rec.onText)
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != tt.wantText || res.FinishReason != tt.finish {
				t.Fatalf("got %q (%s)\nwant %q (%s)", res.Text, res.FinishReason, tt.wantText, tt.finish)
			}
			if rec.joined() != res.Text {
				t.Fatalf("streamed %q, Text %q", rec.joined(), res.Text)
			}
			// Generation stopped on the token that completed the stop string.
			if tt.finish == FinishStop {
				n := 0
				for i, p := range pieces {
					n += len(p)
					if n >= len(tt.wantText)+len(firstStop(full, tt.stop)) {
						if len(res.IDs) != i+1 {
							t.Fatalf("stopped after %d tokens, want %d", len(res.IDs), i+1)
						}
						break
					}
				}
			}
		})
	}
}

// firstStop is the stop string that occurs first in s.
func firstStop(s string, stops []string) string {
	best, at := "", -1
	for _, x := range stops {
		if i := strings.Index(s, x); x != "" && i >= 0 && (at < 0 || i < at) {
			best, at = x, i
		}
	}
	return best
}

// TestStreamUTF8 drives Generate with a scripted decoder that splits
// multi-byte characters across tokens.
func TestStreamUTF8(t *testing.T) {
	m, _, _ := stories(t)
	tc := goldenByName(t, "once_upon_a_time")
	script := []string{"caf", "\xc3", "\xa9 ", "\xf0\x9f", "\x90", "\xb1", " Zo\xc3", "\xab!", " end", "\xe2\x82", "\xac"}
	tests := []struct {
		name string
		stop []string
		want string
	}{
		{"no stop", nil, "café 🐱 Zoë! end€"},
		{"stop after emoji", []string{"🐱 Z"}, "café "},
		{"stop is partial emoji prefix", []string{"\U0001F431!"}, "café 🐱 Zoë! end€"},
		{"stop inside", []string{"ë!"}, "café 🐱 Zo"},
		{"stop euro", []string{"€"}, "café 🐱 Zoë! end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			o := runC(len(script))
			o.Stop = tt.stop
			res, err := Generate(context.Background(), m, scriptTok{script}, tc.PromptIDs, o, rec.onText)
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != tt.want || rec.joined() != res.Text {
				t.Fatalf("text %q streamed %q, want %q", res.Text, rec.joined(), tt.want)
			}
			for _, p := range rec.pieces {
				if !utf8.ValidString(p) || p == "" {
					t.Fatalf("bad piece %q in %q", p, rec.pieces)
				}
			}
		})
	}
}

func TestStopFilter(t *testing.T) {
	tests := []struct {
		name   string
		stops  []string
		pieces []string
		want   []string // released after each piece
		found  int      // index of the piece that completes a stop string, -1 if none
		flush  string
	}{
		{"no stops", nil, []string{"ab", "c"}, []string{"ab", "c"}, -1, ""},
		{"hold then release", []string{"abc"}, []string{"xa", "b", "d"}, []string{"x", "", "abd"}, -1, ""},
		{"hold then stop", []string{"abc"}, []string{"xa", "b", "cz"}, []string{"x", "", ""}, 2, ""},
		{"whole in one", []string{"abc"}, []string{"1abc2"}, []string{"1"}, 0, ""},
		{"held at end flushes", []string{"abc"}, []string{"zab"}, []string{"z"}, -1, "ab"},
		{"longest held suffix", []string{"aab"}, []string{"xa", "a", "a", "b"}, []string{"x", "", "a", ""}, 3, ""},
		{"first completed wins", []string{"cd", "bcde"}, []string{"ab", "cd"}, []string{"a", "b"}, 1, ""},
		{"earliest start wins", []string{"cd", "bc"}, []string{"ab", "cd"}, []string{"a", ""}, 1, ""},
		{"overlapping hold", []string{"ab", "bc"}, []string{"xb", "c"}, []string{"x", ""}, 1, ""},
		{"repeat prefix", []string{"<end>"}, []string{"<", "<e", "nd", "x"}, []string{"", "<", "", "<endx"}, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewStopFilter(tt.stops)
			for i, p := range tt.pieces {
				out, found := f.Add(p)
				if out != tt.want[i] || found != (i == tt.found) {
					t.Fatalf("piece %d %q: got %q %v, want %q %v", i, p, out, found, tt.want[i], i == tt.found)
				}
				if found {
					return
				}
			}
			if got := f.Flush(); got != tt.flush {
				t.Fatalf("flush %q, want %q", got, tt.flush)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	m, _, vocab := stories(t)
	tc := goldenByName(t, "once_upon_a_time")
	t.Run("during generation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		calls := 0
		var rec recorder
		res, err := Generate(ctx, m, vocab, tc.PromptIDs, runC(0), func(s string) error {
			calls++
			if calls == 3 {
				cancel()
			}
			return rec.onText(s)
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.FinishReason != FinishCancelled || len(res.IDs) != 3 || !slices.Equal(res.IDs, tc.GeneratedIDs[:3]) {
			t.Fatalf("finish %q ids %v", res.FinishReason, res.IDs)
		}
		if rec.joined() != res.Text {
			t.Fatalf("streamed %q, Text %q", rec.joined(), res.Text)
		}
	})
	t.Run("before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res, err := Generate(ctx, m, vocab, tc.PromptIDs, runC(0), nil)
		if err != nil || res.FinishReason != FinishCancelled || len(res.IDs) != 0 {
			t.Fatalf("%v %+v", err, res)
		}
	})
	t.Run("onText error", func(t *testing.T) {
		boom := errors.New("client gone")
		n := 0
		res, err := Generate(context.Background(), m, vocab, tc.PromptIDs, runC(0), func(string) error {
			n++
			if n == 2 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || res == nil || res.FinishReason != FinishCancelled || len(res.IDs) != 2 {
			t.Fatalf("err %v res %+v", err, res)
		}
	})
}

func TestLogprobs(t *testing.T) {
	m, _, vocab := stories(t)
	tc := goldenByName(t, "once_upon_a_time")
	o := runC(10)
	o.Logprobs = 5
	res, err := Generate(context.Background(), m, vocab, tc.PromptIDs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logprobs) != len(res.IDs) {
		t.Fatalf("%d logprob entries for %d ids", len(res.Logprobs), len(res.IDs))
	}
	// Reference: the prompt's logits from a direct forward pass.
	c := m.NewCache(0)
	logits, err := m.Forward(c, tc.PromptIDs, false)
	if err != nil {
		t.Fatal(err)
	}
	p := softmax64(logits)
	e := res.Logprobs[0]
	if e.ID != res.IDs[0] || math.Abs(float64(e.Logprob)-math.Log(p[e.ID])) > 1e-5 {
		t.Fatalf("entry 0: %+v, want logprob %g", e, math.Log(p[e.ID]))
	}
	order := make([]int, len(p))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case p[a] > p[b]:
			return -1
		case p[a] < p[b]:
			return 1
		}
		return 0
	})
	for i, alt := range e.Top {
		if alt.ID != order[i] || math.Abs(float64(alt.Logprob)-math.Log(p[alt.ID])) > 1e-5 {
			t.Fatalf("top %d: %+v, want id %d logprob %g", i, alt, order[i], math.Log(p[order[i]]))
		}
	}
	for i, e := range res.Logprobs {
		// Greedy without penalty: the chosen token is the best one.
		if len(e.Top) != 5 || e.Top[0].ID != e.ID || e.Top[0].Logprob != e.Logprob || e.Logprob > 0 {
			t.Fatalf("entry %d: %+v", i, e)
		}
		for j := 1; j < len(e.Top); j++ {
			if e.Top[j].Logprob > e.Top[j-1].Logprob {
				t.Fatalf("entry %d not sorted: %+v", i, e.Top)
			}
		}
	}
	// Raw logits: a repetition penalty changes the choice, not the logprobs.
	hand := NewLogprobEntry([]float32{1, 3, 3, float32(math.NaN()), -1}, 4, 3)
	z := math.Log(math.E + 2*math.Exp(3) + math.Exp(-1))
	want := LogprobEntry{ID: 4, Logprob: float32(-1 - z), Top: []TokenLogprob{{1, float32(3 - z)}, {2, float32(3 - z)}, {0, float32(1 - z)}}}
	if hand.ID != want.ID || hand.Logprob != want.Logprob || !slices.Equal(hand.Top, want.Top) {
		t.Fatalf("hand-made: %+v, want %+v", hand, want)
	}
	for _, bad := range []int{-1, MaxLogprobs + 1} {
		o.Logprobs = bad
		if _, err := Generate(context.Background(), m, vocab, tc.PromptIDs, o, nil); err == nil {
			t.Fatalf("Logprobs %d accepted", bad)
		}
	}
}

func TestErrors(t *testing.T) {
	m, _, vocab := stories(t)
	ctx := context.Background()
	if _, err := Generate(ctx, m, vocab, nil, Options{}, nil); err == nil {
		t.Error("empty prompt accepted")
	}
	if _, err := GenerateWithCache(ctx, m, m.NewCache(0), vocab, nil, Options{}, nil); err == nil {
		t.Error("no new tokens accepted")
	}
	if _, err := Generate(ctx, m, nil, []int{1}, Options{Stop: []string{"x"}}, nil); err == nil {
		t.Error("stop strings without a tokenizer accepted")
	}
	if _, err := GenerateWithCache(ctx, m, m.NewCache(3), vocab, []int{1, 2, 3, 4}, Options{}, nil); err == nil {
		t.Error("prompt longer than the cache accepted")
	}
	if _, err := Generate(ctx, m, vocab, []int{1, 99999}, Options{}, nil); err == nil {
		t.Error("token outside the vocabulary accepted")
	}
}

func TestSeededSampling(t *testing.T) {
	m, _, vocab := stories(t)
	tc := goldenByName(t, "lily_and_tom")
	gen := func(o Options) *Result {
		t.Helper()
		o.MaxTokens, o.IgnoreEOS = 40, true
		res, err := Generate(context.Background(), m, vocab, tc.PromptIDs, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a := gen(Options{Temperature: 0.8, Seed: 42})
	b := gen(Options{Temperature: 0.8, Seed: 42})
	if !slices.Equal(a.IDs, b.IDs) || a.Text != b.Text {
		t.Fatalf("same seed, different output:\n%v\n%v", a.IDs, b.IDs)
	}
	if c := gen(Options{Temperature: 0.8, Seed: 43}); slices.Equal(a.IDs, c.IDs) {
		t.Fatalf("seeds 42 and 43 gave the same 40 tokens: %v", a.IDs)
	}
	if slices.Equal(a.IDs, tc.GeneratedIDs[:40]) {
		t.Fatal("temperature 0.8 reproduced greedy output")
	}
	greedy := tc.GeneratedIDs[:40]
	for _, o := range []Options{
		{Temperature: 0.8, TopK: 1, Seed: 1},
		{Temperature: 1.5, TopK: 1, Seed: 2},
		{Temperature: 0.8, TopP: 1e-6, Seed: 3},
		{Temperature: 2, TopP: 1e-6, Seed: 4},
		{Temperature: 0.8, MinP: 1, Seed: 5},
	} {
		if got := gen(o); !slices.Equal(got.IDs, greedy) {
			t.Errorf("%+v: got %v, want greedy %v", o, got.IDs, greedy)
		}
	}
}

// TestTokenizerFunc checks that SkipSpecial reaches the stream and that the
// stream is primed with the last prompt token.
func TestTokenizerFunc(t *testing.T) {
	m, _, vocab := stories(t)
	tc := goldenByName(t, "once_upon_a_time")
	for _, skip := range []bool{false, true} {
		var gotSkip bool
		var first int = -1
		tok := TokenizerFunc(func(s bool) TextStream {
			gotSkip = s
			st := vocab.NewTextStream(s)
			return &spyStream{TextStream: st, first: &first}
		})
		if _, err := Generate(context.Background(), m, tok, tc.PromptIDs, Options{MaxTokens: 2, SkipSpecial: skip}, nil); err != nil {
			t.Fatal(err)
		}
		if gotSkip != skip || first != tc.PromptIDs[len(tc.PromptIDs)-1] {
			t.Fatalf("skip %v: stream got skip %v, first id %d", skip, gotSkip, first)
		}
	}
}

type spyStream struct {
	TextStream
	first *int
}

func (s *spyStream) Add(id int) string {
	if *s.first < 0 {
		*s.first = id
	}
	return s.TextStream.Add(id)
}
