package mask

import (
	"fmt"
	"strings"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
)

// A mask records its base model three ways: Base (how to open it again),
// Fingerprint (its exact weights and encoding) and Arch plus Probe (its
// layout and a sample of its weights' values, model.Probe). The last two
// let a mask made on a Hugging Face folder apply to that folder's GGUF
// conversions and quantisations, whose fingerprints differ: same layout,
// and weights that differ from the probe by no more than their encoding
// explains.

// Compat says whether mk can be applied to m. It can when m is the model
// the mask was made for (same fingerprint and shapes), or the same
// checkpoint in another encoding: a GGUF conversion or quantisation, with
// the same architecture, tensor names and shapes, and weights that differ
// from the mask's probe of its base by no more than the two encodings
// explain. For quantised weights the second result is a warning to show
// (the mask's choices were made on other values). Anything else is an
// error naming the mask file, its base and the model.
func (mk *Mask) Compat(m *model.Model) (warning string, err error) {
	fp := m.Fingerprint()
	another := func(why string) error {
		return fmt.Errorf("mask: %s was made for another model: %s (fingerprint %s), not %s (fingerprint %s)%s", mk.name(), mk.baseName(), short(mk.Fingerprint), m.Source(), short(fp), why)
	}
	if mk.Layers != m.Config.Layers || mk.Shapes != ProjShapes(&m.Config) {
		if fp == mk.Fingerprint {
			return "", fmt.Errorf("mask: %s: its layer shapes do not match model %s", mk.name(), m.Source())
		}
		return "", another("; the layer shapes differ")
	}
	if fp == mk.Fingerprint {
		return "", nil
	}
	if mk.Probe == nil || mk.Arch == "" {
		return "", another("")
	}
	why, pm, err := mk.Probe.Judge(m, mk.Arch, "the mask's sample")
	if err != nil {
		return "", fmt.Errorf("mask: model %s: %v", m.Source(), err)
	}
	if why != "" {
		return "", another(why)
	}
	if len(pm.Quantised) > 0 {
		return fmt.Sprintf("mask %s was made on %s; %s holds the same checkpoint with weights quantised to %s (%.2g%% from the mask's sample), so the mask is applied to slightly different weights than it was chosen on",
			mk.name(), mk.baseName(), m.Source(), strings.Join(pm.Quantised, ", "), 100*pm.Rel), nil
	}
	return "", nil
}

// name is the mask's file, or "this mask" for one not loaded from a file.
func (mk *Mask) name() string {
	if mk.file != "" {
		return mk.file
	}
	return "this mask"
}

// baseName is the recorded base, or what Info says, or "its base".
func (mk *Mask) baseName() string {
	switch {
	case mk.Base != "":
		return mk.Base
	case mk.Info.Model != "":
		return mk.Info.Model
	}
	return "its base model"
}

// ReadBase returns the base model the mask file at path records (its
// metadata only is read). A mask written before masque recorded the base
// gives an empty Ref.
func ReadBase(path string) (checkpoint.Base, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return checkpoint.Base{}, fmt.Errorf("mask: %w", err)
	}
	defer f.Close()
	meta := f.Metadata()
	if meta[metaFormat] != FormatName {
		return checkpoint.Base{}, fmt.Errorf("mask: %s: not a masque mask file (metadata format is %q, want %q)", path, meta[metaFormat], FormatName)
	}
	return checkpoint.Base{Ref: meta[metaBase], Fingerprint: meta[metaFingerprint], File: path}, nil
}
