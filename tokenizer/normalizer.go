package tokenizer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// normalizer transforms a piece of input text before pre-tokenization.
type normalizer func(s string) string

type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

type normJSON struct {
	Type        string            `json:"type"`
	Normalizers []json.RawMessage `json:"normalizers"`
	Prepend     *string           `json:"prepend"`
	Pattern     *patternJSON      `json:"pattern"`
	Content     *string           `json:"content"`
	StripLeft   *bool             `json:"strip_left"`
	StripRight  *bool             `json:"strip_right"`
}

func parseNormalizer(raw json.RawMessage, perr func(string, ...any) error) (normalizer, error) {
	return parseNorm(raw, perr, 0)
}

func parseNorm(raw json.RawMessage, perr func(string, ...any) error, depth int) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > 32 {
		return nil, perr("normalizer nested too deeply")
	}
	var n normJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, perr("bad normalizer: %v", err)
	}
	switch n.Type {
	case "Sequence":
		var list []normalizer
		for _, sub := range n.Normalizers {
			f, err := parseNorm(sub, perr, depth+1)
			if err != nil {
				return nil, err
			}
			if f != nil {
				list = append(list, f)
			}
		}
		if len(list) == 0 {
			return nil, nil
		}
		return func(s string) string {
			for _, f := range list {
				s = f(s)
			}
			return s
		}, nil
	case "NFC":
		return func(s string) string { return norm.NFC.String(s) }, nil
	case "NFD":
		return func(s string) string { return norm.NFD.String(s) }, nil
	case "NFKC":
		return func(s string) string { return norm.NFKC.String(s) }, nil
	case "NFKD":
		return func(s string) string { return norm.NFKD.String(s) }, nil
	case "Lowercase":
		return lowercase, nil
	case "Prepend":
		if n.Prepend == nil {
			return nil, perr("normalizer Prepend: missing \"prepend\"")
		}
		p := *n.Prepend
		return func(s string) string {
			if s == "" {
				return s
			}
			return p + s
		}, nil
	case "Replace":
		r, err := parseReplace(n.Pattern, n.Content)
		if err != nil {
			return nil, perr("normalizer Replace: %v", err)
		}
		return r, nil
	case "Strip":
		left, right := true, true
		if n.StripLeft != nil {
			left = *n.StripLeft
		}
		if n.StripRight != nil {
			right = *n.StripRight
		}
		return func(s string) string {
			if left {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if right {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}, nil
	case "StripAccents":
		return func(s string) string {
			return strings.Map(func(r rune) rune {
				if unicode.Is(unicode.Mn, r) {
					return -1
				}
				return r
			}, s)
		}, nil
	case "":
		return nil, perr("normalizer has no \"type\"")
	default:
		return nil, perr("unsupported normalizer type %q", n.Type)
	}
}

// lowercase maps each character to its full lowercase form, character by character
// (as Rust's char::to_lowercase does; no context-dependent final sigma).
func lowercase(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == '\u0130' { // İ has a two-character lowercase form
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// parseReplace builds a replace-all function for a Replace normalizer or decoder.
func parseReplace(p *patternJSON, content *string) (func(string) string, error) {
	if p == nil || content == nil {
		return nil, fmt.Errorf("missing \"pattern\" or \"content\"")
	}
	c := *content
	switch {
	case p.String != nil:
		pat := *p.String
		if pat == "" {
			return func(s string) string { return s }, nil
		}
		return func(s string) string { return strings.ReplaceAll(s, pat, c) }, nil
	case p.Regex != nil:
		re, err := compileRegex(*p.Regex)
		if err != nil {
			return nil, err
		}
		return func(s string) string {
			spans := re.find(s)
			if len(spans) == 0 {
				return s
			}
			var b strings.Builder
			prev := 0
			for _, sp := range spans {
				b.WriteString(s[prev:sp[0]])
				b.WriteString(c)
				prev = sp[1]
			}
			b.WriteString(s[prev:])
			return b.String()
		}, nil
	}
	return nil, fmt.Errorf("pattern needs \"String\" or \"Regex\"")
}

// regex wraps a tokenizer pattern and returns match spans as byte offsets.
// The common tokenizer split patterns have hand-written matchers; other
// patterns run on Go's regexp, which takes linear time, when their meaning
// is the same there (see linearPattern), and on regexp2 (a backtracking
// .NET-compatible engine, as Hugging Face's Oniguruma) otherwise, with a
// match timeout (RegexTimeout).
type regex struct {
	pattern string
	re      *regexp2.Regexp
	lin     *regexp.Regexp            // Go's linear-time engine, for patterns that mean the same there
	fast    func(s string, i int) int // returns the end of the match at i (> i), or -1
}

// RegexTimeout bounds the time of one regexp2 match (patterns that need
// backtracking: lookarounds, backreferences, …). A pattern that takes
// longer (catastrophic backtracking, such as (a+)+$ on a long run of a's)
// makes EncodeChecked fail with a *RegexTimeoutError. It is read when a
// tokenizer is loaded.
var RegexTimeout = 2 * time.Second

// RegexTimeoutError says that a tokenizer pattern took longer than
// RegexTimeout on a text.
type RegexTimeoutError struct {
	Pattern string        // the pattern (truncated to 200 bytes)
	TextLen int           // the length of the text it ran on, in bytes
	Timeout time.Duration // the timeout it exceeded
}

func (e *RegexTimeoutError) Error() string {
	return fmt.Sprintf("tokenizer: the regex %q exceeded its match timeout of %v on a text of %d bytes (catastrophic backtracking: the tokenizer's pattern is unsafe for this input)", e.Pattern, e.Timeout, e.TextLen)
}

func compileRegex(pattern string) (*regex, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("bad regex %q: %v", truncate(pattern, 200), err)
	}
	re.MatchTimeout = RegexTimeout
	r := &regex{pattern: pattern, re: re, fast: fastSplitter(pattern)}
	if r.fast == nil && linearPattern(pattern) {
		if lin, err := regexp.Compile(pattern); err == nil {
			r.lin = lin
		}
	}
	return r, nil
}

// linearPattern reports whether pattern means the same in Go's regexp
// syntax as in .NET's: it uses no lookarounds, backreferences, named or
// flag groups, anchors at line ends ($, \Z, \G), word boundaries, class
// subtraction, or the shorthand classes \d \w \s (ASCII in Go, Unicode in
// .NET). Patterns that Go cannot compile are refused by the caller.
func linearPattern(p string) bool {
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			if i+1 >= len(p) {
				return false
			}
			i++
			if strings.IndexByte("dDwWsSbBZGk0123456789", p[i]) >= 0 {
				return false
			}
		case inClass:
			switch {
			case c == '[' && i > 0 && p[i-1] == '-':
				return false // .NET class subtraction [a-z-[aeiou]]
			case c == '[':
				return false // Go's [[:alpha:]] and nested brackets
			case c == ']':
				inClass = false
			}
		case c == '[':
			inClass = true
			if i+1 < len(p) && p[i+1] == '^' {
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				i++ // a leading ] is a literal in both
			}
		case c == '$':
			return false // .NET: end or before a final newline
		case c == '(' && i+1 < len(p) && p[i+1] == '?':
			if i+2 >= len(p) || p[i+2] != ':' {
				return false // lookarounds, named groups, atomic groups, flags
			}
		}
	}
	return !inClass
}

