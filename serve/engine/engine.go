// Package engine runs many generations at once with continuous batching:
// every step, the sequences that share a base model are run through one
// model.ForwardBatch (new prompts in chunks next to the single tokens of
// sequences that are decoding), then each sequence samples its next token.
// Sequences join and leave between steps, so a short request never waits
// for a long one.
//
// Admission is bounded twice: at most Config.MaxSeqs sequences run at once,
// and their KV caches, reserved for a whole context each and drawn from a
// per-model pool, stay within Config.KVBytes. Requests beyond that wait in a
// bounded queue; Submit fails with ErrQueueFull when it is full. A request
// whose context ends (client gone, timeout) or that is cancelled leaves the
// queue or the batch at once and its cache goes back to the pool.
//
// Prompts that start alike are not run twice: with Config.PrefixBytes set,
// the keys and values of every finished prompt are kept (least recently
// used evicted first) under the request's Base and PrefixKey, and a later
// request with the same Base and PrefixKey starts from the longest stored
// prefix it shares, running only the rest of its prompt.
package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/model"
)

// Errors returned by Submit or reported in Result.Err.
var (
	// ErrQueueFull: the request queue is full; retry later.
	ErrQueueFull = errors.New("engine: request queue is full")
	// ErrClosed: the engine has been closed.
	ErrClosed = errors.New("engine: closed")
	// ErrTimeout: the request's deadline passed before it finished.
	ErrTimeout = errors.New("engine: request timed out")
)

// Config sets the engine's bounds.
type Config struct {
	// MaxSeqs is the most sequences generating at once (the batch slots).
	MaxSeqs int
	// MaxQueue is the most requests waiting for a slot.
	MaxQueue int
	// KVBytes bounds the memory of all KV caches together. Each running
	// sequence reserves a cache for its base's whole context length.
	KVBytes int64
	// BatchTokens caps the tokens of one forward step; longer prompts are
	// fed in chunks over several steps. At least 1; every decoding sequence
	// always gets its token.
	BatchTokens int
	// PrefixBytes bounds the memory of the prompt-prefix store (the keys
	// and values of finished prompts that later requests with the same
	// Base and Request.PrefixKey start from), apart from KVBytes; 0
	// disables prefix reuse.
	PrefixBytes int64
	// IdleAfter, if positive, compacts the prefix store's entries that no
	// request has used for that long (idle sessions): each keeps only the
	// positions it shares with another entry of its base and key (the chat
	// template and system prompt), or is dropped. The next turn of such a
	// session starts from the longest prefix still stored and runs the rest
	// of its conversation again, with the same output.
	IdleAfter time.Duration
	// OnStep, if set, is called after every forward step with the base's
	// name, the number of sequences and tokens in it and its duration.
	OnStep func(base string, seqs, tokens int, d time.Duration)
}

// Base is a model that sequences run on, with its cache pool. Personas
// over the same base share its weights and run in the same batches.
type Base struct {
	// Name identifies the base in statistics.
	Name string
	// Model is the shared model.
	Model *model.Model
	// Tokenizer turns generated ids into text.
	Tokenizer generate.Tokenizer
	// Ctx is the context length of every sequence (cache positions).
	Ctx int

	forgotten bool // set by ForgetBase (under the engine's lock)
}

// SlotBytes is the KV cache memory one sequence of this base reserves: Ctx
// positions of the model's cache type (model.Model.SetCacheType).
func (b *Base) SlotBytes() int64 {
	return int64(b.Ctx) * b.Model.CacheType().PositionBytes(&b.Model.Config)
}

