package generate

import "github.com/masque-ai/masque/tokenizer"

// FromTokenizer adapts a *tokenizer.Tokenizer to Tokenizer: each generation
// gets a fresh tokenizer.StreamDecoder.
func FromTokenizer(t *tokenizer.Tokenizer) Tokenizer {
	return TokenizerFunc(func(skipSpecial bool) TextStream { return t.NewStreamDecoder(skipSpecial) })
}
