package synth

import (
	"os"

	"github.com/masque-ai/masque/style"
)

// StyleInput says where the lines of a style-rewrite run and their prompt
// hints come from (masque synth style-rewrite's inputs).
type StyleInput struct {
	// Data is a voices corpus folder, a JSONL of {character, text
	// [, neutral][, source]} rows or a text file of one character's lines;
	// Character and Split as in ReadStyleLines.
	Data, Character, Split string
	// PairsFrom, if set, reads parallel lines instead: the rows of that
	// voice (neutral) paired with Character's (styled), cut into segments
	// of at most MaxWords words (see ReadVoicePairs).
	PairsFrom string
	MaxWords  int
	// Sample keeps so many lines chosen evenly (0: all; SampleStyleLines).
	Sample int
	// Personas is a voices corpus folder whose personas.json gives the
	// system prompts ("": Data when it is a folder); NoPersona leaves them
	// out ("You are NAME.").
	Personas  string
	NoPersona bool
	// Profile, if set, is a style profile file (masque style profile) whose
	// tags and first Keywords keywords go into each character's prompt.
	Profile  string
	Keywords int
}

// LoadStyleInput reads the lines and builds each character's prompt hints.
// Unusable input rows are returned as problems, not errors.
func LoadStyleInput(in StyleInput) ([]StyleLine, []Problem, map[string]StyleHint, error) {
	var lines []StyleLine
	var probs []Problem
	var err error
	if in.PairsFrom != "" {
		lines, probs, err = ReadVoicePairs(in.Data, in.PairsFrom, in.Character, in.Split, in.MaxWords)
	} else {
		lines, probs, err = ReadStyleLines(in.Data, in.Character, in.Split)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	lines = SampleStyleLines(lines, in.Sample)
	hints := map[string]StyleHint{}
	if !in.NoPersona {
		personas := in.Personas
		if personas == "" {
			if st, err := os.Stat(in.Data); err == nil && st.IsDir() {
				personas = in.Data
			}
		}
		if personas != "" {
			vs, err := ReadVoicePersonas(personas)
			if err != nil {
				return nil, nil, nil, err
			}
			for _, v := range vs {
				hints[v.Name] = StyleHint{Persona: v.Persona}
			}
		}
	}
	if in.Profile != "" {
		set, err := style.Load(in.Profile)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, p := range set.Characters {
			h := hints[p.Name]
			h.Tags, h.Keywords = p.OnTags(), p.KeywordWords(in.Keywords)
			hints[p.Name] = h
		}
	}
	return lines, probs, hints, nil
}

// StyleNeedsTeacher reports whether a run over lines needs a teacher: a
// line without its neutral rewrite, or traces asked for.
func StyleNeedsTeacher(lines []StyleLine, trace bool) bool {
	for _, l := range lines {
		if l.Neutral == "" {
			return true
		}
	}
	return trace
}
