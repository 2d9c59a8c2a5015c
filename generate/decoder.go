package generate

import (
	"errors"
	"fmt"

	"github.com/masque-ai/masque/model"
)

// Decoder is the decoding state machine of one sequence, shared by
// Generate and the serving engine, which run the model their own ways (one
// sequence over its cache; many sequences in one batch). Given the logits
// after each token fed, it samples the next token (Sampler, Constraint,
// penalties), checks the stop conditions (an EOS id unless IgnoreEOS, a
// stop token, a stop string, MaxTokens, a full cache), records the token's
// log-probability when asked, and turns the tokens into text that is
// released only once it is valid UTF-8 and can no longer become a stop
// string. A Decoder is not safe for concurrent use.
type Decoder struct {
	o        Options
	sampler  *Sampler
	isStop   func(int) bool
	cons     *constrained
	stream   TextStream // nil without a tokenizer
	filter   *StopFilter
	history  []int
	ids      []int
	sampled  int
	logprobs bool
	top      int
}

// Token is what one Decoder.Next produced.
type Token struct {
	// ID is the sampled token.
	ID int
	// StopToken reports that ID is an EOS or stop token: it ended
	// generation and is not part of the output (not in IDs, no text).
	StopToken bool
	// Text is the text that this token released (possibly "").
	Text string
	// Logprob is the token's entry when log-probabilities were asked for
	// (nil for a token that ended generation).
	Logprob *LogprobEntry
	// Finish is "" while generation goes on, else FinishStop or
	// FinishLength.
	Finish string
	// Flushed reports that generation ended and the text held back was
	// released: Tail is it (possibly ""), to be emitted after Text.
	Flushed bool
	Tail    string
}

// NewDecoder starts decoding after history, the ids the model has seen
// (for the repetition penalty; its last id primes the text stream, so that
// the generated text reads as it does inside the decoded full sequence).
// tok may be nil when no text is wanted (then o.Stop must hold no string).
// With logprobs, every token's entry is recorded with top alternatives
// (0 ≤ top ≤ MaxLogprobs). o.Logprobs is not read: Generate passes it as
// logprobs and top.
func NewDecoder(cfg *model.Config, tok Tokenizer, history []int, o Options, logprobs bool, top int) (*Decoder, error) {
	if top < 0 || top > MaxLogprobs {
		return nil, fmt.Errorf("generate: logprobs %d outside [0,%d]", top, MaxLogprobs)
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
	if len(history) == 0 {
		return nil, errors.New("generate: empty prompt")
	}
	stopToks := map[int]bool{}
	for _, id := range o.StopTokens {
		stopToks[id] = true
	}
	if !o.IgnoreEOS {
		for _, id := range cfg.EOS {
			stopToks[id] = true
		}
	}
	d := &Decoder{o: o, sampler: NewSampler(o), isStop: func(id int) bool { return stopToks[id] },
		filter: NewStopFilter(stops), logprobs: logprobs, top: top}
	d.history = append(make([]int, 0, len(history)+64), history...)
	if o.Constraint != nil {
		d.cons = newConstrained(o.Constraint, cfg.Vocab, d.isStop)
	}
	if tok != nil {
		d.stream = tok.NewTextStream(o.SkipSpecial)
		// Prime the stream with the last prompt token and discard its text,
		// so that context-dependent decoding (a SentencePiece piece's leading
		// space is dropped at the start of a text or after BOS) comes out as
		// it would in the decoded full sequence.
		d.stream.Add(history[len(history)-1])
	}
	return d, nil
}

// IDs are the generated tokens so far, without an EOS or stop token that
// ended generation. The slice belongs to the Decoder.
func (d *Decoder) IDs() []int { return d.ids }

// Sampled counts every token sampled: len(IDs), plus one when an EOS or
// stop token ended generation.
func (d *Decoder) Sampled() int { return d.sampled }

// Next samples the token that follows, given the logits of the last
// position fed; cacheFull reports that the cache has no room for another
// token (then generation ends with FinishLength after this one). After a
// Token with Finish set, or an error, the Decoder must not be used again.
func (d *Decoder) Next(logits []float32, cacheFull bool) (Token, error) {
	var id int
	if d.cons != nil {
		var err error
		if id, err = d.cons.sample(d.sampler, logits, d.history); err != nil {
			return Token{}, err
		}
	} else {
		id = d.sampler.Sample(logits, d.history)
	}
	d.sampled++
	t := Token{ID: id}
	if d.isStop(id) {
		t.StopToken = true
		d.end(&t, FinishStop)
		return t, nil
	}
	if d.cons != nil {
		if err := d.cons.state.Accept(id); err != nil {
			return t, fmt.Errorf("generate: constraint: %w", err)
		}
	}
	d.ids = append(d.ids, id)
	d.history = append(d.history, id)
	if d.logprobs {
		e := NewLogprobEntry(logits, id, d.top)
		t.Logprob = &e
	}
	found := false
	if d.stream != nil {
		t.Text, found = d.filter.Add(d.stream.Add(id))
	}
	switch {
	case found:
		t.Finish = FinishStop // the stop string ended it: nothing held back
	case d.o.MaxTokens > 0 && len(d.ids) >= d.o.MaxTokens, cacheFull:
		d.end(&t, FinishLength)
	}
	return t, nil
}

// end finishes t with reason, releasing the text held back.
func (d *Decoder) end(t *Token, reason string) {
	t.Finish = reason
	tail, found, ok := d.Flush()
	if ok {
		t.Flushed, t.Tail = true, tail
		if found {
			t.Finish = FinishStop
		}
	}
}

// Flush releases the text held back when generation ends for a reason the
// Decoder does not see (cancellation): ok is false when there is nothing to
// release (no tokenizer, or a stop string already ended the text); found
// reports that the held text completed a stop string (out is then the
// text before it, and the finish reason is FinishStop).
func (d *Decoder) Flush() (out string, found, ok bool) {
	if d.stream == nil || d.filter.Done() {
		return "", false, false
	}
	out, found = d.filter.Add(d.stream.Flush())
	if !found {
		out += d.filter.Flush()
	}
	return out, found, true
}
