package serve

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTokenize: /tokenize and /detokenize in llama-server's shapes
// (content, add_special, with_pieces; tokens), against the tokenizer.
func TestTokenize(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.ck.Tokenizer
	const text = "Hello world, café ☕"
	var got struct {
		Tokens []int `json:"tokens"`
	}
	post := func(path string, body any, into any) {
		t.Helper()
		code, b := f.postJSON(t, path, body)
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, b)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
	}
	post("/tokenize", map[string]any{"content": text}, &got)
	if want := tok.Encode(text, false); !equalInts(got.Tokens, want) {
		t.Errorf("tokens %v, want %v", got.Tokens, want)
	}
	post("/tokenize", map[string]any{"content": text, "add_special": true}, &got)
	withBOS := tok.Encode(text, true)
	if !equalInts(got.Tokens, withBOS) || len(withBOS) == len(tok.Encode(text, false)) {
		t.Errorf("add_special: %v, want %v (with BOS)", got.Tokens, withBOS)
	}
	var pieces struct {
		Tokens []struct {
			ID    int             `json:"id"`
			Piece json.RawMessage `json:"piece"`
		} `json:"tokens"`
	}
	post("/tokenize", map[string]any{"content": text, "with_pieces": true}, &pieces)
	var joined []byte
	sawBytes := false
	for i, p := range pieces.Tokens {
		if p.ID != got.Tokens[i+1] { // got has the BOS first
			t.Errorf("piece %d: id %d, want %d", i, p.ID, got.Tokens[i+1])
		}
		var s string
		var bs []int
		if err := json.Unmarshal(p.Piece, &s); err == nil {
			joined = append(joined, s...)
		} else if err := json.Unmarshal(p.Piece, &bs); err == nil {
			sawBytes = true
			for _, b := range bs {
				if b < 0x80 || b > 0xff {
					t.Errorf("piece %d: byte %d", i, b)
				}
				joined = append(joined, byte(b))
			}
		} else {
			t.Errorf("piece %d: %s is neither a string nor bytes", i, p.Piece)
		}
	}
	if strings.TrimSpace(string(joined)) != text {
		t.Errorf("pieces spell %q, want %q", joined, text)
	}
	if !sawBytes {
		t.Log("no byte pieces (the tokenizer has whole characters for this text)")
	}
	var de struct {
		Content string `json:"content"`
	}
	post("/detokenize", map[string]any{"tokens": tok.Encode(text, false)}, &de)
	if want := tok.Decode(tok.Encode(text, false), false); de.Content != want || strings.TrimSpace(de.Content) != text {
		t.Errorf("detokenize %q, want %q", de.Content, want)
	}
	// The pruned persona's own tokenizer answers for it.
	post("/tokenize", map[string]any{"content": text, "model": "pruned"}, &got)
	if len(got.Tokens) == 0 {
		t.Errorf("pruned: no tokens")
	}
	for _, bad := range []struct {
		path  string
		body  any
		param string
	}{
		{"/tokenize", map[string]any{"content": "a", "with_pices": true}, "with_pices"},
		{"/tokenize", map[string]any{"content": "a", "parse_special": false}, "parse_special"},
		{"/tokenize", map[string]any{}, "content"},
		{"/detokenize", map[string]any{"tokens": []int{1, 99999}}, "tokens"},
		{"/tokenize", map[string]any{"content": "a", "model": "nobody"}, "model"},
	} {
		code, b := f.postJSON(t, bad.path, bad.body)
		var e struct {
			Error struct {
				Param *string `json:"param"`
			} `json:"error"`
		}
		json.Unmarshal(b, &e)
		if code/100 != 4 || e.Error.Param == nil || *e.Error.Param != bad.param {
			t.Errorf("%s %v: %d %s, want a 4xx about %s", bad.path, bad.body, code, b, bad.param)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestByteLevelBytes: GPT-2's byte alphabet maps back to bytes ("Ġ" is a
// space, "Ċ" a newline, "âĢ" the first two bytes of "…"/"—" and the like).
func TestByteLevelBytes(t *testing.T) {
	for tok, want := range map[string][]byte{"Ġhello": []byte(" hello"), "Ċ": {'\n'}, "âĢ": {0xE2, 0x80}, "Ā": {0}, "Ń": {0xAD}} {
		got, ok := byteLevelBytes(tok)
		if !ok || string(got) != string(want) {
			t.Errorf("%q: %v %v, want %v", tok, got, ok, want)
		}
	}
	if _, ok := byteLevelBytes("<0x41>\u4e2d"); ok {
		t.Error("a character outside the alphabet was mapped")
	}
	if len(byteLevelRest) != 68 {
		t.Errorf("%d bytes outside the printable ranges, want 68", len(byteLevelRest))
	}
}
