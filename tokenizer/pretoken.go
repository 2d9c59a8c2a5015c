package tokenizer

import "fmt"

// The pieces of byte-level BPE that a trainer needs (tokenizer/bpetrain): the split
// regexes by name, the matcher the loader uses for them, and the byte-level alphabet.
// A trainer that pre-tokenizes with these splits text exactly as a loaded tokenizer.json
// with the same regex does.

// SplitPatterns maps the names of the byte-level pre-tokenizer regexes to the regexes:
// "gpt2" (GPT-2's ByteLevel regex), "llama3" (Llama 3, tiktoken cl100k: digits in runs of
// up to three) and "qwen2" (Qwen2/2.5/3: single digits).
var SplitPatterns = map[string]string{
	"gpt2":   gpt2Pattern,
	"llama3": cl100kPattern,
	"qwen2":  qwenPattern,
}

// Splitter splits text into pre-tokens with a regex, as a Split pre-tokenizer with
// behavior "Isolated" does (matches and the text between them are pieces). The common
// tokenizer regexes use hand-written matchers; others run on regexp2.
type Splitter struct{ re *regex }

// NewSplitter compiles a split regex.
func NewSplitter(pattern string) (*Splitter, error) {
	re, err := compileRegex(pattern)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return &Splitter{re: re}, nil
}

// Split calls fn with each pre-token of s, in order; the pieces are substrings of s and
// together they are s. s must be valid UTF-8 (the encoder replaces invalid bytes first).
// A pattern that exceeds its match timeout (RegexTimeout) leaves the rest of s as one
// piece.
func (sp *Splitter) Split(s string, fn func(piece string)) {
	at := 0
	spans, _ := sp.re.findErr(s)
	for _, m := range spans {
		if m[0] > at {
			fn(s[at:m[0]])
		}
		fn(s[m[0]:m[1]])
		at = m[1]
	}
	if at < len(s) {
		fn(s[at:])
	}
}

// ByteLevelChar returns the character that stands for byte b in the byte-level
// alphabet of GPT-2 style tokenizers ("Ġ" for a space, "!" for '!').
func ByteLevelChar(b byte) string { return byteToStr[b] }

// ByteLevelString maps every byte of s to its byte-level character: the vocabulary
// form of the bytes s.
func ByteLevelString(s string) string { return byteLevelEncode(s) }
