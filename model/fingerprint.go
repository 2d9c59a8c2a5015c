package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"

	"github.com/masque-ai/masque/kernels"
)

// fingerprintVersion is hashed first, so that a change of the recipe below
// changes every fingerprint.
const fingerprintVersion = "masque-fingerprint-v1"

// Fingerprint identifies a model's weights (the model's identity): the hex SHA-256 of
//
//   - the shape-defining configuration (hidden, intermediate, layers, heads,
//     KV heads, head_dim, vocabulary, tied embeddings, biases, q/k norm),
//   - the Hugging Face name, shape and storage type of every matrix
//     (embeddings, the seven projections of every block, the LM head),
//   - a sample of each matrix's raw bytes: 64 chunks of up to 64 bytes at
//     evenly spaced offsets, plus its first and last 64 bytes,
//   - the norm weights and biases (all of them, as float32 bits).
//
// It does not depend on where or how the model was loaded (a llama2.c
// checkpoint and its export to a Hugging Face folder agree), but converting
// the weights to another type or changing any sampled weight changes it.
// Masks, statistics, evaluation caches and sculpt runs record it and refuse
// a model whose fingerprint differs.
func (m *Model) Fingerprint() string {
	fp, _ := m.FingerprintWith(func(l int, p Proj) (*kernels.Matrix, error) { return m.Layers[l].Weight(p), nil })
	return fp
}

// FingerprintWith is Fingerprint with the projection weights given by
// weight instead of the model's own (the rest is the model's): the
// fingerprint of a derived model computed one matrix at a time, such as a
// masked copy (mask.FingerprintMasked). An error from weight is returned.

func (m *Model) FingerprintWith(weight func(l int, p Proj) (*kernels.Matrix, error)) (string, error) {
	h := sha256.New()
	c := &m.Config
	fmt.Fprintf(h, "%s\nhidden=%d ffn=%d layers=%d heads=%d kv=%d head_dim=%d vocab=%d tied=%v qkv_bias=%v o_bias=%v mlp_bias=%v qk_norm=%v\n",
		fingerprintVersion, c.Hidden, c.Intermediate, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.Vocab, c.Tied,
		c.AttnQKVBias, c.AttnOBias, c.MLPBias, c.QKNorm)
	hashMatrix(h, "model.embed_tokens.weight", m.Embed)
	for l := range m.Layers {
		ly := &m.Layers[l]
		pre := HFLayerPrefix(l)
		hashVec(h, pre+"input_layernorm.weight", ly.AttnNorm)
		hashVec(h, pre+"post_attention_layernorm.weight", ly.MLPNorm)
		hashVec(h, pre+"self_attn.q_norm.weight", ly.QNorm)
		hashVec(h, pre+"self_attn.k_norm.weight", ly.KNorm)
		for p := Proj(0); p < NumProj; p++ {
			w, err := weight(l, p)
			if err != nil {
				return "", err
			}
			hashMatrix(h, pre+p.HFName()+".weight", w)
			hashVec(h, pre+p.HFName()+".bias", ly.Bias(p))
		}
	}
	hashVec(h, "model.norm.weight", m.Norm)
	if m.LMHead != m.Embed {
		hashMatrix(h, "lm_head.weight", m.LMHead)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ArchFingerprint identifies the model's architecture and layout, not its
// weights: the hex SHA-256 of the shape-defining configuration (as in
// Fingerprint) and the Hugging Face name and shape of every matrix, without
// their storage types or values. A checkpoint, its GGUF conversions and its
// quantisations share it; another model of the same shape does too, so it
// only tells which models a per-weight artifact (a mask) can fit.
func (m *Model) ArchFingerprint() string {
	h := sha256.New()
	c := &m.Config
	fmt.Fprintf(h, "%s-arch\nhidden=%d ffn=%d layers=%d heads=%d kv=%d head_dim=%d vocab=%d tied=%v qkv_bias=%v o_bias=%v mlp_bias=%v qk_norm=%v\n",
		fingerprintVersion, c.Hidden, c.Intermediate, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.Vocab, c.Tied,
		c.AttnQKVBias, c.AttnOBias, c.MLPBias, c.QKNorm)
	shape := func(name string, w *kernels.Matrix) {
		if w != nil {
			fmt.Fprintf(h, "%s: [%d %d]\n", name, w.Rows, w.Cols)
		}
	}
	shape("model.embed_tokens.weight", m.Embed)
	for l := range m.Layers {
		for p := Proj(0); p < NumProj; p++ {
			shape(HFLayerPrefix(l)+p.HFName()+".weight", m.Layers[l].Weight(p))
		}
	}
	if m.LMHead != m.Embed {
		shape("lm_head.weight", m.LMHead)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashMatrix(h hash.Hash, name string, w *kernels.Matrix) {
	if w == nil {
		fmt.Fprintf(h, "%s: none\n", name)
		return
	}
	fmt.Fprintf(h, "%s: %s [%d %d] %d bytes\n", name, w.Type, w.Rows, w.Cols, len(w.Data))
	d := w.Data
	const chunk, chunks = 64, 64
	if len(d) <= chunk*(chunks+2) {
		h.Write(d)
		return
	}
	h.Write(d[:chunk])
	for i := 1; i <= chunks; i++ {
		off := int(int64(len(d)-chunk) * int64(i) / (chunks + 1))
		h.Write(d[off : off+chunk])
	}
	h.Write(d[len(d)-chunk:])
}

func hashVec(h hash.Hash, name string, v []float32) {
	if v == nil {
		return
	}
	fmt.Fprintf(h, "%s: %d\n", name, len(v))
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		h.Write(b[:])
	}
}
