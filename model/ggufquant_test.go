package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
)

// anchorLogits is the output of `anchor logits` (llama.cpp's logits for every
// position).
type anchorLogits struct {
	NVocab  int         `json:"n_vocab"`
	NTokens int         `json:"n_tokens"`
	Logits  [][]float32 `json:"logits"`
}

func readAnchorLogits(t *testing.T, path string) anchorLogits {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var a anchorLogits
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(a.Logits) != a.NTokens || a.NTokens == 0 {
		t.Fatalf("%s: %d rows for %d tokens", path, len(a.Logits), a.NTokens)
	}
	return a
}

// TestLlamaCppQuantTypesLogits loads llama.cpp's own quantisations of one
// random model (testdata/gguf/mini, one file per recipe, every GGML type
// masque reads among them) and compares masque's logits with llama.cpp's on
// the same file. llama.cpp rounds activations to 8 bits in its quantised
// products, so the two differ slightly; the test requires that difference to
// be well below the quantisation's own effect (llama.cpp's logits on the
// file against its logits on the f32 model), which a wrong decoder of any
// type would exceed. (testdata/gguf/types.gguf checks the decoders
// themselves value for value against ggml.)
func TestLlamaCppQuantTypesLogits(t *testing.T) {
	dir := filepath.Join("..", "testdata", "gguf", "mini")
	ids := []int{1, 17, 42, 99, 200, 3, 250, 128} // as passed to anchor logits
	f32 := readAnchorLogits(t, filepath.Join(dir, "mini-f32.logits.json"))
	recipes := map[string][]quant.DType{
		"q4_k_m": {quant.Q4_K, quant.Q6_K}, "q5_k_m": {quant.Q5_K, quant.Q6_K},
		"q3_k_m": {quant.Q3_K, quant.Q4_K, quant.Q5_K}, "q2_k": {quant.Q2_K, quant.Q3_K},
		"q5_0": {quant.Q5_0}, "q5_1": {quant.Q5_1}, "q4_1": {quant.Q4_1},
		"iq4_nl": {quant.IQ4_NL}, "iq4_xs": {quant.IQ4_XS},
	}
	for r, types := range recipes {
		t.Run(r, func(t *testing.T) {
			m, err := LoadGGUF(filepath.Join(dir, "mini-"+r+".gguf"))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			have := map[quant.DType]bool{m.Embed.Type: true}
			for l := range m.Layers {
				for p := Proj(0); p < NumProj; p++ {
					have[m.Layers[l].Weight(p).Type] = true
				}
			}
			for _, dt := range types {
				if !have[dt] {
					t.Errorf("no %s matrix in the file", dt)
				}
			}
			want := readAnchorLogits(t, filepath.Join(dir, "mini-"+r+".logits.json"))
			got, err := m.Forward(m.NewCache(0), ids, true)
			if err != nil {
				t.Fatal(err)
			}
			V := m.Config.Vocab
			var dMine, dQuant, amax float64
			agree := 0
			for p := range ids {
				row := got[p*V : (p+1)*V]
				am, aw := 0, 0
				for i, v := range row {
					w := want.Logits[p][i]
					dMine = math.Max(dMine, math.Abs(float64(v-w)))
					dQuant = math.Max(dQuant, math.Abs(float64(w-f32.Logits[p][i])))
					amax = math.Max(amax, math.Abs(float64(w)))
					if v > row[am] {
						am = i
					}
					if w > want.Logits[p][aw] {
						aw = i
					}
				}
				if am == aw {
					agree++
				}
			}
			t.Logf("%s: max |masque − llama.cpp| %.2e, llama.cpp's quantisation effect %.2e, max |logit| %.2f, argmax agrees %d/%d",
				r, dMine, dQuant, amax, agree, len(ids))
			// On the AVX-512 level, Q4_K, Q5_K, Q6_K and IQ4_XS multiply in
			// integer arithmetic on 8-bit activations exactly as llama.cpp's
			// q8_K products do, so those files agree to float rounding (the
			// other levels multiply decoded weights by float activations).
			if kernels.Default().Name() == "avx512" && (r == "q4_k_m" || r == "q5_k_m" || r == "iq4_xs") && dMine > 1e-5*amax {
				t.Errorf("masque's logits differ from llama.cpp's by %.3g on a file whose products are exact in both", dMine)
			}
			if dMine > 0.35*dQuant || dMine > 0.015*amax {
				t.Errorf("masque's logits differ from llama.cpp's by %.3g (quantisation effect %.3g, max |logit| %.3g)", dMine, dQuant, amax)
			}
			if agree < len(ids)-1 {
				t.Errorf("argmax agrees at %d of %d positions", agree, len(ids))
			}
			// Loading and multiplying must compute what the decoded weights
			// compute (up to the 8-bit activations of the integer kernels).
			deq := dequantized(t, m)
			ref, err := deq.Forward(deq.NewCache(0), ids, true)
			if err != nil {
				t.Fatal(err)
			}
			var dDeq float64
			for i := range ref {
				dDeq = math.Max(dDeq, math.Abs(float64(ref[i]-got[i])))
			}
			t.Logf("max |quantised − dequantised weights| %.2e", dDeq)
			if dDeq > 0.01*amax {
				t.Errorf("logits on the stored weights differ from those on their decoded copy by %.3g", dDeq)
			}
		})
	}
}
