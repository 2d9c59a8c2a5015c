// Package generate runs autoregressive text generation on a model.Model:
// sampling (greedy, temperature, top-k, top-p, min-p, repetition penalty),
// stop tokens and stop strings, streaming of text as it becomes final,
// log-probabilities, and reuse of a KV cache across the turns of a chat.
//
// Generation needs only two things from a tokenizer: turning generated ids
// into text incrementally (the Tokenizer and TextStream interfaces here).
// Prompts are token ids, so encoding and chat templates stay with the
// caller.
package generate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/masque-ai/masque/model"
)

// Options controls one generation. The zero value means greedy decoding
// until EOS or the end of the context.
type Options struct {
	// MaxTokens caps the number of generated tokens (the stop token, if
	// any, not counted). ≤ 0 means no cap: generation runs until a stop
	// condition or the end of the cache.
	MaxTokens int

	// Temperature divides the logits before sampling. 0 (or less) means
	// greedy: the argmax, with the lowest id winning ties.
	Temperature float32
	// TopK keeps only the K most likely tokens (≤ 0: off).
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// adds up to at least TopP (values outside (0,1): off).
	TopP float32
	// MinP drops tokens whose probability is below MinP times that of the
	// most likely token (values outside (0,1]: off).
	MinP float32

	// RepetitionPenalty is the Hugging Face-style penalty: for every
	// distinct id among the last RepeatLastN tokens (prompt included), a
	// positive logit is divided by it and any other logit multiplied by it.
	// 0 or 1 means off. It also applies in greedy mode.
	RepetitionPenalty float32
	// RepeatLastN is the window of the repetition penalty (≤ 0: the whole
	// history).
	RepeatLastN int

	// Seed seeds the sampler's random numbers (PCG from math/rand/v2). The
	// same seed and inputs give the same output. Seed 0 is a seed like any
	// other; pick a random one for varied outputs.
	Seed uint64

	// Stop lists stop strings: generation ends as soon as the generated
	// text contains one of them. Neither the stop string nor anything after
	// it is emitted or included in Result.Text (the tokens are still in
	// Result.IDs). Empty strings are ignored. Needs a Tokenizer.
	Stop []string
	// StopTokens lists extra ids that end generation. Like EOS, a stop
	// token is neither emitted as text nor included in Result.IDs.
	StopTokens []int
	// IgnoreEOS stops using the model's EOS ids (Config.EOS) as stop
	// tokens. StopTokens still apply. (llama2.c's run.c, for instance,
	// stops only on BOS: IgnoreEOS with StopTokens {1} reproduces it.)
	IgnoreEOS bool
	// SkipSpecial leaves special tokens out of the emitted text.
	SkipSpecial bool

	// Logprobs, when > 0 (at most MaxLogprobs), records for every generated
	// token its log-probability and the Logprobs most likely alternatives
	// in Result.Logprobs. The values are log_softmax of the model's raw
	// logits, before the repetition penalty, temperature or any filter.
	Logprobs int
}

// MaxLogprobs is the largest accepted Options.Logprobs.
const MaxLogprobs = 20

// Finish reasons reported in Result.FinishReason.
const (
	// FinishStop: an EOS id, a stop token or a stop string ended generation.
	FinishStop = "stop"
	// FinishLength: MaxTokens was reached or the cache is full.
	FinishLength = "length"
	// FinishCancelled: the context was cancelled or onText returned an error.
	FinishCancelled = "cancelled"
)

// TokenLogprob is one token with its log-probability.
type TokenLogprob struct {
	ID      int     // token id
	Logprob float32 // natural log of its probability
}

// LogprobEntry describes one generated token: its id and log-probability,
// and the most likely tokens at that position (best first, lowest id first
// on ties; the chosen token may or may not be among them).
type LogprobEntry struct {
	ID      int            // the generated token
	Logprob float32        // its log-probability
	Top     []TokenLogprob // the most likely tokens, best first
}

