package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSubnetWorkflow runs the training-free persona workflow end to end on
// the built-in model: statistics, a Wanda mask, its evaluation, applying it
// and generating from the masked model.
func TestSubnetWorkflow(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "stats")
	if code, _, errs := run(t, "", "stats", "--out", st, "--calib-limit", "20"); code != 0 {
		t.Fatalf("stats: %s", errs)
	}
	if _, err := os.Stat(filepath.Join(st, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	mk := filepath.Join(dir, "m.safetensors")
	if code, _, errs := run(t, "", "subnet", "--method", "wanda", "--sparsity", "0.5", "--stats", st, "--out", mk); code != 0 {
		t.Fatalf("subnet: %s", errs)
	}
	code, out, errs := run(t, "", "mask", "show", mk)
	if code != 0 || !strings.Contains(out, "0.5000") || !strings.Contains(out, "wanda") {
		t.Fatalf("mask show: %d %s %s", code, out, errs)
	}
	code, out, errs = run(t, "", "eval", "mc", "--tests", "../../testdata/persona-evals/extraversion.jsonl", "--mask", mk, "--json")
	if code != 0 {
		t.Fatalf("eval mc: %s", errs)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("eval mc output %q: %v", out, err)
	}
	pruned := filepath.Join(dir, "pruned")
	if code, _, errs := run(t, "", "mask", "apply", "--mask", mk, "--out", pruned); code != 0 {
		t.Fatalf("mask apply: %s", errs)
	}
	gen := []string{"generate", "--prompt", "Once upon a time", "--temperature", "0", "-n", "16", "--json"}
	_, dense, _ := run(t, "", gen...)
	code, sparse, errs := run(t, "", append(gen, "--model", pruned)...)
	if code != 0 || !strings.Contains(sparse, `"ids"`) {
		t.Fatalf("generate on the masked model: %s %s", sparse, errs)
	}
	if dense == sparse {
		t.Error("a 50% mask left greedy output unchanged")
	}
	// A mask for another model is refused.
	code, _, errs = run(t, "", "mask", "apply", "--model", "../../testdata/hf-tiny/llama", "--mask", mk, "--out", filepath.Join(dir, "x"))
	if code == 0 || !strings.Contains(errs, "another model") {
		t.Errorf("foreign mask: exit %d, %s", code, errs)
	}
}
