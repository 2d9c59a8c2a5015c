package tokenizer

import "unicode"

// Hand-written matchers for the split regexes used by most byte-level BPE tokenizers.
// They give exactly the same matches as the regexp2 engine (tests compare them on
// random and real text) but are much faster. Unknown patterns use regexp2.

const (
	// cl100kPattern is the Llama 3 (tiktoken cl100k) pre-tokenizer regex.
	cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// qwenPattern is the Qwen2/2.5/3 pre-tokenizer regex (single digits).
	qwenPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func fastSplitter(pattern string) func(s string, i int) int {
	switch pattern {
	case cl100kPattern:
		return func(s string, i int) int { return matchCL100k(s, i, 3) }
	case qwenPattern:
		return func(s string, i int) int { return matchCL100k(s, i, 1) }
	case gpt2Pattern:
		return matchGPT2
	}
	return nil
}

func isL(r rune) bool { return unicode.IsLetter(r) }
func isN(r rune) bool { return unicode.IsNumber(r) }
func isS(r rune) bool { return unicode.IsSpace(r) }

// isP is [^\s\p{L}\p{N}].
func isP(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }

func isNL(r rune) bool { return r == '\r' || r == '\n' }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at s[i] == '\”; fold enables ASCII
// case-insensitive matching. It returns the end or -1.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) {
		return -1
	}
	c1 := s[i+1]
	if fold {
		c1 = lower(c1)
	}
	switch c1 {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r', 'v', 'l':
		if i+2 >= len(s) {
			return -1
		}
		c2 := s[i+2]
		if fold {
			c2 = lower(c2)
		}
		if (c1 == 'r' || c1 == 'v') && c2 == 'e' || c1 == 'l' && c2 == 'l' {
			return i + 3
		}
	}
	return -1
}

// run returns the end of the longest run of characters satisfying pred from j,
// consuming at most max characters (max <= 0: unlimited).
func run(s string, j int, pred func(rune) bool, max int) int {
	n := 0
	for j < len(s) && (max <= 0 || n < max) {
		r, w := decodeRune(s, j)
		if !pred(r) {
			break
		}
		j += w
		n++
	}
	return j
}

// matchWhitespace handles the whitespace alternatives at s[i] (a whitespace char):
// optionally `\s*[\r\n]+`, then `\s+(?!\S)`, then `\s+`.
func matchWhitespace(s string, i int, newlineAlt bool) int {
	e := i
	lastNL := -1
	lastStart := i
	for e < len(s) {
		r, w := decodeRune(s, e)
		if !isS(r) {
			break
		}
		if isNL(r) {
			lastNL = e
		}
		lastStart = e
		e += w
	}
	if newlineAlt && lastNL >= 0 {
		return lastNL + 1
	}
	if e == len(s) {
		return e
	}
	if lastStart > i {
		return lastStart
	}
	return e
}

// matchCL100k matches the Llama 3 / Qwen pattern at s[i]; digits is the maximum
// digit-run length (3 for Llama 3, 1 for Qwen).
func matchCL100k(s string, i int, digits int) int {
	r, n := decodeRune(s, i)
	if r == '\'' {
		if e := contraction(s, i, true); e > 0 {
			return e
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r) {
		return run(s, i+n, isL, 0)
	}
	if !isNL(r) && !isN(r) && i+n < len(s) {
		if r2, n2 := decodeRune(s, i+n); isL(r2) {
			return run(s, i+n+n2, isL, 0)
		}
	}
	// \p{N}{1,digits}
	if isN(r) {
		return run(s, i, isN, digits)
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	if r == ' ' && i+1 < len(s) {
		if r2, n2 := decodeRune(s, i+1); isP(r2) {
			return run(s, run(s, i+1+n2, isP, 0), isNL, 0)
		}
	}
	if isP(r) {
		return run(s, run(s, i+n, isP, 0), isNL, 0)
	}
	if isS(r) {
		return matchWhitespace(s, i, true)
	}
	return -1
}

// matchGPT2 matches the GPT-2 ByteLevel pattern at s[i].
func matchGPT2(s string, i int) int {
	r, n := decodeRune(s, i)
	if r == '\'' {
		if e := contraction(s, i, false); e > 0 {
			return e
		}
	}
	j := i
	if r == ' ' && i+1 < len(s) {
		r2, n2 := decodeRune(s, i+1)
		switch {
		case isL(r2):
			return run(s, i+1+n2, isL, 0)
		case isN(r2):
			return run(s, i+1+n2, isN, 0)
		case isP(r2):
			return run(s, i+1+n2, isP, 0)
		}
	}
	switch {
	case isL(r):
		return run(s, j+n, isL, 0)
	case isN(r):
		return run(s, j+n, isN, 0)
	case isP(r):
		return run(s, j+n, isP, 0)
	case isS(r):
		return matchWhitespace(s, i, false)
	}
	return -1
}
