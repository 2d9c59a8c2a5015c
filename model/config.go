package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/masque-ai/masque/internal/fileerr"
)

// Config describes a decoder-only transformer of the Llama family. Field
// names follow Hugging Face's config.json where one exists.
type Config struct {
	Arch          string  // "LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM", "llama2.c"
	ModelType     string  // config.json model_type (llama, qwen2, qwen3, mistral)
	Hidden        int     // hidden_size
	Intermediate  int     // intermediate_size (d_ff)
	Layers        int     // num_hidden_layers
	Heads         int     // num_attention_heads
	KVHeads       int     // num_key_value_heads
	HeadDim       int     // head_dim
	Vocab         int     // vocab_size
	MaxSeq        int     // max_position_embeddings
	NormEps       float32 // rms_norm_eps
	RopeTheta     float64 // rope_theta
	Rope          RopeScaling
	Tied          bool // tie_word_embeddings
	AttnQKVBias   bool // q, k, v projections have biases
	AttnOBias     bool // o projection has a bias
	MLPBias       bool // gate, up, down have biases
	QKNorm        bool // per-head RMSNorm of q and k before RoPE (Qwen3)
	SlidingWindow int  // 0 = full causal attention
	BOS           int  // -1 if none
	EOS           []int
	TorchDType    string
}

// RopeScaling is the rope_scaling section of config.json.
type RopeScaling struct {
	Type                 string  // "", "default", "linear", "llama3"
	Factor               float64 // scaling factor
	LowFreqFactor        float64 // llama3
	HighFreqFactor       float64 // llama3
	OriginalMaxPositions int     // llama3 original_max_position_embeddings
	// FreqFactors, if set (HeadDim/2 values), divide the inverse frequencies
	// after any scaling above: GGUF files store llama3 scaling this way
	// (the rope_freqs tensor).
	FreqFactors []float32
}

// KVDim is the width of one position's keys (or values) across all KV heads.
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// QDim is the width of the query projection's output.
func (c *Config) QDim() int { return c.Heads * c.HeadDim }

// IsEOS reports whether id ends generation.
func (c *Config) IsEOS(id int) bool {
	for _, e := range c.EOS {
		if e == id {
			return true
		}
	}
	return false
}

