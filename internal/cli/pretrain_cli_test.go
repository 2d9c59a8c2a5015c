package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPretrain runs `masque pretrain` on a small data file, extends the
// finished run with --resume, and loads the result with `generate`.
func TestPretrain(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join("..", "..", "train", "pretrain", "testdata", "tokenizer")
	data, valid := filepath.Join(dir, "data.jsonl"), filepath.Join(dir, "valid.jsonl")
	for _, f := range []string{data, valid} {
		var rows []string
		for i := 0; i < 12; i++ {
			text := fmt.Sprintf("the cat number %d sat on the mat and the dog ran to it.", i)
			b, _ := json.Marshal(map[string]any{"id": fmt.Sprint(i), "voice": "cats", "text": text,
				"messages": []map[string]string{{"role": "user", "content": "Tell me."}, {"role": "assistant", "content": text}}})
			rows = append(rows, string(b))
		}
		os.WriteFile(f, []byte(strings.Join(rows, "\n")+"\n"), 0o644)
	}
	out := filepath.Join(dir, "model")
	args := []string{"pretrain", "--data", data, "--valid", valid, "--tokenizer", tok, "--preset", "voices-tiny", "--out", out,
		"--seq-len", "64", "--batch-tokens", "256", "--eval-every", "2", "--checkpoint-every", "2", "--threads", "2"}
	code, _, errs := run(t, "", append(args, "--steps", "4")...)
	if code != 0 {
		t.Fatalf("pretrain: %s", errs)
	}
	for _, want := range []string{"MFU", "valid", "cats", "model written to"} {
		if !strings.Contains(errs, want) {
			t.Errorf("output lacks %q:\n%s", want, errs)
		}
	}
	// A second run over the same folder needs --resume; with it, the run
	// can be extended.
	if code, _, errs := run(t, "", append(args, "--steps", "6")...); code == 0 || !strings.Contains(errs, "--resume") && !strings.Contains(errs, "resume") {
		t.Errorf("a second run without --resume: code %d, %s", code, errs)
	}
	if code, _, errs := run(t, "", append(args, "--steps", "6", "--resume")...); code != 0 || !strings.Contains(errs, "resuming at step 4") {
		t.Fatalf("extending the run: code %d, %s", code, errs)
	}
	var rec struct {
		Steps int `json:"steps_done"`
	}
	b, err := os.ReadFile(filepath.Join(out, "run.json"))
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Steps != 6 {
		t.Errorf("run.json: %v, steps %d", err, rec.Steps)
	}
	if code, _, errs := run(t, "", "generate", "--model", out, "--prompt", "the cat", "-n", "5", "--temperature", "0"); code != 0 {
		t.Errorf("generate with the pretrained model: %s", errs)
	}
	// The model converts to a GGUF with the same logits (bf16 weights kept
	// as bf16) and the chat template.
	gg := filepath.Join(dir, "m.gguf")
	if code, _, errs := run(t, "", "convert", "--model", out, "--out", gg, "--type", "bf16"); code != 0 {
		t.Fatalf("convert: %s", errs)
	}
	lg := []string{"logits", "--ids", "513,100,120,514,512", "--json"}
	_, a, _ := run(t, "", append(lg, "--model", out)...)
	_, b2, errs := run(t, "", append(lg, "--model", gg)...)
	if a == "" || a != b2 {
		t.Errorf("logits of the folder and of its GGUF differ (%d vs %d bytes) %s", len(a), len(b2), errs)
	}
	// Usage errors.
	if code, _, errs := run(t, "", "pretrain", "--tokenizer", tok, "--out", out); code != 2 || !strings.Contains(errs, "--corpus or --data") {
		t.Errorf("no data: code %d, %s", code, errs)
	}
}