// Request is one generation.
type Request struct {
	// Base is the model to run on.
	Base *Base
	// Prompt holds the token ids to feed (at least one, fewer than Base.Ctx).
	Prompt []int
	// Adapter corrects this sequence's linear projections (a persona's
	// LoRA adapter or unstructured weight mask); nil for none.
	Adapter model.Adapter
	// Hooks apply to this sequence only (a persona's FFN channel mask);
	// nil for none.
	Hooks *model.Hooks
	// Options holds the sampling settings (Temperature, TopK, TopP, MinP,
	// RepetitionPenalty, RepeatLastN, FrequencyPenalty, PresencePenalty,
	// LogitBias, Seed, Constraint), MaxTokens, Stop strings, StopTokens,
	// IgnoreEOS and SkipSpecial, with generate.Generate's meaning.
	// Options.Logprobs is ignored: see Logprobs.
	Options generate.Options
	// Logprobs asks for the log-probability of every generated token.
	Logprobs bool
	// TopLogprobs is the number of most likely alternatives listed with
	// each token (at most generate.MaxLogprobs).
	TopLogprobs int
	// PrefixKey enables prompt-prefix reuse (see Config.PrefixBytes). It
	// promises that requests with the same non-empty PrefixKey and the
	// same Base compute identical keys and values for identical token
	// prefixes: the same weights, Hooks and Adapter (one persona as loaded;
	// a persona loaded again with other masks needs another key). Such
	// requests start from the stored positions of the earlier one whose
	// prompt shares the most leading tokens with theirs (Hooks do not see
	// the reused tokens run again). Empty disables reuse for this request.
	PrefixKey string
}

// Chunk is what a stream delivers: one chunk per sampled token, in order,
// with the text that token released and its log-probability; the text
// released at the end and the Result come with the last chunk.
type Chunk struct {
	// Text is newly released text (possibly "": text can be held back
	// until a character or a possible stop string is complete).
	Text string
	// Logprobs has the entry of the chunk's token, when asked for.
	Logprobs []generate.LogprobEntry
	// Tokens is the number of tokens sampled in the chunk (1, or 0 for a
	// last chunk that only ends the stream).
	Tokens int
	// Result is set on the last chunk.
	Result *Result
}

// Result describes a finished generation.
type Result struct {
	// FinishReason is generate.FinishStop, FinishLength or FinishCancelled.
	FinishReason string
	// PromptTokens is the prompt's length, CompletionTokens the number of
	// tokens sampled (as generate.Result counts them).
	PromptTokens, CompletionTokens int
	// CachedTokens is the number of leading prompt tokens whose keys and
	// values were reused from an earlier request instead of being run (at
	// most PromptTokens-1: the last prompt token always runs).
	CachedTokens int
	// IDs are the generated tokens (without the one that stopped it).
	IDs []int
	// Queued is the time spent waiting for a slot; FirstToken the time
	// from Submit to the first sampled token.
	Queued, FirstToken time.Duration
	// Err is set when generation failed: ErrTimeout, ErrClosed or a model
	// error.
	Err error
}

// Stats is a snapshot of the engine's state.
type Stats struct {
	// Queued and Active count the waiting and running requests; MaxSeqs and
	// MaxQueue are the configured bounds.
	Queued, Active, MaxSeqs, MaxQueue int
	// KVReserved is the memory reserved by caches (running and pooled);
	// KVUsed what the running sequences' caches hold now; KVBudget the bound.
	KVReserved, KVUsed, KVBudget int64
	// Steps counts forward steps; Tokens the tokens they ran.
	Steps, Tokens int64
	// PrefixBytes is the memory of the prompt-prefix store, PrefixBudget
	// its bound and PrefixEntries the prompts it holds; PrefixHits counts
	// requests that started from a stored prefix and PrefixTokens the
	// prompt tokens they did not have to run.
	PrefixBytes, PrefixBudget int64
	PrefixEntries             int
	PrefixHits, PrefixTokens  int64
	// PrefixIdleCompacted counts the prefix entries compacted or dropped
	// because they stayed unused for Config.IdleAfter.
	PrefixIdleCompacted int64
}

