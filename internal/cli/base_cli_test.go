package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
)

// TestRecordedBase: masks, statistics, LoRA adapters and sculpt runs
// record their base, and commands given one of them and no --model open
// that base and say so (not the default model, builtin:stories260K in these
// tests). A mask made on a Hugging Face folder applies to that folder's
// GGUF conversions (f16, q8_0: with a warning) written by masque convert
// and quantize, and is refused, naming both files, on another model; so
// is a LoRA adapter.
func TestRecordedBase(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for i, d := range []string{a, b} {
		if code, _, errs := run(t, "", "random", "--preset", "tiny", "--seed", []string{"1", "2"}[i], "--out", d); code != 0 {
			t.Fatalf("random: %s", errs)
		}
	}
	text := filepath.Join(dir, "calib.txt")
	os.WriteFile(text, []byte("the cat sat on the mat\nan old map of the sea\nhello there, traveller\n"), 0o644)
	noted := func(errs, file string) bool {
		return strings.Contains(errs, "using base "+a+" recorded in "+file)
	}

	// Statistics and a mask made on folder a record it.
	st := filepath.Join(dir, "stats")
	if code, _, errs := run(t, "", "stats", "--model", a, "--calib-text", text, "--out", st); code != 0 {
		t.Fatalf("stats: %s", errs)
	}
	mk := filepath.Join(dir, "a.mask.safetensors")
	code, _, errs := run(t, "", "subnet", "--method", "wanda", "--sparsity", "0.5", "--stats", st, "--out", mk)
	if code != 0 || !noted(errs, filepath.Join(st, "manifest.json")) {
		t.Fatalf("subnet --stats without --model: exit %d, %s", code, errs)
	}
	ppl := func(extra ...string) (int, map[string]any, string) {
		code, out, errs := run(t, "", append([]string{"eval", "ppl", "--data", text, "--mask", mk, "--json"}, extra...)...)
		var res map[string]any
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("eval ppl output %q: %v", out, err)
			}
		}
		return code, res, errs
	}
	code, res, errs := ppl()
	if code != 0 || !noted(errs, mk) || res["model"] != a {
		t.Fatalf("eval ppl --mask without --model: exit %d, model %v, %s", code, res["model"], errs)
	}
	if code, _, errs := run(t, "", "mask", "apply", "--mask", mk, "--out", filepath.Join(dir, "pruned")); code != 0 || !noted(errs, mk) {
		t.Fatalf("mask apply without --model: exit %d, %s", code, errs)
	}

	// Its GGUF conversions, by masque itself.
	f16, q8 := filepath.Join(dir, "a-f16.gguf"), filepath.Join(dir, "a-q8_0.gguf")
	if code, _, errs := run(t, "", "convert", "--model", a, "--type", "F16", "--out", f16); code != 0 {
		t.Fatalf("convert: %s", errs)
	}
	if code, _, errs := run(t, "", "quantize", "--model", a, "--type", "Q8_0", "--out", q8); code != 0 {
		t.Fatalf("quantize: %s", errs)
	}
	if code, _, errs := ppl("--model", f16); code != 0 || strings.Contains(errs, "warning") {
		t.Errorf("mask over the f16 conversion: exit %d, %s", code, errs)
	}
	if code, _, errs := ppl("--model", q8); code != 0 || !strings.Contains(errs, "warning") || !strings.Contains(errs, "q8_0") {
		t.Errorf("mask over the q8_0 quantisation: exit %d, %s", code, errs)
	}
	code, _, errs = ppl("--model", b)
	if code == 0 || !strings.Contains(errs, "another model") || !strings.Contains(errs, mk) || !strings.Contains(errs, b) {
		t.Errorf("mask over another model: exit %d, %s", code, errs)
	}

	// A LoRA adapter made on a records it too (as a PEFT field plus the fingerprint).
	ck, err := checkpoint.Open(a, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.New(ck.Model, lora.Config{Rank: 2, Alpha: 4, Targets: []model.Proj{model.ProjQ}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	fp := ck.Model.Fingerprint()
	ck.Close()
	lo := filepath.Join(dir, "lora")
	if err := ad.Save(lo, nil); err != nil {
		t.Fatal(err)
	}
	if rb, err := lora.ReadBase(lo); err != nil || rb.Ref != a || rb.Fingerprint != fp {
		t.Fatalf("adapter records %+v, %v", rb, err)
	}
	code, _, errs = run(t, "", "generate", "--lora", lo, "--prompt", "hello", "-n", "4", "--temperature", "0")
	if code != 0 || !noted(errs, filepath.Join(lo, "adapter_config.json")) || strings.Contains(errs, "warning") {
		t.Fatalf("generate --lora without --model: exit %d, %s", code, errs)
	}
	// Over its f16 conversion, nothing to say; over its q8_0 quantisation, a
	// warning; over another model of the same shape, an error.
	code, _, errs = run(t, "", "generate", "--lora", lo, "--model", f16, "--prompt", "hello", "-n", "4", "--temperature", "0")
	if code != 0 || strings.Contains(errs, "warning") {
		t.Fatalf("generate --lora over the f16 conversion: exit %d, %s", code, errs)
	}
	code, _, errs = run(t, "", "generate", "--lora", lo, "--model", q8, "--prompt", "hello", "-n", "4", "--temperature", "0")
	if code != 0 || !strings.Contains(errs, "warning: the LoRA adapter "+lo+" was made on "+a) || !strings.Contains(errs, "q8_0") {
		t.Fatalf("generate --lora over the q8_0 quantisation: exit %d, %s", code, errs)
	}
	code, _, errs = run(t, "", "generate", "--lora", lo, "--model", b, "--prompt", "hello", "-n", "4", "--temperature", "0")
	if code == 0 || !strings.Contains(errs, "another model") || !strings.Contains(errs, lo) || !strings.Contains(errs, b) {
		t.Fatalf("generate --lora over another model: exit %d, %s", code, errs)
	}

	// A sculpt run folder's keep indices: run.json records the base.
	run1 := filepath.Join(dir, "run")
	os.MkdirAll(run1, 0o755)
	keep := make([][]int, 2)
	for l := range keep {
		keep[l] = []int{0, 1, 2, 3}
	}
	kj, _ := json.Marshal(keep)
	os.WriteFile(filepath.Join(run1, "keep_indices.json"), kj, 0o644)
	rj, _ := json.Marshal(map[string]any{"format": "masque-sculpt-run/1", "model": a, "base": a, "model_fingerprint": fp})
	os.WriteFile(filepath.Join(run1, "run.json"), rj, 0o644)
	code, _, errs = run(t, "", "sculpt", "export", "--keep", filepath.Join(run1, "keep_indices.json"), "--out", filepath.Join(dir, "export"), "--no-gguf")
	if code != 0 || !noted(errs, filepath.Join(run1, "run.json")) {
		t.Fatalf("sculpt export without --model: exit %d, %s", code, errs)
	}

	// eval voices, whose own default is builtin:voices, also takes the mask's base.
	code, _, errs = run(t, "", "eval", "voices", "--mask", mk, "--limit", "1", "--max-tokens", "2", "--quiet", "--out", filepath.Join(dir, "voices"))
	if code != 0 || !noted(errs, mk) {
		t.Fatalf("eval voices --mask without --model: exit %d, %s", code, errs)
	}

	// A recorded base that is gone: the error says where it was recorded.
	os.Rename(a, a+".moved")
	code, _, errs = ppl()
	if code == 0 || !strings.Contains(errs, "recorded in "+mk) || !strings.Contains(errs, "--model") {
		t.Errorf("moved base: exit %d, %s", code, errs)
	}
}
