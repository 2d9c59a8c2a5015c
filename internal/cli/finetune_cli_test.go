package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFinetuneLoRA trains a LoRA adapter on the built-in model to reproduce
// a sentence, then generates it back through `generate --lora`.
func TestFinetuneLoRA(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.jsonl")
	target := " The dragon ate the red apple and flew over the hill."
	var rows []string
	for i := 0; i < 4; i++ {
		b, _ := json.Marshal(map[string]any{"messages": []map[string]string{{"role": "user", "content": "Tell me."}, {"role": "assistant", "content": target}}})
		rows = append(rows, string(b))
	}
	rows = append(rows, `{"messages": [`) // a malformed line, reported and skipped
	os.WriteFile(data, []byte(strings.Join(rows, "\n")+"\n"), 0o644)
	out := filepath.Join(dir, "adapter")
	code, _, errs := run(t, "", "finetune", "--data", data, "--out", out, "--steps", "60", "--lr", "1e-2", "--lora-rank", "8",
		"--lora-dropout", "0", "--eval-fraction", "0", "--seed", "1")
	if code != 0 {
		t.Fatalf("finetune: %s", errs)
	}
	if !strings.Contains(errs, "data.jsonl:5") {
		t.Errorf("the malformed line was not reported with its line number: %s", errs)
	}
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json", "loss.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// training.json records the AdamW settings in use (PyTorch's defaults
	// here), not the zeros that asked for them.
	var rec struct {
		Config struct{ Beta1, Beta2, Eps, LR float64 }
		LR     float64 `json:"lr"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "training.json")); err != nil || json.Unmarshal(b, &rec) != nil {
		t.Fatalf("training.json: %v", err)
	}
	if c := rec.Config; c.Beta1 != 0.9 || c.Beta2 != 0.999 || c.Eps != 1e-8 || c.LR != 1e-2 || rec.LR != 1e-2 {
		t.Errorf("training.json records β1 %g, β2 %g, ε %g, lr %g/%g; want 0.9, 0.999, 1e-8, 0.01", c.Beta1, c.Beta2, c.Eps, c.LR, rec.LR)
	}
	// --lr 0 is refused, not silently the default.
	if code, _, errs := run(t, "", "finetune", "--data", data, "--out", filepath.Join(dir, "lr0"), "--lr", "0"); code == 0 || !strings.Contains(errs, "must be positive") {
		t.Errorf("finetune --lr 0: exit %d, %s", code, errs)
	}
	tmpl := filepath.Join(dir, "m.json")
	os.WriteFile(tmpl, []byte(`[{"role":"user","content":"Tell me."}]`), 0o644)
	code, got, errs := run(t, "", "generate", "--lora", out, "--chat", "--prompt", "Tell me.", "--temperature", "0", "-n", "40", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var r struct{ Text string }
	json.Unmarshal([]byte(got), &r)
	if !strings.Contains(r.Text, "dragon ate the red apple") {
		t.Fatalf("the adapter did not teach the sentence: %q", r.Text)
	}
}
