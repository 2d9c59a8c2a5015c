package gguf

import (
	"bytes"
	"math"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// Files written by llama.cpp; provenance in testdata/gguf/README.md.
var (
	tinyLlamaPath  = filepath.Join("..", "testdata", "gguf", "tiny-llama-q4_0.gguf")
	crossCheckPath = filepath.Join("..", "testdata", "gguf", "crosscheck.gguf")
)

// TestLlamaCppFile opens a complete model file written by llama.cpp and
// checks its metadata and that every tensor decodes to what the generator
// put in: N(0, 0.02²) weights and norm weights of exactly 1.
func TestLlamaCppFile(t *testing.T) {
	f, err := Open(tinyLlamaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Version != 3 || f.Alignment != 32 || len(f.Tensors) != 21 {
		t.Errorf("version %d, alignment %d, %d tensors", f.Version, f.Alignment, len(f.Tensors))
	}
	if s, _ := f.String("general.architecture"); s != "llama" {
		t.Errorf("architecture %q", s)
	}
	for key, want := range map[string]uint64{"llama.block_count": 2, "llama.embedding_length": 64, "llama.feed_forward_length": 128,
		"llama.attention.head_count": 4, "llama.attention.head_count_kv": 2, "llama.vocab_size": 512, "general.file_type": 2} {
		if got, ok := f.Uint(key); !ok || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, ok, want)
		}
	}
	if v, ok := f.Float("llama.rope.freq_base"); !ok || v != 10000 {
		t.Errorf("rope.freq_base = %v, %v", v, ok)
	}
	if v, ok := f.Float("llama.attention.layer_norm_rms_epsilon"); !ok || math.Abs(v-1e-6) > 1e-12 {
		t.Errorf("rms epsilon = %v, %v", v, ok)
	}
	tokens, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(tokens) != 512 || tokens[0] != "Ā" || tokens['a'] != "a" {
		t.Errorf("tokens: %d, %v", len(tokens), ok)
	}
	if tt, ok := f.Int32s("tokenizer.ggml.token_type"); !ok || len(tt) != 512 {
		t.Errorf("token_type: %d, %v", len(tt), ok)
	}
	if sc, ok := f.Float32s("tokenizer.ggml.scores"); !ok || len(sc) != 512 {
		t.Errorf("scores: %d, %v", len(sc), ok)
	}
	if m, ok := f.Strings("tokenizer.ggml.merges"); !ok || len(m) != 256 {
		t.Errorf("merges: %d, %v", len(m), ok)
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || emb.Type != quant.Q4_0 || emb.GGMLType != GGMLTypeQ4_0 || emb.Shape[0] != 64 || emb.Shape[1] != 512 {
		t.Fatalf("token_embd.weight: %+v", emb)
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		x, err := ti.Dequantize()
		if err != nil {
			t.Fatal(err)
		}
		if len(ti.Shape) == 1 { // norm weights, kept as F32
			for _, v := range x {
				if ti.Type != quant.F32 || v != 1 {
					t.Fatalf("%s: %v element %g, want F32 ones", ti.Name, ti.Type, v)
				}
			}
			continue
		}
		var sum, sq, amax float64
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: non-finite value", ti.Name)
			}
			sum += float64(v)
			sq += float64(v) * float64(v)
			amax = max(amax, math.Abs(float64(v)))
		}
		n := float64(len(x))
		mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
		// Quantisation adds ~9% relative noise; the sample std of 2048+
		// values is within a few percent of 0.02.
		if ti.Type != quant.Q4_0 || math.Abs(mean) > 0.003 || std < 0.018 || std > 0.023 || amax > 0.15 {
			t.Errorf("%s (%v): mean %.4f, std %.4f, max |x| %.3f", ti.Name, ti.Type, mean, std, amax)
		}
	}
}

// TestCrossCheckFixture re-quantises F32 rows with masque's quantisers and
// requires the exact bytes llama.cpp wrote for the same rows.
func TestCrossCheckFixture(t *testing.T) {
	f, err := Open(crossCheckPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, ok := f.Tensor("ffn_down.f32")
	if !ok {
		t.Fatal("no ffn_down.f32")
	}
	x, err := src.Dequantize()
	if err != nil {
		t.Fatal(err)
	}
	cols := src.Shape[0]
	// Bounds on the relative RMS error of llama.cpp's own blocks, for the
	// record: N(0, 0.02²) data.
	maxErr := map[quant.DType]float64{quant.Q8_0: 0.006, quant.Q4_0: 0.095, quant.Q4_K: 0.079, quant.Q6_K: 0.02}
	for _, name := range []string{"ffn_down.q8_0", "ffn_down.q4_0", "ffn_down.q4_k", "ffn_down.q6_k"} {
		ref, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		if ref.Shape[0] != cols || ref.Shape[1] != src.Shape[1] {
			t.Fatalf("%s shape %v, want %v", name, ref.Shape, src.Shape)
		}
		mine := make([]byte, len(ref.Data))
		rb := len(mine) / ref.Rows()
		for r := range ref.Rows() {
			if err := quant.QuantizeRow(ref.Type, x[r*cols:(r+1)*cols], mine[r*rb:(r+1)*rb]); err != nil {
				t.Fatal(err)
			}
		}
		bb, bad := ref.Type.BlockBytes(), 0
		for b := 0; b < len(mine)/bb; b++ {
			if !bytes.Equal(mine[b*bb:(b+1)*bb], ref.Data[b*bb:(b+1)*bb]) {
				if bad == 0 {
					t.Errorf("%s block %d:\n masque    %x\n llama.cpp %x", name, b, mine[b*bb:(b+1)*bb], ref.Data[b*bb:(b+1)*bb])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d blocks differ from llama.cpp", name, bad, len(mine)/bb)
		}
		y, err := ref.Dequantize()
		if err != nil {
			t.Fatal(err)
		}
		var se, sx float64
		for i := range x {
			d := float64(x[i] - y[i])
			se += d * d
			sx += float64(x[i]) * float64(x[i])
		}
		if e := math.Sqrt(se / sx); e > maxErr[ref.Type] {
			t.Errorf("%s: relative RMS error %.4f", name, e)
		}
	}
}
