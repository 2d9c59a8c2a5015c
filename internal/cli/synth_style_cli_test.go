package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSynthStyleRewriteParallelCLI builds style-rewrite rows from WEB/KJV
// pairs of a small voices corpus without a teacher: the system prompts are
// the corpus's personas, the targets the KJV text.
func TestSynthStyleRewriteParallelCLI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, errs := run(t, "", "synth", "style-rewrite", "--data", filepath.Join("..", "..", "synth", "testdata", "voices-pair"),
		"--pairs-from", "web", "--character", "kjv", "--split", "test", "--max-words", "30", "--out", out, "--quiet")
	if code != 0 {
		t.Fatalf("synth style-rewrite: %s", errs)
	}
	if !strings.Contains(errs, "Exodus 20:13") || !strings.Contains(stdout, "kept 4") {
		t.Fatalf("stdout %s\nstderr %s", stdout, errs)
	}
	rows := readRows(t, filepath.Join(out, "style_rewrite.chat.jsonl"))
	if len(rows) != 4 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		msgs := r["messages"].([]any)
		sys := msgs[0].(map[string]any)["content"].(string)
		user := msgs[1].(map[string]any)["content"].(string)
		if sys != "You are the voice of the King James Bible of 1611." || !strings.HasPrefix(user, "Rewrite in your own voice: ") {
			t.Fatalf("row %v", r)
		}
	}
	// Lines without neutral counterparts and no teacher: a usage error.
	code, _, errs = run(t, "", "synth", "style-rewrite", "--data", filepath.Join("..", "..", "synth", "testdata", "voices-pair"),
		"--character", "kjv", "--split", "test", "--out", filepath.Join(t.TempDir(), "o"), "--quiet")
	if code == 0 || !strings.Contains(errs, "no teacher") {
		t.Fatalf("no teacher: code %d, %s", code, errs)
	}
}
