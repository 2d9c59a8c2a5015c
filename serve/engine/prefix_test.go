package engine

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
)

// story is a prompt long enough that reusing it matters.
const story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her red ball."

// run submits a request and reads it to its end.
func run(t testing.TB, e *Engine, r Request) (string, []generate.LogprobEntry, *Result) {
	t.Helper()
	s, err := e.Submit(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	text, lps, res := collect(t, s)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return text, lps, res
}

// want is generate's greedy answer to ids on a cache of the base's length.
func want(t testing.TB, base *Base, ids []int, o generate.Options) *generate.Result {
	t.Helper()
	res, err := generate.GenerateWithCache(context.Background(), base.Model, base.Model.NewCache(base.Ctx), base.Tokenizer, ids, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestPrefixReuseSameOutput: a request that starts from a stored prefix
// samples the same tokens with the same log-probabilities as without reuse
// and as generate does, with chunked prompts and a sliding window too.
func TestPrefixReuseSameOutput(t *testing.T) {
	tests := []struct {
		name        string
		batchTokens int
		window      int
		concurrent  bool
		cache       string // KV cache type ("": f32)
	}{
		{"whole prompts", 0, 0, false, ""},
		{"chunked prompts", 5, 0, false, ""},
		{"sliding window", 0, 6, false, ""},
		{"concurrent", 0, 0, true, ""},
		{"f16 cache", 0, 0, false, "f16"},
		{"q8_0 cache, chunked prompts", 5, 0, false, "q8_0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ck, base := stories(t)
			ck.Model.Config.SlidingWindow = tc.window
			ct, err := model.ParseCacheType(tc.cache, tc.cache)
			if err != nil {
				t.Fatal(err)
			}
			if err := ck.Model.SetCacheType(ct); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ck.Model.Config.SlidingWindow = 0; _ = ck.Model.SetCacheType(model.CacheType{}) })
			cold := newEngine(t, Config{BatchTokens: tc.batchTokens, MaxQueue: 16})
			warm := newEngine(t, Config{BatchTokens: tc.batchTokens, MaxQueue: 16, PrefixBytes: 64 << 20})
			full := ck.Tokenizer.Encode(story, true)
			// The whole story, a shorter prefix of it, a prompt that turns
			// away halfway, and the story continued.
			variants := [][]int{full, full[:9], append(slices.Clone(full[:14]), ck.Tokenizer.Encode(" The dog barked", false)...), append(slices.Clone(full), ck.Tokenizer.Encode(" One day", false)...)}
			o := generate.Options{MaxTokens: 12, IgnoreEOS: true}
			req := func(ids []int) Request {
				return Request{Base: base, Prompt: ids, Options: o, Logprobs: true, TopLogprobs: 5, PrefixKey: "p"}
			}
			// Seed the store, then ask again.
			run(t, warm, req(full))
			type out struct {
				lps []generate.LogprobEntry
				res *Result
			}
			got := make([]out, len(variants))
			do := func(i int) {
				_, lps, res := run(t, warm, req(variants[i]))
				got[i] = out{lps, res}
			}
			if tc.concurrent {
				var wg sync.WaitGroup
				for i := range variants {
					wg.Add(1)
					go func() { defer wg.Done(); do(i) }()
				}
				wg.Wait()
			} else {
				for i := range variants {
					do(i)
				}
			}
			for i, ids := range variants {
				_, coldLps, coldRes := run(t, cold, req(ids))
				g := got[i]
				if coldRes.CachedTokens != 0 || g.res.CachedTokens == 0 {
					t.Errorf("variant %d: %d cached tokens without the store, %d with", i, coldRes.CachedTokens, g.res.CachedTokens)
				}
				ref := want(t, base, ids, generate.Options{MaxTokens: o.MaxTokens, IgnoreEOS: true, Logprobs: 5})
				if !slices.Equal(g.res.IDs, coldRes.IDs) || !slices.Equal(g.res.IDs, ref.IDs) {
					t.Errorf("variant %d: ids with reuse %v, without %v, generate %v", i, g.res.IDs, coldRes.IDs, ref.IDs)
					continue
				}
				for j := range g.lps {
					a, b := g.lps[j], coldLps[j]
					if d := math.Abs(float64(a.Logprob - b.Logprob)); d > 1e-5*max(1, math.Abs(float64(b.Logprob))) {
						t.Errorf("variant %d token %d: logprob %g with reuse, %g without", i, j, a.Logprob, b.Logprob)
					}
					for k := range a.Top {
						if a.Top[k].ID != b.Top[k].ID || math.Abs(float64(a.Top[k].Logprob-b.Top[k].Logprob)) > 1e-5*max(1, math.Abs(float64(b.Top[k].Logprob))) {
							t.Errorf("variant %d token %d: alternative %d %+v with reuse, %+v without", i, j, k, a.Top[k], b.Top[k])
						}
					}
				}
			}
		})
	}
}

