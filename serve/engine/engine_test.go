package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
)

func stories(t testing.TB) (*checkpoint.Checkpoint, *Base) {
	t.Helper()
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ck, &Base{Name: "stories", Model: ck.Model, Tokenizer: generate.FromTokenizer(ck.Tokenizer), Ctx: 256}
}

// slow makes every step take at least 1ms, so that long requests are
// still running when a test looks.
func slow(cfg Config) Config {
	cfg.OnStep = func(string, int, int, time.Duration) { time.Sleep(time.Millisecond) }
	return cfg
}

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.MaxSeqs == 0 {
		cfg.MaxSeqs = 8
	}
	if cfg.KVBytes == 0 {
		cfg.KVBytes = 1 << 30
	}
	if cfg.BatchTokens == 0 {
		cfg.BatchTokens = 256
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// collect reads a stream to its end.
func collect(t testing.TB, s *Stream) (string, []generate.LogprobEntry, *Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var text strings.Builder
	var lps []generate.LogprobEntry
	for {
		c, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		text.WriteString(c.Text)
		lps = append(lps, c.Logprobs...)
		if c.Result != nil {
			return text.String(), lps, c.Result
		}
	}
}

var prompts = []string{"Once upon a time", "Lily had a red ball", "The cat sat", "One day, a big dog", "Tom and Sue went to the park"}

func TestGreedyEqualsGenerate(t *testing.T) {
	ck, base := stories(t)
	cases := []struct {
		name        string
		opts        generate.Options
		logprobs    bool
		top         int
		concurrent  bool
		batchTokens int
	}{
		{"greedy", generate.Options{MaxTokens: 40}, false, 0, false, 0},
		{"greedy concurrent", generate.Options{MaxTokens: 40}, false, 0, true, 0},
		{"chunked prefill", generate.Options{MaxTokens: 20}, false, 0, true, 3},
		{"stop strings", generate.Options{MaxTokens: 60, Stop: []string{".", "ball"}}, false, 0, true, 0},
		{"sampled with seed", generate.Options{MaxTokens: 30, Temperature: 0.9, TopP: 0.9, Seed: 42}, false, 0, false, 0},
		{"logprobs", generate.Options{MaxTokens: 10}, true, 5, true, 0},
		{"to the end of the context", generate.Options{}, false, 0, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Config{BatchTokens: tc.batchTokens, MaxQueue: 16})
			type out struct {
				text string
				lps  []generate.LogprobEntry
				res  *Result
			}
			got := make([]out, len(prompts))
			run := func(i int) {
				ids := ck.Tokenizer.Encode(prompts[i], true)
				s, err := e.Submit(context.Background(), Request{Base: base, Prompt: ids, Options: tc.opts, Logprobs: tc.logprobs, TopLogprobs: tc.top})
				if err != nil {
					t.Error(err)
					return
				}
				text, lps, res := collect(t, s)
				got[i] = out{text, lps, res}
			}
			if tc.concurrent {
				var wg sync.WaitGroup
				for i := range prompts {
					wg.Add(1)
					go func() { defer wg.Done(); run(i) }()
				}
				wg.Wait()
			} else {
				for i := range prompts {
					run(i)
				}
			}
			for i, p := range prompts {
				ids := ck.Tokenizer.Encode(p, true)
				o := tc.opts
				if tc.logprobs {
					o.Logprobs = tc.top
				}
				// Generate over a cache of the same length as the engine's.
				c := base.Model.NewCache(base.Ctx)
				want, err := generate.GenerateWithCache(context.Background(), base.Model, c, base.Tokenizer, ids, o, nil)
				if err != nil {
					t.Fatal(err)
				}
				g := got[i]
				if g.res == nil {
					t.Fatalf("prompt %d: no result", i)
				}
				if g.res.Err != nil {
					t.Fatalf("prompt %d: %v", i, g.res.Err)
				}
				if !slices.Equal(g.res.IDs, want.IDs) || g.text != want.Text || g.res.FinishReason != want.FinishReason {
					t.Errorf("prompt %q:\n got %v %q (%s)\nwant %v %q (%s)", p, g.res.IDs, g.text, g.res.FinishReason, want.IDs, want.Text, want.FinishReason)
				}
				if g.res.CompletionTokens != want.CompletionTokens || g.res.PromptTokens != want.PromptTokens {
					t.Errorf("prompt %d: usage %d+%d, want %d+%d", i, g.res.PromptTokens, g.res.CompletionTokens, want.PromptTokens, want.CompletionTokens)
				}
				if tc.logprobs {
					if len(g.lps) != len(want.Logprobs) {
						t.Fatalf("prompt %d: %d logprob entries, want %d", i, len(g.lps), len(want.Logprobs))
					}
					for j := range g.lps {
						a, b := g.lps[j], want.Logprobs[j]
						if a.ID != b.ID || len(a.Top) != len(b.Top) || abs(a.Logprob-b.Logprob) > 1e-4 {
							t.Errorf("prompt %d token %d: logprob %+v, want %+v", i, j, a, b)
						}
					}
				}
			}
		})
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func TestAdmissionBounds(t *testing.T) {
	ck, base := stories(t)
	ids := ck.Tokenizer.Encode("Once upon a time", true)
	long := generate.Options{MaxTokens: 1 << 20, IgnoreEOS: true}
	tests := []struct {
		name      string
		cfg       Config
		wantSlots int
	}{
		{"slots", Config{MaxSeqs: 2, MaxQueue: 1}, 2},
		{"kv budget", Config{MaxSeqs: 8, MaxQueue: 1, KVBytes: 3 * base.SlotBytes()}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, slow(tc.cfg))
			if got := e.Slots(base); got != tc.wantSlots {
				t.Fatalf("slots %d, want %d", got, tc.wantSlots)
			}
			var streams []*Stream
			for i := 0; i < tc.wantSlots+tc.cfg.MaxQueue; i++ {
				s, err := e.Submit(context.Background(), Request{Base: base, Prompt: ids, Options: long})
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				streams = append(streams, s)
			}
			waitFor(t, func() bool { st := e.Stats(); return st.Active == tc.wantSlots && st.Queued == tc.cfg.MaxQueue })
			if _, err := e.Submit(context.Background(), Request{Base: base, Prompt: ids, Options: long}); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("submit past the queue: %v, want ErrQueueFull", err)
			}
			if st := e.Stats(); st.KVReserved > st.KVBudget || st.KVReserved != int64(tc.wantSlots)*base.SlotBytes() {
				t.Errorf("KV reserved %d, budget %d", st.KVReserved, st.KVBudget)
			}
			// Cancelling a running one lets the queued one in.
			streams[0].Cancel()
			_, _, res := collect(t, streams[0])
			if res.FinishReason != generate.FinishCancelled {
				t.Errorf("cancelled request finished with %q", res.FinishReason)
			}
			waitFor(t, func() bool { st := e.Stats(); return st.Active == tc.wantSlots && st.Queued == 0 })
			// Cancelling a queued one is immediate too.
			q, err := e.Submit(context.Background(), Request{Base: base, Prompt: ids, Options: long})
			if err != nil {
				t.Fatal(err)
			}
			q.Cancel()
			if _, _, res := collect(t, q); res.FinishReason != generate.FinishCancelled {
				t.Errorf("queued cancel: %q", res.FinishReason)
			}
			for _, s := range streams[1:] {
				s.Cancel()
			}
			waitFor(t, func() bool { st := e.Stats(); return st.Active == 0 && st.Queued == 0 })
			// The caches went back to the pool: nothing new is reserved.
			if st := e.Stats(); st.KVReserved != int64(tc.wantSlots)*base.SlotBytes() {
				t.Errorf("after the requests: KV reserved %d", st.KVReserved)
			}
		})
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestContextEndings(t *testing.T) {
	ck, base := stories(t)
	ids := ck.Tokenizer.Encode("Once upon a time", true)
	long := generate.Options{MaxTokens: 1 << 20, IgnoreEOS: true}
	e := newEngine(t, slow(Config{MaxSeqs: 1, MaxQueue: 4}))

	// A deadline while running and while queued: ErrTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	running, err := e.Submit(ctx, Request{Base: base, Prompt: ids, Options: long})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := e.Submit(ctx, Request{Base: base, Prompt: ids, Options: long})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Stream{running, queued} {
		_, _, res := collect(t, s)
		if !errors.Is(res.Err, ErrTimeout) || res.FinishReason != generate.FinishCancelled {
			t.Errorf("deadline: %q, %v", res.FinishReason, res.Err)
		}
	}
	// A plain cancellation of the context: no error.
	ctx2, cancel2 := context.WithCancel(context.Background())
	s, err := e.Submit(ctx2, Request{Base: base, Prompt: ids, Options: long})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Recv(context.Background()); err != nil || c.Tokens == 0 {
		t.Fatalf("first chunk: %+v, %v", c, err)
	}
	cancel2()
	_, _, res := collect(t, s)
	if res.Err != nil || res.FinishReason != generate.FinishCancelled {
		t.Errorf("cancel: %q, %v", res.FinishReason, res.Err)
	}
	waitFor(t, func() bool { return e.Stats().Active == 0 })
	// Recv's own context ending cancels the request.
	s, _ = e.Submit(context.Background(), Request{Base: base, Prompt: ids, Options: long})
	rctx, rcancel := context.WithCancel(context.Background())
	rcancel()
	if _, err := s.Recv(rctx); !errors.Is(err, context.Canceled) {
		t.Errorf("recv with a dead context: %v", err)
	}
	waitFor(t, func() bool { return e.Stats().Active == 0 })
}

