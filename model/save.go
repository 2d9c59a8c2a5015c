package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/safetensors"
)

// HFConfig returns the config.json fields that describe c.
func (c *Config) HFConfig() map[string]any {
	arch := c.Arch
	mt := c.ModelType
	if arch == "llama2.c" || arch == "" {
		arch, mt = "LlamaForCausalLM", "llama"
	}
	if mt == "" {
		mt = map[string]string{"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "MistralForCausalLM": "mistral"}[arch]
	}
	h := map[string]any{
		"architectures": []string{arch}, "model_type": mt,
		"hidden_size": c.Hidden, "intermediate_size": c.Intermediate, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "head_dim": c.HeadDim,
		"vocab_size": c.Vocab, "max_position_embeddings": c.MaxSeq, "rms_norm_eps": c.NormEps,
		"rope_theta": c.RopeTheta, "tie_word_embeddings": c.Tied, "hidden_act": "silu",
		"torch_dtype": c.TorchDType,
	}
	switch arch {
	case "LlamaForCausalLM":
		h["attention_bias"] = c.AttnQKVBias
		h["mlp_bias"] = c.MLPBias
	case "Qwen3ForCausalLM":
		h["attention_bias"] = c.AttnQKVBias
	case "MistralForCausalLM":
		if c.SlidingWindow > 0 {
			h["sliding_window"] = c.SlidingWindow
		} else {
			h["sliding_window"] = nil
		}
	}
	switch c.Rope.Type {
	case "linear":
		h["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": c.Rope.Factor}
	case "llama3":
		h["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": c.Rope.Factor, "low_freq_factor": c.Rope.LowFreqFactor,
			"high_freq_factor": c.Rope.HighFreqFactor, "original_max_position_embeddings": c.Rope.OriginalMaxPositions}
	}
	if c.BOS >= 0 {
		h["bos_token_id"] = c.BOS
	}
	switch len(c.EOS) {
	case 0:
	case 1:
		h["eos_token_id"] = c.EOS[0]
	default:
		h["eos_token_id"] = c.EOS
	}
	return h
}

// tokenizerFiles are copied from a source folder by SaveHF.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
	"chat_template.jinja", "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json"}

// SaveOptions tune SaveHF.
type SaveOptions struct {
	// DType of the matrices and vectors written: F32, F16 or BF16. Zero
	// value F32.
	DType quant.DType
	// CopyFrom, if set, is a folder whose tokenizer and generation files
	// (tokenizer.json, tokenizer_config.json, generation_config.json, …)
	// are copied next to the weights.
	CopyFrom string
	// Metadata is stored in the safetensors header.
	Metadata map[string]string
}

// SaveHF writes m as a Hugging Face folder: config.json and
// model.safetensors (plus tokenizer files from o.CopyFrom). Each file is
// written atomically (temp file, then rename). Quantised matrices are
// dequantised first.
func SaveHF(dir string, m *Model, o SaveOptions) error {
	var st string
	switch o.DType {
	case quant.F32:
		st = "F32"
	case quant.F16:
		st = "F16"
	case quant.BF16:
		st = "BF16"
	default:
		return fmt.Errorf("saving %s: type %s is not a Hugging Face dtype (want f32, f16 or bf16)", dir, o.DType)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	var ts []safetensors.WriteTensor
	vec := func(name string, v []float32) {
		ts = append(ts, safetensors.WriteTensor{Name: name, DType: st, Shape: []int{len(v)}, Data: encodeF32(o.DType, v)})
	}
	mat := func(name string, w *kernels.Matrix) {
		var data []byte
		if w.Type == o.DType {
			data = w.Data
		} else {
			data = encodeF32(o.DType, w.Float32s())
		}
		ts = append(ts, safetensors.WriteTensor{Name: name, DType: st, Shape: []int{w.Rows, w.Cols}, Data: data})
	}
	c := m.Config
	mat("model.embed_tokens.weight", m.Embed)
	for l := range m.Layers {
		ly := &m.Layers[l]
		pre := HFLayerPrefix(l)
		vec(pre+"input_layernorm.weight", ly.AttnNorm)
		for p := Proj(0); p < NumProj; p++ {
			mat(pre+p.HFName()+".weight", ly.Weight(p))
			if b := ly.Bias(p); b != nil {
				vec(pre+p.HFName()+".bias", b)
			}
		}
		if ly.QNorm != nil {
			vec(pre+"self_attn.q_norm.weight", ly.QNorm)
			vec(pre+"self_attn.k_norm.weight", ly.KNorm)
		}
		vec(pre+"post_attention_layernorm.weight", ly.MLPNorm)
	}
	vec("model.norm.weight", m.Norm)
	if m.LMHead != m.Embed {
		mat("lm_head.weight", m.LMHead)
	}
	c.Tied = m.LMHead == m.Embed
	c.TorchDType = o.DType.TorchDType()
	md := map[string]string{"format": "pt"}
	for k, v := range o.Metadata {
		md[k] = v
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, md); err != nil {
		return err
	}
	// Remove stale shards so the folder has exactly one set of weights.
	if old, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors")); len(old) > 0 {
		for _, f := range old {
			os.Remove(f)
		}
	}
	os.Remove(filepath.Join(dir, "model.safetensors.index.json"))
	cfgJSON, err := json.MarshalIndent(c.HFConfig(), "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), func(w io.Writer) error {
		_, err := w.Write(append(cfgJSON, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("saving %s: %w", dir, err)
	}
	if o.CopyFrom != "" && filepath.Clean(o.CopyFrom) != filepath.Clean(dir) {
		for _, name := range tokenizerFiles {
			if err := copyFile(filepath.Join(o.CopyFrom, name), filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.WriteFile(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

func encodeF32(t quant.DType, v []float32) []byte {
	switch t {
	case quant.F16:
		return safetensors.F16Bytes(v)
	case quant.BF16:
		return safetensors.BF16Bytes(v)
	}
	return safetensors.F32Bytes(v)
}

// ArchFor returns the config.json architecture name for a short name
// (llama, qwen2, qwen3, mistral, smollm).
func ArchFor(short string) (string, error) {
	switch strings.ToLower(short) {
	case "llama", "smollm", "llama3", "llama2":
		return "LlamaForCausalLM", nil
	case "qwen2", "qwen2.5":
		return "Qwen2ForCausalLM", nil
	case "qwen3":
		return "Qwen3ForCausalLM", nil
	case "mistral":
		return "MistralForCausalLM", nil
	}
	return "", fmt.Errorf("unknown architecture %q (want llama, qwen2, qwen3, mistral or smollm)", short)
}
