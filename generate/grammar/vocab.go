package grammar

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/tokenizer"
)

// Vocab is a model's vocabulary as text: every token's bytes in a trie, so
// that the tokens sharing a prefix are checked against the grammar once for
// that prefix. Tokens that are plain string content (no quote, backslash or
// control character) are also listed apart: inside a string they are all
// allowed at once (up to a maxLength), and only the others are walked.
// Build one per model and share it; it is read-only.
type Vocab struct {
	text    [][]byte // per id; nil: never allowed
	all     trie     // every usable token
	special trie     // usable tokens that are not plain string content
	plain   []plainToken
}

// plainToken is a token that is plain string content, with its length in
// characters.
type plainToken struct {
	id    int32
	runes int32
}

type trie struct{ nodes []trieNode }

type trieNode struct {
	edges []trieEdge // children, by byte
	ids   []int32    // tokens whose text ends here
}

type trieEdge struct {
	c  byte
	to int32
}

// insert adds a token; texts must come in byte order.
func (t *trie) insert(text []byte, id int) {
	if len(t.nodes) == 0 {
		t.nodes = []trieNode{{}}
	}
	n := int32(0)
	for _, c := range text {
		e := t.nodes[n].edges
		if k := len(e); k > 0 && e[k-1].c == c { // sorted insertion: the last child or a new one
			n = e[k-1].to
			continue
		}
		t.nodes = append(t.nodes, trieNode{})
		to := int32(len(t.nodes) - 1)
		t.nodes[n].edges = append(t.nodes[n].edges, trieEdge{c, to})
		n = to
	}
	t.nodes[n].ids = append(t.nodes[n].ids, int32(id))
}

// isPlain reports whether a text is plain string content.
func isPlain(b []byte) bool {
	for _, c := range b {
		if c == '"' || c == '\\' || c < 0x20 {
			return false
		}
	}
	return true
}

// NewVocab builds the vocabulary of texts[id] (the text a token adds in the
// middle of a text). Ids with usable[id] false (special tokens, empty
// texts, bytes that are not whole characters) are never allowed; the
// caller decides the stop tokens.
func NewVocab(texts []string, usable []bool) *Vocab {
	v := &Vocab{text: make([][]byte, len(texts))}
	order := make([]int, 0, len(texts))
	for id, t := range texts {
		if id < len(usable) && usable[id] && t != "" {
			v.text[id] = []byte(t)
			order = append(order, id)
		}
	}
	sort.Slice(order, func(a, b int) bool { return texts[order[a]] < texts[order[b]] })
	total := 1
	for _, id := range order {
		total += len(v.text[id])
	}
	v.all.nodes = make([]trieNode, 1, total) // at most one node per byte
	v.special.nodes = []trieNode{{}}
	for _, id := range order {
		b := v.text[id]
		v.all.insert(b, id)
		if isPlain(b) {
			v.plain = append(v.plain, plainToken{int32(id), int32(utf8.RuneCount(b))})
		} else {
			v.special.insert(b, id)
		}
	}
	return v
}

// Size is the number of ids (the vocabulary's size).
func (v *Vocab) Size() int { return len(v.text) }

// Constraint returns the generate.Constraint of s over v.
func (s *Schema) Constraint(v *Vocab) generate.Constraint {
	return &constraint{s: s, v: v}
}

type constraint struct {
	s *Schema
	v *Vocab
}

// Start returns the state at the beginning of a document.
func (c *constraint) Start() generate.ConstraintState {
	return &tokenState{v: c.v, st: newState(c.s.root)}
}

// tokenState is a generation's position in the document.
type tokenState struct {
	v    *Vocab
	st   state
	bufs []state // one per trie depth, reused
}

// Allowed marks every token whose text can come next and reports whether
// the document is complete.
func (t *tokenState) Allowed(allowed []bool) bool {
	st := &t.st
	if k := len(st.stack); k > 0 && st.stack[k-1].kind == fString && st.stack[k-1].st == strIn {
		// Inside a string: every plain token that fits, then the others.
		f := &st.stack[k-1]
		room := int32(1 << 30)
		if f.n.maxLen >= 0 {
			room = int32(f.n.maxLen) - f.count
		}
		for _, p := range t.v.plain {
			if p.runes <= room {
				allowed[p.id] = true
			}
		}
		t.walk(&t.v.special, st, 0, 0, allowed)
	} else {
		t.walk(&t.v.all, st, 0, 0, allowed)
	}
	return st.complete()
}

// walk checks the children of trie node n from state st (at depth d).
func (t *tokenState) walk(tr *trie, st *state, n int32, d int, allowed []bool) {
	if d == len(t.bufs) {
		t.bufs = append(t.bufs, state{})
	}
	for _, e := range tr.nodes[n].edges {
		ns := &t.bufs[d]
		ns.copyFrom(st)
		if !ns.feed(e.c) {
			continue
		}
		for _, id := range tr.nodes[e.to].ids {
			if int(id) < len(allowed) {
				allowed[id] = true
			}
		}
		if len(tr.nodes[e.to].edges) > 0 {
			t.walk(tr, ns, e.to, d+1, allowed)
		}
	}
}

// Accept reads a generated token's text.
func (t *tokenState) Accept(id int) error {
	if id < 0 || id >= len(t.v.text) || t.v.text[id] == nil {
		return fmt.Errorf("grammar: token %d has no usable text", id)
	}
	for _, c := range t.v.text[id] {
		if !t.st.feed(c) {
			return fmt.Errorf("grammar: token %d (%q) does not continue the document", id, t.v.text[id])
		}
	}
	return nil
}

// Recognizes reports whether text is a complete document that the
// constraint can generate (valid JSON matching the schema, within the
// recogniser's limits on whitespace runs and digits).
func (s *Schema) Recognizes(text string) bool {
	st := newState(s.root)
	for i := 0; i < len(text); i++ {
		if !st.feed(text[i]) {
			return false
		}
	}
	return st.complete()
}

// TokenTexts returns the text every id in [0, size) adds in the middle of
// a text, decoded by tok after the token prime (a plain letter, so that a
// leading space stays as it is in running text), and whether it is usable
// by a constraint: not empty, not skipped by skip (special tokens), valid
// UTF-8 without U+FFFD on its own (a byte token that is part of a
// character is not usable).
func TokenTexts(tok generate.Tokenizer, size, prime int, skip func(id int) bool) (texts []string, usable []bool) {
	texts, usable = make([]string, size), make([]bool, size)
	for id := 0; id < size; id++ {
		st := tok.NewTextStream(false)
		st.Add(prime)
		s := st.Add(id) + st.Flush()
		texts[id] = s
		usable[id] = s != "" && (skip == nil || !skip(id)) && utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError)
	}
	return texts, usable
}

// TokenizerVocab is the vocabulary of tok over the ids [0, size) for
// constraints: every id's text after a plain letter (TokenTexts), special
// tokens not usable.
func TokenizerVocab(tok *tokenizer.Tokenizer, size int) (*Vocab, error) {
	prime := tok.Encode("a", false)
	if len(prime) == 0 {
		return nil, errors.New("the tokenizer cannot encode text")
	}
	texts, ok := TokenTexts(generate.FromTokenizer(tok), size, prime[len(prime)-1], tok.IsSpecial)
	return NewVocab(texts, ok), nil
}
