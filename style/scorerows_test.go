package style

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadScoreRows(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rows, err := ReadScoreRows(write("ok.jsonl", `{"character":"kjv","input":"Who?","output":"I am."}`+"\n\n"+`{"input":"a","output":"b"}`+"\n"))
	if err != nil || len(rows) != 2 || rows[0].Character != "kjv" || rows[1].Output != "b" {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	for name, c := range map[string]struct{ text, want string }{
		"bad.jsonl":   {"{\"input\":\"a\",\"output\":\"b\"}\n{nope\n", "bad.jsonl:2"},
		"empty.jsonl": {"\n", "no rows"},
		"half.jsonl":  {`{"input":"a"}` + "\n", "half.jsonl:1: the row needs non-empty input and output"},
	} {
		if _, err := ReadScoreRows(write(name, c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
