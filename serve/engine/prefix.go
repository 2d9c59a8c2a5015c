package engine

import (
	"container/list"
	"slices"
	"time"

	"github.com/masque-ai/masque/model"
)

// prefixGroup is what decides whether stored keys and values can seed a
// request: the same base and the same non-empty Request.PrefixKey.
type prefixGroup struct {
	base *Base
	key  string
}

// prefixEntry is one stored prompt: its tokens and a cache holding exactly
// their positions.
type prefixEntry struct {
	group  prefixGroup
	tokens []int
	cache  *model.Cache
	bytes  int64
	elem   *list.Element // in prefixStore.lru
	used   time.Time     // stored or last reused
	stem   bool          // what compactIdle left of idle entries: not compacted again
	shared int           // the most leading tokens it shared with an entry of its group when stored
}

// prefixStore keeps the keys and values of finished prompts, at most budget
// bytes of them, evicting the least recently used. It belongs to the
// engine's loop goroutine: nothing else touches it (Stats reads the
// engine's atomic copies of its counters).
type prefixStore struct {
	budget int64
	bytes  int64
	groups map[prefixGroup][]*prefixEntry
	lru    *list.List // of *prefixEntry, most recently used first
	now    func() time.Time
}

func newPrefixStore(budget int64) *prefixStore {
	return &prefixStore{budget: budget, groups: map[prefixGroup][]*prefixEntry{}, lru: list.New(), now: time.Now}
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b []int) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// lookup returns the entry of g that shares the longest prefix with
// prompt, and that prefix's length (nil and 0 when none shares a token).
func (p *prefixStore) lookup(g prefixGroup, prompt []int) (*prefixEntry, int) {
	var best *prefixEntry
	n := 0
	for _, e := range p.groups[g] {
		if c := commonPrefix(e.tokens, prompt); c > n {
			best, n = e, c
		}
	}
	return best, n
}

// touch marks e as just used.
func (p *prefixStore) touch(e *prefixEntry) {
	p.lru.MoveToFront(e.elem)
	e.used = p.now()
}

// add stores the first len(tokens) positions of c (which holds tokens
// there) under g, unless an entry of g already covers tokens. Entries of g
// that tokens extends are replaced by the new one, which serves every
// request they would. Least recently used entries are evicted to stay
// within the budget; a prompt larger than the whole budget is not stored.
func (p *prefixStore) add(g prefixGroup, tokens []int, c *model.Cache, m *model.Model) {
	var extended []*prefixEntry
	shared := 0
	for _, e := range p.groups[g] {
		n := commonPrefix(e.tokens, tokens)
		shared = max(shared, n)
		switch {
		case n == len(tokens):
			p.touch(e) // covered: e holds tokens and maybe more
			return
		case n == len(e.tokens):
			extended = append(extended, e)
		}
	}
	// The snapshot holds exactly len(tokens) positions (a fresh cache grows
	// to what it is given), plus the token ids.
	need := int64(len(tokens)) * (c.Type().PositionBytes(&m.Config) + 8)
	if need > p.budget {
		return
	}
	snap, err := m.NewCacheOf(len(tokens), c.Type()) // stored as the running caches are
	if err != nil {
		return
	}
	if err := snap.CopyPrefix(c, len(tokens)); err != nil {
		return // c is not of m, or holds fewer positions: nothing to store
	}
	e := &prefixEntry{group: g, tokens: slices.Clone(tokens), cache: snap, bytes: snap.Bytes() + int64(len(tokens))*8, used: p.now(), shared: shared}
	for _, o := range extended {
		p.remove(o)
	}
	for p.bytes+e.bytes > p.budget && p.lru.Len() > 0 {
		p.remove(p.lru.Back().Value.(*prefixEntry))
	}
	e.elem = p.lru.PushFront(e)
	p.groups[g] = append(p.groups[g], e)
	p.bytes += e.bytes
}

// remove drops e.
func (p *prefixStore) remove(e *prefixEntry) {
	p.lru.Remove(e.elem)
	es := p.groups[e.group]
	if i := slices.Index(es, e); i >= 0 {
		es = slices.Delete(es, i, i+1)
	}
	if len(es) == 0 {
		delete(p.groups, e.group)
	} else {
		p.groups[e.group] = es
	}
	p.bytes -= e.bytes
}

// drop removes the entries of base b: all of them when key is "", else
// those of key.
func (p *prefixStore) drop(b *Base, key string) {
	for g, es := range p.groups {
		if g.base != b || key != "" && g.key != key {
			continue
		}
		for _, e := range slices.Clone(es) {
			p.remove(e)
		}
	}
}

// compactIdle compacts the entries not used since before cutoff (idle
// sessions): each keeps only the positions it shares with another entry of
// its group (the chat template and the persona's system prompt, which the
// session's next turn and the persona's other sessions start from), and an
// entry whose remaining positions another entry holds, or that shares
// none, is dropped. A session's next turn sends its whole conversation
// (the API is stateless), so it resumes from the longest stored prefix and
// runs the rest of its history again: the same output, less memory while
// it is idle. What is left of an entry is not compacted again (it goes
// when the budget needs room, least recently used first); an entry that
// shares nothing, now or when it was stored (the first session of a
// persona, alone), is dropped whole. It returns the number of entries
// compacted or dropped.
func (p *prefixStore) compactIdle(idleAfter time.Duration) int {
	cutoff := p.now().Add(-idleAfter)
	var idle []*prefixEntry
	for el := p.lru.Back(); el != nil; el = el.Prev() {
		if e := el.Value.(*prefixEntry); !e.stem && e.used.Before(cutoff) {
			idle = append(idle, e)
		}
	}
	if len(idle) == 0 {
		return 0
	}
	// How far each idle entry is shared: with every entry as it is now, or
	// with those there when it was stored (the stem its session started
	// from, which its next turn will start from again).
	keep := make([]int, len(idle))
	for i, e := range idle {
		keep[i] = min(e.shared, len(e.tokens))
		for _, f := range p.groups[e.group] {
			if f != e {
				keep[i] = max(keep[i], commonPrefix(e.tokens, f.tokens))
			}
		}
	}
	n := 0
	for i, e := range idle {
		if keep[i] >= len(e.tokens) {
			continue // all of it is shared: decided below
		}
		n++
		if keep[i] == 0 {
			p.remove(e)
			continue
		}
		snap := e.cache
		if c, err := e.group.base.Model.NewCacheOf(keep[i], e.cache.Type()); err == nil && c.CopyPrefix(e.cache, keep[i]) == nil {
			snap = c
		} else {
			snap.Truncate(keep[i])
		}
		e.tokens = e.tokens[:keep[i]:keep[i]]
		e.cache = snap
		e.stem = true
		p.bytes -= e.bytes
		e.bytes = snap.Bytes() + int64(keep[i])*8
		p.bytes += e.bytes
	}
	// Drop the idle entries that another entry covers.
	for _, e := range idle {
		if !slices.Contains(p.groups[e.group], e) {
			continue
		}
		for _, f := range p.groups[e.group] {
			if f != e && commonPrefix(e.tokens, f.tokens) == len(e.tokens) {
				p.remove(e)
				n++
				break
			}
		}
	}
	return n
}