// Engine schedules generations. It is safe for concurrent use.
type Engine struct {
	cfg Config

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []*Stream
	active   []*Stream                // owned by the loop; len read under mu for stats
	pools    map[*Base][]*model.Cache // free caches of bases with caches
	reserved int64
	closed   bool
	done     chan struct{}
	drops    []prefixGroup // prefix entries to drop (key "": all of a base), for the loop
	idleDue  bool          // time to compact idle prefix entries (IdleAfter)

	prefix *prefixStore // owned by the loop; nil when disabled

	steps, tokens atomic.Int64
	kvUsed        atomic.Int64
	// The prefix store's state for Stats.
	prefixBytes, prefixEntries, prefixHits, prefixTokens atomic.Int64
	prefixIdle                                           atomic.Int64
}

// New starts an engine. Close stops it.
func New(cfg Config) (*Engine, error) {
	if cfg.MaxSeqs < 1 || cfg.MaxQueue < 0 || cfg.KVBytes <= 0 || cfg.BatchTokens < 1 || cfg.PrefixBytes < 0 || cfg.IdleAfter < 0 {
		return nil, fmt.Errorf("engine: bad config (max seqs %d, queue %d, KV bytes %d, batch tokens %d, prefix bytes %d)", cfg.MaxSeqs, cfg.MaxQueue, cfg.KVBytes, cfg.BatchTokens, cfg.PrefixBytes)
	}
	e := &Engine{cfg: cfg, done: make(chan struct{}), pools: map[*Base][]*model.Cache{}}
	if cfg.PrefixBytes > 0 {
		e.prefix = newPrefixStore(cfg.PrefixBytes)
	}
	e.cond = sync.NewCond(&e.mu)
	go e.loop()
	if cfg.IdleAfter > 0 && e.prefix != nil {
		go e.idleTicker(min(max(cfg.IdleAfter/4, time.Millisecond), time.Second))
	}
	return e, nil
}

// CheckBase reports whether one sequence of b fits the KV budget.
func (e *Engine) CheckBase(b *Base) error {
	if b.Ctx < 2 {
		return fmt.Errorf("engine: base %s: context length %d is too short", b.Name, b.Ctx)
	}
	if s := b.SlotBytes(); s > e.cfg.KVBytes {
		return fmt.Errorf("engine: one sequence of %s needs %d bytes of KV cache (context %d), more than the budget of %d: lower the context length or raise the KV memory", b.Name, s, b.Ctx, e.cfg.KVBytes)
	}
	return nil
}

// Slots returns how many sequences of b can run at once: MaxSeqs, or fewer
// when the KV budget holds fewer caches.
func (e *Engine) Slots(b *Base) int {
	return int(min(int64(e.cfg.MaxSeqs), e.cfg.KVBytes/max(1, b.SlotBytes())))
}

// Stats returns the current state.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{Queued: len(e.queue), Active: len(e.active), MaxSeqs: e.cfg.MaxSeqs, MaxQueue: e.cfg.MaxQueue,
		KVReserved: e.reserved, KVUsed: e.kvUsed.Load(), KVBudget: e.cfg.KVBytes, Steps: e.steps.Load(), Tokens: e.tokens.Load(),
		PrefixBytes: e.prefixBytes.Load(), PrefixBudget: e.cfg.PrefixBytes, PrefixEntries: int(e.prefixEntries.Load()),
		PrefixHits: e.prefixHits.Load(), PrefixTokens: e.prefixTokens.Load(), PrefixIdleCompacted: e.prefixIdle.Load()}
}

// Close fails every queued and running request with ErrClosed and stops
// the engine; it waits for the current step to end.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.cond.Broadcast()
	e.mu.Unlock()
	<-e.done
}

// Stream is a submitted request: Recv returns its output.
type Stream struct {
	req    Request
	ctx    context.Context
	eng    *Engine
	submit time.Time

	cancelled atomic.Bool
	stop      func() bool // unregisters the context callback

	// leader, for a choice of SubmitN other than the first while it waits
	// for the first's prompt to be fed (owned by the loop).
	leader *Stream

	// Owned by the loop while running.
	cache   *model.Cache
	fed     int               // prompt tokens fed (or taken from the prefix store)
	cached  int               // prompt tokens taken from the prefix store
	next    []int             // the token to feed next while decoding
	dec     *generate.Decoder // sampling, stop conditions, text and logprobs
	started time.Time
	first   time.Duration

	// Mailbox: chunks not yet received, bounded by the request's tokens.
	mbox   sync.Mutex
	notify chan struct{}
	out    []Chunk
	final  bool // the Result has been posted
	ended  bool // the Result has been received
}

