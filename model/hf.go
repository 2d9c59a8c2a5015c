package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/safetensors"
)

// Load opens a model from path: a Hugging Face folder (config.json plus
// safetensors weights), or a llama2.c checkpoint (a .bin file).
// GGUF files are opened by LoadGGUF.
func Load(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening model: %w", err)
	}
	if st.IsDir() {
		return LoadHF(path)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".bin":
		return LoadLlama2C(path)
	case ".gguf":
		return LoadGGUF(path)
	case ".json", ".safetensors":
		return LoadHF(filepath.Dir(path))
	}
	return nil, fmt.Errorf("%s: not a model folder, .gguf or llama2.c .bin file", path)
}

// LoadHF loads a Hugging Face checkpoint folder. F32, F16 and BF16 matrices
// stay in their stored type, memory-mapped; vectors (norms, biases) are
// converted to float32.
func LoadHF(dir string) (*Model, error) {
	cfg, err := LoadHFConfig(dir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	m, err := buildHF(*cfg, set, dir)
	if err != nil {
		set.Close()
		return nil, err
	}
	m.closer = set
	m.source = dir
	return m, nil
}

// HFLayerPrefix returns the Hugging Face tensor name prefix of layer l ("model.layers.3.").
func HFLayerPrefix(l int) string { return fmt.Sprintf("model.layers.%d.", l) }

func buildHF(cfg Config, set *safetensors.Set, dir string) (*Model, error) {
	matrix := func(name string, rows, cols int) (*kernels.Matrix, error) {
		t, err := set.Tensor(name)
		if err != nil {
			return nil, err
		}
		if len(t.Shape) != 2 || t.Shape[0] != rows || t.Shape[1] != cols {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, want [%d %d]", t.File, name, t.Shape, rows, cols)
		}
		dt, err := t.Type()
		if err != nil {
			return nil, err
		}
		if dt != quant.F32 && dt != quant.F16 && dt != quant.BF16 {
			return nil, fmt.Errorf("%s: tensor %s has unsupported type %s", t.File, name, t.DType)
		}
		if dt == quant.F32 {
			// F32 data is used in place only if it is 4-byte aligned.
			if len(t.Data) > 0 && uintptrOf(t.Data)%4 != 0 {
				v, err := t.Float32s()
				if err != nil {
					return nil, err
				}
				return kernels.FromF32(rows, cols, v), nil
			}
		}
		return kernels.NewMatrix(dt, rows, cols, t.Data)
	}
	vector := func(name string, n int) ([]float32, error) {
		t, err := set.Tensor(name)
		if err != nil {
			return nil, err
		}
		if len(t.Shape) != 1 || t.Shape[0] != n {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, want [%d]", t.File, name, t.Shape, n)
		}
		return t.Float32s()
	}
	var err error
	m := &Model{Config: cfg}
	if m.Embed, err = matrix("model.embed_tokens.weight", cfg.Vocab, cfg.Hidden); err != nil {
		return nil, err
	}
	if m.Norm, err = vector("model.norm.weight", cfg.Hidden); err != nil {
		return nil, err
	}
	if cfg.Tied {
		m.LMHead = m.Embed
	} else if m.LMHead, err = matrix("lm_head.weight", cfg.Vocab, cfg.Hidden); err != nil {
		return nil, err
	}
	m.Layers = make([]Layer, cfg.Layers)
	for l := range m.Layers {
		ly := &m.Layers[l]
		pre := HFLayerPrefix(l)
		for p := Proj(0); p < NumProj; p++ {
			rows, cols := cfg.ProjShape(p)
			w, err := matrix(pre+p.HFName()+".weight", rows, cols)
			if err != nil {
				return nil, err
			}
			ly.SetWeight(p, w)
			if cfg.ProjHasBias(p) {
				b, err := vector(pre+p.HFName()+".bias", rows)
				if err != nil {
					return nil, err
				}
				ly.SetBias(p, b)
			}
		}
		if ly.AttnNorm, err = vector(pre+"input_layernorm.weight", cfg.Hidden); err != nil {
			return nil, err
		}
		if ly.MLPNorm, err = vector(pre+"post_attention_layernorm.weight", cfg.Hidden); err != nil {
			return nil, err
		}
		if cfg.QKNorm {
			if ly.QNorm, err = vector(pre+"self_attn.q_norm.weight", cfg.HeadDim); err != nil {
				return nil, err
			}
			if ly.KNorm, err = vector(pre+"self_attn.k_norm.weight", cfg.HeadDim); err != nil {
				return nil, err
			}
		}
	}
	if err := m.init(); err != nil {
		return nil, fmt.Errorf("%s: %v", dir, err)
	}
	return m, nil
}
