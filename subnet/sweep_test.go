package subnet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/eval/mc"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

// wordTok is a tokenizer over the stories260K vocabulary: bytes mod 500
// (enough for the library-level sweep tests; the CLI tests use the real one).
type wordTok struct{}

func (wordTok) Encode(s string, addSpecial bool) []int {
	var ids []int
	if addSpecial {
		ids = append(ids, 1)
	}
	for _, b := range []byte(s) {
		ids = append(ids, 3+int(b)%400)
	}
	return ids
}

func (wordTok) Decode(ids []int, skipSpecial bool) string { return strings.Repeat("x", len(ids)) }

func testCalibModel(m *model.Model) calib.Model {
	return calib.Model{Model: m, Tok: wordTok{}, Chat: func(msgs []chattemplate.Message, gen bool) ([]int, error) {
		var s strings.Builder
		for _, x := range msgs {
			s.WriteString(x.Role + ": " + x.Content + "\n")
		}
		return wordTok{}.Encode(s.String(), true), nil
	}}
}

// TestSweep runs a Wanda sweep over two sparsities with statistics collected
// from the generic set, a multiple-choice test and a report.
func TestSweep(t *testing.T) {
	m := loadStories(t)
	dir := t.TempDir()
	var stages []string
	seen := map[string]bool{}
	cfg := SweepConfig{Model: m, ModelName: "stories260K", Method: Wanda,
		Patterns:   []Options{{Sparsity: 0.3}, {Sparsity: 0.6}},
		Calib:      calib.Source{PersonaOptions: calib.PersonaOptions{Options: calib.Options{Limit: 4, MaxTokens: 32}}},
		CalibModel: testCalibModel(m), Out: filepath.Join(dir, "m.safetensors"), Report: filepath.Join(dir, "r", "report.html"),
		Test: &Test{Path: "../testdata/persona-evals/extraversion.jsonl", Prompter: mc.PlainPrompter{Tok: wordTok{}}, Limit: 3},
		Progress: func(stage string, done, total int) {
			if !seen[stage] {
				seen[stage] = true
				stages = append(stages, stage)
			}
		}}
	runs, err := Sweep(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Mask != filepath.Join(dir, "m-s0.30.safetensors") || runs[1].Mask != filepath.Join(dir, "m-s0.60.safetensors") {
		t.Fatalf("runs %+v", runs)
	}
	for i, r := range runs {
		mk, err := mask.Load(r.Mask)
		if err != nil {
			t.Fatal(err)
		}
		if d := mk.Density(); d != r.Density || (i == 1 && d >= runs[0].Density) {
			t.Errorf("run %d: density %v (recorded %v)", i, d, r.Density)
		}
		if _, ok := r.Metrics["accuracy"]; !ok {
			t.Errorf("run %d: no accuracy", i)
		}
	}
	if b, err := os.ReadFile(cfg.Report); err != nil || !strings.Contains(string(b), "ρ=0.60") {
		t.Errorf("report: %v", err)
	}
	if want := "statistics,eval dense,wanda ρ=0.30,eval ρ=0.30,wanda ρ=0.60,eval ρ=0.60"; strings.Join(stages, ",") != want {
		t.Errorf("stages %q, want %q", strings.Join(stages, ","), want)
	}
	// Existing outputs are kept unless Overwrite.
	if _, err := Sweep(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second run without Overwrite: %v", err)
	}
	cfg.Method, cfg.Patterns[0].Structured = SparseGPT, true
	if _, err := Sweep(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "structured") {
		t.Errorf("structured SparseGPT: %v", err)
	}
}

// TestRunContrast builds contrastive masks from a text file and the generic
// set, and checks the spec language's errors.
func TestRunContrast(t *testing.T) {
	m := loadStories(t)
	dir := t.TempDir()
	pos := filepath.Join(dir, "pos.txt")
	if err := os.WriteFile(pos, []byte("Hello! What a party, everyone dance!\nI love meeting people!\nLet us all sing together!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := ContrastConfig{Model: m, Pos: pos, Neg: "generic", Variant: VariantNorms, Phi: ReLU,
		Calib: calib.Source{PersonaOptions: calib.PersonaOptions{Options: calib.Options{Limit: 4, MaxTokens: 32}}}, CalibModel: testCalibModel(m),
		Patterns: []Options{{Sparsity: 0.5}}, OutPos: filepath.Join(dir, "p.safetensors"), OutNeg: filepath.Join(dir, "n.safetensors")}
	rows, err := RunContrast(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].DiffShare <= 0 || rows[0].DiffShare > 1 {
		t.Fatalf("rows %+v", rows)
	}
	for _, p := range []string{cfg.OutPos, cfg.OutNeg} {
		if _, err := mask.Load(p); err != nil {
			t.Error(err)
		}
	}
	for spec, want := range map[string]string{"": "--pos is required", filepath.Join(dir, "nope"): "want a statistics folder",
		"persona:@" + filepath.Join(dir, "nope.txt"): "nope.txt", dir: "manifest.json"} {
		_, err := StatsFromSpec(context.Background(), spec, "pos", cfg.Calib, cfg.CalibModel, nil, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("spec %q: %v, want an error with %q", spec, err, want)
		}
	}
}
