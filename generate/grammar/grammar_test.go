package grammar

import (
	"strings"
	"testing"
)

const npcSchema = `{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 12},
    "mood": {"enum": ["calm", "angry", "afraid"]},
    "age": {"type": "integer"},
    "trust": {"type": "number"},
    "hostile": {"type": "boolean"},
    "quest": {"type": ["string", "null"], "maxLength": 8},
    "items": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
    "pos": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"], "additionalProperties": false}
  },
  "required": ["name", "mood", "hostile"],
  "additionalProperties": false,
  "description": "an NPC's state"
}`

func TestRecognizes(t *testing.T) {
	npc, err := Compile([]byte(npcSchema))
	if err != nil {
		t.Fatal(err)
	}
	// As pydantic writes them: $defs, $ref, anyOf for Optional, titles.
	pyd, err := Compile([]byte(`{"$defs": {"Item": {"properties": {"name": {"title": "Name", "type": "string"}}, "required": ["name"], "title": "Item", "type": "object", "additionalProperties": false}},
		"properties": {"item": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}]}, "n": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
		"required": ["item", "n"], "title": "Answer", "type": "object", "additionalProperties": false}`))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := Compile([]byte(`{"$ref": "#/definitions/node", "definitions": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
		"kids": {"type": "array", "items": {"$ref": "#/definitions/node"}}}, "required": ["v"], "additionalProperties": false}}}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		s    *Schema
		text string
		want bool
	}{
		{pyd, `{"item": {"name": "a"}, "n": 1}`, true},
		{pyd, `{"item": null, "n": "x"}`, true},
		{pyd, `{"item": {}, "n": 1}`, false},
		{pyd, `{"item": null, "n": true}`, false},
		{tree, `{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4, "kids": []}]}]}`, true},
		{tree, `{"v": 1, "kids": [{"w": 2}]}`, false},
		{JSONObject(), `{}`, true},
		{JSONObject(), `{ "a" : [1, -2.5e+3, true, null, {"b": "c\n\u00e9"}] }`, true},
		{JSONObject(), "{\n  \"a\": 1,\n\t\"b\": 2\n}", true},
		{JSONObject(), ` {}`, false},           // no whitespace before the document
		{JSONObject(), "{\"a\":\r1}", false},   // only a space, or a newline and indentation
		{JSONObject(), "{\"a\":  1}", false},   // two spaces
		{JSONObject(), "{\"a\":\n\n1}", false}, // two newlines
		{JSONValue(), `1e100`, false},          // exponents of at most 2 digits
		{JSONObject(), `[1]`, false},
		{JSONObject(), `{"a": 01}`, false},
		{JSONObject(), `{"a": 1,}`, false},
		{JSONObject(), `{"a": 1`, false},
		{JSONObject(), `{"a": "x` + "\n" + `"}`, false}, // a raw newline in a string
		{JSONObject(), `{"a": tru}`, false},
		{JSONObject(), `{"a": 1} x`, false},
		{JSONObject(), "{\"a\":\n" + strings.Repeat(" ", 21) + `1}`, false}, // indentation over the limit
		{JSONValue(), `12`, true},
		{JSONValue(), `-0.5`, true},
		{JSONValue(), `-`, false},
		{JSONValue(), `"\x"`, false},
		{npc, `{"name": "Ann", "mood": "calm", "hostile": false}`, true},
		{npc, `{"hostile": true, "mood": "angry", "name": "", "age": 40, "trust": 0.5, "quest": null, "items": ["a", "b"], "pos": {"y": 1, "x": -2}}`, true},
		{npc, `{"name": "Ann", "mood": "calm"}`, false},                                            // hostile is required
		{npc, `{"name": "Ann", "mood": "happy", "hostile": false}`, false},                         // not in the enum
		{npc, `{"name": "Ann", "mood": "calm", "hostile": false, "x": 1}`, false},                  // no other keys
		{npc, `{"name": "Ann", "name": "Bo", "mood": "calm", "hostile": false}`, false},            // a key twice
		{npc, `{"name": "Annabelle Smith", "mood": "calm", "hostile": false}`, false},              // maxLength 12
		{npc, `{"name": "A", "mood": "calm", "hostile": false, "age": 1.5}`, false},                // integer
		{npc, `{"name": "A", "mood": "calm", "hostile": false, "items": [1]}`, false},              // items are strings
		{npc, `{"name": "A", "mood": "calm", "hostile": 0}`, false},                                // boolean
		{npc, `{"name": "A", "mood": "calm", "hostile": true, "pos": {"x": 1}}`, false},            // y is required
		{npc, `{"name": "A", "mood": "calm", "hostile": true, "items": ["a","b","c","d"]}`, false}, // maxItems 3
	}
	for _, tc := range cases {
		if got := tc.s.Recognizes(tc.text); got != tc.want {
			t.Errorf("%.60s: %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ schema, want string }{
		{`{"type": "object", "properties": {"a": {"type": "string", "pattern": "x+"}}}`, "pattern"},
		{`{"oneOf": [{"type": "string"}]}`, "oneOf"},
		{`{"$ref": "https://example.com/s.json"}`, "inside the schema"},
		{`{"$ref": "#/$defs/missing"}`, "missing"},
		{`{"anyOf": [{"type": "string"}], "minLength": 2}`, "anyOf beside"},
		{`{"type": "thing"}`, "unknown type"},
		{`{"type": "object", "properties": {"a": {}}, "required": ["b"]}`, "not a property"},
		{`{"type": "string", "maxLength": -1}`, "maxLength"},
		{`[1]`, "must be an object"},
		{`{"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "string"}}`, "additionalProperties"},
	} {
		_, err := Compile([]byte(tc.schema))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %s", tc.schema, err, tc.want)
		}
	}
}

