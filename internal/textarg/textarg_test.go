package textarg

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "desc.txt")
	if err := os.WriteFile(p, []byte("\n  A shy librarian.\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{"plain text": "plain text", "": "", "@" + p: "A shy librarian.", "a@b": "a@b"} {
		if got, err := Read(in); err != nil || got != want {
			t.Errorf("Read(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Read("@" + p + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