// Result is the outcome of a generation.
type Result struct {
	// PromptIDs are the tokens fed before generation (for GenerateWithCache,
	// only the new ones).
	PromptIDs []int
	// IDs are the generated tokens, without the EOS or stop token that
	// ended generation.
	IDs []int
	// Text is the generated text: the concatenation of every piece passed
	// to onText.
	Text string
	// FinishReason is FinishStop, FinishLength or FinishCancelled.
	FinishReason string
	// PromptTokens is len(PromptIDs).
	PromptTokens int
	// CachedTokens is the number of positions the cache already held before
	// PromptIDs were fed (0 for Generate). The model saw PromptTokens +
	// CachedTokens tokens of context before generating.
	CachedTokens int
	// CompletionTokens counts every token sampled: len(IDs), plus one when
	// an EOS or stop token ended generation.
	CompletionTokens int
	// PrefillDur is the time of the forward pass over the prompt;
	// DecodeDur the time of everything after it.
	PrefillDur, DecodeDur time.Duration
	// Logprobs has one entry per element of IDs when Options.Logprobs > 0.
	Logprobs []LogprobEntry
}

// TextStream turns generated token ids into text incrementally.
type TextStream interface {
	// Add takes the next id and returns the text that became complete,
	// valid UTF-8 with it (possibly "").
	Add(id int) string
	// Flush returns whatever is still held back at the end.
	Flush() string
}

// Tokenizer is what generation needs from a tokenizer: a fresh TextStream
// for each generation.
type Tokenizer interface {
	// NewTextStream returns a stream decoder; with skipSpecial, special
	// tokens produce no text.
	NewTextStream(skipSpecial bool) TextStream
}

// TokenizerFunc adapts a function to the Tokenizer interface.
type TokenizerFunc func(skipSpecial bool) TextStream

// NewTextStream calls f.
func (f TokenizerFunc) NewTextStream(skipSpecial bool) TextStream { return f(skipSpecial) }

// Generate feeds prompt to m in one batched forward pass over a fresh cache
// (of the model's maximum length) and then generates one token at a time
// until a stop condition: an EOS id (unless o.IgnoreEOS) or one of
// o.StopTokens, a stop string, o.MaxTokens, a full cache, cancellation of
// ctx, or onText returning an error.
//
// tok may be nil if no text is wanted (then o.Stop must be empty). onText,
// if not nil, receives the generated text as soon as it is valid UTF-8 and
// can no longer turn into a stop string; the pieces add up to Result.Text.
// When generation ends for any reason other than an onText error, the text
// still held back is passed to onText before Generate returns. The stream
// is first given the last prompt token, whose text is discarded, so that
// the generated text reads as it does inside the decoded full sequence (a
// leading space is kept after a word, dropped after BOS).
//
// Cancellation is not an error: Generate returns the partial Result with
// FinishReason "cancelled" and a nil error. When onText fails, Generate
// stops and returns the partial Result (FinishReason "cancelled") with that
// error. Other errors (a bad prompt, a failing forward pass) come with
// whatever Result was produced so far.
func Generate(ctx context.Context, m *model.Model, tok Tokenizer, prompt []int, o Options, onText func(string) error) (*Result, error) {
	if len(prompt) == 0 {
		return nil, errors.New("generate: empty prompt")
	}
	c := m.NewCache(0)
	return run(ctx, m, c, tok, nil, prompt, o, onText)
}

// GenerateWithCache is Generate on an existing cache: cache already holds
// a prefix (for example the earlier turns of a chat, or a shared system
// prompt) and newTokens, which must not be empty, are fed after it.
//
// On return the cache holds the prefix, newTokens and a leading part of
// Result.IDs: every generated token except the last one sampled, which was
// never fed to the model. (The EOS or stop token that ended generation is
// not in it either.) To continue, compute the full token sequence you want
// and feed what follows cache.Len(); Session does this bookkeeping.
//
// The repetition penalty sees only newTokens and the generated tokens,
// since the ids of the prefix are not known here (Session passes them).
func GenerateWithCache(ctx context.Context, m *model.Model, cache *model.Cache, tok Tokenizer, newTokens []int, o Options, onText func(string) error) (*Result, error) {
	if len(newTokens) == 0 {
		return nil, errors.New("generate: no new tokens to feed")
	}
	return run(ctx, m, cache, tok, nil, newTokens, o, onText)
}

