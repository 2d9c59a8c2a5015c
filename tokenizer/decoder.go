package tokenizer

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Decoding runs the token strings through a chain of streaming stages that follow the
// Hugging Face `tokenizers` decoders exactly. Each stage receives pieces of text; start
// marks the first piece of a new token (the piece may be empty), so that stages whose
// semantics depend on token boundaries (Strip, Metaspace) behave exactly as the batch
// decoder does.

type emitFunc func(s string, start bool)

type stage interface {
	push(s string, start bool, emit emitFunc)
	end(emit emitFunc)
}

// decoderSpec creates a fresh stage for each decoding.
type decoderSpec func() stage

type decJSON struct {
	Type           string            `json:"type"`
	Decoders       []json.RawMessage `json:"decoders"`
	Pattern        *patternJSON      `json:"pattern"`
	Content        *string           `json:"content"`
	Start          *int              `json:"start"`
	Stop           *int              `json:"stop"`
	Replacement    *string           `json:"replacement"`
	PrependScheme  *string           `json:"prepend_scheme"`
	Split          *bool             `json:"split"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
}

func parseDecoder(raw json.RawMessage, perr func(string, ...any) error) ([]decoderSpec, error) {
	return parseDec(raw, perr, 0)
}

func parseDec(raw json.RawMessage, perr func(string, ...any) error, depth int) ([]decoderSpec, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > 32 {
		return nil, perr("decoder nested too deeply")
	}
	var d decJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, perr("bad decoder: %v", err)
	}
	switch d.Type {
	case "Sequence":
		var list []decoderSpec
		for _, sub := range d.Decoders {
			s, err := parseDec(sub, perr, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, s...)
		}
		return list, nil
	case "ByteLevel":
		return []decoderSpec{func() stage { return &byteLevelStage{} }}, nil
	case "ByteFallback":
		return []decoderSpec{func() stage { return &byteFallbackStage{} }}, nil
	case "Fuse":
		return []decoderSpec{func() stage { return &fuseStage{} }}, nil
	case "Replace":
		f, err := parseReplace(d.Pattern, d.Content)
		if err != nil {
			return nil, perr("decoder Replace: %v", err)
		}
		return []decoderSpec{func() stage { return replaceStage(f) }}, nil
	case "Strip":
		if d.Content == nil || utf8.RuneCountInString(*d.Content) != 1 {
			return nil, perr("decoder Strip: \"content\" must be one character")
		}
		c, _ := utf8.DecodeRuneInString(*d.Content)
		start, stop := 0, 0
		if d.Start != nil {
			start = *d.Start
		}
		if d.Stop != nil {
			stop = *d.Stop
		}
		if start < 0 || stop < 0 {
			return nil, perr("decoder Strip: negative start/stop")
		}
		return []decoderSpec{func() stage { return &stripStage{content: c, start: start, stop: stop} }}, nil
	case "Metaspace":
		m, err := parseMetaspace(&preJSON{Replacement: d.Replacement, PrependScheme: d.PrependScheme,
			Split: d.Split, AddPrefixSpace: d.AddPrefixSpace}, perr)
		if err != nil {
			return nil, perr("decoder %v", err)
		}
		return []decoderSpec{func() stage {
			return &metaspaceStage{repl: m.repl, dropFirst: m.prepend != "never", idx: -1}
		}}, nil
	case "":
		return nil, perr("decoder has no \"type\"")
	default:
		return nil, perr("unsupported decoder type %q", d.Type)
	}
}

// ---- stages ----

// replaceStage applies a string replacement to each piece.
type replaceStage func(string) string

func (f replaceStage) push(s string, start bool, emit emitFunc) { emit(f(s), start) }
func (f replaceStage) end(emitFunc)                             {}

// utf8Buf accumulates raw bytes and releases complete UTF-8 text.
type utf8Buf struct {
	pending []byte
	out     []byte
}

// add appends bytes and returns the decodable text (holding back an incomplete tail).
func (u *utf8Buf) add(b []byte) string {
	u.pending = append(u.pending, b...)
	var rest []byte
	u.out, rest = lossyUTF8(u.out[:0], u.pending, false)
	u.pending = append(u.pending[:0], rest...)
	return string(u.out)
}

// flush returns the replacement text for an incomplete tail, if any.
func (u *utf8Buf) flush() string {
	if len(u.pending) == 0 {
		return ""
	}
	u.out, _ = lossyUTF8(u.out[:0], u.pending, true)
	u.pending = u.pending[:0]
	return string(u.out)
}

// byteLevelStage maps byte-level characters back to bytes (a token with a character
// outside the alphabet gives its own UTF-8 bytes) and decodes all the bytes as one
// UTF-8 text, invalid sequences becoming U+FFFD; an incomplete sequence is held back
// until the next bytes arrive. As in Hugging Face, the output is a single token.
type byteLevelStage struct {
	buf     utf8Buf
	started bool
	tmp     []byte
}

func (b *byteLevelStage) push(s string, start bool, emit emitFunc) {
	b.tmp = byteLevelDecode(b.tmp[:0], s)
	out := b.buf.add(b.tmp)
	if out != "" || !b.started {
		emit(out, !b.started)
		b.started = true
	}
}

func (b *byteLevelStage) end(emit emitFunc) {
	if s := b.buf.flush(); s != "" {
		emit(s, !b.started)
		b.started = true
	}
}

// parseByteToken recognises "<0xNN>".
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexVal(s[3])
	lo, ok2 := hexVal(s[4])
	if !ok1 || !ok2 {
		return 0, false
	}
	return hi<<4 | lo, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// byteFallbackStage turns each run of <0xNN> tokens into one token: the run's text
// when its bytes are valid UTF-8, otherwise one U+FFFD per byte (as Hugging Face does).
// A run is therefore held back until it ends.
type byteFallbackStage struct {
	group []byte
	in    bool
}

func (b *byteFallbackStage) push(s string, start bool, emit emitFunc) {
	if start {
		if c, ok := parseByteToken(s); ok {
			b.group = append(b.group, c)
			b.in = true
			return
		}
	}
	b.closeGroup(emit)
	emit(s, start)
}

func (b *byteFallbackStage) closeGroup(emit emitFunc) {
	if !b.in {
		return
	}
	if utf8.Valid(b.group) {
		emit(string(b.group), true)
	} else {
		emit(strings.Repeat("\uFFFD", len(b.group)), true)
	}
	b.group = b.group[:0]
	b.in = false
}

func (b *byteFallbackStage) end(emit emitFunc) { b.closeGroup(emit) }

// fuseStage joins all tokens into one.
type fuseStage struct{ started bool }

func (f *fuseStage) push(s string, start bool, emit emitFunc) {
	emit(s, !f.started)
	f.started = true
}
func (f *fuseStage) end(emitFunc) {}

// stripStage removes up to start leading and stop trailing content characters of each
// token. Trailing candidates are held back until the token is known to continue.
type stripStage struct {
	content     rune
	start, stop int
	lead        int // leading characters examined in the current token
	leadDone    bool
	held        []byte // trailing content characters held back
	heldN       int
	pendStart   bool // the current token's start has not been emitted yet
}

func (st *stripStage) push(s string, start bool, emit emitFunc) {
	if start {
		st.closeToken()
		st.lead = 0
		st.leadDone = st.start == 0
		st.pendStart = true
	}
	var out []byte
	for _, r := range s {
		if !st.leadDone {
			if st.lead < st.start && r == st.content {
				st.lead++
				if st.lead >= st.start {
					st.leadDone = true
				}
				continue
			}
			st.leadDone = true
		}
		if st.stop > 0 && r == st.content {
			st.held = utf8.AppendRune(st.held, r)
			st.heldN++
			if st.heldN > st.stop {
				// The oldest held character can no longer be trailing-stripped.
				_, n := utf8.DecodeRune(st.held)
				out = append(out, st.held[:n]...)
				st.held = st.held[n:]
				st.heldN--
			}
			continue
		}
		out = append(out, st.held...)
		st.held = st.held[:0]
		st.heldN = 0
		out = utf8.AppendRune(out, r)
	}
	if len(out) > 0 || st.pendStart {
		emit(string(out), st.pendStart)
		st.pendStart = false
	}
}

func (st *stripStage) closeToken() {
	st.held = st.held[:0]
	st.heldN = 0
}

func (st *stripStage) end(emitFunc) { st.closeToken() }

// metaspaceStage replaces the replacement character with a space; in the first token
// every replacement character is dropped (unless prepend_scheme is "never").
type metaspaceStage struct {
	repl      rune
	dropFirst bool
	idx       int
}

func (m *metaspaceStage) push(s string, start bool, emit emitFunc) {
	if start {
		m.idx++
	}
	if strings.ContainsRune(s, m.repl) {
		if m.idx == 0 && m.dropFirst {
			s = strings.ReplaceAll(s, string(m.repl), "")
		} else {
			s = strings.ReplaceAll(s, string(m.repl), " ")
		}
	}
	emit(s, start)
}
func (m *metaspaceStage) end(emitFunc) {}

// ---- clean_up_tokenization_spaces ----

var cleanupReplacer = []struct{ from, to string }{
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
	{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}

// cleanupSpaces applies the transformers clean_up_tokenization rules.
func cleanupSpaces(s string) string {
	if !strings.Contains(s, " ") {
		return s
	}
	for _, r := range cleanupReplacer {
		s = strings.ReplaceAll(s, r.from, r.to)
	}
	return s
}

func isCleanupByte(c byte) bool {
	switch c {
	case ' ', '.', '?', '!', ',', '\'', 'n', 't', 'm', 's', 'v', 'e', 'r':
		return true
	}
	return false
}

// cleanupCut returns the largest prefix length c of s such that cleaning s[:c] and
// the rest separately gives the same result as cleaning the whole, whatever text is
// appended later. A pattern occurrence (in any replacement pass) that crosses c starts
// with a space and consists of pattern characters, so c is safe when the run of
// pattern characters that ends at c-1 has no space.
func cleanupCut(s string) int {
	j := len(s)
	for j > 0 && isCleanupByte(s[j-1]) {
		j--
	}
	if k := strings.IndexByte(s[j:], ' '); k >= 0 {
		return j + k
	}
	return len(s)
}
