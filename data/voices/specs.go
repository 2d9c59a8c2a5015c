package voices

import (
	"fmt"
	"strings"

	"github.com/masque-ai/masque/persona"
)

// Specs returns the personas of the built-in voices model (builtin:voices):
// one per voice of the voices corpus, named by the voice, described by its
// title, with the corpus's persona text as system prompt, the prompt the
// model was trained to follow. `masque serve` hosts them when it serves
// builtin:voices without a --personas registry.
func Specs() []persona.Spec {
	out := make([]persona.Spec, len(Personas))
	for i, p := range Personas {
		out[i] = persona.Spec{Name: p.Name, Description: p.Title, SystemPrompt: p.Persona}
	}
	return out
}

// SystemPrompt returns the system prompt of the built-in voice name (one
// of Specs), or an error that lists the voices.
func SystemPrompt(name string) (string, error) {
	var names []string
	for _, s := range Specs() {
		if s.Name == name {
			return s.SystemPrompt, nil
		}
		names = append(names, s.Name)
	}
	return "", fmt.Errorf("%q is not a voice of builtin:voices (its voices: %s)", name, strings.Join(names, ", "))
}
