package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/masque-ai/masque/kernels"
)

// LoadLlama2C reads a llama2.c checkpoint (the legacy version-0 format of
// karpathy/llama2.c: a 7×int32 header then float32 arrays). Its rotary
// embedding pairs adjacent dimensions; the loader permutes the rows of wq
// and wk so the model runs in the rotate-half convention, which gives the
// same attention scores.
func LoadLlama2C(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading llama2.c checkpoint: %w", err)
	}
	m, err := parseLlama2C(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	m.source = path
	return m, nil
}

func parseLlama2C(data []byte) (*Model, error) {
	if len(data) < 28 {
		return nil, fmt.Errorf("file too short for a llama2.c header (%d bytes)", len(data))
	}
	var hdr [7]int32
	for i := range hdr {
		hdr[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
	}
	dim, hidden, layers, heads, kvHeads, vocab, seqLen := int(hdr[0]), int(hdr[1]), int(hdr[2]), int(hdr[3]), int(hdr[4]), int(hdr[5]), int(hdr[6])
	shared := vocab > 0
	if vocab < 0 {
		vocab = -vocab
	}
	if dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab <= 0 || seqLen <= 0 ||
		dim > 1<<16 || hidden > 1<<18 || layers > 1024 || vocab > 1<<22 || seqLen > 1<<22 || dim%heads != 0 {
		return nil, fmt.Errorf("implausible llama2.c header dim=%d hidden_dim=%d n_layers=%d n_heads=%d n_kv_heads=%d vocab_size=%d seq_len=%d",
			hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6])
	}
	cfg := Config{
		Arch: "llama2.c", ModelType: "llama", Hidden: dim, Intermediate: hidden, Layers: layers, Heads: heads, KVHeads: kvHeads,
		HeadDim: dim / heads, Vocab: vocab, MaxSeq: seqLen, NormEps: 1e-5, RopeTheta: 10000, Tied: shared, BOS: 1, EOS: []int{2},
		TorchDType: "float32",
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kvDim := cfg.KVDim()
	L := int64(layers)
	need := int64(vocab)*int64(dim) + L*int64(dim) + L*int64(dim*dim) + 2*L*int64(kvDim*dim) + L*int64(dim*dim) +
		L*int64(dim) + 3*L*int64(hidden*dim) + int64(dim)
	headSize := int64(dim / heads)
	need += int64(seqLen) * headSize // legacy freq_cis_real/imag (half each), ignored
	if !shared {
		need += int64(vocab) * int64(dim)
	}
	have := int64(len(data)-28) / 4
	if have < need {
		return nil, fmt.Errorf("truncated: header promises %d floats, file holds %d", need, have)
	}
	floats := make([]float32, have)
	for i := range floats {
		floats[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[28+4*i:]))
	}
	off := 0
	take := func(n int) []float32 {
		s := floats[off : off+n : off+n]
		off += n
		return s
	}
	embed := take(vocab * dim)
	rmsAtt := take(layers * dim)
	wq := take(layers * dim * dim)
	wk := take(layers * kvDim * dim)
	wv := take(layers * kvDim * dim)
	wo := take(layers * dim * dim)
	rmsFFN := take(layers * dim)
	w1 := take(layers * hidden * dim)
	w2 := take(layers * dim * hidden)
	w3 := take(layers * hidden * dim)
	rmsFinal := take(dim)
	take(seqLen * int(headSize))
	var cls []float32
	if !shared {
		cls = take(vocab * dim)
	}
	ls := make([]Layer, layers)
	for l := range ls {
		sl := func(a []float32, n int) []float32 { return a[l*n : (l+1)*n] }
		ls[l] = Layer{
			AttnNorm: sl(rmsAtt, dim),
			Q:        kernels.FromF32(dim, dim, permuteRope(sl(wq, dim*dim), heads, dim/heads, dim)),
			K:        kernels.FromF32(kvDim, dim, permuteRope(sl(wk, kvDim*dim), kvHeads, dim/heads, dim)),
			V:        kernels.FromF32(kvDim, dim, sl(wv, kvDim*dim)),
			O:        kernels.FromF32(dim, dim, sl(wo, dim*dim)),
			MLPNorm:  sl(rmsFFN, dim),
			Gate:     kernels.FromF32(hidden, dim, sl(w1, hidden*dim)),
			Down:     kernels.FromF32(dim, hidden, sl(w2, dim*hidden)),
			Up:       kernels.FromF32(hidden, dim, sl(w3, hidden*dim)),
		}
	}
	e := kernels.FromF32(vocab, dim, embed)
	head := e
	if !shared {
		head = kernels.FromF32(vocab, dim, cls)
	}
	return New(cfg, e, ls, rmsFinal, head)
}

// permuteRope reorders the rows of a q or k weight ([heads·headDim, cols]) from
// adjacent-pair rotary layout (2i, 2i+1) to rotate-half layout (i, i+headDim/2).
func permuteRope(w []float32, heads, headDim, cols int) []float32 {
	out := make([]float32, len(w))
	half := headDim / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			src0 := (h*headDim + 2*i) * cols
			src1 := (h*headDim + 2*i + 1) * cols
			copy(out[(h*headDim+i)*cols:], w[src0:src0+cols])
			copy(out[(h*headDim+half+i)*cols:], w[src1:src1+cols])
		}
	}
	return out
}

// ParseLlama2C builds a model from the bytes of a llama2.c checkpoint; name
// is used in errors and as the model's source.
func ParseLlama2C(data []byte, name string) (*Model, error) {
	m, err := parseLlama2C(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	m.source = name
	return m, nil
}