// Submit queues a request. It fails at once with ErrQueueFull when the
// queue is full, ErrClosed after Close, or an error for a malformed
// request. When ctx ends, the request is cancelled: it leaves the queue or
// its batch at once and its Result says why (ErrTimeout for a deadline).
func (e *Engine) Submit(ctx context.Context, r Request) (*Stream, error) {
	st, err := e.SubmitN(ctx, r, 1)
	if err != nil {
		return nil, err
	}
	return st[0], nil
}

// SubmitN queues n generations of one request (OpenAI's n choices) that
// share the prompt's keys and values: the first runs the prompt, and each
// other copies the first's cache once its prompt has been fed, running only
// the last prompt token itself (whose logits it samples from). Choice i
// samples with seed Options.Seed+i, so a fixed seed gives the same n
// answers every time. A choice admitted after the first has ended runs the
// prompt itself. The n streams are queued together or not at all
// (ErrQueueFull); otherwise SubmitN behaves as Submit.
func (e *Engine) SubmitN(ctx context.Context, r Request, n int) ([]*Stream, error) {
	if n < 1 {
		return nil, fmt.Errorf("engine: %d choices", n)
	}
	if err := checkRequest(r); err != nil {
		return nil, err
	}
	streams := make([]*Stream, n)
	now := time.Now()
	for i := range streams {
		ri := r
		ri.Options.Seed += uint64(i)
		streams[i] = &Stream{req: ri, ctx: ctx, eng: e, submit: now, notify: make(chan struct{}, 1)}
		if i > 0 {
			streams[i].leader = streams[0]
		}
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	// Requests that will start as soon as the loop admits them do not count
	// against the queue.
	if len(e.queue)+n > e.cfg.MaxQueue+max(0, e.Slots(r.Base)-len(e.active)) {
		e.mu.Unlock()
		return nil, ErrQueueFull
	}
	for _, s := range streams {
		// AfterFunc runs Cancel on its own goroutine, so registering it under
		// the lock cannot deadlock even when ctx has already ended.
		s.stop = context.AfterFunc(ctx, s.Cancel)
		e.queue = append(e.queue, s)
	}
	e.cond.Signal()
	e.mu.Unlock()
	return streams, nil
}

// checkRequest rejects a malformed request.
func checkRequest(r Request) error {
	if r.Base == nil || r.Base.Model == nil {
		return errors.New("engine: request without a base model")
	}
	if len(r.Prompt) == 0 {
		return errors.New("engine: empty prompt")
	}
	if len(r.Prompt) >= r.Base.Ctx {
		return fmt.Errorf("engine: prompt of %d tokens leaves no room in the context of %d", len(r.Prompt), r.Base.Ctx)
	}
	if r.TopLogprobs < 0 || r.TopLogprobs > generate.MaxLogprobs {
		return fmt.Errorf("engine: top logprobs %d outside [0,%d]", r.TopLogprobs, generate.MaxLogprobs)
	}
	vocab := r.Base.Model.Config.Vocab
	for _, id := range r.Prompt {
		if id < 0 || id >= vocab {
			return fmt.Errorf("engine: token id %d outside the vocabulary [0,%d)", id, vocab)
		}
	}
	var stops []string
	for _, s := range r.Options.Stop {
		if s != "" {
			stops = append(stops, s)
		}
	}
	if len(stops) > 0 && r.Base.Tokenizer == nil {
		return errors.New("engine: stop strings need a tokenizer")
	}
	return nil
}

// Cancel ends the request: a queued request leaves the queue, a running one
// leaves the batch before the next step and its cache returns to the pool.
// Its Result has FinishReason "cancelled" (with ErrTimeout when the
// context's deadline passed). Cancel may be called more than once.
func (s *Stream) Cancel() {
	if s.cancelled.Swap(true) {
		return
	}
	e := s.eng
	e.mu.Lock()
	if i := slices.Index(e.queue, s); i >= 0 {
		e.queue = slices.Delete(e.queue, i, i+1)
		e.mu.Unlock()
		s.finish(generate.FinishCancelled, s.ctxErr())
		return
	}
	e.cond.Signal()
	e.mu.Unlock()
}

// ctxErr maps the context's end to ErrTimeout for deadlines, nil otherwise.
func (s *Stream) ctxErr() error {
	if errors.Is(s.ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return nil
}

// Recv waits for the next chunk. The last chunk has Result set; a call
// after it returns ErrClosed. If ctx ends first, the request is cancelled
// and ctx's error returned.
func (s *Stream) Recv(ctx context.Context) (Chunk, error) {
	for {
		s.mbox.Lock()
		if len(s.out) > 0 {
			c := s.out[0]
			s.out[0] = Chunk{}
			s.out = s.out[1:]
			if c.Result != nil {
				s.ended = true
			}
			s.mbox.Unlock()
			return c, nil
		}
		if s.ended {
			s.mbox.Unlock()
			return Chunk{}, ErrClosed
		}
		s.mbox.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			s.Cancel()
			return Chunk{}, ctx.Err()
		}
	}
}

// post queues a token's chunk (tokens > 0), or adds text released at the
// end and the result to the last queued chunk (or a new one).
func (s *Stream) post(text string, lp *generate.LogprobEntry, tokens int, res *Result) {
	if text == "" && lp == nil && tokens == 0 && res == nil {
		return
	}
	s.mbox.Lock()
	if s.final {
		s.mbox.Unlock()
		return
	}
	if tokens > 0 || len(s.out) == 0 {
		s.out = append(s.out, Chunk{})
	}
	c := &s.out[len(s.out)-1]
	c.Text += text
	if lp != nil {
		c.Logprobs = append(c.Logprobs, *lp)
	}
	c.Tokens += tokens
	if res != nil {
		c.Result, s.final = res, true
	}
	s.mbox.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// finish posts the final chunk (once).
func (s *Stream) finish(reason string, err error) {
	if s.stop != nil {
		s.stop()
	}
	res := &Result{FinishReason: reason, PromptTokens: len(s.req.Prompt), CachedTokens: s.cached, FirstToken: s.first, Err: err}
	if s.dec != nil {
		res.IDs, res.CompletionTokens = s.dec.IDs(), s.dec.Sampled()
	}
	if !s.started.IsZero() {
		res.Queued = s.started.Sub(s.submit)
	} else {
		res.Queued = time.Since(s.submit)
	}
	s.post("", nil, 0, res)
}

func (e *Engine) canAdmitLocked(b *Base) bool {
	if len(e.active) >= e.cfg.MaxSeqs {
		return false
	}
	if len(e.pools[b]) > 0 {
		return true
	}
	need := b.SlotBytes()
	if e.reserved+need <= e.cfg.KVBytes {
		return true
	}
	// Pooled caches of other bases can be dropped to make room.
	spare := int64(0)
	for o, free := range e.pools {
		if o != b {
			spare += int64(len(free)) * o.SlotBytes()
		}
	}
	return e.reserved-spare+need <= e.cfg.KVBytes
}

// takeCacheLocked returns a cache for b from its pool, a new one within
// the budget, or nil.
func (e *Engine) takeCacheLocked(b *Base) *model.Cache {
	if free := e.pools[b]; len(free) > 0 {
		c := free[len(free)-1]
		e.pools[b] = free[:len(free)-1]
		c.Reset()
		return c
	}
	need := b.SlotBytes()
	for o, free := range e.pools {
		for o != b && len(free) > 0 && e.reserved+need > e.cfg.KVBytes {
			free = free[:len(free)-1]
			e.reserved -= o.SlotBytes()
		}
		e.pools[o] = free
	}
	if e.reserved+need > e.cfg.KVBytes {
		return nil
	}
	e.reserved += need
	if _, ok := e.pools[b]; !ok && !b.forgotten {
		e.pools[b] = nil
	}
	return b.Model.NewCache(b.Ctx)
}

// releaseLocked returns a running stream's cache to its base's pool (or
// frees it when the base has been forgotten).
func (e *Engine) releaseLocked(s *Stream) {
	if s.cache == nil {
		return
	}
	b := s.req.Base
	if free, ok := e.pools[b]; ok {
		s.cache.Reset()
		e.pools[b] = append(free, s.cache)
	} else {
		e.reserved -= b.SlotBytes()
	}
	s.cache = nil
}

// ForgetBase drops b's pooled caches and stored prompt prefixes (after its
// last persona is removed); caches of b's sequences still running are
// freed when they end, and their prompts are not stored.
func (e *Engine) ForgetBase(b *Base) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reserved -= int64(len(e.pools[b])) * b.SlotBytes()
	delete(e.pools, b)
	b.forgotten = true
	if e.prefix != nil {
		e.drops = append(e.drops, prefixGroup{base: b})
		e.cond.Signal()
	}
}

// ForgetPrefix drops the stored prompt prefixes of b under key (after the
// persona that used key is removed). A request of that key still running
// may store its prompt afterwards; it ages out of the store as the least
// recently used.
func (e *Engine) ForgetPrefix(b *Base, key string) {
	if key == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.prefix != nil {
		e.drops = append(e.drops, prefixGroup{base: b, key: key})
		e.cond.Signal()
	}
}

// idleTicker asks the loop to compact idle prefix entries every period.
func (e *Engine) idleTicker(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
			e.mu.Lock()
			e.idleDue = true
			e.cond.Signal()
			e.mu.Unlock()
		}
	}
}

