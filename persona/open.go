package persona

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

// Opened is a persona opened over a shared base model, ready to run: its
// mask and LoRA adapter as an Overlay applied per sequence (KindMask,
// KindLoRA, KindMaskLoRA), or its own model (KindModel), or nothing beyond
// the base (KindBase, whose system prompt is Spec.Prompt).
type Opened struct {
	// Spec is the persona, its file paths resolved (see Open).
	Spec Spec
	// Overlay holds the mask and adapter kinds' corrections; nil for the
	// other kinds.
	Overlay *Overlay
	// Checkpoint is a KindModel persona's own model (with its tokenizer and
	// template), which Close closes; nil for the other kinds.
	Checkpoint *checkpoint.Checkpoint
	// Warning, when not empty, is to be shown: the mask was made on another
	// encoding of the base, whose weights are quantised (mask.Compat), or
	// the adapter was made on another encoding of the base, or records
	// another base fingerprint and no probe to tell (lora.Adapter.Compat).
	Warning string
	// Mask describes the persona's mask, from the mask file; nil without
	// one.
	Mask *MaskSummary
}

// MaskSummary is what a persona's mask file says about the mask.
type MaskSummary struct {
	// Method, Granularity and Targets are how the mask was made (its
	// metadata; empty when the file does not say): "wanda", "row", "mlp", ….
	Method      string `json:"method,omitempty"`
	Granularity string `json:"granularity,omitempty"`
	Targets     string `json:"targets,omitempty"`
	// TargetSparsity is the share of weights the method was asked to
	// prune (its metadata); Sparsity is the share the mask prunes, over
	// all linear layers.
	TargetSparsity float64 `json:"target_sparsity"`
	Sparsity       float64 `json:"sparsity"`
}

// Open validates spec and opens it over base, the shared model that its
// mask and LoRA adapter were made for. When root is not empty, the spec's
// file paths (mask, lora, model) must be relative paths that stay inside
// the folder root (symbolic links followed), as for personas that clients
// add to a running server; Opened.Spec holds them resolved. A spec that
// still names a card must have been imported first (LoadRegistry does).
// A mask or LoRA persona that also names a Model applies over that model
// instead of a default base: base must be it (the caller opens or finds it,
// as a server runs it as a base of its own; the mask's and adapter's
// compatibility checks hold against it), and Open leaves Spec.Model as given.
// Nothing of base is copied; base must stay open while the result is used.
func Open(spec Spec, base *model.Model, root string) (*Opened, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Card != "" {
		return nil, fmt.Errorf("persona %s: the card %s is not imported (LoadRegistry imports cards)", spec.Name, spec.Card)
	}
	if root != "" {
		for _, p := range []*string{&spec.Mask, &spec.LoRA, &spec.Model} {
			if *p == "" || p == &spec.Model && spec.Kind() != KindModel {
				continue
			}
			full, err := resolveUnder(root, *p)
			if err != nil {
				return nil, err
			}
			*p = full
		}
	}
	o := &Opened{Spec: spec}
	switch spec.Kind() {
	case KindModel:
		ck, err := checkpoint.Open(spec.Model, checkpoint.Options{})
		if err != nil {
			return nil, err
		}
		o.Checkpoint = ck
	case KindMask, KindLoRA, KindMaskLoRA:
		if base == nil {
			return nil, fmt.Errorf("persona %s: a %s persona needs a base model", spec.Name, spec.Kind())
		}
		var mk *mask.Mask
		var ad *lora.Adapter
		var err error
		if spec.Mask != "" {
			if mk, err = mask.Load(spec.Mask); err != nil {
				return nil, err
			}
			if o.Warning, err = mk.Compat(base); err != nil {
				return nil, fmt.Errorf("persona %s: %w", spec.Name, err)
			}
			o.Mask = &MaskSummary{Method: mk.Info.Method, Granularity: mk.Info.Granularity, Targets: mk.Info.Targets,
				TargetSparsity: mk.Info.Sparsity, Sparsity: 1 - mk.Density()}
		}
		if spec.LoRA != "" {
			if ad, err = lora.Load(spec.LoRA); err != nil {
				return nil, err
			}
			w, err := ad.Compat(base)
			if err != nil {
				return nil, fmt.Errorf("persona %s: %w", spec.Name, err)
			}
			if w != "" {
				o.Warning = strings.TrimPrefix(o.Warning+"; "+w, "; ")
			}
		}
		if o.Overlay, err = NewOverlay(base, mk, ad); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Bases returns the base models that the specs' masks and LoRA adapters
// record (mask.ReadBase, lora.ReadBase; only their metadata is read), for
// a server that is given personas and no base model; the masks and adapters
// of personas that name their Model apply over that model and are left
// out. Paths are used as they are (LoadRegistry has resolved them).
func Bases(specs []Spec) ([]checkpoint.Base, error) {
	var out []checkpoint.Base
	for _, s := range specs {
		if s.Model != "" {
			continue // its mask and adapter apply over the model it names
		}
		if s.Mask != "" {
			b, err := mask.ReadBase(s.Mask)
			if err != nil {
				return nil, fmt.Errorf("persona %s: %w", s.Name, err)
			}
			out = append(out, b)
		}
		if s.LoRA != "" {
			b, err := lora.ReadBase(s.LoRA)
			if err != nil {
				return nil, fmt.Errorf("persona %s: %w", s.Name, err)
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// Adapter is the persona's per-sequence model.Adapter (model.BatchSeq),
// or nil when it has none.
func (o *Opened) Adapter() model.Adapter { return o.Overlay.Adapter() }

// Hooks are the persona's per-sequence hooks (model.BatchSeq), or nil.
func (o *Opened) Hooks() *model.Hooks { return o.Overlay.Hooks() }

// Bytes is the memory the persona holds beyond the shared base model (a
// KindModel persona's own model not counted).
func (o *Opened) Bytes() int64 { return o.Overlay.Bytes() }

// Close closes a KindModel persona's own model; the other kinds hold
// nothing to close.
func (o *Opened) Close() error {
	if o.Checkpoint == nil {
		return nil
	}
	return o.Checkpoint.Close()
}

// resolveUnder resolves the relative path p inside root, following
// symbolic links, and fails if the result leaves root.
func resolveUnder(root, p string) (string, error) {
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("path %q must be relative to the persona folder and stay inside it", p)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("persona folder: %v", err)
	}
	full, err := filepath.EvalSymlinks(filepath.Join(realRoot, p))
	if err != nil {
		return "", fmt.Errorf("path %q: no such file in the persona folder", p)
	}
	rel, err := filepath.Rel(realRoot, full)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %q leaves the persona folder", p)
	}
	return full, nil
}

// Model returns the model that runs the persona for code that takes one
// model (decoding, evaluation): the base as it is (KindBase), the base
// with the overlay applied per sequence (mask and LoRA kinds; see
// Overlay.Model), or the persona's own model (KindModel).
func (o *Opened) Model(base *model.Model) *model.Model {
	switch {
	case o.Checkpoint != nil:
		return o.Checkpoint.Model
	case o.Overlay != nil:
		return o.Overlay.Model()
	}
	return base
}

// ResolveUnder resolves the relative path p inside the folder root as Open
// does for a spec's files when given a root (symbolic links followed), and
// fails if the result leaves root.
func ResolveUnder(root, p string) (string, error) { return resolveUnder(root, p) }
