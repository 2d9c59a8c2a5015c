package serve

import (
	"sync"

	"github.com/masque-ai/masque/generate/grammar"
)

// tokenTable holds the text every token id of a base adds in the middle of
// a sequence, for /tokenize's pieces and constrained decoding.
type tokenTable struct {
	text []string // per id of the model's vocabulary
	// ok marks ids whose text is a usable piece of output: not empty, not
	// a special token, valid UTF-8 on its own and without U+FFFD (a byte
	// token that is part of a character is not ok).
	ok []bool
	// vocab is the trie of the ok texts, for constrained decoding.
	vocab *grammar.Vocab
}

// tokenTableOnce builds a base's table on first use.
type tokenTableOnce struct {
	once  sync.Once
	table *tokenTable
}

// tokenTexts returns the base's token table, built on first use.
func (b *baseModel) tokenTexts() *tokenTable {
	b.tokTable.once.Do(func() { b.tokTable.table = buildTokenTable(b) })
	return b.tokTable.table
}

// buildTokenTable decodes every id after a plain letter, so that a leading
// space is kept as it is in running text.
func buildTokenTable(b *baseModel) *tokenTable {
	vocab := b.ck.Model.Config.Vocab
	t := &tokenTable{text: make([]string, vocab), ok: make([]bool, vocab)}
	tk := b.ck.Tokenizer
	if tk == nil || b.eb.Tokenizer == nil {
		return t
	}
	prime := tk.Encode("a", false)
	if len(prime) == 0 {
		return t
	}
	n := min(vocab, tk.VocabSize())
	texts, ok := grammar.TokenTexts(b.eb.Tokenizer, n, prime[len(prime)-1], tk.IsSpecial)
	copy(t.text, texts)
	copy(t.ok, ok)
	t.vocab = grammar.NewVocab(t.text, t.ok)
	return t
}
