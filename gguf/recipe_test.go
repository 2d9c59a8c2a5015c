package gguf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// recipeGolden is what llama.cpp's quantizer chose for every 2-D weight of
// one model, per recipe (testdata/gguf/recipes-*.json; provenance in
// testdata/gguf/README.md).
type recipeGolden struct {
	Source  string       `json:"source"`
	Model   PlanModel    `json:"model"`
	Tensors []PlanTensor `json:"tensors"`
	Recipes map[string]struct {
		Types     map[string]string `json:"types"`
		DataBytes int64             `json:"data_bytes"` // all tensors' data, 1-D ones included
		FileBytes int64             `json:"file_bytes"`
	} `json:"recipes"`
	// VectorBytes is the data of the 1-D tensors (F32 in every recipe).
	VectorBytes int64 `json:"vector_bytes"`
}

var recipeGoldens = []string{"recipes-smollm2-135m.json", "recipes-qwen2.5-0.5b.json", "recipes-tiny-untied.json"}

// recipeFixtureFiles are the llama.cpp recipes recorded from the anchor.
var recipeFixtureFiles = []string{"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "f16", "bf16", "iq4_nl", "iq4_xs"}

// TestWriteRecipeFixture records llama.cpp's per-tensor choices from the
// anchor's files $MASQUE_ANCHOR_DIR/$MASQUE_RECIPE_PREFIX-<recipe>.gguf
// (and the source, -f32.gguf or -bf16.gguf) into $MASQUE_RECIPE_OUT, when MASQUE_WRITE_FIXTURE=1.
func TestWriteRecipeFixture(t *testing.T) {
	dir := anchorDir(t)
	if os.Getenv("MASQUE_WRITE_FIXTURE") != "1" {
		t.Skip("MASQUE_WRITE_FIXTURE != 1")
	}
	prefix, out := os.Getenv("MASQUE_RECIPE_PREFIX"), os.Getenv("MASQUE_RECIPE_OUT")
	if prefix == "" || out == "" {
		t.Fatal("set MASQUE_RECIPE_PREFIX and MASQUE_RECIPE_OUT")
	}
	srcName := prefix + "-f32.gguf"
	if _, err := os.Stat(filepath.Join(dir, srcName)); err != nil {
		srcName = prefix + "-bf16.gguf"
	}
	src, err := Open(filepath.Join(dir, srcName))
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := src.String("general.architecture")
	var g recipeGolden
	g.Source = srcName
	l, _ := src.Uint(arch + ".block_count")
	h, _ := src.Uint(arch + ".attention.head_count")
	kv, _ := src.Uint(arch + ".attention.head_count_kv")
	g.Model = PlanModel{Layers: int(l), Heads: int(h), KVHeads: int(kv)}
	for _, ti := range src.Tensors {
		if len(ti.Shape) == 2 {
			g.Tensors = append(g.Tensors, PlanTensor{Name: ti.Name, Rows: ti.Shape[1], Cols: ti.Shape[0]})
		} else {
			g.VectorBytes += int64(len(ti.Data))
		}
	}
	src.Close()
	g.Recipes = map[string]struct {
		Types     map[string]string `json:"types"`
		DataBytes int64             `json:"data_bytes"`
		FileBytes int64             `json:"file_bytes"`
	}{}
	for _, r := range recipeFixtureFiles {
		p := filepath.Join(dir, prefix+"-"+r+".gguf")
		if p == filepath.Join(dir, srcName) {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			t.Logf("no %s", p)
			continue
		}
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(p)
		e := g.Recipes[strings.ToUpper(r)]
		e.Types = map[string]string{}
		e.FileBytes = st.Size()
		for _, ti := range f.Tensors {
			e.DataBytes += int64(len(ti.Data))
			if len(ti.Shape) == 2 {
				e.Types[ti.Name] = ti.Type.String()
			}
		}
		g.Recipes[strings.ToUpper(r)] = e
		f.Close()
	}
	b, _ := json.MarshalIndent(&g, "", " ")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRecipesMatchLlamaCpp plans every recorded recipe on the recorded
// model shapes and requires llama.cpp's type for every tensor and its exact
// tensor data size.
func TestRecipesMatchLlamaCpp(t *testing.T) {
	for _, name := range recipeGoldens {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "gguf", name))
		if err != nil {
			t.Fatal(err)
		}
		var g recipeGolden
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(g.Recipes) < 7 || len(g.Tensors) == 0 {
			t.Fatalf("%s: %d recipes, %d tensors", name, len(g.Recipes), len(g.Tensors))
		}
		for rname, want := range g.Recipes {
			ft, err := ParseFileType(rname)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			plan, err := ft.Plan(g.Tensors, g.Model)
			if err != nil {
				t.Errorf("%s %s: %v", name, rname, err)
				continue
			}
			bytes := g.VectorBytes
			bad := 0
			for _, c := range plan {
				bytes += int64(c.Bytes())
				if w := want.Types[c.Name]; w != c.Type.String() {
					if bad < 4 {
						t.Errorf("%s %s: %s gets %s, llama.cpp chose %s", name, rname, c.Name, c.Type, w)
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%s %s: %d of %d tensors differ", name, rname, bad, len(plan))
			}
			if bytes != want.DataBytes {
				t.Errorf("%s %s: %d bytes of tensor data, llama.cpp %d", name, rname, bytes, want.DataBytes)
			}
		}
	}
}

func TestParseFileType(t *testing.T) {
	for in, want := range map[string]FileType{"Q4_K_M": FileTypeQ4_K_M, "q4_k": FileTypeQ4_K_M, "q5_k_s": FileTypeQ5_K_S,
		"Q8_0": FileTypeQ8_0, "f16": FileTypeF16, "BF16": FileTypeBF16, "q6_k": FileTypeQ6_K, "Q5_K": FileTypeQ5_K_M} {
		got, err := ParseFileType(in)
		if err != nil || got != want {
			t.Errorf("ParseFileType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseFileType("q4_k_xl"); err == nil || !strings.Contains(err.Error(), "Q4_K_M") {
		t.Errorf("bad name: %v", err)
	}
	for _, ft := range []FileType{FileTypeIQ4_NL, FileTypeIQ4_XS, FileTypeQ2_K, FileTypeQ3_K_S, FileTypeQ3_K_M, FileTypeQ3_K_L, FileTypeQ4_K_M, FileTypeQ5_K_M, FileTypeQ4_K_S, FileTypeQ5_K_S, FileTypeQ6_K, FileTypeQ8_0, FileTypeQ4_0, FileTypeQ4_1, FileTypeQ5_0, FileTypeQ5_1, FileTypeF16, FileTypeBF16, FileTypeF32} {
		if err := ft.Writable(); err != nil {
			t.Errorf("%s: %v", ft, err)
		}
	}
	if ft, err := FileTypeOf(quant.Q4_K); err != nil || ft != FileTypeQ4_K_M {
		t.Errorf("FileTypeOf(q4_k) = %v, %v", ft, err)
	}
}

// TestPlanFallbacks checks the fallback chain on rows no k-quant holds and
// F16 for legacy types on rows no block holds (where llama.cpp refuses).
func TestPlanFallbacks(t *testing.T) {
	ts := []PlanTensor{{"token_embd.weight", 100, 576}, {"blk.0.attn_v.weight", 64, 576}, {"blk.0.ffn_down.weight", 576, 1536}, {"blk.0.attn_q.weight", 576, 576}}
	plan, err := FileTypeQ4_K_M.Plan(ts, PlanModel{Layers: 1, Heads: 4, KVHeads: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []quant.DType{quant.Q8_0, quant.Q8_0, quant.Q6_K, quant.Q5_0}
	for i, c := range plan {
		if c.Type != want[i] {
			t.Errorf("%s: %s (wanted %s), want %s", c.Name, c.Type, c.Wanted, want[i])
		}
	}
	plan, _ = FileTypeQ4_0.Plan([]PlanTensor{{"blk.0.attn_q.weight", 8, 48}}, PlanModel{Layers: 1})
	if plan[0].Type != quant.F16 || plan[0].Wanted != quant.Q4_0 {
		t.Errorf("Q4_0 on rows of 48: %+v", plan[0])
	}
	plan, _ = FileTypeQ6_K.Plan([]PlanTensor{{"blk.0.attn_q.weight", 8, 48}}, PlanModel{Layers: 1})
	if plan[0].Type != quant.F16 || plan[0].Wanted != quant.Q6_K {
		t.Errorf("Q6_K on rows of 48: %+v", plan[0])
	}
}
