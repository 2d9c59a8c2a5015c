package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalVoices runs `eval voices classifier train`, `eval voices` on the
// built-in model and the small test corpus, and `eval compare` on the result.
func TestEvalVoices(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus")
	if err := os.CopyFS(corpus, os.DirFS("../../eval/voices/testdata/corpus")); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "", "eval", "voices", "classifier", "train", "--corpus", corpus, "--json")
	if code != 0 {
		t.Fatalf("classifier train: %s", errs)
	}
	var tr struct {
		Bytes int64
		Test  struct{ Accuracy float64 }
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil || tr.Bytes == 0 || tr.Test.Accuracy < 0.9 {
		t.Fatalf("classifier train output %q: %v", out, err)
	}
	runDir := filepath.Join(dir, "run")
	code, out, errs = run(t, "", "eval", "voices", "--corpus", corpus, "--limit", "1", "-n", "8", "--seed", "3", "--threads", "1", "--out", runDir, "--json")
	if code != 0 {
		t.Fatalf("eval voices: %s", errs)
	}
	var r struct {
		ClassifierAccuracy *float64 `json:"classifier_accuracy"`
		MeanFidelity       *float64 `json:"mean_fidelity"`
		Voices             map[string]struct {
			Fidelity         *float64 `json:"fidelity"`
			PPL              *float64 `json:"ppl"`
			PPLOtherPersonas *float64 `json:"ppl_other_personas"`
		}
		Confusion map[string]any
		Items     []any
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if r.ClassifierAccuracy == nil || r.MeanFidelity == nil || len(r.Voices) != 3 || r.Voices["slang"].PPL == nil || r.Voices["slang"].PPLOtherPersonas == nil || r.Confusion == nil || r.Items != nil {
		t.Fatalf("eval voices --json: %s", out)
	}
	code, out, errs = run(t, "", "eval", "compare", runDir, "--metric", "fidelity", "--out", filepath.Join(dir, "cmp"))
	if code != 0 || !strings.Contains(out, "fidelity mean") {
		t.Fatalf("eval compare: %d %s %s", code, out, errs)
	}
	// Bad input.
	// Without --corpus: the evaluation kit built into builtin:voices (no
	// train split; its classifier is checked against the manifest's digests).
	t.Setenv("MASQUE_CACHE", t.TempDir())
	code, out, errs = run(t, "", "eval", "voices", "--voices", "devil", "--limit", "1", "-n", "4", "--json")
	var kit struct {
		ClassifierAccuracy *float64 `json:"classifier_accuracy"`
		Voices             map[string]json.RawMessage
	}
	if code != 0 || json.Unmarshal([]byte(out), &kit) != nil || kit.ClassifierAccuracy == nil || *kit.ClassifierAccuracy < 0.95 || len(kit.Voices) != 1 {
		t.Errorf("eval voices on the built-in kit: %d %s %s", code, out, errs)
	}
	os.Remove(filepath.Join(corpus, "gloss", "test.jsonl"))
	if code, _, errs := run(t, "", "eval", "voices", "--corpus", corpus, "--limit", "1", "-n", "4"); code != 1 || !strings.Contains(errs, filepath.Join("gloss", "test.jsonl")) {
		t.Errorf("missing split: %d %s", code, errs)
	}
}
