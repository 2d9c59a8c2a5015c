package synth

import (
	"path/filepath"
	"testing"
)

// TestLoadStyleInput: parallel lines from a voices corpus folder take their
// system prompts from its personas.json unless NoPersona, and need a
// teacher only for traces.
func TestLoadStyleInput(t *testing.T) {
	in := StyleInput{Data: filepath.Join("testdata", "voices-pair"), PairsFrom: "web", Character: "kjv", Split: "test"}
	lines, _, hints, err := LoadStyleInput(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 {
		t.Fatal("no lines")
	}
	if hints["kjv"].Persona == "" {
		t.Errorf("kjv's persona was not read from personas.json: %+v", hints)
	}
	if StyleNeedsTeacher(lines, false) || !StyleNeedsTeacher(lines, true) {
		t.Error("parallel lines need a teacher only for traces")
	}
	in.NoPersona = true
	if _, _, hints, err = LoadStyleInput(in); err != nil || len(hints) != 0 {
		t.Errorf("NoPersona: hints %+v, err %v", hints, err)
	}
	if StyleNeedsTeacher([]StyleLine{{Styled: "x"}}, false) != true {
		t.Error("a line without its neutral rewrite needs a teacher")
	}
	in.Data = filepath.Join(t.TempDir(), "missing.jsonl")
	in.PairsFrom = ""
	if _, _, _, err := LoadStyleInput(in); err == nil {
		t.Error("a missing data file is no error")
	}
}
