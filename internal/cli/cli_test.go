package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/safetensors"
)

// run runs the CLI in-process and returns exit code, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

type storiesCase struct {
	Name         string `json:"name"`
	Prompt       string `json:"prompt"`
	PromptIDs    []int  `json:"prompt_ids"`
	GeneratedIDs []int  `json:"generated_ids"`
}

func storiesGolden(t *testing.T) []storiesCase {
	b, err := os.ReadFile("../../testdata/stories260K/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct{ Cases []storiesCase }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.Cases
}

// TestGenerateBuiltinGolden: the README's main command, greedy, reproduces
// llama2.c's tokens on the built-in model.
func TestGenerateBuiltinGolden(t *testing.T) {
	for _, c := range storiesGolden(t) {
		if c.Prompt == "" {
			continue
		}
		code, out, errs := run(t, "", "generate", "--prompt", c.Prompt, "--temperature", "0", "--max-tokens", "64", "--ignore-eos", "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.Name, code, errs)
		}
		var r struct {
			PromptIDs []int  `json:"prompt_ids"`
			IDs       []int  `json:"ids"`
			Text      string `json:"text"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: %v in %q", c.Name, err, out)
		}
		if !slices.Equal(r.PromptIDs, c.PromptIDs) || !slices.Equal(r.IDs, c.GeneratedIDs) {
			t.Errorf("%s: got prompt %v ids %v\nwant prompt %v ids %v", c.Name, r.PromptIDs, r.IDs, c.PromptIDs, c.GeneratedIDs)
		}
	}
}

func TestGenerateSeed(t *testing.T) {
	args := []string{"generate", "--prompt", "Once upon a time", "--temperature", "1.0", "--max-tokens", "30", "--seed", "42", "--json"}
	_, a, _ := run(t, "", args...)
	_, b, _ := run(t, "", args...)
	if a != b || a == "" {
		t.Fatalf("same seed, different output:\n%s\n%s", a, b)
	}
	args[len(args)-2] = "43"
	_, c, _ := run(t, "", args...)
	if c == a {
		t.Fatalf("seeds 42 and 43 gave the same 30 tokens")
	}
	// Streaming text output equals the JSON text.
	_, s, _ := run(t, "", "generate", "--prompt", "Once upon a time", "--temperature", "0", "-n", "20")
	var r struct{ Text string }
	_, j, _ := run(t, "", "generate", "--prompt", "Once upon a time", "--temperature", "0", "-n", "20", "--json")
	json.Unmarshal([]byte(j), &r)
	if strings.TrimSuffix(s, "\n") != "Once upon a time"+r.Text && strings.TrimSuffix(s, "\n") != r.Text {
		t.Fatalf("streamed %q, json text %q", s, r.Text)
	}
}

func TestTokenize(t *testing.T) {
	code, out, errs := run(t, "", "tokenize", "--model", "../../testdata/tokenizers/qwen3", "--json", "Hello, world!")
	if code != 0 {
		t.Fatal(errs)
	}
	if strings.TrimSpace(out) != `{"ids":[9707,11,1879,0]}` {
		t.Fatalf("got %s", out)
	}
	_, out, _ = run(t, "", "tokenize", "--json", "--add-special", "Once upon a time")
	if strings.TrimSpace(out) != `{"ids":[1,403,407,261,378]}` {
		t.Fatalf("builtin: got %s", out)
	}
}

// TestLogits compares `masque logits --json` with PyTorch's golden logits
// on a weights-only folder (no tokenizer needed).
func TestLogits(t *testing.T) {
	dir := "../../testdata/hf-tiny/qwen3"
	var g struct {
		InputIDs [][]int `json:"input_ids"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "golden.json"))
	json.Unmarshal(b, &g)
	ids := make([]string, len(g.InputIDs[0]))
	for i, id := range g.InputIDs[0] {
		ids[i] = itoa(id)
	}
	code, out, errs := run(t, "", "logits", "--model", dir, "--ids", strings.Join(ids, ","), "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var r struct {
		Shape  []int     `json:"shape"`
		Logits []float32 `json:"logits"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gt, _ := f.Tensor("logits.0")
	want, _ := gt.Float32s()
	if len(r.Shape) != 2 || r.Shape[0] != len(ids) || r.Shape[1] != 512 || len(r.Logits) != len(want) {
		t.Fatalf("shape %v, %d values, want [%d 512]", r.Shape, len(r.Logits), len(ids))
	}
	for i := range want {
		if math.Abs(float64(r.Logits[i]-want[i])) > 1e-4 {
			t.Fatalf("logit %d: %g want %g", i, r.Logits[i], want[i])
		}
	}
}

func TestTemplateGolden(t *testing.T) {
	f, err := os.Open("../../testdata/tokenizers/golden_chat.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	n := 0
	for dec.More() {
		var g struct {
			Tokenizer  string           `json:"tokenizer"`
			Messages   []map[string]any `json:"messages"`
			AddGen     bool             `json:"add_generation_prompt"`
			TemplateKw map[string]any   `json:"template_kwargs"`
			Rendered   string           `json:"rendered"`
			ID         string           `json:"id"`
		}
		if err := dec.Decode(&g); err != nil {
			t.Fatal(err)
		}
		msgs, _ := json.Marshal(g.Messages)
		p := filepath.Join(t.TempDir(), "m.json")
		os.WriteFile(p, msgs, 0o644)
		args := []string{"template", "--model", "../../testdata/tokenizers/" + g.Tokenizer, "--messages", p}
		if g.AddGen {
			args = append(args, "--add-generation-prompt")
		}
		if len(g.TemplateKw) > 0 {
			kw, _ := json.Marshal(g.TemplateKw)
			args = append(args, "--vars", string(kw))
		}
		code, out, errs := run(t, "", args...)
		if code != 0 || out != g.Rendered {
			t.Errorf("%s/%s: exit %d %s\n got %q\nwant %q", g.Tokenizer, g.ID, code, errs, out, g.Rendered)
		}
		n++
	}
	if n != 30 {
		t.Fatalf("%d goldens", n)
	}
}

func TestInspectAndErrors(t *testing.T) {
	code, out, errs := run(t, "", "inspect", "--json", "--model", "../../testdata/hf-tiny/qwen3")
	if code != 0 {
		t.Fatal(errs)
	}
	var info map[string]any
	json.Unmarshal([]byte(out), &info)
	if info["architecture"] != "Qwen3ForCausalLM" || info["head_dim"] != 32.0 || info["qk_norm"] != true {
		t.Fatalf("inspect: %v", info)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"generate", "--model", "/nonexistent/model", "--prompt", "x"}, 1, "/nonexistent/model"},
		{[]string{"logits", "--ids", "1,x,3"}, 2, "bad token id"},
		{[]string{"logits", "--ids", "1,99999"}, 1, "99999"},
		{[]string{"generate", "--model", "../../testdata/hf-tiny/llama", "--prompt", "x"}, 1, "tokenizer"},
		{[]string{"template", "--messages", "/nonexistent.json"}, 1, "/nonexistent.json"},
		{[]string{"nosuchcommand"}, 1, "unknown command"},
	}
	for _, tc := range tests {
		code, _, errs := run(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

// TestConvertRoundTrip converts the built-in model to GGUF and generates
// the same greedy tokens from the file.
func TestConvertRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.gguf")
	for _, typ := range []string{"f32", "q8_0"} {
		if code, _, errs := run(t, "", "convert", "--out", p, "--type", typ); code != 0 {
			t.Fatal(errs)
		}
		gen := []string{"generate", "--prompt", "Once upon a time", "--temperature", "0", "-n", "40", "--json"}
		_, a, _ := run(t, "", gen...)
		_, b, errs := run(t, "", append(gen, "--model", p)...)
		if typ == "f32" && a != b {
			t.Fatalf("builtin %s\ngguf %s %s", a, b, errs)
		}
		if !strings.Contains(b, `"ids":[`) {
			t.Fatalf("%s: %s %s", typ, b, errs)
		}
	}
}

func itoa(i int) string { return jsonInt(i) }

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestGenerateCacheTypes: --cache-type-k/--cache-type-v choose the KV
// cache's types; with F16 keys and values the built-in model still
// reproduces llama2.c's greedy tokens, Q8_0 runs, and an unknown type is a
// usage error.
func TestGenerateCacheTypes(t *testing.T) {
	c := storiesGolden(t)[0]
	for _, ct := range []string{"f16", "q8_0"} {
		code, out, errs := run(t, "", "generate", "--model", "builtin:stories260K", "--prompt", c.Prompt, "--temperature", "0", "--max-tokens", "64", "--ignore-eos", "--json", "--cache-type-k", ct, "--cache-type-v", ct)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", ct, code, errs)
		}
		var r struct{ IDs []int }
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.IDs) != 64 || ct == "f16" && !slices.Equal(r.IDs, c.GeneratedIDs) {
			t.Errorf("%s cache: ids %v, want 64 (for f16: %v)", ct, r.IDs, c.GeneratedIDs)
		}
	}
	code, _, errs := run(t, "", "generate", "--prompt", "x", "--cache-type-v", "q4_k")
	if code != 2 || !strings.Contains(errs, `cache type of values: unknown KV cache type "q4_k"`) {
		t.Errorf("--cache-type-v q4_k: exit %d, %s", code, errs)
	}
}