// loop is the scheduler.
func (e *Engine) loop() {
	defer close(e.done)
	for {
		e.mu.Lock()
		for !e.closed && len(e.active) == 0 && !e.admittableLocked() && len(e.drops) == 0 && !e.idleDue {
			e.cond.Wait()
		}
		if e.closed {
			q := e.queue
			e.queue = nil
			act := e.active
			e.active = nil
			for _, s := range act {
				e.releaseLocked(s)
			}
			e.mu.Unlock()
			for _, s := range append(q, act...) {
				s.finish(generate.FinishCancelled, ErrClosed)
			}
			return
		}
		drops := e.drops
		e.drops = nil
		idleDue := e.idleDue
		e.idleDue = false
		admitted := e.admitLocked()
		// Drop cancelled sequences before spending a step on them.
		var gone []*Stream
		e.active = slices.DeleteFunc(e.active, func(s *Stream) bool {
			if s.cancelled.Load() || s.ctx.Err() != nil {
				e.releaseLocked(s)
				gone = append(gone, s)
				return true
			}
			return false
		})
		active := slices.Clone(e.active)
		e.mu.Unlock()
		for _, s := range gone {
			s.finish(generate.FinishCancelled, s.ctxErr())
		}
		if e.prefix != nil {
			for _, g := range drops {
				e.prefix.drop(g.base, g.key)
			}
			if idleDue {
				e.prefixIdle.Add(int64(e.prefix.compactIdle(e.cfg.IdleAfter)))
			}
			for _, s := range admitted {
				if s.cache != nil { // not dropped above
					e.reusePrefix(s)
				}
			}
			e.prefixStats()
		}
		if len(active) == 0 {
			e.kvUsed.Store(0)
			continue
		}
		var used int64
		for _, s := range active {
			used += s.cache.Bytes()
		}
		e.kvUsed.Store(used)
		// One step per base, in the order the bases first appear.
		var order []*Base
		for _, s := range active {
			if !slices.Contains(order, s.req.Base) {
				order = append(order, s.req.Base)
			}
		}
		var ended, prompted []*Stream
		for _, b := range order {
			en, pr := e.step(b, active)
			ended = append(ended, en...)
			prompted = append(prompted, pr...)
		}
		if len(prompted) > 0 && e.prefix != nil {
			e.storePrefixes(prompted)
		}
		if len(ended) > 0 {
			e.mu.Lock()
			e.active = slices.DeleteFunc(e.active, func(s *Stream) bool {
				if slices.Contains(ended, s) {
					e.releaseLocked(s)
					return true
				}
				return false
			})
			e.mu.Unlock()
		}
	}
}

