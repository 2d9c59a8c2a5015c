package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// TestCleanStale: the next write of a target removes the temporaries that
// killed writes of that same target left (files and folders), reports
// them, and touches nothing else: not fresh temporaries (a write still at
// work), not other targets' temporaries, not names that only look alike.
func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "model.safetensors")
	old := time.Now().Add(-2 * time.Hour)
	mk := func(name string, age time.Time, isDir bool) string {
		p := filepath.Join(dir, name)
		if isDir {
			os.Mkdir(p, 0o755)
			q := filepath.Join(p, "part.bin")
			os.WriteFile(q, make([]byte, 100), 0o644)
			os.Chtimes(q, age, age)
		} else {
			os.WriteFile(p, make([]byte, 1000), 0o644)
		}
		os.Chtimes(p, age, age)
		return p
	}
	staleFile := mk(".model.safetensors.tmp-123456", old, false)
	staleDir := mk(".model.safetensors.tmp-987", old, true)
	keep := []string{
		mk(".model.safetensors.tmp-555", time.Now(), false), // a write at work
		mk(".model.safetensors.tmp-abc", old, false),        // not what CreateTemp makes
		mk(".model.safetensors.tmp-", old, false),           // no random part
		mk(".other.safetensors.tmp-123", old, false),        // another target
		mk("model.safetensors.tmp-123", old, false),         // not hidden: not ours
		mk(".model.safetensors.tmp-1.part", old, false),     // more after the digits
		mk(".model.safetensors.tmp-42", old, true),          // a folder with a fresh file in it:
	}
	fresh := filepath.Join(keep[len(keep)-1], "fresh.bin")
	os.WriteFile(fresh, []byte("x"), 0o644)
	os.Chtimes(keep[len(keep)-1], old, old)

	var reported []string
	SetReporter(func(s Stale) { reported = append(reported, s.Path) })
	defer SetReporter(nil)
	if err := WriteFile(target, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{staleFile, staleDir} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the stale temporary %s is still there", filepath.Base(p))
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
	sort.Strings(reported)
	if len(reported) != 2 || reported[0] != staleFile || reported[1] != staleDir {
		t.Errorf("reported %q", reported)
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Errorf("target holds %q", b)
	}
	// CleanStale on its own returns what it removed, with sizes.
	again := mk(".model.safetensors.tmp-77", old, true)
	got, err := CleanStale(target)
	if err != nil || len(got) != 1 || got[0].Path != again || got[0].Bytes != 100 {
		t.Fatalf("CleanStale: %+v, %v", got, err)
	}
}
