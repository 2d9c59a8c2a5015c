package jsonlstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type rec struct {
	Text string `json:"text"`
	N    int    `json:"n"`
}

func TestStoreRoundTripAndTornLine(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string // written before opening
		skipped int
		keys    int
	}{
		{"empty", "", 0, 0},
		{"torn last line", `{"key":"a","value":{"text":"x","n":1}}` + "\n" + `{"key":"b","val`, 1, 1},
		{"garbage middle", `{"key":"a","value":{"text":"x","n":1}}` + "\nnot json\n" + `{"key":"c","value":{"text":"z","n":3}}` + "\n", 1, 2},
		{"later line wins", `{"key":"a","value":{"text":"x","n":1}}` + "\n" + `{"key":"a","value":{"text":"y","n":2}}` + "\n", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "s.jsonl")
			os.MkdirAll(filepath.Dir(path), 0o755)
			if tc.prefix != "" {
				os.WriteFile(path, []byte(tc.prefix), 0o644)
			}
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if s.Skipped != tc.skipped || s.Len() != tc.keys {
				t.Fatalf("skipped %d keys %d, want %d %d", s.Skipped, s.Len(), tc.skipped, tc.keys)
			}
			if err := s.Put("new", rec{"hello\nworld", 7}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s2, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			var r rec
			if !s2.Get("new", &r) || r.Text != "hello\nworld" || r.N != 7 {
				t.Fatalf("got %+v", r)
			}
			if s2.Len() != tc.keys+1 {
				t.Fatalf("keys %d after reopening, want %d", s2.Len(), tc.keys+1)
			}
			if tc.name == "later line wins" {
				s2.Get("a", &r)
				if r.N != 2 {
					t.Fatalf("a = %+v", r)
				}
			}
			data, _ := os.ReadFile(path)
			if !strings.HasPrefix(string(data), tc.prefix) {
				t.Fatal("the store rewrote existing content")
			}
		})
	}
}

func TestStoreConcurrentPuts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 25 {
				s.Put(Key(i, j), rec{N: i*100 + j})
			}
		}()
	}
	wg.Wait()
	s.Close()
	s2, _ := Open(path)
	defer s2.Close()
	if s2.Len() != 200 || s2.Skipped != 0 {
		t.Fatalf("len %d skipped %d", s2.Len(), s2.Skipped)
	}
}

func TestKeyBoundaries(t *testing.T) {
	if Key("ab", "c") == Key("a", "bc") {
		t.Fatal("keys ignore part boundaries")
	}
	if Key("x", 1) != Key("x", 1) {
		t.Fatal("keys are not stable")
	}
}

// TestFieldAddAndTwoWriters: a chosen value field keeps another file
// layout ({"key","response"}), Add keeps the first value, and two handles
// appending to one file (as two processes do) each read their own lines.
func TestFieldAddAndTwoWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.jsonl")
	a, err := OpenWith(path, Options{Field: "response", Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenWith(path, Options{Field: "response"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := a.Add(fmt.Sprint("a", i), rec{Text: "from a", N: i}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Add(fmt.Sprint("b", i), rec{Text: "from b", N: i}); err != nil {
			t.Fatal(err)
		}
	}
	if wrote, err := a.Add("a1", rec{Text: "again"}); wrote || err != nil {
		t.Fatalf("Add of a stored key wrote %v (%v)", wrote, err)
	}
	for i := range 3 {
		var r rec
		if !a.Get(fmt.Sprint("a", i), &r) || r.Text != "from a" || r.N != i {
			t.Fatalf("a%d: %+v", i, r)
		}
		if !b.Get(fmt.Sprint("b", i), &r) || r.Text != "from b" || r.N != i {
			t.Fatalf("b%d: %+v", i, r)
		}
	}
	a.Close()
	b.Close()
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), `{"key":"a0","response":{"text":"from a","n":0}}`+"\n") {
		t.Fatalf("layout: %s", data)
	}
	c, err := OpenWith(path, Options{Field: "response"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Len() != 6 || c.Skipped != 0 {
		t.Fatalf("reopened: %d keys, %d skipped", c.Len(), c.Skipped)
	}
	// The same file read with the default field has no readable line.
	d, _ := Open(path)
	defer d.Close()
	if d.Len() != 0 || d.Skipped != 6 {
		t.Fatalf("default field: %d keys, %d skipped", d.Len(), d.Skipped)
	}
}
