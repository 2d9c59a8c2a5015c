package pretrain

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
)

// Shape is the architecture of a new model, apart from what the tokenizer
// and the data decide (vocabulary, context, special tokens).
type Shape struct {
	Hidden, Intermediate, Layers, Heads, KVHeads, HeadDim int
	RopeTheta                                             float64
	NormEps                                               float32
}

// Presets are the model shapes `masque pretrain --preset` knows: Llama
// decoders with grouped-query attention and tied embeddings. The parameter
// counts in the comments are for an 8,192-token vocabulary.
var Presets = map[string]Shape{
	// ~0.6 M: for tests.
	"voices-tiny": {Hidden: 64, Intermediate: 176, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, RopeTheta: 10000, NormEps: 1e-5},
	// ~5.0 M (2.1 M of them the embeddings).
	"voices-small": {Hidden: 256, Intermediate: 688, Layers: 4, Heads: 8, KVHeads: 4, HeadDim: 32, RopeTheta: 10000, NormEps: 1e-5},
	// ~12.6 M (3.1 M of them the embeddings).
	"voices-base": {Hidden: 384, Intermediate: 1024, Layers: 6, Heads: 6, KVHeads: 2, HeadDim: 64, RopeTheta: 10000, NormEps: 1e-5},
}

// PresetNames lists the presets in a stable order.
func PresetNames() []string {
	var out []string
	for k := range Presets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// modelConfig turns a shape into a full model configuration for a
// vocabulary of vocab tokens and a context of maxSeq.
func (s Shape) modelConfig(vocab, maxSeq, bos int, eos []int) model.Config {
	return model.Config{Arch: "LlamaForCausalLM", ModelType: "llama", Hidden: s.Hidden, Intermediate: s.Intermediate, Layers: s.Layers,
		Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim, Vocab: vocab, MaxSeq: maxSeq, NormEps: s.NormEps, RopeTheta: s.RopeTheta,
		Tied: true, BOS: bos, EOS: eos}
}

// loadConfigFile reads a Hugging Face config.json as the architecture of a
// new model. Only what a freshly initialised Llama of this package can be
// is accepted: LlamaForCausalLM without biases, no sliding window, no rope
// scaling (vocabulary and context may be given; they are checked against
// the tokenizer and the sequence length by Run).
func loadConfigFile(path string) (*model.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading model config: %w", err)
	}
	c, err := model.ParseHFConfig(data, path)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Arch != "LlamaForCausalLM":
		return nil, fmt.Errorf("%s: architecture %s: pretraining makes LlamaForCausalLM models only", path, c.Arch)
	case c.AttnQKVBias || c.AttnOBias || c.MLPBias:
		return nil, fmt.Errorf("%s: attention_bias/mlp_bias are not supported for pretraining", path)
	case c.Rope.Type != "" && c.Rope.Type != "default":
		return nil, fmt.Errorf("%s: rope_scaling %q is not supported for pretraining", path, c.Rope.Type)
	}
	return c, nil
}

// Init draws the weights of a new model of shape cfg from seed: every
// matrix from N(0, std²), the output projections of the residual branches
// (o_proj, down_proj) from N(0, (std/√(2·layers))²), norm weights 1 (GPT-2's
// and OLMo's scheme). The embeddings double as the LM head when cfg.Tied.
// The same seed gives the same weights on every machine (math/rand/v2's
// PCG and NormFloat64 are exact).
func Init(cfg model.Config, seed uint64, std float64) (*model.Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !(std > 0) {
		return nil, fmt.Errorf("initialisation std %g must be positive", std)
	}
	rng := rand.New(rand.NewPCG(seed, 0x7072657472616e)) // "pretran"
	mat := func(r, c int, sd float64) *kernels.Matrix {
		v := make([]float32, r*c)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * sd)
		}
		return kernels.FromF32(r, c, v)
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	H, qd, kvd, ff := cfg.Hidden, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	resid := std / math.Sqrt(2*float64(cfg.Layers))
	embed := mat(cfg.Vocab, H, std)
	layers := make([]model.Layer, cfg.Layers)
	for i := range layers {
		l := &layers[i]
		l.AttnNorm, l.MLPNorm = ones(H), ones(H)
		l.Q, l.K, l.V, l.O = mat(qd, H, std), mat(kvd, H, std), mat(kvd, H, std), mat(H, qd, resid)
		l.Gate, l.Up, l.Down = mat(ff, H, std), mat(ff, H, std), mat(H, ff, resid)
		if cfg.QKNorm {
			l.QNorm, l.KNorm = ones(cfg.HeadDim), ones(cfg.HeadDim)
		}
	}
	var head *kernels.Matrix
	if !cfg.Tied {
		head = mat(cfg.Vocab, H, std)
	}
	return model.New(cfg, embed, layers, ones(H), head)
}

// Counts are a model's parameter counts.
type Counts struct {
	Total     int64 `json:"total"`
	Embedding int64 `json:"embedding"` // the input embeddings (also the head when tied)
	// NonEmbedding counts the decoder layers and the final norm.
	NonEmbedding int64 `json:"non_embedding"`
	// Head counts the LM head's matrix (the embeddings again when tied): it
	// costs compute either way.
	Head int64 `json:"head"`
}

// CountParams counts the parameters of a model of shape cfg.
func CountParams(cfg model.Config) Counts {
	H, qd, kvd, ff := int64(cfg.Hidden), int64(cfg.QDim()), int64(cfg.KVDim()), int64(cfg.Intermediate)
	perLayer := 2*H + qd*H + 2*kvd*H + H*qd + 3*ff*H
	if cfg.QKNorm {
		perLayer += 2 * int64(cfg.HeadDim)
	}
	c := Counts{Embedding: int64(cfg.Vocab) * H, NonEmbedding: int64(cfg.Layers)*perLayer + H, Head: int64(cfg.Vocab) * H}
	c.Total = c.Embedding + c.NonEmbedding
	if !cfg.Tied {
		c.Total += c.Head
	}
	return c
}
