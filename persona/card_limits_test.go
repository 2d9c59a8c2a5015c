package persona

import (
	"encoding/json"
	"strings"
	"testing"
)

// cardJSON builds a V2 card from the given data fields.
func cardJSON(t *testing.T, data map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"spec": "chara_card_v2", "data": data})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCardExpansionBounded: a small card whose {{original}} and {{char}}
// macros would expand to hundreds of megabytes (or terabytes, which kills
// the process) is refused before anything is expanded.
func TestCardExpansionBounded(t *testing.T) {
	for name, data := range map[string]map[string]any{
		"original": {"name": "Mira", "description": strings.Repeat("d", 20000),
			"system_prompt": strings.Repeat("{{original}}", 5000)},
		"char":     {"name": strings.Repeat("n", 200), "description": strings.Repeat("{{char}}", 8000)},
		"greeting": {"name": strings.Repeat("n", 200), "first_mes": strings.Repeat("<BOT>", 12000)},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := ParseCard(cardJSON(t, data))
			if err != nil {
				t.Fatalf("parse: %v", err) // the card itself is within every field limit
			}
			s, err := c.Spec()
			if err == nil {
				t.Fatalf("Spec expanded the macros to %d + %d + %d bytes; want an error", len(s.Description), len(s.SystemPrompt), len(s.Greeting))
			}
			if !strings.Contains(err.Error(), "limit") {
				t.Errorf("error %q does not state the limit", err)
			}
		})
	}
}

// TestCardFieldLimits: every card field is capped when the card is read.
func TestCardFieldLimits(t *testing.T) {
	big := strings.Repeat("x", MaxPromptLen+1)
	for name, data := range map[string]map[string]any{
		"name":         {"name": strings.Repeat("n", MaxCardNameLen+1)},
		"description":  {"name": "A", "description": big},
		"personality":  {"name": "A", "personality": big},
		"scenario":     {"name": "A", "scenario": big},
		"first_mes":    {"name": "A", "first_mes": big},
		"mes_example":  {"name": "A", "mes_example": big},
		"system":       {"name": "A", "system_prompt": big},
		"post_history": {"name": "A", "post_history_instructions": big},
		"notes":        {"name": "A", "creator_notes": big},
		"creator":      {"name": "A", "creator": big},
		"tag":          {"name": "A", "tags": []string{big}},
		"tags":         {"name": "A", "tags": make([]string, MaxCardTags+1)},
		"greetings":    {"name": "A", "alternate_greetings": make([]string, MaxCardGreetings+1)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseCard(cardJSON(t, data)); err == nil || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("error %v, want one about the field's limit", err)
			}
		})
	}
	// A card at the limits still gives a valid spec.
	c, err := ParseCard(cardJSON(t, map[string]any{"name": strings.Repeat("n", MaxCardNameLen), "description": strings.Repeat("x", MaxPromptLen-400)}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}