// TestPrefixReuseCounts: each request reuses exactly the longest prefix it
// shares with a stored prompt of its own base and key, leaving one token
// to run.
func TestPrefixReuseCounts(t *testing.T) {
	ck, base := stories(t)
	other := &Base{Name: "other", Model: base.Model, Tokenizer: base.Tokenizer, Ctx: base.Ctx}
	e := newEngine(t, Config{MaxQueue: 4, PrefixBytes: 64 << 20})
	p := ck.Tokenizer.Encode(story, true)
	const k = 11
	diverge := append(slices.Clone(p[:k]), ck.Tokenizer.Encode(" The big dog ran to the tree", false)...)
	if diverge[k] == p[k] {
		t.Fatal("the diverging prompt does not diverge")
	}
	longer := append(slices.Clone(p), ck.Tokenizer.Encode(" Then it rained", false)...)
	tests := []struct {
		name        string
		base        *Base
		key         string
		prompt      []int
		cached      int
		wantEntries int
	}{
		{"first", base, "a", p, 0, 1},
		{"again", base, "a", p, len(p) - 1, 1},
		{"another key", base, "b", p, 0, 2},
		{"another base", other, "a", p, 0, 3},
		{"no key", base, "", p, 0, 3},
		{"first k tokens shared", base, "a", diverge, k, 4},
		{"continued", base, "a", longer, len(p), 4}, // replaces p's entry
		{"p after the replacement", base, "a", p, len(p) - 1, 4},
		{"a prefix of p", base, "a", p[:6], 5, 4},
		{"one token", base, "a", p[:1], 0, 4},
		{"the diverging one again", base, "a", diverge, len(diverge) - 1, 4},
	}
	hits, tokens := 0, 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := generate.Options{MaxTokens: 6}
			_, _, res := run(t, e, Request{Base: tc.base, Prompt: tc.prompt, Options: o, PrefixKey: tc.key})
			if res.CachedTokens != tc.cached {
				t.Errorf("%d cached tokens, want %d", res.CachedTokens, tc.cached)
			}
			if w := want(t, base, tc.prompt, o); !slices.Equal(res.IDs, w.IDs) {
				t.Errorf("ids %v, generate %v", res.IDs, w.IDs)
			}
			if tc.cached > 0 {
				hits++
				tokens += tc.cached
			}
			st := e.Stats()
			if st.PrefixEntries != tc.wantEntries || st.PrefixHits != int64(hits) || st.PrefixTokens != int64(tokens) {
				t.Errorf("stats: %d entries, %d hits, %d tokens; want %d, %d, %d", st.PrefixEntries, st.PrefixHits, st.PrefixTokens, tc.wantEntries, hits, tokens)
			}
			if st.PrefixBytes <= 0 || st.PrefixBytes > st.PrefixBudget {
				t.Errorf("store of %d bytes, budget %d", st.PrefixBytes, st.PrefixBudget)
			}
		})
	}
	// Forgetting a key, then a base, drops their entries.
	e.ForgetPrefix(base, "b")
	waitFor(t, func() bool { return e.Stats().PrefixEntries == 3 })
	e.ForgetBase(other)
	waitFor(t, func() bool { return e.Stats().PrefixEntries == 2 })
	if _, _, res := run(t, e, Request{Base: base, Prompt: p, Options: generate.Options{MaxTokens: 2}, PrefixKey: "b"}); res.CachedTokens != 0 {
		t.Errorf("a forgotten key still reused %d tokens", res.CachedTokens)
	}
	e.ForgetBase(base)
	waitFor(t, func() bool { st := e.Stats(); return st.PrefixEntries == 0 && st.PrefixBytes == 0 })
	// A forgotten base's prompts are not stored any more.
	run(t, e, Request{Base: base, Prompt: p, Options: generate.Options{MaxTokens: 2}, PrefixKey: "a"})
	if st := e.Stats(); st.PrefixEntries != 0 {
		t.Errorf("%d entries after forgetting the base", st.PrefixEntries)
	}
}

