package calib

import (
	"context"
	"errors"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/model"
)

// Source selects a calibration set, as the --calib-* flags of masque stats
// and masque subnet do: at most one of Text, Chat and Persona; none selects
// the shipped generic set.
type Source struct {
	Text    string // a text file, one sample per line
	Chat    string // a chat JSONL file ({"messages":[...]} per line), rendered with the chat template
	Persona string // a persona description: the model answers seed questions in this persona
	// Persona tunes the persona set (its Options are taken from Options, and
	// its Progress is the one given to Build).
	PersonaOptions
	// Save, when set, also receives the set's texts (e.g. the generated
	// persona answers), one per line, written atomically.
	Save string
}

// Model is what building a set needs of a checkpoint: the model (to answer
// persona questions), its tokenizer, chat rendering and stop tokens.
type Model struct {
	Model *model.Model
	Tok   Tokenizer
	Chat  ChatFunc
	Stop  []int
}

// ModelOf returns what building a set needs of ck: its model, tokenizer,
// chat template (without template variables) and stop tokens.
func ModelOf(ck *checkpoint.Checkpoint) Model {
	return Model{Model: ck.Model, Tok: ck.Tokenizer, Chat: ck.ChatEncoder(), Stop: ck.StopTokens()}
}

// Validate reports a Source that names more than one set.
func (s Source) Validate() error {
	n := 0
	for _, v := range []string{s.Text, s.Chat, s.Persona} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return errors.New("give only one of --calib-text, --calib-chat and --calib-persona")
	}
	return nil
}

// Build returns the set the source selects. progress, if set, follows the
// persona answers.
func (s Source) Build(ctx context.Context, m Model, progress func(done, total int)) (*Set, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	o := s.Options
	var set *Set
	var err error
	switch {
	case s.Text != "":
		set, err = FromTextFile(s.Text, m.Tok, o)
	case s.Chat != "":
		set, err = FromChatJSONL(s.Chat, m.Chat, o)
	case s.Persona != "":
		set, err = s.FromPersona(ctx, m, s.Persona, progress)
	default:
		set, err = Generic(m.Tok, o)
	}
	if err != nil {
		return nil, err
	}
	return set, s.save(set)
}

// FromPersona builds the persona set of description with the source's
// persona options (and writes it to Save).
func (s Source) FromPersona(ctx context.Context, m Model, description string, progress func(done, total int)) (*Set, error) {
	po := s.PersonaOptions
	po.StopTokens, po.Progress = m.Stop, progress
	set, err := FromPersona(ctx, m.Model, m.Tok, m.Chat, description, po)
	if err != nil {
		return nil, err
	}
	return set, s.save(set)
}

func (s Source) save(set *Set) error {
	if s.Save == "" || set == nil {
		return nil
	}
	return atomicfile.WriteFileAll(s.Save, set.WriteText)
}