// find returns the [start, end) byte spans of all non-overlapping matches
// in s. A regexp2 match that exceeds RegexTimeout panics with a
// *RegexTimeoutError, which EncodeChecked (and the other entry points)
// recover: the pipeline that calls find has no error path.
func (r *regex) find(s string) [][2]int {
	spans, err := r.findErr(s)
	if err != nil {
		panic(err)
	}
	return spans
}

// findErr is find with the timeout as an error (the spans found before it
// come back too).
func (r *regex) findErr(s string) ([][2]int, error) {
	if r.fast != nil {
		out := make([][2]int, 0, len(s)/4+1)
		for i := 0; i < len(s); {
			e := r.fast(s, i)
			if e > i {
				out = append(out, [2]int{i, e})
				i = e
				continue
			}
			_, n := decodeRune(s, i)
			i += n
		}
		return out, nil
	}
	if r.lin != nil {
		var out [][2]int
		for _, m := range r.lin.FindAllStringIndex(s, -1) {
			if m[1] > m[0] {
				out = append(out, [2]int{m[0], m[1]})
			}
		}
		return out, nil
	}
	return r.findSlowErr(s)
}

// findSlow is findSlowErr without the error (the spans found before a
// timeout), for tests comparing engines.
func (r *regex) findSlow(s string) [][2]int {
	out, _ := r.findSlowErr(s)
	return out
}

// findSlowErr runs the pattern on regexp2.
func (r *regex) findSlowErr(s string) ([][2]int, error) {
	runes := []rune(s)
	// byte offset of each rune index (plus the end).
	offs := make([]int, 0, len(runes)+1)
	for i := range s {
		offs = append(offs, i)
	}
	offs = append(offs, len(s))
	if len(offs) != len(runes)+1 {
		return nil, nil // cannot happen for valid UTF-8
	}
	var out [][2]int
	m, err := r.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		a, b := m.Index, m.Index+m.Length
		if a < 0 || b > len(runes) || a > b {
			break
		}
		if b > a {
			out = append(out, [2]int{offs[a], offs[b]})
		}
		m, err = r.re.FindNextMatch(m)
	}
	if err != nil {
		return out, &RegexTimeoutError{Pattern: truncate(r.pattern, 200), TextLen: len(s), Timeout: r.re.MatchTimeout}
	}
	return out, nil
}