// run is the generation loop. before holds the ids already in the cache
// (if known) for the repetition penalty.
func run(ctx context.Context, m *model.Model, cache *model.Cache, tok Tokenizer, before, prompt []int, o Options, onText func(string) error) (*Result, error) {
	if o.Logprobs < 0 || o.Logprobs > MaxLogprobs {
		return nil, fmt.Errorf("generate: logprobs %d outside [0,%d]", o.Logprobs, MaxLogprobs)
	}
	var stops []string
	for _, s := range o.Stop {
		if s != "" {
			stops = append(stops, s)
		}
	}
	if len(stops) > 0 && tok == nil {
		return nil, errors.New("generate: stop strings need a tokenizer")
	}
	if n := cache.Len() + len(prompt); n > cache.Max() {
		return nil, fmt.Errorf("generate: prompt of %d tokens after %d cached ones exceeds the context length %d", len(prompt), cache.Len(), cache.Max())
	}
	res := &Result{PromptIDs: prompt, PromptTokens: len(prompt), CachedTokens: cache.Len()}
	if ctx.Err() != nil {
		res.FinishReason = FinishCancelled
		return res, nil
	}

	cfg := &m.Config
	isStop := func(id int) bool {
		if !o.IgnoreEOS && cfg.IsEOS(id) {
			return true
		}
		for _, s := range o.StopTokens {
			if s == id {
				return true
			}
		}
		return false
	}
	sampler := NewSampler(o)
	room := cache.Max() - cache.Len() - len(prompt) + 1 // most tokens that can be sampled
	if o.MaxTokens > 0 {
		room = min(room, o.MaxTokens)
	}
	history := make([]int, 0, len(before)+len(prompt)+room)
	history = append(append(history, before...), prompt...)

	var stream TextStream
	filter := NewStopFilter(stops)
	var text []byte
	// emit passes s to onText and records it.
	emit := func(s string) error {
		if s == "" {
			return nil
		}
		text = append(text, s...)
		if onText != nil {
			return onText(s)
		}
		return nil
	}

	t0 := time.Now()
	logits, err := m.Forward(cache, prompt, false)
	res.PrefillDur = time.Since(t0)
	t1 := time.Now()
	finish := func(reason string, err error) (*Result, error) {
		res.FinishReason = reason
		if stream != nil && err == nil && !filter.Done() {
			// Generation is over: what was held back can be released.
			out, found := filter.Add(stream.Flush())
			if found {
				res.FinishReason = FinishStop
			} else {
				out += filter.Flush()
			}
			if e := emit(out); e != nil {
				res.FinishReason, err = FinishCancelled, e
			}
		}
		res.Text = string(text)
		res.DecodeDur = time.Since(t1)
		return res, err
	}
	if err != nil {
		return finish("", err)
	}
	if tok != nil {
		stream = tok.NewTextStream(o.SkipSpecial)
		// Prime the stream with the last prompt token and discard its text,
		// so that context-dependent decoding (a SentencePiece piece's leading
		// space is dropped at the start of a text or after BOS) comes out as
		// it would in the decoded full sequence.
		stream.Add(prompt[len(prompt)-1])
	}

	for {
		if ctx.Err() != nil {
			return finish(FinishCancelled, nil)
		}
		id := sampler.Sample(logits, history)
		res.CompletionTokens++
		if isStop(id) {
			return finish(FinishStop, nil)
		}
		res.IDs = append(res.IDs, id)
		history = append(history, id)
		if o.Logprobs > 0 {
			res.Logprobs = append(res.Logprobs, NewLogprobEntry(logits, id, o.Logprobs))
		}
		if stream != nil {
			out, found := filter.Add(stream.Add(id))
			if e := emit(out); e != nil {
				return finish(FinishCancelled, e)
			}
			if found {
				return finish(FinishStop, nil)
			}
		}
		if o.MaxTokens > 0 && len(res.IDs) >= o.MaxTokens {
			return finish(FinishLength, nil)
		}
		if cache.Len() >= cache.Max() {
			return finish(FinishLength, nil)
		}
		if ctx.Err() != nil {
			return finish(FinishCancelled, nil)
		}
		logits, err = m.Forward(cache, []int{id}, false)
		if err != nil {
			return finish("", err)
		}
	}
}
