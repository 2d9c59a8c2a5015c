package serve

import (
	"encoding/json"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/persona"
)

// TestCardLorebook: a card uploaded with mes_example and character_book
// answers with the example dialogue in its system prompt and the lore
// entries that the latest messages call up.
func TestCardLorebook(t *testing.T) {
	f := newFixture(t, nil)
	card := `{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Mira","description":"A captain.",
"mes_example":"<START>\n{{user}}: Where are we?\n{{char}}: At sea.",
"character_book":{"entries":[{"keys":["kraken"],"content":"{{char}} fears the kraken.","enabled":true}]}}}`
	code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", []byte(card))
	if code != 201 {
		t.Fatalf("add card: %d %s", code, body)
	}
	c, err := persona.ParseCard([]byte(card))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec()
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"Hello there.", "Beware the kraken!"} {
		code, body := f.postJSON(t, "/v1/chat/completions", map[string]any{"model": "mira", "max_tokens": 2,
			"messages": []map[string]any{{"role": "user", "content": msg}}})
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var res struct {
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		json.Unmarshal(body, &res)
		system := spec.PromptFor([]string{msg})
		ids, err := f.ck.EncodeChat([]chattemplate.Message{{Role: "system", Content: system}, {Role: "user", Content: msg}}, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Usage.PromptTokens != len(ids) {
			t.Errorf("%q: %d prompt tokens, want %d (system prompt %q)", msg, res.Usage.PromptTokens, len(ids), system)
		}
	}
	if a, b := spec.PromptFor([]string{"Hello there."}), spec.PromptFor([]string{"Beware the kraken!"}); a == b {
		t.Errorf("the lore entry changes nothing: %q", a)
	}
}
