package model

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/gguf"
)

// TestRecipesByteIdenticalToLlamaCpp writes the anchor's SmolLM2-135M-shaped
// random model ($MASQUE_ANCHOR_DIR/smol-hf) with every writable recipe and
// requires each tensor to have the type and the bytes of llama.cpp's
// quantisation of the same model (smol-<recipe>.gguf, made as
// testdata/gguf/README.md says). It needs those files, so it runs only when
// MASQUE_ANCHOR_DIR is set. MASQUE_RECIPES picks recipes (e.g. the slow
// q2_k, q3_k_m, iq4_nl, iq4_xs: all 272 tensors identical for each when
// last run, 23 minutes on a loaded machine); MASQUE_ANCHOR_MODEL=tiny uses
// the tiny model (21 of 21 tensors identical for q2_k, q3_k_s, q3_k_m,
// q3_k_l, iq4_nl and iq4_xs).
func TestRecipesByteIdenticalToLlamaCpp(t *testing.T) {
	dir := os.Getenv("MASQUE_ANCHOR_DIR")
	if dir == "" {
		t.Skip("MASQUE_ANCHOR_DIR not set")
	}
	prefix := "smol" // MASQUE_ANCHOR_MODEL picks another (tiny: 256-wide rows, no fallbacks)
	if p := os.Getenv("MASQUE_ANCHOR_MODEL"); p != "" {
		prefix = p
	}
	m, err := Load(filepath.Join(dir, prefix+"-hf"))
	if err != nil {
		t.Fatal(err)
	}
	recipes := []string{"q4_k_m", "q5_k_m", "q4_k_s", "q5_k_s", "q6_k", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "bf16"}
	if s := os.Getenv("MASQUE_RECIPES"); s != "" {
		recipes = strings.Split(s, ",")
	}
	for _, r := range recipes {
		ref, err := gguf.Open(filepath.Join(dir, prefix+"-"+r+".gguf"))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), r+".gguf")
		if err := SaveGGUF(p, m, GGUFOptions{Recipe: r}); err != nil {
			t.Fatal(err)
		}
		mine, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		same, bad := 0, 0
		for _, ti := range mine.Tensors {
			rt, ok := ref.Tensor(ti.Name)
			switch {
			case !ok:
				t.Errorf("%s: llama.cpp has no %s", r, ti.Name)
			case rt.Type != ti.Type:
				t.Errorf("%s: %s is %s, llama.cpp %s", r, ti.Name, ti.Type, rt.Type)
			case !bytes.Equal(rt.Data, ti.Data):
				bad++
				if bad < 3 {
					t.Errorf("%s: %s (%s) bytes differ from llama.cpp's", r, ti.Name, ti.Type)
				}
			default:
				same++
			}
		}
		ft, _ := mine.Uint("general.file_type")
		rft, _ := ref.Uint("general.file_type")
		st, _ := os.Stat(p)
		rst, _ := os.Stat(ref.Path)
		t.Logf("%s: %d of %d tensors byte-identical; file_type %d (llama.cpp %d); %d bytes (llama.cpp %d, metadata differs)",
			r, same, len(mine.Tensors), ft, rft, st.Size(), rst.Size())
		if ft != rft || len(mine.Tensors) != len(ref.Tensors) {
			t.Errorf("%s: file_type %d, %d tensors; llama.cpp %d, %d", r, ft, len(mine.Tensors), rft, len(ref.Tensors))
		}
		mine.Close()
		ref.Close()
	}
}
