package generate

import "strings"

// Reasoning tags: a reply that opens with ThinkOpen holds reasoning up to
// ThinkClose (the style-rewrite models of METHODS §3 are trained to write
// "<think>trace</think>" before the line).
const (
	ThinkOpen  = "<think>"
	ThinkClose = "</think>"
)

// ReasoningFilter removes a leading <think>…</think> block from text that
// arrives in pieces (a stream): it holds text back while it may still be
// the opening tag, drops everything up to the closing tag and the white
// space after it, and passes the rest through. Text that does not open
// with the tag (leading white space aside) is passed through unchanged.
// A reasoning block that never closes is dropped whole. The zero value is
// ready to use.
type ReasoningFilter struct {
	state int // 0 undecided, 1 in reasoning, 2 after it (skipping white space), 3 passing
	buf   string
}

// Feed takes the next piece of text and returns what may be shown now.
func (f *ReasoningFilter) Feed(s string) string {
	switch f.state {
	case 0:
		f.buf += s
		t := strings.TrimLeft(f.buf, " \t\r\n")
		switch {
		case strings.HasPrefix(t, ThinkOpen):
			f.state, f.buf = 1, ""
			return f.Feed(t[len(ThinkOpen):])
		case strings.HasPrefix(ThinkOpen, t):
			return "" // may still become the tag
		}
		out := f.buf
		f.state, f.buf = 3, ""
		return out
	case 1:
		f.buf += s
		if i := strings.Index(f.buf, ThinkClose); i >= 0 {
			rest := f.buf[i+len(ThinkClose):]
			f.state, f.buf = 2, ""
			return f.Feed(rest)
		}
		// Keep only what may be the start of the closing tag.
		if n := len(ThinkClose) - 1; len(f.buf) > n {
			f.buf = f.buf[len(f.buf)-n:]
		}
		return ""
	case 2:
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			return ""
		}
		f.state = 3
		return s
	}
	return s
}

// Flush ends the text and returns what was held back and turned out not
// to be reasoning (e.g. a reply that is only "<thi").
func (f *ReasoningFilter) Flush() string {
	out := ""
	if f.state == 0 {
		out = f.buf
	}
	f.buf = ""
	return out
}

// StripReasoning removes a leading <think>…</think> block (and the white
// space after it) from s; an unclosed block leaves "".
func StripReasoning(s string) string {
	var f ReasoningFilter
	return f.Feed(s) + f.Flush()
}
