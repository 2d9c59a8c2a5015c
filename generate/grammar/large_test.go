package grammar

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/tokenizer"
)

// TestLargeVocab runs the constraint over a real tokenizer's vocabulary
// (MASQUE_GRAMMAR_TOKENIZER: a tokenizer.json, e.g. Qwen2.5's 151k tokens;
// skipped without it): inside strings, the plain-token shortcut allows
// exactly what walking the whole trie allows, and the time of Allowed is
// logged.
func TestLargeVocab(t *testing.T) {
	path := os.Getenv("MASQUE_GRAMMAR_TOKENIZER")
	if path == "" {
		t.Skip("MASQUE_GRAMMAR_TOKENIZER is not set")
	}
	tk, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	prime := tk.Encode("a", false)
	texts, ok := TokenTexts(generate.FromTokenizer(tk), tk.VocabSize(), prime[0], tk.IsSpecial)
	t1 := time.Now()
	v := NewVocab(texts, ok)
	t.Logf("vocabulary of %d: token texts in %v, tries in %v (%d nodes, %d plain tokens)", len(texts), t1.Sub(t0), time.Since(t1), len(v.all.nodes), len(v.plain))
	s, err := Compile([]byte(npcSchema))
	if err != nil {
		t.Fatal(err)
	}
	st := s.Constraint(v).Start().(*tokenState)
	allowed, full := make([]bool, len(texts)), make([]bool, len(texts))
	for _, step := range []string{`{"name": "`, `Annab`, `el", "mood": "`, `calm", "hostile": false, "items": ["sw`, `ord", "bow"], "age": 12`} {
		for _, id := range tk.Encode(step, false) {
			if err := st.Accept(id); err != nil {
				t.Fatal(err)
			}
		}
		t0 := time.Now()
		clear(allowed)
		st.Allowed(allowed)
		d := time.Since(t0)
		clear(full)
		st.walk(&v.all, &st.st, 0, 0, full)
		if !slices.Equal(allowed, full) {
			t.Errorf("after %q: the shortcut and the full walk disagree", step)
		}
		n := 0
		for _, a := range allowed {
			if a {
				n++
			}
		}
		t.Logf("after %q: Allowed in %v, %d tokens allowed", step, d, n)
	}
}
