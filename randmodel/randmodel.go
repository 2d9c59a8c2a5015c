// Package randmodel makes random-weight models with the shapes of real ones
// (Qwen2.5-0.5B, Llama-3.2-1B, Qwen3-0.6B, SmolLM2-135M, …) for benchmarks
// and tests: speed does not depend on weight values. A folder it writes is
// an ordinary Hugging Face checkpoint with a synthetic byte-level BPE
// tokenizer, so every masque command (and llama.cpp, after conversion) runs it.
package randmodel

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
)

// Presets are the shapes of real models, by name.
var Presets = map[string]model.Config{
	"qwen2.5-0.5b": {Arch: "Qwen2ForCausalLM", ModelType: "qwen2", Hidden: 896, Intermediate: 4864, Layers: 24, Heads: 14, KVHeads: 2, HeadDim: 64,
		Vocab: 151936, MaxSeq: 32768, NormEps: 1e-6, RopeTheta: 1e6, Tied: true, AttnQKVBias: true, BOS: -1, EOS: []int{151643}},
	"qwen3-0.6b": {Arch: "Qwen3ForCausalLM", ModelType: "qwen3", Hidden: 1024, Intermediate: 3072, Layers: 28, Heads: 16, KVHeads: 8, HeadDim: 128,
		Vocab: 151936, MaxSeq: 40960, NormEps: 1e-6, RopeTheta: 1e6, Tied: true, QKNorm: true, BOS: -1, EOS: []int{151645}},
	"llama3.2-1b": {Arch: "LlamaForCausalLM", ModelType: "llama", Hidden: 2048, Intermediate: 8192, Layers: 16, Heads: 32, KVHeads: 8, HeadDim: 64,
		Vocab: 128256, MaxSeq: 131072, NormEps: 1e-5, RopeTheta: 5e5, Tied: true, BOS: 128000, EOS: []int{128001},
		Rope: model.RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}},
	"smollm2-135m": {Arch: "LlamaForCausalLM", ModelType: "llama", Hidden: 576, Intermediate: 1536, Layers: 30, Heads: 9, KVHeads: 3, HeadDim: 64,
		Vocab: 49152, MaxSeq: 8192, NormEps: 1e-5, RopeTheta: 1e5, Tied: true, BOS: 1, EOS: []int{2}},
	"train-20m": {Arch: "LlamaForCausalLM", ModelType: "llama", Hidden: 512, Intermediate: 1376, Layers: 8, Heads: 8, KVHeads: 8, HeadDim: 64,
		Vocab: 8192, MaxSeq: 1024, NormEps: 1e-5, RopeTheta: 1e4, Tied: false, BOS: -1},
	"tiny": {Arch: "LlamaForCausalLM", ModelType: "llama", Hidden: 64, Intermediate: 176, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16,
		Vocab: 512, MaxSeq: 512, NormEps: 1e-5, RopeTheta: 1e4, Tied: true, BOS: -1},
}

// PresetNames lists the presets in a stable order.
func PresetNames() []string {
	var n []string
	for k := range Presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// New returns a model of shape cfg with weights drawn from N(0, std²)
// (norm weights 1, biases N(0, std²)), deterministically from seed.
func New(cfg model.Config, seed uint64, std float32) (*model.Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d61737175650a))
	normal := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64()) * std
		}
		return v
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	mat := func(r, c int) *kernels.Matrix { return kernels.FromF32(r, c, normal(r*c)) }
	H, qd, kvd, ff := cfg.Hidden, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	embed := mat(cfg.Vocab, H)
	layers := make([]model.Layer, cfg.Layers)
	for i := range layers {
		l := &layers[i]
		l.AttnNorm, l.MLPNorm = ones(H), ones(H)
		l.Q, l.K, l.V, l.O = mat(qd, H), mat(kvd, H), mat(kvd, H), mat(H, qd)
		l.Gate, l.Up, l.Down = mat(ff, H), mat(ff, H), mat(H, ff)
		if cfg.AttnQKVBias {
			l.QBias, l.KBias, l.VBias = normal(qd), normal(kvd), normal(kvd)
		}
		if cfg.AttnOBias {
			l.OBias = normal(H)
		}
		if cfg.MLPBias {
			l.GateBias, l.UpBias, l.DownBias = normal(ff), normal(ff), normal(H)
		}
		if cfg.QKNorm {
			l.QNorm, l.KNorm = ones(cfg.HeadDim), ones(cfg.HeadDim)
		}
	}
	var head *kernels.Matrix
	if !cfg.Tied {
		head = mat(cfg.Vocab, H)
	}
	return model.New(cfg, embed, layers, ones(H), head)
}

// Write saves a random model of shape cfg to dir as a Hugging Face folder in
// dtype (F32, F16 or BF16) with a synthetic tokenizer (see TokenizerJSON).
func Write(dir string, cfg model.Config, seed uint64, std float32, dtype quant.DType) error {
	m, err := New(cfg, seed, std)
	if err != nil {
		return err
	}
	if err := model.SaveHF(dir, m, model.SaveOptions{DType: dtype, Metadata: map[string]string{"masque_random_seed": fmt.Sprint(seed)}}); err != nil {
		return err
	}
	tj, err := TokenizerJSON(cfg.Vocab)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "tokenizer.json"), func(w io.Writer) error {
		_, err := w.Write(tj)
		return err
	})
}

// WriteOnce is Write unless dir already holds a finished random model (its
// tokenizer.json, written last): benchmarks share one model across runs.
func WriteOnce(dir string, cfg model.Config, seed uint64, std float32, dtype quant.DType) error {
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil {
		return nil
	}
	return Write(dir, cfg, seed, std, dtype)
}

// byteAlphabet maps bytes to the printable runes of GPT-2's byte-level BPE.
func byteAlphabet() [256]rune {
	var t [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			t[b] = rune(b)
		} else {
			t[b] = rune(256 + n)
			n++
		}
	}
	return t
}

// TokenizerJSON returns a byte-level BPE tokenizer.json with exactly vocab
// tokens: ids 0–255 are the bytes, and id 256+k is token k/256 followed by
// byte k%256, made by one merge each (the same construction llama.cpp-side
// tools use for random models, so ids mean the same to both). vocab must be
// at least 256.
func TokenizerJSON(vocab int) ([]byte, error) {
	if vocab < 256 {
		return nil, fmt.Errorf("a byte-level tokenizer needs a vocabulary of at least 256, got %d", vocab)
	}
	alpha := byteAlphabet()
	toks := make([]string, vocab)
	for b := 0; b < 256; b++ {
		toks[b] = string(alpha[b])
	}
	merges := make([]string, 0, vocab-256)
	for id := 256; id < vocab; id++ {
		k := id - 256
		left, right := toks[k/256], toks[k%256]
		toks[id] = left + right
		merges = append(merges, left+" "+right)
	}
	vm := make(map[string]int, vocab)
	for i, t := range toks {
		if _, dup := vm[t]; !dup {
			vm[t] = i
		}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": []any{},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vm, "merges": merges},
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}
