// Package hfsave writes trained models as Hugging Face checkpoint folders
// (config.json + model.safetensors, plus the base model's tokenizer files).
// It chooses the output type and the source folder the way the training
// engine wants and leaves the writing to model.SaveHF (every file replaced
// atomically).
package hfsave

import (
	"fmt"
	"os"

	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
)

// Options tune Save.
type Options struct {
	// DType is the element type of the saved tensors: "F32", "BF16" or
	// "F16" (case-insensitive; "float32", "bfloat16", "float16" too).
	// Empty means the model's torch_dtype (bfloat16 → BF16, float16 →
	// F16), else F32.
	DType string
	// SourceDir is the folder whose tokenizer files (tokenizer.json,
	// tokenizer_config.json, generation_config.json, …) are copied. Empty
	// means the model's Source() when that is a folder.
	SourceDir string
	// Metadata is added to the safetensors header.
	Metadata map[string]string
}

// ParseDType resolves an output type name; empty means the model's own
// torch_dtype (F32 when it is neither bfloat16 nor float16).
func ParseDType(m *model.Model, name string) (quant.DType, error) {
	if name == "" {
		return quant.FromTorchDType(m.Config.TorchDType), nil
	}
	t, err := quant.ParseDTypeOf(name, quant.F32, quant.BF16, quant.F16)
	if err != nil {
		return 0, fmt.Errorf("output dtype: %w", err)
	}
	return t, nil
}

// Save writes m to the folder dir (created if needed) as config.json and
// model.safetensors, with the tokenizer files of the source folder.
func Save(m *model.Model, dir string, o Options) error {
	dt, err := ParseDType(m, o.DType)
	if err != nil {
		return err
	}
	src := o.SourceDir
	if src == "" {
		if st, err := os.Stat(m.Source()); err == nil && st.IsDir() {
			src = m.Source()
		}
	}
	return model.SaveHF(dir, m, model.SaveOptions{DType: dt, CopyFrom: src, Metadata: o.Metadata})
}

// SaveMerged merges the LoRA adapter a into a copy of m and saves the
// result as a Hugging Face folder (config.json + model.safetensors, each
// written atomically, in the base model's dtype unless o says otherwise; the
// base folder's tokenizer files are copied). m is not modified.
func SaveMerged(a *lora.Adapter, m *model.Model, dir string, o Options) error {
	mm, err := a.Merged(m)
	if err != nil {
		return err
	}
	if o.SourceDir == "" {
		if st, err := os.Stat(m.Source()); err == nil && st.IsDir() {
			o.SourceDir = m.Source()
		}
	}
	return Save(mm, dir, o)
}
