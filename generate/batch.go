package generate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/masque-ai/masque/model"
)

// BatchRequest is one sequence of GenerateBatch: a prompt, its Options and,
// optionally, what applies to this sequence alone in the batched forward
// passes (see model.BatchSeq).
type BatchRequest struct {
	// Prompt is the token ids fed before generation (not empty).
	Prompt []int
	// Options controls this sequence's generation as it does Generate's.
	Options Options
	// Hooks, if not nil, apply to this sequence's rows only.
	Hooks *model.Hooks
	// Adapter, if not nil, corrects this sequence's linear projections;
	// sequences with equal (==) adapters are adapted together.
	Adapter model.Adapter
}

// MaxBatchRows caps the tokens of one forward pass of GenerateBatch: the
// prompts are prefilled in groups of at most MaxBatchRows tokens (a longer
// prompt alone, in pieces of MaxBatchRows tokens as Generate feeds it, or
// in one pass when it has Hooks), and a decoding step over more
// sequences runs in several passes. It bounds the memory of the
// activations.
const MaxBatchRows = 512

// GenerateBatch is Generate for several prompts at once: every request
// gets a fresh cache (of the model's maximum length), the prompts are
// prefilled together (ForwardBatch over groups of at most MaxBatchRows
// tokens), and then every unfinished sequence advances by one token per
// decoding step, all of them in one ForwardBatch, each with its own
// Decoder (its sampler, stop conditions, text and log-probabilities). A
// sequence that finishes drops out of the following steps. The result has
// one Result per request, in order.
//
// A batch of one computes exactly what Generate does. With more sequences
// the logits equal Generate's up to float32 rounding (see
// model.ForwardBatch), so a result may differ where two tokens are nearly
// tied; how the requests are grouped into batches is therefore part of
// what determines the output. Every field of a Result means what it means
// for Generate, except the timings: PrefillDur is the time of the whole
// batch's prefill (the same in every Result) and DecodeDur the time from
// the end of the prefill until this sequence finished.
//
// Every request is validated before any work starts, as Generate validates
// its arguments (an empty prompt, a prompt that does not fit in the
// context, token ids outside the vocabulary, Options.Logprobs outside
// [0,MaxLogprobs], stop strings without a tokenizer); the error names the
// request's index and no Result is returned. Cancellation is not an error:
// every unfinished sequence ends with FinishReason "cancelled" (its text
// held back released, as Generate does) and GenerateBatch returns the
// partial Results with a nil error. Other errors (a failing forward pass, a
// constraint that allows no token) come with the Results produced so far,
// those of unfinished sequences with an empty FinishReason.
func GenerateBatch(ctx context.Context, m *model.Model, tok Tokenizer, reqs []BatchRequest) ([]*Result, error) {
	if len(reqs) == 0 {
		return nil, errors.New("generate: no requests")
	}
	maxLen := m.NewCache(0).Max()
	for i := range reqs {
		r := &reqs[i]
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("generate: request %d: empty prompt", i)
		}
		if err := checkOptions(tok, r.Options); err != nil {
			return nil, fmt.Errorf("generate: request %d: %w", i, err)
		}
		if len(r.Prompt) > maxLen {
			return nil, fmt.Errorf("generate: request %d: prompt of %d tokens exceeds the context length %d", i, len(r.Prompt), maxLen)
		}
		for _, id := range r.Prompt {
			if id < 0 || id >= m.Config.Vocab {
				return nil, fmt.Errorf("generate: request %d: token id %d outside the vocabulary [0,%d)", i, id, m.Config.Vocab)
			}
		}
	}
	b := &batch{ctx: ctx, m: m, seqs: make([]batchSeq, len(reqs))}
	for i := range reqs {
		r := &reqs[i]
		s := &b.seqs[i]
		s.req = r
		s.res = &Result{PromptIDs: r.Prompt, PromptTokens: len(r.Prompt)}
		dec, err := NewDecoder(&m.Config, tok, r.Prompt, r.Options, r.Options.Logprobs > 0, r.Options.Logprobs)
		if err != nil {
			return nil, fmt.Errorf("generate: request %d: %w", i, err)
		}
		s.dec = dec
	}
	if ctx.Err() != nil {
		for i := range b.seqs {
			b.seqs[i].res.FinishReason = FinishCancelled
			b.seqs[i].done = true
		}
		return b.results(), nil
	}
	for i := range b.seqs {
		b.seqs[i].cache = m.NewCache(0)
	}

	t0 := time.Now()
	err := b.prefill()
	prefill := time.Since(t0)
	b.t1 = time.Now()
	for i := range b.seqs {
		b.seqs[i].res.PrefillDur = prefill
	}
	if err != nil {
		return b.results(), err
	}
	for {
		if ctx.Err() != nil {
			b.cancel()
			return b.results(), nil
		}
		// Sample every unfinished sequence's next token.
		var next []int
		for i := range b.seqs {
			s := &b.seqs[i]
			if s.done {
				continue
			}
			t, err := s.dec.Next(s.logits, s.cache.Len() >= s.cache.Max())
			if err != nil {
				s.finish(b.t1, "")
				return b.results(), fmt.Errorf("generate: request %d: %w", i, err)
			}
			if t.Logprob != nil {
				s.res.Logprobs = append(s.res.Logprobs, *t.Logprob)
			}
			s.text = append(s.text, t.Text...)
			if t.Finish != "" {
				s.text = append(s.text, t.Tail...)
				s.finish(b.t1, t.Finish)
				continue
			}
			s.next = t.ID
			next = append(next, i)
		}
		if len(next) == 0 {
			return b.results(), nil
		}
		if ctx.Err() != nil {
			b.cancel()
			return b.results(), nil
		}
		for lo := 0; lo < len(next); lo += MaxBatchRows {
			idx := next[lo:min(len(next), lo+MaxBatchRows)]
			if err := b.forward(idx, func(i int) []int { return []int{b.seqs[i].next} }); err != nil {
				return b.results(), err
			}
		}
	}
}

