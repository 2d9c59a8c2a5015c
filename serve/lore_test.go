package serve

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
		system := spec.PromptFor([]string{msg}, nil).System
		ids, err := f.ck.EncodeChat([]chattemplate.Message{{Role: "system", Content: system}, {Role: "user", Content: msg}}, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Usage.PromptTokens != len(ids) {
			t.Errorf("%q: %d prompt tokens, want %d (system prompt %q)", msg, res.Usage.PromptTokens, len(ids), system)
		}
	}
	if a, b := spec.PromptFor([]string{"Hello there."}, nil).System, spec.PromptFor([]string{"Beware the kraken!"}, nil).System; a == b {
		t.Errorf("the lore entry changes nothing: %q", a)
	}
}

// TestCardLoreBudgetAndDepth: a card's token budget is counted with the
// model's tokenizer (constant entries first, then the highest order), and
// an entry at depth 1 goes into the conversation before the last message,
// as SillyTavern exports and places them.
func TestCardLoreBudgetAndDepth(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "personas.yaml")
	f := newFixture(t, func(o *Options) { o.Registry = reg })
	tok, err := f.ck.NeedTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	count := func(s string) int { return len(tok.Encode(s, false)) }
	const (
		depthText = "Remember: the sea is rough tonight."
		low       = "The kraken lives in the deep trench, far below the reef."
		high      = "Mira fears the kraken."
	)
	budget := count(depthText) + count(high) + count(low) - 1
	card := fmt.Sprintf(`{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Mira","description":"A captain.",
"character_book":{"token_budget":%d,"entries":[
 {"keys":["kraken"],"content":%q,"enabled":true,"insertion_order":1},
 {"keys":["kraken"],"content":"{{char}} fears the kraken.","enabled":true,"insertion_order":5},
 {"keys":[],"content":%q,"enabled":true,"constant":true,"insertion_order":0,"extensions":{"position":4,"depth":1,"role":0}},
 {"keys":["/{{char}}'s (ship|boat)/i"],"secondary_keys":["{{user}}"],"selective":true,"content":"{{char}}'s ship is the Gull.","enabled":true,
  "extensions":{"selectiveLogic":2}}]}}}`, budget, low, depthText)
	code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", []byte(card))
	if code != 201 {
		t.Fatalf("add card: %d %s", code, body)
	}
	msgs := []string{"Hello.", "Ahoy.", "Beware the kraken!"}
	code, body = f.postJSON(t, "/v1/chat/completions", map[string]any{"model": "mira", "max_tokens": 1,
		"messages": []map[string]any{{"role": "user", "content": msgs[0]}, {"role": "assistant", "content": msgs[1]}, {"role": "user", "content": msgs[2]}}})
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var res struct {
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	json.Unmarshal(body, &res)
	want := []chattemplate.Message{
		{Role: "system", Content: "You are Mira. A captain.\n\n" + high},
		{Role: "user", Content: msgs[0]}, {Role: "assistant", Content: msgs[1]},
		{Role: "system", Content: depthText},
		{Role: "user", Content: msgs[2]},
	}
	ids, err := f.ck.EncodeChat(want, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Usage.PromptTokens != len(ids) {
		t.Errorf("%d prompt tokens, want %d (%+v)", res.Usage.PromptTokens, len(ids), want)
	}
	// The budget left the lowest-order entry out; a budget one token
	// larger takes it.
	c, _ := persona.ParseCard([]byte(card))
	spec, _ := c.Spec()
	if l := spec.PromptFor(msgs, count).Lore; len(l.Entries) != 2 || !l.Overflow || l.Tokens != budget-count(low)+1 {
		t.Errorf("lore %+v", l)
	}
	spec.Lorebook.TokenBudget++
	if l := spec.PromptFor(msgs, count).Lore; len(l.Entries) != 3 || l.Overflow {
		t.Errorf("larger budget: lore %+v", l)
	}
	// The registry written back keeps the lorebook as the card gave it,
	// macros included.
	data, err := os.ReadFile(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"{{char}} fears the kraken.", "{{user}}", "(ship|boat)/i", "position: at_depth", "selective_logic: not_any"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the registry lacks %q:\n%s", want, data)
		}
	}
	specs, err := persona.LoadRegistry(reg)
	if err != nil {
		t.Fatal(err)
	}
	spec.Lorebook.TokenBudget--
	for _, s := range specs {
		if s.Name == "mira" && !reflect.DeepEqual(s.Lorebook, spec.Lorebook) {
			t.Errorf("the registry's lorebook %+v, the card's %+v", s.Lorebook, spec.Lorebook)
		}
	}
	// insertLore keeps an assistant message to be continued last, and
	// puts a deeper entry at the start.
	got := insertLore([]chattemplate.Message{{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}},
		[]persona.LoreInsert{{Depth: 9, Role: "system", Content: "deep"}, {Depth: 0, Role: "user", Content: "now"}})
	if len(got) != 4 || got[0].Content != "deep" || got[2].Content != "now" || got[3].Content != "b" {
		t.Errorf("insertLore: %+v", got)
	}
}
