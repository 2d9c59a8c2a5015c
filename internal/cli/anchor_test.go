package cli

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/kernels"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/randmodel"
	"github.com/masque-ai/masque/safetensors"
)

// TestAnchorAgreement proves that GGUF files masque writes load and run in
// llama.cpp: every hf-tiny architecture is converted by `masque convert`,
// then llama.cpp (the project's shared anchor tool, tools/anchor, built with its
// build.sh) computes logits that must match PyTorch's goldens, and its greedy
// tokens must equal masque's. Set MASQUE_ANCHOR to the anchor binary to run it.
func TestAnchorAgreement(t *testing.T) {
	anchor := os.Getenv("MASQUE_ANCHOR")
	if anchor == "" {
		t.Skip("MASQUE_ANCHOR is not set (path to the llama.cpp anchor binary)")
	}
	tj, err := randmodel.TokenizerJSON(512)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"llama", "llama3-ropescaled", "qwen2", "qwen3", "mistral", "smollm-tied"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join("../../testdata/hf-tiny", name)
			dir := t.TempDir()
			ents, _ := os.ReadDir(src)
			for _, e := range ents {
				if !strings.HasPrefix(e.Name(), "golden") {
					b, _ := os.ReadFile(filepath.Join(src, e.Name()))
					os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
				}
			}
			os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644)
			out := filepath.Join(t.TempDir(), "m.gguf")
			if code, _, errs := run(t, "", "convert", "--model", dir, "--out", out, "--type", "f32"); code != 0 {
				t.Fatal(errs)
			}
			var g struct {
				InputIDs [][]int `json:"input_ids"`
			}
			b, _ := os.ReadFile(filepath.Join(src, "golden.json"))
			json.Unmarshal(b, &g)
			ids := g.InputIDs[1]
			sids := make([]string, len(ids))
			for i, id := range ids {
				sids[i] = jsonInt(id)
			}
			cmd := exec.Command(anchor, "logits", "--gguf", out, "--ids", strings.Join(sids, ","))
			raw, err := cmd.Output()
			if err != nil {
				t.Fatalf("anchor logits: %v", err)
			}
			var a struct{ Logits [][]float32 }
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatal(err)
			}
			f, _ := safetensors.Open(filepath.Join(src, "golden.safetensors"))
			defer f.Close()
			gt, _ := f.Tensor("logits.1")
			want, _ := gt.Float32s()
			maxd := 0.0
			for p, row := range a.Logits {
				for v, x := range row {
					maxd = math.Max(maxd, math.Abs(float64(x-want[p*512+v])))
				}
			}
			t.Logf("llama.cpp on masque's GGUF vs PyTorch: max |Δlogit| %.2g", maxd)
			if maxd > 1e-4 {
				t.Fatalf("llama.cpp disagrees with PyTorch by %g", maxd)
			}
			// Greedy tokens: llama.cpp vs masque on the same file.
			raw, err = exec.Command(anchor, "generate", "--gguf", out, "--ids", strings.Join(sids[:5], ","), "--n", "24").Output()
			if err != nil {
				t.Fatalf("anchor generate: %v", err)
			}
			var ag struct{ IDs []int }
			json.Unmarshal(raw, &ag)
			mine := greedy(t, out, ids[:5], 24)
			if !slices.Equal(mine, ag.IDs) {
				t.Fatalf("greedy ids differ:\nmasque %v\nllama.cpp %v", mine, ag.IDs)
			}
			if name == "llama3-ropescaled" {
				bf16Agreement(t, anchor, dir, ids, sids, want)
			}
		})
	}
}

// bf16Agreement converts the BF16 model in dir to a BF16 GGUF and compares
// masque's logits with llama.cpp's on that file: both round the activations
// of BF16 products to bf16 (masque's default), so they should agree far
// more closely than either does with the float64 reference.
func bf16Agreement(t *testing.T, anchor, dir string, ids []int, sids []string, ref []float32) {
	out := filepath.Join(t.TempDir(), "m-bf16.gguf")
	if code, _, errs := run(t, "", "convert", "--model", dir, "--out", out, "--type", "bf16"); code != 0 {
		t.Fatal(errs)
	}
	raw, err := exec.Command(anchor, "logits", "--gguf", out, "--ids", strings.Join(sids, ",")).Output()
	if err != nil {
		t.Fatalf("anchor logits: %v", err)
	}
	var a struct{ Logits [][]float32 }
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	ck, err := openForTest(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m := ck.Model
	for _, exact := range []bool{false, true} {
		if exact {
			m.K = kernels.ExactBF16(m.K)
		}
		mine, err := m.Forward(m.NewCache(0), ids, true)
		if err != nil {
			t.Fatal(err)
		}
		V := m.Config.Vocab
		vsAnchor, vsRef, maxAbs := 0.0, 0.0, 0.0
		for p, row := range a.Logits {
			for v, x := range row {
				vsAnchor = math.Max(vsAnchor, math.Abs(float64(x-mine[p*V+v])))
				vsRef = math.Max(vsRef, math.Abs(float64(ref[p*V+v]-mine[p*V+v])))
				maxAbs = math.Max(maxAbs, math.Abs(float64(x)))
			}
		}
		t.Logf("bf16 GGUF, masque (exact BF16 %v) vs llama.cpp: max |Δlogit| %.2g; vs PyTorch float64: %.2g (max |logit| %.2g)", exact, vsAnchor, vsRef, maxAbs)
		if !exact && vsAnchor > 1e-3*maxAbs {
			t.Errorf("masque's bf16 arithmetic disagrees with llama.cpp's by %g", vsAnchor)
		}
	}
}

// greedy runs masque's greedy decoding from ids on a GGUF file.
func greedy(t *testing.T, path string, ids []int, n int) []int {
	t.Helper()
	ck, err := openForTest(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m := ck.Model
	c := m.NewCache(0)
	logits, err := m.Forward(c, ids, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for len(out) < n {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		out = append(out, best)
		if logits, err = m.Forward(c, []int{best}, false); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func openForTest(path string) (*checkpoint.Checkpoint, error) {
	return checkpoint.Open(path, checkpoint.Options{})
}