// admittableLocked reports whether the head of the queue can start.
func (e *Engine) admittableLocked() bool {
	return len(e.queue) > 0 && e.canAdmitLocked(e.queue[0].req.Base)
}

// admitLocked moves queued requests into the batch, first come first
// served, while slots and KV memory last, and returns them.
func (e *Engine) admitLocked() []*Stream {
	var admitted []*Stream
	for len(e.queue) > 0 {
		s := e.queue[0]
		if !e.canAdmitLocked(s.req.Base) {
			break
		}
		c := e.takeCacheLocked(s.req.Base)
		if c == nil {
			break
		}
		e.queue = e.queue[1:]
		if !s.start(c) {
			e.releaseLocked(s) // checkRequest makes this unreachable
			continue
		}
		e.active = append(e.active, s)
		admitted = append(admitted, s)
	}
	return admitted
}

// reusePrefix seeds a stream that has just started with the longest stored
// prefix of its prompt, leaving at least the last prompt token to run (its
// logits give the first sampled token). It runs on the loop goroutine.
func (e *Engine) reusePrefix(s *Stream) {
	if s.req.PrefixKey == "" || s.leader != nil {
		return
	}
	ent, n := e.prefix.lookup(prefixGroup{s.req.Base, s.req.PrefixKey}, s.req.Prompt)
	p := min(n, len(s.req.Prompt)-1)
	if ent == nil || p < 1 {
		return
	}
	if err := s.cache.CopyPrefix(ent.cache, p); err != nil {
		return // the cache is unchanged: the whole prompt runs
	}
	e.prefix.touch(ent)
	s.fed, s.cached = p, p
	e.prefixHits.Add(1)
	e.prefixTokens.Add(int64(p))
}

