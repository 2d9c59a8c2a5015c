package calib

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/model"
)

// TestSourceBuild selects each kind of set as the --calib-* flags do, and
// writes the texts with Save.
func TestSourceBuild(t *testing.T) {
	m, err := model.LoadLlama2C("../../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	cm := Model{Model: m, Tok: byteTok{}, Chat: byteChat}
	dir := t.TempDir()
	text := filepath.Join(dir, "t.txt")
	if err := os.WriteFile(text, []byte("one line\nanother line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set, err := Source{Text: text}.Build(ctx, cm, nil)
	if err != nil || len(set.Samples) != 2 || set.Source != "text" {
		t.Fatalf("text source: %v %+v", err, set)
	}
	gen, err := Source{PersonaOptions: PersonaOptions{Options: Options{Limit: 3}}}.Build(ctx, cm, nil)
	if err != nil || len(gen.Samples) != 3 || gen.Name != "generic" {
		t.Fatalf("generic source: %v %+v", err, gen)
	}
	save := filepath.Join(dir, "sub", "answers.txt")
	calls := 0
	src := Source{Persona: "A cheerful sailor.", Save: save, PersonaOptions: PersonaOptions{Samples: 2, GenTokens: 4}}
	p, err := src.Build(ctx, cm, func(done, total int) { calls++ })
	if err != nil || len(p.Samples) != 2 || calls != 2 {
		t.Fatalf("persona source: %v, %d progress calls", err, calls)
	}
	saved, err := os.ReadFile(save)
	if err != nil || strings.Count(string(saved), "\n") < 2 {
		t.Fatalf("--calib-save: %v %q", err, saved)
	}
	if _, err := (Source{Text: text, Chat: "x.jsonl"}).Build(ctx, cm, nil); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Fatalf("two sources: %v", err)
	}
	if _, err := (Source{Text: filepath.Join(dir, "missing.txt")}).Build(ctx, cm, nil); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Fatalf("missing file: %v", err)
	}
}