// TestPrefixLRU: the store stays within its budget by evicting the least
// recently used prompt, and keeps none larger than the whole budget.
func TestPrefixLRU(t *testing.T) {
	ck, base := stories(t)
	c := &base.Model.Config
	perToken := int64(2*c.Layers*c.KVDim()*4 + 8)
	words := []string{"Lily", "Tom", "The cat", "A big dog", "Sue"}
	var prompts [][]int
	maxLen := 0
	for _, w := range words {
		ids := ck.Tokenizer.Encode(w+" went to the park to play with a ball and a kite", false)
		prompts = append(prompts, ids)
		maxLen = max(maxLen, len(ids))
	}
	for i := range prompts {
		for j := range i {
			if prompts[i][0] == prompts[j][0] {
				t.Fatalf("prompts %d and %d start alike", i, j)
			}
		}
	}
	// Room for two prompts, not three.
	budget := perToken * int64(2*maxLen+maxLen/2)
	e := newEngine(t, Config{MaxQueue: 4, PrefixBytes: budget})
	steps := []struct {
		prompt  int
		reused  bool
		entries int
	}{
		{0, false, 1},
		{1, false, 2},
		{0, true, 2},  // 0 is now the most recently used
		{2, false, 2}, // evicts 1
		{1, false, 2}, // evicts 0
		{2, true, 2},
		{0, false, 2}, // evicts 1
		{1, false, 2}, // evicts 2
		{0, true, 2},
	}
	for i, st := range steps {
		p := prompts[st.prompt]
		_, _, res := run(t, e, Request{Base: base, Prompt: p, Options: generate.Options{MaxTokens: 2}, PrefixKey: "k"})
		if got := res.CachedTokens > 0; got != st.reused {
			t.Errorf("step %d (prompt %d): %d cached tokens, want reuse %v", i, st.prompt, res.CachedTokens, st.reused)
		}
		if st.reused && res.CachedTokens != len(p)-1 {
			t.Errorf("step %d: %d cached tokens, want %d", i, res.CachedTokens, len(p)-1)
		}
		s := e.Stats()
		if s.PrefixBytes > budget || s.PrefixEntries != st.entries {
			t.Errorf("step %d: %d entries of %d bytes (budget %d), want %d entries", i, s.PrefixEntries, s.PrefixBytes, budget, st.entries)
		}
	}
	// A prompt larger than the budget is not stored and evicts nothing.
	huge := make([]int, int(budget/perToken)+1)
	for i := range huge {
		huge[i] = 1 + i%100
	}
	before := e.Stats()
	run(t, e, Request{Base: base, Prompt: huge, Options: generate.Options{MaxTokens: 1}, PrefixKey: "k"})
	if after := e.Stats(); after.PrefixEntries != before.PrefixEntries || after.PrefixBytes != before.PrefixBytes {
		t.Errorf("a prompt over the budget changed the store: %+v → %+v", before, after)
	}
	// Disabled: nothing is stored.
	off := newEngine(t, Config{MaxQueue: 4})
	for range 2 {
		if _, _, res := run(t, off, Request{Base: base, Prompt: prompts[0], Options: generate.Options{MaxTokens: 2}, PrefixKey: "k"}); res.CachedTokens != 0 {
			t.Errorf("a disabled store reused %d tokens", res.CachedTokens)
		}
	}
	if s := off.Stats(); s.PrefixBytes != 0 || s.PrefixEntries != 0 {
		t.Errorf("a disabled store holds %+v", s)
	}
	if _, err := New(Config{MaxSeqs: 1, KVBytes: 1, BatchTokens: 1, PrefixBytes: -1}); err == nil {
		t.Error("a negative prefix budget was accepted")
	}
}

// TestCacheTypeMemory: with a Q8_0 cache the engine reserves Ctx positions
// of Q8_0 per sequence (on stories260K, whose head dimension of 8 is padded
// to a block of 32, a little more than F32's) and the prefix store keeps a
// prompt in Q8_0 too.
func TestCacheTypeMemory(t *testing.T) {
	ck, base := stories(t)
	ct := model.CacheType{K: quant.Q8_0, V: quant.Q8_0}
	if err := ck.Model.SetCacheType(ct); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ck.Model.SetCacheType(model.CacheType{}) })
	cfg := &ck.Model.Config
	pos := ct.PositionBytes(cfg)
	if want := int64(cfg.Layers*cfg.KVHeads) * 2 * 34; pos != want {
		t.Fatalf("Q8_0 position bytes %d, want %d", pos, want)
	}
	if base.SlotBytes() != int64(base.Ctx)*pos {
		t.Errorf("slot of %d bytes, want %d", base.SlotBytes(), int64(base.Ctx)*pos)
	}
	e := newEngine(t, Config{MaxQueue: 4, KVBytes: 2 * base.SlotBytes(), PrefixBytes: 1 << 20})
	p := ck.Tokenizer.Encode(story, true)
	run(t, e, Request{Base: base, Prompt: p, Options: generate.Options{MaxTokens: 4, IgnoreEOS: true}, PrefixKey: "k"})
	st := e.Stats()
	if st.KVReserved != base.SlotBytes() {
		t.Errorf("KV reserved %d, want one slot of %d", st.KVReserved, base.SlotBytes())
	}
	if want := int64(len(p)) * (pos + 8); st.PrefixBytes != want || st.PrefixEntries != 1 {
		t.Errorf("prefix store holds %d bytes in %d entries, want %d in 1", st.PrefixBytes, st.PrefixEntries, want)
	}
}