// storePrefixes keeps the keys and values of the prompts that the streams
// have just finished feeding (their caches hold exactly the prompt). It
// runs on the loop goroutine, before ended streams release their caches.
func (e *Engine) storePrefixes(streams []*Stream) {
	e.mu.Lock()
	streams = slices.DeleteFunc(streams, func(s *Stream) bool { return s.req.PrefixKey == "" || s.req.Base.forgotten })
	e.mu.Unlock()
	for _, s := range streams {
		e.prefix.add(prefixGroup{s.req.Base, s.req.PrefixKey}, s.req.Prompt, s.cache, s.req.Base.Model)
	}
	e.prefixStats()
}

// prefixStats publishes the prefix store's size for Stats.
func (e *Engine) prefixStats() {
	e.prefixBytes.Store(e.prefix.bytes)
	e.prefixEntries.Store(int64(e.prefix.lru.Len()))
}

// start prepares a stream to run on cache c. It reports false when the
// request cannot be decoded (it has then posted the result).
func (s *Stream) start(c *model.Cache) bool {
	s.cache = c
	s.started = time.Now()
	dec, err := generate.NewDecoder(&s.req.Base.Model.Config, s.req.Base.Tokenizer, s.req.Prompt, s.req.Options, s.req.Logprobs, s.req.TopLogprobs)
	if err != nil {
		s.finish("", fmt.Errorf("engine: %w", err))
		return false
	}
	s.dec = dec
	return true
}

// fork starts a waiting choice of SubmitN from its leader's cache once the
// leader has fed its prompt, leaving the last prompt token to run; when the
// leader has left the batch, the choice runs its prompt itself. It reports
// whether the stream can run now. It runs on the loop goroutine.
func (s *Stream) fork() bool {
	l := s.leader
	n := len(s.req.Prompt)
	switch {
	case l.cache == nil: // ended, cancelled or never admitted: run alone
	case l.fed < n:
		return false
	case s.cache.CopyPrefix(l.cache, n-1) == nil:
		s.fed, s.cached = n-1, n-1
	}
	s.leader = nil
	return true
}

