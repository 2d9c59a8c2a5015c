package synth

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCardExpansionBounded: {{char}} in a card is expanded only after its
// size is bounded, and every field is capped: a small card cannot ask for
// gigabytes.
func TestCardExpansionBounded(t *testing.T) {
	for name, data := range map[string]map[string]any{
		"char":      {"name": strings.Repeat("n", 200), "description": strings.Repeat("{{char}}", 8000)},
		"bot":       {"name": strings.Repeat("n", 200), "mes_example": strings.Repeat("<BOT>", 12000)},
		"long name": {"name": strings.Repeat("n", MaxCardNameLen+1)},
		"long text": {"name": "A", "scenario": strings.Repeat("s", MaxCardFieldLen+1)},
		"tags":      {"name": "A", "tags": make([]string, MaxCardTags+1)},
	} {
		t.Run(name, func(t *testing.T) {
			js, _ := json.Marshal(map[string]any{"spec": "chara_card_v2", "data": data})
			c, err := ParseCard(js)
			if err == nil {
				t.Fatalf("card accepted (description %d bytes, examples %d bytes); want an error", len(c.Description), len(c.MesExample))
			}
			if !strings.Contains(err.Error(), "limit") {
				t.Errorf("error %q does not state the limit", err)
			}
		})
	}
	js, _ := json.Marshal(map[string]any{"name": "Mira", "description": "{{char}} meets {{user}}."})
	c, err := ParseCard(js)
	if err != nil || c.Description != "Mira meets the user." {
		t.Fatalf("card %+v, %v", c, err)
	}
}

// FuzzParseCard drives synth's card path (ParseCard or ParseCardPNG, the
// macro expansion, Persona and Profile) with arbitrary bytes: a result or
// an error, never a panic, and text bounded by the card's limits.
func FuzzParseCard(f *testing.F) {
	f.Add([]byte(`{"spec":"chara_card_v2","data":{"name":"Mira","description":"{{char}} and {{user}}","mes_example":"<BOT>: hi"}}`))
	f.Add([]byte(`{"name":"` + strings.Repeat("n", 250) + `","description":"` + strings.Repeat("{{char}}", 300) + `"}`))
	f.Add(append(append([]byte{}, pngSignature...), 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 'B', '`', 0x82))
	f.Fuzz(func(t *testing.T, data []byte) {
		parse := ParseCard
		if strings.HasPrefix(string(data), string(pngSignature)) {
			parse = ParseCardPNG
		}
		c, err := parse(data)
		if err != nil {
			return
		}
		for _, v := range []string{c.Description, c.Personality, c.Scenario, c.FirstMes, c.MesExample, c.SystemPrompt} {
			if len(v) > MaxCardFieldLen {
				t.Fatalf("a field of %d bytes after expansion", len(v))
			}
		}
		if n := len(c.Persona()) + len(c.Profile()); n > 10*MaxCardFieldLen {
			t.Fatalf("persona and profile are %d bytes", n)
		}
	})
}