// TestIdleSessionsCompacted: with IdleAfter, the stored prompts of two idle
// sessions of one persona shrink to the prefix they share (the persona's
// system prompt), one entry holding it; a session's next turn then resumes
// from that prefix and samples exactly what it samples on an engine that
// kept its whole history, and what generate samples.
func TestIdleSessionsCompacted(t *testing.T) {
	ck, base := stories(t)
	sys := ck.Tokenizer.Encode(story, true)
	turn1 := [][]int{
		append(slices.Clone(sys), ck.Tokenizer.Encode(" The cat sat on the mat.", false)...),
		append(slices.Clone(sys), ck.Tokenizer.Encode(" A big dog ran home.", false)...),
	}
	stem := commonPrefix(turn1[0], turn1[1]) // the system prompt, give or take a token
	if stem < len(sys)-1 || stem >= min(len(turn1[0]), len(turn1[1]))-1 {
		t.Fatalf("the sessions share %d tokens, the system prompt has %d", stem, len(sys))
	}
	o := generate.Options{MaxTokens: 8, IgnoreEOS: true}
	kept := newEngine(t, Config{MaxQueue: 4, PrefixBytes: 64 << 20})
	idle := newEngine(t, Config{MaxQueue: 4, PrefixBytes: 64 << 20, IdleAfter: time.Hour})
	var skew atomic.Int64 // the idle engine's clock runs ahead by this
	idle.prefix.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	var turn2 [][]int
	for _, p := range turn1 {
		req := Request{Base: base, Prompt: p, Options: o, PrefixKey: "persona"}
		_, _, a := run(t, kept, req)
		_, _, b := run(t, idle, req)
		if !slices.Equal(a.IDs, b.IDs) {
			t.Fatalf("first turn: %v and %v", a.IDs, b.IDs)
		}
		next := append(slices.Clone(p), a.IDs...)
		turn2 = append(turn2, append(next, ck.Tokenizer.Encode(" Then", false)...))
	}
	skew.Store(int64(2 * time.Hour)) // both sessions go idle
	waitFor(t, func() bool { return idle.Stats().PrefixIdleCompacted >= 2 })
	pos := base.Model.CacheType().PositionBytes(&base.Model.Config)
	if st := idle.Stats(); st.PrefixEntries != 1 || st.PrefixBytes != int64(stem)*(pos+8) {
		t.Errorf("after the sessions went idle: %d entries of %d bytes, want 1 of %d (the shared prefix)", st.PrefixEntries, st.PrefixBytes, int64(stem)*(pos+8))
	}
	for i, p := range turn2 {
		req := Request{Base: base, Prompt: p, Options: o, PrefixKey: "persona"}
		_, _, a := run(t, kept, req)
		_, _, b := run(t, idle, req)
		ref := want(t, base, p, o)
		if !slices.Equal(a.IDs, b.IDs) || !slices.Equal(b.IDs, ref.IDs) {
			t.Errorf("session %d, second turn: %v kept, %v resumed, generate %v", i, a.IDs, b.IDs, ref.IDs)
		}
		if a.CachedTokens != len(turn1[i]) || b.CachedTokens != stem {
			t.Errorf("session %d, second turn: %d tokens reused kept, %d resumed; want %d and %d", i, a.CachedTokens, b.CachedTokens, len(turn1[i]), stem)
		}
	}
}

func TestIdleAfterNegative(t *testing.T) {
	if _, err := New(Config{MaxSeqs: 1, KVBytes: 1, BatchTokens: 1, PrefixBytes: 1, IdleAfter: -time.Second}); err == nil {
		t.Error("a negative IdleAfter was accepted")
	}
}
