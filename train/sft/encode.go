package sft

import (
	"fmt"
	"strings"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/tokenizer"
	"github.com/masque-ai/masque/train"
)

// Encoder renders conversations with a chat template and tokenizes them
// with per-token byte offsets, so that the loss can be restricted to the
// assistant's content.
type Encoder struct {
	Template  *chattemplate.Template
	Tokenizer *tokenizer.Tokenizer
	// Options are the template options (bos_token, eos_token, extra
	// variables); AddGenerationPrompt is always false.
	Options chattemplate.Options
	// BOS, if ≥ 0, is prepended as a token (for templates that do not
	// write the BOS themselves, such as the ChatML fallback of a llama2.c
	// model).
	BOS int
	// EndOfTurn also trains the token that follows each assistant content
	// when it is a special token (<|im_end|>, <|eot_id|>, </s>, …), so the
	// model learns to stop.
	EndOfTurn bool
	// LastTurnOnly puts the loss on the last assistant turn only.
	LastTurnOnly bool
}

// NewEncoder makes an encoder from a model's chat template and tokenizer
// (as checkpoint.Open provides them): the template variables bos_token and
// eos_token come from cfg (tokenizer_config.json; nil: from the tokenizer),
// and when the model has no template of its own (ownTemplate false: the
// ChatML fallback, which writes no BOS) the tokenizer's BOS is prepended.
func NewEncoder(tpl *chattemplate.Template, tok *tokenizer.Tokenizer, cfg *chattemplate.Config, ownTemplate bool) *Encoder {
	e := &Encoder{Template: tpl, Tokenizer: tok, BOS: -1, EndOfTurn: true}
	if cfg != nil {
		e.Options.BOSToken, e.Options.EOSToken = cfg.BOSToken, cfg.EOSToken
	} else if tok != nil {
		e.Options.BOSToken, e.Options.EOSToken = tok.BOSToken(), tok.EOSToken()
	}
	if !ownTemplate && tok != nil {
		if id, ok := tok.BOS(); ok {
			e.BOS = id
		}
	}
	return e
}

// Encoded is one tokenized conversation.
type Encoded struct {
	Seq train.Sequence
	// Text is the rendered conversation.
	Text string
	// Assistant[i] reports whether token i is trained on (it is the target
	// of position i−1).
	Assistant []bool
	// Aligned is false when the tokenizer's decoding could not be aligned
	// with the text and the segments were tokenized separately.
	Aligned bool
}

// Encode renders and tokenizes msgs and builds the next-token targets:
// target[i] = token[i+1] where token i+1 belongs to an assistant content
// (or is its end-of-turn token), IgnoreIndex elsewhere.
func (e *Encoder) Encode(msgs []chattemplate.Message) (*Encoded, error) {
	opt := e.Options
	opt.AddGenerationPrompt = false
	text, spans, err := e.Template.RenderSpans(msgs, opt)
	if err != nil {
		return nil, err
	}
	last := -1
	for i, m := range msgs {
		if m.Role == "assistant" {
			last = i
		}
	}
	var sel []chattemplate.Span
	for _, sp := range spans {
		if sp.Message >= 0 && sp.Message < len(msgs) && msgs[sp.Message].Role == "assistant" && (!e.LastTurnOnly || sp.Message == last) && sp.End > sp.Start {
			sel = append(sel, sp)
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("the chat template rendered no assistant content")
	}
	ids, starts, ends, aligned := e.tokenize(text, sel)
	if e.BOS >= 0 {
		ids = append([]int{e.BOS}, ids...)
		starts = append([]int{0}, starts...)
		ends = append([]int{0}, ends...)
	}
	in := make([]bool, len(ids))
	for i := range ids {
		for _, sp := range sel {
			if ends[i] > starts[i] {
				if starts[i] < sp.End && ends[i] > sp.Start {
					in[i] = true
				}
			} else if starts[i] >= sp.Start && starts[i] < sp.End {
				in[i] = true
			}
		}
	}
	if e.EndOfTurn {
		for i := len(ids) - 1; i > 0; i-- {
			if in[i-1] && !in[i] && e.Tokenizer.IsSpecial(ids[i]) {
				in[i] = true
			}
		}
	}
	tg := make([]int, len(ids))
	for i := range tg {
		tg[i] = train.IgnoreIndex
		if i+1 < len(ids) && in[i+1] {
			tg[i] = ids[i+1]
		}
	}
	return &Encoded{Seq: train.Sequence{Tokens: ids, Targets: tg}, Text: text, Assistant: in, Aligned: aligned}, nil
}

// tokenize encodes text and returns each token's byte range in text. It
// decodes the ids back one at a time (a streaming decoder) and aligns the
// decoded text with the original; where they cannot be aligned (a decoder
// that rewrites the text beyond spaces), it falls back to encoding the text
// in pieces cut at the span boundaries, whose ranges are then exact.
func (e *Encoder) tokenize(text string, spans []chattemplate.Span) (ids, starts, ends []int, aligned bool) {
	ids = e.Tokenizer.Encode(text, false)
	if s, en, ok := offsets(e.Tokenizer, ids, text); ok {
		return ids, s, en, true
	}
	cuts := []int{0}
	for _, sp := range spans {
		cuts = append(cuts, sp.Start, sp.End)
	}
	cuts = append(cuts, len(text))
	ids, starts, ends = nil, nil, nil
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], cuts[i+1]
		if b <= a {
			continue
		}
		piece := e.Tokenizer.Encode(text[a:b], false)
		for range piece {
			starts = append(starts, a)
			ends = append(ends, b)
		}
		ids = append(ids, piece...)
	}
	return ids, starts, ends, false
}

// offsets returns the byte range in text of every id, by stream-decoding
// the ids and aligning the decoded text with text, allowing the decoder to
// add or drop spaces (a leading space of SentencePiece, clean-up of spaces
// before punctuation) and to prefix text (a decoded BOS).
func offsets(tok *tokenizer.Tokenizer, ids []int, text string) (starts, ends []int, ok bool) {
	d := tok.NewStreamDecoder(false)
	var dec strings.Builder
	dend := make([]int, len(ids)) // end of each token in the decoded text
	for i, id := range ids {
		dec.WriteString(d.Add(id))
		dend[i] = dec.Len()
	}
	dec.WriteString(d.Flush())
	D := dec.String()
	// Map decoded byte positions to text positions.
	pos := make([]int, len(D)+1)
	i, j := 0, 0
	if shift := len(D) - len(text); shift > 0 && strings.HasSuffix(D, text) {
		for ; i < shift; i++ {
			pos[i] = 0
		}
	}
	for i < len(D) {
		switch {
		case j < len(text) && D[i] == text[j]:
			pos[i] = j
			i++
			j++
		case D[i] == ' ':
			pos[i] = j
			i++
		case j < len(text) && text[j] == ' ':
			j++
		default:
			return nil, nil, false
		}
	}
	for j < len(text) && text[j] == ' ' {
		j++
	}
	if j != len(text) {
		return nil, nil, false
	}
	pos[len(D)] = len(text)
	starts, ends = make([]int, len(ids)), make([]int, len(ids))
	prev := 0
	for k := range ids {
		e := min(dend[k], len(D))
		starts[k], ends[k] = pos[prev], pos[e]
		if e == len(D) {
			ends[k] = len(text)
		}
		prev = e
	}
	return starts, ends, true
}
