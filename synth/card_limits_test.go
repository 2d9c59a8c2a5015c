package synth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/masque-ai/masque/persona"
)

// cardCharacter reads a card (JSON or PNG) the way synth does: persona's
// parser, then synth's conversion.
func cardCharacter(data []byte) (Character, error) {
	c, err := persona.ParseCard(data)
	if err != nil {
		return Character{}, err
	}
	return CharacterFromCard(c)
}

// TestCardExpansionBounded: {{char}} in a card is expanded only after its
// size is bounded, and every field is capped: a small card cannot ask for
// gigabytes.
func TestCardExpansionBounded(t *testing.T) {
	for name, data := range map[string]map[string]any{
		"char":      {"name": strings.Repeat("n", 200), "description": strings.Repeat("{{char}}", 8000)},
		"bot":       {"name": strings.Repeat("n", 200), "mes_example": strings.Repeat("<BOT>", 12000)},
		"long name": {"name": strings.Repeat("n", persona.MaxCardNameLen+1)},
		"long text": {"name": "A", "scenario": strings.Repeat("s", persona.MaxPromptLen+1)},
		"tags":      {"name": "A", "tags": make([]string, persona.MaxCardTags+1)},
	} {
		t.Run(name, func(t *testing.T) {
			js, _ := json.Marshal(map[string]any{"spec": "chara_card_v2", "data": data})
			ch, err := cardCharacter(js)
			if err == nil {
				t.Fatalf("card accepted (persona %d bytes, profile %d bytes); want an error", len(ch.Persona), len(ch.Profile))
			}
			if !strings.Contains(err.Error(), "limit") {
				t.Errorf("error %q does not state the limit", err)
			}
		})
	}
	js, _ := json.Marshal(map[string]any{"name": "Mira", "description": "{{char}} meets {{user}}."})
	ch, err := cardCharacter(js)
	if err != nil || ch.Persona != "Mira: Mira meets the user." || ch.Profile != "Name: Mira\nDescription: Mira meets the user." {
		t.Fatalf("character %+v, %v", ch, err)
	}
}

// FuzzParseCard drives synth's card path (persona.ParseCard on JSON or PNG,
// then CharacterFromCard: the macro expansion, persona and profile) with
// arbitrary bytes: a result or an error, never a panic, and text bounded by
// the card's limits.
func FuzzParseCard(f *testing.F) {
	f.Add([]byte(`{"spec":"chara_card_v2","data":{"name":"Mira","description":"{{char}} and {{user}}","mes_example":"<BOT>: hi"}}`))
	f.Add([]byte(`{"name":"` + strings.Repeat("n", 250) + `","description":"` + strings.Repeat("{{char}}", 300) + `"}`))
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x00IEND\xaeB`\x82"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ch, err := cardCharacter(data)
		if err != nil {
			return
		}
		// Four expanded fields of at most MaxPromptLen each, one line each,
		// plus labels.
		if n := len(ch.Persona); n > 4*persona.MaxPromptLen+persona.MaxCardNameLen+64 {
			t.Fatalf("persona is %d bytes", n)
		}
		if n := len(ch.Profile); n > 4*persona.MaxPromptLen+persona.MaxCardNameLen+128 {
			t.Fatalf("profile is %d bytes", n)
		}
		if !strings.HasPrefix(ch.Profile, "Name: ") || ch.ID != CharacterID(ch.Persona) {
			t.Fatalf("character %+v", ch)
		}
	})
}
