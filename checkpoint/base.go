package checkpoint

import (
	"fmt"
	"path/filepath"

	"github.com/masque-ai/masque/internal/builtin"
)

// Base is the model an artifact (a mask, a LoRA adapter, a statistics
// folder, a sculpt run) was made on, as the artifact records it.
type Base struct {
	// Ref opens the model again (Checkpoint.Ref): a built-in name, a hub id
	// org/name[@rev][:QUANT] or a path. Empty when the artifact records none
	// (files written before masque recorded it, or by other tools).
	Ref string
	// Fingerprint is the base's model.Fingerprint ("" when not recorded).
	Fingerprint string
	// File is the file that records it, named in notes and errors.
	File string
}

// refOf is Checkpoint.Ref of the model opened from given (its path as
// opened being path): the built-in name, the hub id as given, or the
// absolute path.
func refOf(given, path string) string {
	switch {
	case builtin.IsVoices(given):
		return builtin.Voices
	case given == builtin.Stories:
		return builtin.Stories
	case given != path:
		return given // a hub id, resolved to its snapshot in the cache
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// ChooseModel says which model a command opens. A model given by the user
// (--model) is used as it is. Otherwise the base that the command's
// artifacts record is used, and note says so ("using base X recorded in
// FILE"); artifacts that record different bases are an error naming both
// files. With neither, model is "" (the default model) and note is empty.
// Artifacts with no recorded base (Ref empty) are ignored.
func ChooseModel(model string, bases ...Base) (ref, note string, err error) {
	if model != "" {
		return model, "", nil
	}
	var chosen *Base
	for i := range bases {
		b := &bases[i]
		if b.Ref == "" {
			continue
		}
		if chosen == nil {
			chosen = b
			continue
		}
		same := b.Ref == chosen.Ref
		if b.Fingerprint != "" && chosen.Fingerprint != "" {
			same = b.Fingerprint == chosen.Fingerprint
		}
		if !same {
			return "", "", fmt.Errorf("%s records base %s but %s records base %s: pass --model", chosen.File, chosen.Ref, b.File, b.Ref)
		}
	}
	if chosen == nil {
		return "", "", nil
	}
	return chosen.Ref, fmt.Sprintf("using base %s recorded in %s", chosen.Ref, chosen.File), nil
}