// Validate checks that the dimensions are consistent.
func (c *Config) Validate() error {
	switch {
	case c.Hidden <= 0 || c.Intermediate <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.Vocab <= 0:
		return fmt.Errorf("sizes must be positive (hidden_size %d, intermediate_size %d, num_hidden_layers %d, num_attention_heads %d, num_key_value_heads %d, vocab_size %d)",
			c.Hidden, c.Intermediate, c.Layers, c.Heads, c.KVHeads, c.Vocab)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("head_dim %d must be positive and even", c.HeadDim)
	case c.Hidden > 1<<20 || c.Intermediate > 1<<22 || c.Layers > 4096 || c.Heads > 4096 || c.Vocab > 1<<24 || c.HeadDim > 4096:
		return fmt.Errorf("implausible sizes (hidden_size %d, intermediate_size %d, layers %d, heads %d, vocab %d, head_dim %d)", c.Hidden, c.Intermediate, c.Layers, c.Heads, c.Vocab, c.HeadDim)
	case !(c.NormEps > 0) || math.IsInf(float64(c.NormEps), 0):
		return fmt.Errorf("rms_norm_eps %g must be positive", c.NormEps)
	case !(c.RopeTheta > 0):
		return fmt.Errorf("rope_theta %g must be positive", c.RopeTheta)
	}
	if f := c.Rope.FreqFactors; f != nil {
		if len(f) != c.HeadDim/2 {
			return fmt.Errorf("rope frequency factors: %d values, want head_dim/2 = %d", len(f), c.HeadDim/2)
		}
		for _, v := range f {
			if !(v > 0) {
				return fmt.Errorf("rope frequency factors must be positive")
			}
		}
	}
	switch c.Rope.Type {
	case "", "default":
	case "linear":
		if !(c.Rope.Factor > 0) {
			return fmt.Errorf("rope_scaling linear needs a positive factor")
		}
	case "llama3":
		r := c.Rope
		if !(r.Factor > 0) || !(r.LowFreqFactor > 0) || !(r.HighFreqFactor > r.LowFreqFactor) || r.OriginalMaxPositions <= 0 {
			return fmt.Errorf("rope_scaling llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
		}
	default:
		return fmt.Errorf("rope_scaling type %q is not supported (default, linear and llama3 are)", c.Rope.Type)
	}
	return nil
}

// hfConfig mirrors the fields of a Hugging Face config.json that matter here.
type hfConfig struct {
	Architectures     []string        `json:"architectures"`
	ModelType         string          `json:"model_type"`
	HiddenSize        int             `json:"hidden_size"`
	IntermediateSize  int             `json:"intermediate_size"`
	NumHiddenLayers   int             `json:"num_hidden_layers"`
	NumAttentionHeads int             `json:"num_attention_heads"`
	NumKeyValueHeads  *int            `json:"num_key_value_heads"`
	HeadDim           *int            `json:"head_dim"`
	VocabSize         int             `json:"vocab_size"`
	MaxPosition       int             `json:"max_position_embeddings"`
	RMSNormEps        *float64        `json:"rms_norm_eps"`
	RopeTheta         *float64        `json:"rope_theta"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	RopeParameters    json.RawMessage `json:"rope_parameters"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
	AttentionBias     bool            `json:"attention_bias"`
	MLPBias           bool            `json:"mlp_bias"`
	SlidingWindow     *int            `json:"sliding_window"`
	UseSlidingWindow  *bool           `json:"use_sliding_window"`
	HiddenAct         string          `json:"hidden_act"`
	BOSTokenID        json.RawMessage `json:"bos_token_id"`
	EOSTokenID        json.RawMessage `json:"eos_token_id"`
	TorchDType        string          `json:"torch_dtype"`
	PartialRotary     *float64        `json:"partial_rotary_factor"`
}

type hfRope struct {
	RopeType       string   `json:"rope_type"`
	Type           string   `json:"type"`
	Factor         float64  `json:"factor"`
	LowFreqFactor  float64  `json:"low_freq_factor"`
	HighFreqFactor float64  `json:"high_freq_factor"`
	OriginalMax    int      `json:"original_max_position_embeddings"`
	RopeTheta      *float64 `json:"rope_theta"`
}

// Supported lists the config.json architectures masque runs.
var Supported = []string{"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"}

// ParseHFConfig parses a Hugging Face config.json. name is used in errors.
func ParseHFConfig(data []byte, name string) (*Config, error) {
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON: %s", name, fileerr.JSON(err))
	}
	if len(h.Architectures) == 0 {
		return nil, fmt.Errorf("%s: no \"architectures\" entry, cannot tell which model this is", name)
	}
	c := &Config{
		Arch: h.Architectures[0], ModelType: h.ModelType,
		Hidden: h.HiddenSize, Intermediate: h.IntermediateSize, Layers: h.NumHiddenLayers,
		Heads: h.NumAttentionHeads, Vocab: h.VocabSize, MaxSeq: h.MaxPosition,
		NormEps: 1e-6, RopeTheta: 10000, Tied: false, BOS: -1, TorchDType: h.TorchDType,
	}
	switch c.Arch {
	case "LlamaForCausalLM":
		c.AttnQKVBias, c.AttnOBias, c.MLPBias = h.AttentionBias, h.AttentionBias, h.MLPBias
	case "MistralForCausalLM":
		if h.SlidingWindow != nil {
			c.SlidingWindow = *h.SlidingWindow
		}
	case "Qwen2ForCausalLM":
		c.AttnQKVBias = true
		if h.UseSlidingWindow != nil && *h.UseSlidingWindow {
			return nil, fmt.Errorf("%s: use_sliding_window=true is not supported for Qwen2", name)
		}
	case "Qwen3ForCausalLM":
		c.AttnQKVBias, c.AttnOBias, c.QKNorm = h.AttentionBias, h.AttentionBias, true
		if h.UseSlidingWindow != nil && *h.UseSlidingWindow {
			return nil, fmt.Errorf("%s: use_sliding_window=true is not supported for Qwen3", name)
		}
	default:
		return nil, fmt.Errorf("%s: unknown architecture %q (supported: %v)", name, c.Arch, Supported)
	}
	if h.HiddenAct != "" && h.HiddenAct != "silu" {
		return nil, fmt.Errorf("%s: hidden_act %q is not supported (only silu)", name, h.HiddenAct)
	}
	if h.PartialRotary != nil && *h.PartialRotary != 1 {
		return nil, fmt.Errorf("%s: partial_rotary_factor %g is not supported", name, *h.PartialRotary)
	}
	c.KVHeads = c.Heads
	if h.NumKeyValueHeads != nil {
		c.KVHeads = *h.NumKeyValueHeads
	}
	switch {
	case h.HeadDim != nil:
		c.HeadDim = *h.HeadDim
	case c.Arch == "Qwen3ForCausalLM":
		c.HeadDim = 128
	case c.Heads > 0:
		c.HeadDim = c.Hidden / c.Heads
	}
	if h.RMSNormEps != nil {
		c.NormEps = float32(*h.RMSNormEps)
	}
	if h.RopeTheta != nil {
		c.RopeTheta = *h.RopeTheta
	}
	if h.TieWordEmbeddings != nil {
		c.Tied = *h.TieWordEmbeddings
	}
	for _, raw := range []json.RawMessage{h.RopeScaling, h.RopeParameters} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var r hfRope
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("%s: malformed rope_scaling: %v", name, err)
		}
		if r.RopeTheta != nil {
			c.RopeTheta = *r.RopeTheta
		}
		t := r.RopeType
		if t == "" {
			t = r.Type
		}
		c.Rope = RopeScaling{Type: t, Factor: r.Factor, LowFreqFactor: r.LowFreqFactor, HighFreqFactor: r.HighFreqFactor, OriginalMaxPositions: r.OriginalMax}
	}
	var err error
	if c.BOS, err = firstID(h.BOSTokenID); err != nil {
		return nil, fmt.Errorf("%s: bos_token_id: %v", name, err)
	}
	if c.EOS, err = idList(h.EOSTokenID); err != nil {
		return nil, fmt.Errorf("%s: eos_token_id: %v", name, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return c, nil
}

// LoadHFConfig reads dir/config.json and, if present, dir/generation_config.json
// (whose eos_token_id list is added to the config's).
func LoadHFConfig(dir string) (*Config, error) {
	p := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading model config: %w", err)
	}
	c, err := ParseHFConfig(data, p)
	if err != nil {
		return nil, err
	}
	gp := filepath.Join(dir, "generation_config.json")
	if gdata, err := os.ReadFile(gp); err == nil {
		var g struct {
			EOS json.RawMessage `json:"eos_token_id"`
			BOS json.RawMessage `json:"bos_token_id"`
		}
		if err := json.Unmarshal(gdata, &g); err != nil {
			return nil, fmt.Errorf("%s: malformed JSON: %s", gp, fileerr.JSON(err))
		}
		ids, err := idList(g.EOS)
		if err != nil {
			return nil, fmt.Errorf("%s: eos_token_id: %v", gp, err)
		}
		for _, id := range ids {
			if !c.IsEOS(id) {
				c.EOS = append(c.EOS, id)
			}
		}
		if c.BOS < 0 {
			if c.BOS, err = firstID(g.BOS); err != nil {
				return nil, fmt.Errorf("%s: bos_token_id: %v", gp, err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading generation config: %w", err)
	}
	return c, nil
}

func idList(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want an integer or a list of integers, got %s", raw)
	}
	return many, nil
}

func firstID(raw json.RawMessage) (int, error) {
	ids, err := idList(raw)
	if err != nil || len(ids) == 0 {
		return -1, err
	}
	return ids[0], nil
}
