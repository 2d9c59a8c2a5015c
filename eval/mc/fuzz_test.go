package mc

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: arbitrary CSV and JSONL contents never make Load panic, and a
// successful Load returns at least one item.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("question,A,B,matching\nq,yes,no,A\n"), true)
	f.Add([]byte(`{"statement":"s","answer_matching_behavior":" Yes","answer_not_matching_behavior":" No"}`), false)
	f.Add([]byte(`{"question":"q","A":"a","B":"b","matching":"B"}`), false)
	f.Fuzz(func(t *testing.T, data []byte, csv bool) {
		name := "t.jsonl"
		if csv {
			name = "t.csv"
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		items, err := Load(p)
		if err != nil {
			return
		}
		if len(items) == 0 {
			t.Fatal("no items and no error")
		}
	})
}