// step runs one forward pass over b's active sequences and samples their
// next tokens. It returns the sequences that ended, and those whose prompt
// has now been fed whole (their caches hold exactly the prompt).
func (e *Engine) step(b *Base, active []*Stream) (ended, prompted []*Stream) {
	var decode, prefill []*Stream
	for _, s := range active {
		if s.req.Base != b {
			continue
		}
		if s.leader != nil && !s.fork() {
			continue // waits for its leader's prompt
		}
		if s.fed < len(s.req.Prompt) {
			prefill = append(prefill, s)
		} else {
			decode = append(decode, s)
		}
	}
	budget := e.cfg.BatchTokens - len(decode)
	type item struct {
		s    *Stream
		toks []int
		last bool // the logits are used for sampling
	}
	var items []item
	for _, s := range decode {
		items = append(items, item{s, s.next, true})
	}
	for _, s := range prefill {
		if budget <= 0 && len(items) > 0 {
			break
		}
		n := len(s.req.Prompt) - s.fed
		if n > budget {
			n = max(budget, 1)
			if len(items) == 0 {
				n = max(n, e.cfg.BatchTokens)
			}
			n = min(n, len(s.req.Prompt)-s.fed)
		}
		budget -= n
		items = append(items, item{s, s.req.Prompt[s.fed : s.fed+n], s.fed+n == len(s.req.Prompt)})
	}
	// Sequences of one persona next to each other: their adapter runs once.
	var groups []model.Adapter
	for _, it := range items {
		if a := it.s.req.Adapter; a != nil && !slices.Contains(groups, a) {
			groups = append(groups, a)
		}
	}
	slices.SortStableFunc(items, func(x, y item) int {
		return slices.Index(groups, x.s.req.Adapter) - slices.Index(groups, y.s.req.Adapter)
	})
	batch := make([]model.BatchSeq, len(items))
	tokens := 0
	for i, it := range items {
		batch[i] = model.BatchSeq{Cache: it.s.cache, Tokens: it.toks, Hooks: it.s.req.Hooks, Adapter: it.s.req.Adapter}
		tokens += len(it.toks)
	}
	t0 := time.Now()
	logits, err := b.Model.ForwardBatch(batch)
	d := time.Since(t0)
	e.steps.Add(1)
	e.tokens.Add(int64(tokens))
	if e.cfg.OnStep != nil {
		e.cfg.OnStep(b.Name, len(batch), tokens, d)
	}
	if err != nil {
		for _, it := range items {
			it.s.finish("", fmt.Errorf("engine: forward pass: %w", err))
			ended = append(ended, it.s)
		}
		return ended, nil
	}
	for i, it := range items {
		s := it.s
		if s.fed < len(s.req.Prompt) {
			s.fed += len(it.toks)
			if s.fed == len(s.req.Prompt) {
				prompted = append(prompted, s)
			}
		}
		if !it.last {
			continue
		}
		if s.cancelled.Load() {
			continue // dropped before the next step
		}
		if s.sample(logits[i]) {
			ended = append(ended, s)
		}
	}
	return ended, prompted
}

// sample picks the next token from logits and emits its text; it reports
// whether generation ended (and then has posted the result). The decoding
// itself is generate.Decoder's, as in generate.Generate.
func (s *Stream) sample(logits []float32) bool {
	t, err := s.dec.Next(logits, s.cache.Len() >= s.cache.Max())
	if err != nil {
		s.finish("", err)
		return true
	}
	if s.dec.Sampled() == 1 {
		s.first = time.Since(s.submit)
	}
	if !t.StopToken {
		s.post(t.Text, t.Logprob, 1, nil)
	}
	if t.Finish == "" {
		s.next = []int{t.ID}
		return false
	}
	if t.Flushed {
		s.post(t.Tail, nil, 0, nil)
	}
	s.finish(t.Finish, nil)
	return true
}