// TestTokenLevel checks Allowed against the character-level recogniser on
// a small vocabulary: a token is allowed exactly when its text continues
// a document, and the end only when the document is complete.
func TestTokenLevel(t *testing.T) {
	texts := []string{"{", "}", "\"", "a", "\"a\"", ":", " ", "1", "12", ",", "{\"", "x", "\":", "tr", "ue", "", "é"}
	usable := make([]bool, len(texts))
	for i := range usable {
		usable[i] = texts[i] != ""
	}
	v := NewVocab(texts, usable)
	s := JSONObject()
	st := s.Constraint(v).Start()
	var doc string
	for _, id := range []int{10, 3, 12, 6, 13, 14, 9, 2, 16, 12, 8} { // {"a": true,"é":12
		allowed := make([]bool, len(texts))
		complete := st.Allowed(allowed)
		for j, text := range texts {
			want := usable[j] && prefixOK(s, doc+text)
			if allowed[j] != want {
				t.Fatalf("after %q: token %q allowed %v, want %v", doc, text, allowed[j], want)
			}
		}
		if complete {
			t.Fatalf("after %q: complete", doc)
		}
		if !allowed[id] {
			t.Fatalf("after %q: %q not allowed", doc, texts[id])
		}
		if err := st.Accept(id); err != nil {
			t.Fatal(err)
		}
		doc += texts[id]
	}
	allowed := make([]bool, len(texts))
	if st.Allowed(allowed) {
		t.Fatalf("%q is complete", doc)
	}
	if err := st.Accept(1); err != nil {
		t.Fatal(err)
	}
	if !st.Allowed(allowed) {
		t.Fatalf("%q} is not complete", doc)
	}
	if err := st.Accept(1); err == nil {
		t.Fatal("a token after the end was accepted")
	}
}

// prefixOK reports whether text is a prefix of a document of s.
func prefixOK(s *Schema, text string) bool {
	st := newState(s.root)
	for i := 0; i < len(text); i++ {
		if !st.feed(text[i]) {
			return false
		}
	}
	return true
}