// checkOptions validates what Generate and GenerateBatch check of o.
func checkOptions(tok Tokenizer, o Options) error {
	if o.Logprobs < 0 || o.Logprobs > MaxLogprobs {
		return fmt.Errorf("logprobs %d outside [0,%d]", o.Logprobs, MaxLogprobs)
	}
	for _, s := range o.Stop {
		if s != "" && tok == nil {
			return errors.New("stop strings need a tokenizer")
		}
	}
	return nil
}

// batch is the state of one GenerateBatch.
type batch struct {
	ctx  context.Context
	m    *model.Model
	seqs []batchSeq
	t1   time.Time // end of the prefill
	bs   []model.BatchSeq
}

// batchSeq is one sequence of a batch.
type batchSeq struct {
	req    *BatchRequest
	res    *Result
	dec    *Decoder
	cache  *model.Cache
	logits []float32 // after the last token fed
	text   []byte
	next   int // the token to feed in this step
	done   bool
}

// finish records the end of s with reason ("" for an error).
func (s *batchSeq) finish(t1 time.Time, reason string) {
	s.done = true
	s.res.FinishReason = reason
	s.res.DecodeDur = time.Since(t1)
}

// prefill feeds every prompt, in passes of at most MaxBatchRows tokens.
func (b *batch) prefill() error {
	var group []int
	rows := 0
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		err := b.forward(group, func(i int) []int { return b.seqs[i].req.Prompt })
		group, rows = group[:0], 0
		return err
	}
	for i := range b.seqs {
		r := b.seqs[i].req
		n := len(r.Prompt)
		if n > MaxBatchRows {
			if err := flush(); err != nil {
				return err
			}
			if r.Hooks != nil {
				// Hooks see the whole prompt in one pass, as with
				// model.ForwardHooks.
				if err := b.forward([]int{i}, func(int) []int { return r.Prompt }); err != nil {
					return err
				}
				continue
			}
			for lo := 0; lo < n; lo += MaxBatchRows {
				part := r.Prompt[lo:min(n, lo+MaxBatchRows)]
				if err := b.forward([]int{i}, func(int) []int { return part }); err != nil {
					return err
				}
			}
			continue
		}
		if rows+n > MaxBatchRows {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, i)
		rows += n
	}
	return flush()
}

// forward runs tokens(i) for the sequences idx in one ForwardBatch and
// keeps each one's last logits.
func (b *batch) forward(idx []int, tokens func(i int) []int) error {
	b.bs = b.bs[:0]
	for _, i := range idx {
		s := &b.seqs[i]
		b.bs = append(b.bs, model.BatchSeq{Cache: s.cache, Tokens: tokens(i), Hooks: s.req.Hooks, Adapter: s.req.Adapter})
	}
	out, err := b.m.ForwardBatch(b.bs)
	if err != nil {
		return fmt.Errorf("generate: forward pass over requests %v (sequence k is the k-th of them): %w", idx, err)
	}
	for k, i := range idx {
		b.seqs[i].logits = out[k]
	}
	return nil
}

// cancel ends every unfinished sequence after a cancellation, releasing
// the text held back (a stop string found in it makes the reason
// FinishStop, as in Generate).
func (b *batch) cancel() {
	for i := range b.seqs {
		s := &b.seqs[i]
		if s.done {
			continue
		}
		reason := FinishCancelled
		if out, found, ok := s.dec.Flush(); ok {
			if found {
				reason = FinishStop
			}
			s.text = append(s.text, out...)
		}
		s.finish(b.t1, reason)
	}
}

// results fills in and returns every sequence's Result.
func (b *batch) results() []*Result {
	out := make([]*Result, len(b.seqs))
	for i := range b.seqs {
		s := &b.seqs[i]
		if s.dec != nil {
			s.res.IDs, s.res.CompletionTokens = s.dec.IDs(), s.dec.Sampled()
		}
		s.res.Text = string(s.text)
		out[i] = s.res
	}
	return out
}