func TestSubmitErrors(t *testing.T) {
	ck, base := stories(t)
	e := newEngine(t, Config{MaxQueue: 1})
	ok := ck.Tokenizer.Encode("Hi", true)
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"no base", Request{Prompt: ok}, "base"},
		{"empty prompt", Request{Base: base}, "empty prompt"},
		{"too long", Request{Base: base, Prompt: make([]int, base.Ctx)}, "no room"},
		{"bad id", Request{Base: base, Prompt: []int{1, 1 << 20}}, "vocabulary"},
		{"top logprobs", Request{Base: base, Prompt: ok, TopLogprobs: 21}, "logprobs"},
		{"stop without tokenizer", Request{Base: &Base{Model: base.Model, Ctx: 16}, Prompt: ok, Options: generate.Options{Stop: []string{"x"}}}, "tokenizer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Submit(context.Background(), tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Error("a zero config was accepted")
	}
	if err := e.CheckBase(&Base{Name: "big", Model: base.Model, Ctx: 1 << 30}); err == nil {
		t.Error("a base whose one cache exceeds the budget was accepted")
	}
}

func TestCloseFailsPending(t *testing.T) {
	ck, base := stories(t)
	ids := ck.Tokenizer.Encode("Once", true)
	e, err := New(slow(Config{MaxSeqs: 1, MaxQueue: 2, KVBytes: 1 << 30, BatchTokens: 64}))
	if err != nil {
		t.Fatal(err)
	}
	var ss []*Stream
	for i := 0; i < 3; i++ {
		s, err := e.Submit(context.Background(), Request{Base: base, Prompt: ids, Options: generate.Options{IgnoreEOS: true}})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	e.Close()
	for i, s := range ss {
		_, _, res := collect(t, s)
		if !errors.Is(res.Err, ErrClosed) && res.FinishReason != generate.FinishLength {
			t.Errorf("stream %d after Close: %q, %v", i, res.FinishReason, res.Err)
		}
	}
	if _, err := e.Submit(context.Background(), Request{Base: base, Prompt: ids}); !errors.Is(err, ErrClosed) {
		t.Errorf("submit after Close: %v", err)
	}
}

func TestStopFilter(t *testing.T) {
	for _, tc := range []struct {
		stops  []string
		pieces []string
		want   string
		found  bool
	}{
		{nil, []string{"a", "b"}, "ab", false},
		{[]string{"END"}, []string{"hello E", "N", "D more"}, "hello ", true},
		{[]string{"END"}, []string{"hello E", "N", "d"}, "hello ENd", false},
		{[]string{"xy", "b"}, []string{"ax", "b"}, "ax", true},
		{[]string{"abc", "bc"}, []string{"xab", "c"}, "x", true},
		{[]string{"bcd", "c"}, []string{"xab", "c"}, "xab", true},
	} {
		f := generate.NewStopFilter(tc.stops)
		var out strings.Builder
		found := false
		for _, p := range tc.pieces {
			o, fd := f.Add(p)
			out.WriteString(o)
			if fd {
				found = true
				break
			}
		}
		if !found {
			out.WriteString(f.Flush())
		}
		if out.String() != tc.want || found != tc.found {
			t.Errorf("%v %q: %q %v, want %q %v", tc.stops, tc.pieces, out.String(), found, tc.want, tc.found)
		}
	}
}

func BenchmarkEngineDecode(b *testing.B) {
	ck, base := stories(b)
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("seqs=%d", n), func(b *testing.B) {
			e := newEngine(b, Config{MaxSeqs: n, MaxQueue: n})
			ids := ck.Tokenizer.Encode("Once upon a time", true)
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := e.Submit(context.Background(), Request{Base: base, Prompt: ids, Options: generate.Options{MaxTokens: b.N, IgnoreEOS: true}})
					if err != nil {
						b.Error(err)
						return
					}
					collect(b, s)
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// TestSubmitN: n choices of one prompt run the prompt once (the others copy
// its cache and run only its last token), and choice i equals a single
// generation with seed Seed+i. With one slot, later choices run alone.
func TestSubmitN(t *testing.T) {
	ck, base := stories(t)
	ids := ck.Tokenizer.Encode("Tom and Sue went to the park with a big red ball", true)
	o := generate.Options{MaxTokens: 24, Temperature: 0.9, Seed: 42}
	want := make([]*generate.Result, 3)
	for i := range want {
		oi := o
		oi.Seed += uint64(i)
		r, err := generate.GenerateWithCache(context.Background(), base.Model, base.Model.NewCache(base.Ctx), base.Tokenizer, ids, oi, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = r
	}
	if slices.Equal(want[0].IDs, want[1].IDs) && slices.Equal(want[1].IDs, want[2].IDs) {
		t.Fatal("the three seeds give the same text: the test cannot tell choices apart")
	}
	for _, slots := range []int{8, 1} {
		t.Run(fmt.Sprintf("%d slots", slots), func(t *testing.T) {
			e := newEngine(t, Config{MaxSeqs: slots, MaxQueue: 4})
			st, err := e.SubmitN(context.Background(), Request{Base: base, Prompt: ids, Options: o}, 3)
			if err != nil {
				t.Fatal(err)
			}
			fed := int64(len(ids))
			for i, s := range st {
				text, _, res := collect(t, s)
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				if !slices.Equal(res.IDs, want[i].IDs) || text != want[i].Text {
					t.Errorf("choice %d: %q, want %q", i, text, want[i].Text)
				}
				fed += int64(res.CompletionTokens - 1)
				wantCached := 0
				if i > 0 && slots > 1 {
					wantCached = len(ids) - 1
					fed++ // its last prompt token
				} else if i > 0 {
					fed += int64(len(ids))
				}
				if res.CachedTokens != wantCached {
					t.Errorf("choice %d: %d cached tokens, want %d", i, res.CachedTokens, wantCached)
				}
			}
			if got := e.Stats().Tokens; got != fed {
				t.Errorf("the engine ran %d tokens, want %d", got, fed)
			}
		})
	}
	e := newEngine(t, Config{MaxSeqs: 1, MaxQueue: 1})
	if _, err := e.SubmitN(context.Background(), Request{Base: base, Prompt: ids, Options: o}, 3); !errors.Is(err, ErrQueueFull) {
		t.Errorf("3 choices for 1 slot and a queue of 1: %v, want ErrQueueFull", err)
	}
}
