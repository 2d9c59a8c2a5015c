package sculpt

import (
	"errors"
	"testing"
)

// TestDataSource: a source loads the persona's voice or nothing, refuses
// two sources, and the generic data pools every other voice.
func TestDataSource(t *testing.T) {
	ck := openBuiltin(t)
	defer ck.Close()
	if d, err := (DataSource{}).Load(ck, DataOptions{}); d != nil || err != nil {
		t.Errorf("no source: %v %v", d, err)
	}
	if _, err := (DataSource{Persona: "kjv", Data: "x.jsonl"}).Load(ck, DataOptions{}); !errors.Is(err, ErrTwoSources) {
		t.Errorf("two sources: %v", err)
	}
	names, err := OtherVoices(corpusDir, "")
	if err != nil || len(names) < 2 {
		t.Fatalf("corpus voices %v: %v", names, err)
	}
	src := DataSource{Persona: names[0], Corpus: corpusDir}
	d, err := src.Load(ck, DataOptions{MaxRows: 3})
	if err != nil || len(d.Train) != 3 || d.Rows != 3 {
		t.Fatalf("persona %s: %+v %v", names[0], d, err)
	}
	g, name, err := src.LoadGeneric(ck, 2, DataOptions{})
	if err != nil || len(g.Train) != 2*(len(names)-1) || name != "generic (voices other than "+names[0]+")" {
		t.Errorf("generic: %d rows, %q, %v", len(g.Train), name, err)
	}
	if _, _, err := (DataSource{Corpus: corpusDir}).LoadGeneric(ck, 2, DataOptions{}); err == nil {
		t.Error("generic data without a persona: no error")
	}
	if dir, err := (DataSource{}).CorpusDir(); err != nil || dir == "" {
		t.Errorf("default corpus %q: %v", dir, err)
	}
}
