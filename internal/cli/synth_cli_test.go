package cli

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSynthProfilesCLI runs `masque synth profiles` with the built-in engine
// as the teacher, then reruns it: the rerun must send no request and change
// nothing.
func TestSynthProfilesCLI(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "p.jsonl")
	os.WriteFile(in, []byte("{\"persona\":\"A retired sailor who tells tall tales.\"}\n{\"persona\":\"A shy librarian.\"}\nnot json\n"), 0o644)
	out := filepath.Join(dir, "out")
	args := []string{"synth", "profiles", "--personas", in, "--teacher-engine", "builtin", "--teacher-truncate", "--max-tokens", "24",
		"--on-reject", "flag", "--lang", "any", "--out", out, "--quiet", "--json"}
	code, stdout, errs := run(t, "", args...)
	if code != 0 {
		t.Fatalf("synth: %s", errs)
	}
	if !strings.Contains(stdout+errs, "p.jsonl:3") {
		t.Errorf("the malformed line was not reported with file and line: %s %s", stdout, errs)
	}
	rows := readRows(t, filepath.Join(out, "synthetic_character.jsonl"))
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	for _, r := range rows {
		for _, k := range []string{"character_id", "persona", "character"} {
			if _, ok := r[k]; !ok {
				t.Errorf("row lacks %s: %v", k, r)
			}
		}
	}
	first, _ := os.ReadFile(filepath.Join(out, "synthetic_character.jsonl"))
	code, stdout, errs = run(t, "", args...)
	if code != 0 {
		t.Fatalf("rerun: %s", errs)
	}
	var sum map[string]any
	json.Unmarshal([]byte(stdout), &sum)
	again, _ := os.ReadFile(filepath.Join(out, "synthetic_character.jsonl"))
	if string(first) != string(again) {
		t.Error("the rerun changed the output")
	}
}

func readRows(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}

// TestSynthPersonaLayerRange: a reversed --first-layer/--last-layer range
// is a usage error, before any model is opened.
func TestSynthPersonaLayerRange(t *testing.T) {
	ins := filepath.Join(t.TempDir(), "q.jsonl")
	if err := os.WriteFile(ins, []byte(`{"instruction": "Where do you live?", "output": "Here."}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "", "synth", "persona-data", "--persona", "a keeper", "--instructions", ins,
		"--out", t.TempDir(), "--first-layer", "24", "--last-layer", "5", "--model", "no-such-model")
	if code != 2 || !strings.Contains(errs, "--first-layer 24 --last-layer 5: want 0 ≤ first ≤ last") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}
