package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/gguf"
)

// TestQuantizeRecipe writes the built-in model with llama.cpp's Q4_K_M
// recipe: its 64-wide rows cannot hold k-quants, so every matrix takes
// llama.cpp's fallback, the table says so, the file names the recipe, and
// the model still generates.
func TestQuantizeRecipe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.gguf")
	code, _, errs := run(t, "", "quantize", "--type", "q4_k_m", "--out", p)
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{"blk.0.attn_q.weight", "q5_0", "(fallback: rows of 64 do not fit q4_k)", "(fallback: rows of 64 do not fit q6_k)", "Q4_K_M"} {
		if !strings.Contains(errs, want) {
			t.Errorf("summary lacks %q:\n%s", want, errs)
		}
	}
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if ft, _ := f.Uint("general.file_type"); ft != uint64(gguf.FileTypeQ4_K_M) {
		t.Errorf("general.file_type %d", ft)
	}
	// llama.cpp bumps the last layer's attn_v to Q6_K (which falls back to
	// Q8_0 here), not layer 0's.
	n, _ := f.Uint("llama.block_count")
	last := fmt.Sprintf("blk.%d.attn_v.weight", n-1)
	for name, want := range map[string]string{"blk.0.attn_q.weight": "q5_0", "blk.0.attn_v.weight": "q5_0", last: "q8_0"} {
		if ti, ok := f.Tensor(name); !ok || ti.Type.String() != want {
			t.Errorf("%s: present %v, want %s", name, ok, want)
		}
	}
	f.Close()
	if code, out, errs := run(t, "", "generate", "--model", p, "--prompt", "Once upon a time", "--temperature", "0", "-n", "8", "--json"); code != 0 || !strings.Contains(out, `"ids":[`) {
		t.Fatalf("generate: %d %s %s", code, out, errs)
	}
	// Q3_K's fallback on rows of 64 is IQ4_NL.
	if code, _, errs := run(t, "", "quantize", "--type", "q3_k_m", "--out", p); code != 0 || !strings.Contains(errs, "iq4_nl") || !strings.Contains(errs, "Q3_K_M") {
		t.Errorf("Q3_K_M: exit %d, %s", code, errs)
	}
	if code, _, errs := run(t, "", "quantize", "--type", "q4_k_xl", "--out", p); code == 0 || !strings.Contains(errs, "Q4_K_M") {
		t.Errorf("unknown recipe: exit %d, %s", code, errs)
	}
}
