package tokenizer

// StreamDecoder turns ids into text one id at a time, for streaming generation.
// The concatenation of everything returned by Add and Flush equals
// Decode(all ids, skipSpecial). Text is returned as soon as it is final: partial UTF-8
// sequences from byte tokens are held back until complete, and with
// clean_up_tokenization_spaces a trailing space that a later token could remove is held
// back too. A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	stages      []stage
	emits       []emitFunc
	out         []byte
	firstTok    bool // no token has been emitted yet (no-decoder join)

	clean []byte // text held back for clean_up_tokenization_spaces

	// llama2.c
	prevID int
	l2cBuf utf8Buf
}

// NewStreamDecoder returns a decoder that starts at the beginning of a sequence.
// skipSpecial drops special tokens, as in Decode.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	d := &StreamDecoder{t: t, skipSpecial: skipSpecial}
	d.reset()
	return d
}

// reset prepares the decoder for a new sequence.
func (d *StreamDecoder) reset() {
	t := d.t
	d.firstTok, d.prevID = true, -1
	d.clean = d.clean[:0]
	d.l2cBuf = utf8Buf{}
	if t.l2c != nil {
		return
	}
	d.stages = make([]stage, len(t.decoder))
	for i, spec := range t.decoder {
		d.stages[i] = spec()
	}
	d.emits = make([]emitFunc, len(d.stages)+1)
	d.emits[len(d.stages)] = func(s string, start bool) { d.out = append(d.out, s...) }
	for i := len(d.stages) - 1; i >= 0; i-- {
		st, next := d.stages[i], d.emits[i+1]
		d.emits[i] = func(s string, start bool) { st.push(s, start, next) }
	}
}

// Add feeds one id and returns the text that became final with it (possibly "").
func (d *StreamDecoder) Add(id int) string {
	t := d.t
	if t.l2c != nil {
		return d.addL2C(id)
	}
	d.out = d.out[:0]
	if tok, ok := d.token(id); ok {
		d.push(tok)
	}
	return d.finish(false)
}

// token returns the string of id, or false when the id is skipped.
func (d *StreamDecoder) token(id int) (string, bool) {
	t := d.t
	if id < 0 || id >= len(t.idToTok) || (d.skipSpecial && t.special[id]) {
		return "", false
	}
	tok := t.idToTok[id]
	return tok, tok != "" // "" is an unused id
}

// addToken feeds one token string through the decoder chain.
func (d *StreamDecoder) addToken(tok string) string {
	d.out = d.out[:0]
	d.push(tok)
	return d.finish(false)
}

// push runs one token through the decoder chain, appending the output to d.out.
func (d *StreamDecoder) push(tok string) {
	if d.t.noDecoder {
		if !d.firstTok {
			d.out = append(d.out, ' ')
		}
		d.out = append(d.out, tok...)
	} else {
		d.emits[0](tok, true)
	}
	d.firstTok = false
}

// decodeAll decodes a whole sequence (the batch form of Add... Flush).
func (d *StreamDecoder) decodeAll(ids []int) string {
	d.out = d.out[:0]
	for _, id := range ids {
		if tok, ok := d.token(id); ok {
			d.push(tok)
		}
	}
	for i, st := range d.stages {
		st.end(d.emits[i+1])
	}
	s := string(d.out)
	if d.t.cleanup {
		s = cleanupSpaces(s)
	}
	return s
}

// Flush ends the sequence and returns any text still held back (incomplete UTF-8
// becomes U+FFFD). The decoder can then be reused for a new sequence.
func (d *StreamDecoder) Flush() string {
	t := d.t
	if t.l2c != nil {
		s := d.l2cBuf.flush()
		d.reset()
		return s
	}
	d.out = d.out[:0]
	for i, st := range d.stages {
		st.end(d.emits[i+1])
	}
	s := d.finish(true)
	d.reset()
	return s
}

// finish applies clean_up_tokenization_spaces (holding back what may still change).
func (d *StreamDecoder) finish(final bool) string {
	if !d.t.cleanup {
		return string(d.out)
	}
	d.clean = append(d.clean, d.out...)
	c := len(d.clean)
	if !final {
		c = cleanupCut(string(d.clean))
	}
	if c == 0 {
		return ""
	}
	s := cleanupSpaces(string(d.clean[:c]))
	d.clean = append(d.clean[:0], d.clean[c:]...)
	return s
}
