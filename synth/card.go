package synth

import (
	"fmt"
	"strings"

	"github.com/masque-ai/masque/internal/macro"
	"github.com/masque-ai/masque/persona"
)

// Character cards are read by package persona (persona.ReadCard,
// persona.ParseCard: JSON or PNG, V1–V3, with its limits); synth turns one
// into its own persona description and character profile.

// cardTexts are a card's texts as synth uses them: the {{char}} and
// {{user}} macros expanded (the user is "the user"), trimmed.
type cardTexts struct {
	name, description, personality, scenario, mesExample string
}

// expandCard expands c's macros, each expansion bounded by
// persona.MaxPromptLen before it is done.
func expandCard(c *persona.Card) (*cardTexts, error) {
	name := strings.TrimSpace(c.Name)
	if name == "" {
		return nil, fmt.Errorf("character card: no name")
	}
	pairs := []string{"{{char}}", name, "{{Char}}", name, "<BOT>", name,
		"{{user}}", "the user", "{{User}}", "the user", "<USER>", "the user"}
	t := &cardTexts{name: name}
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{
		{"description", c.Description, &t.description}, {"personality", c.Personality, &t.personality},
		{"scenario", c.Scenario, &t.scenario}, {"mes_example", c.MessageExamples, &t.mesExample},
	} {
		v, err := macro.Expand("character card: "+f.name, f.in, persona.MaxPromptLen, pairs...)
		if err != nil {
			return nil, err
		}
		*f.out = strings.TrimSpace(v)
	}
	return t, nil
}

// CharacterFromCard makes a character from a card: its persona is a
// one-paragraph description ("Name: description Personality: …
// Scenario: …") and its profile lists the card's fields, first line
// "Name: ...".
func CharacterFromCard(c *persona.Card) (Character, error) {
	t, err := expandCard(c)
	if err != nil {
		return Character{}, err
	}
	p := t.persona()
	return Character{ID: CharacterID(p), Persona: p, Profile: t.profile()}, nil
}

// persona is a one-paragraph persona description made from the card.
func (c *cardTexts) persona() string {
	var b strings.Builder
	b.WriteString(c.name)
	if c.description != "" {
		b.WriteString(": ")
		b.WriteString(oneLine(c.description))
	}
	if c.personality != "" {
		b.WriteString(" Personality: ")
		b.WriteString(oneLine(c.personality))
	}
	if c.scenario != "" {
		b.WriteString(" Scenario: ")
		b.WriteString(oneLine(c.scenario))
	}
	return b.String()
}

// profile is a character profile made from the card's fields, first line
// "Name: ...".
func (c *cardTexts) profile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Name: %s\n", c.name)
	add := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", label, oneLine(v))
		}
	}
	add("Description", c.description)
	add("Personality", c.personality)
	add("Scenario", c.scenario)
	add("Example dialogue", c.mesExample)
	return strings.TrimSpace(b.String())
}

// oneLine collapses runs of white space, newlines included, to one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
