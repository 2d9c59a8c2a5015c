package builtin

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

func TestUnpackWritesOnceAndReuses(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("MASQUE_CACHE", cache)
	fsys := fstest.MapFS{
		"config.json":       {Data: []byte(`{"a":1}`)},
		"sub/weights.bin":   {Data: []byte{1, 2, 3, 4}},
		"tokenizer.json":    {Data: []byte(`{}`)},
		"ignored-dir/.keep": {Data: nil},
	}
	dir, err := Unpack(fsys, "toy")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != filepath.Join(cache, "builtin") {
		t.Fatalf("unpacked into %s, want a folder under %s", dir, filepath.Join(cache, "builtin"))
	}
	got, err := os.ReadFile(filepath.Join(dir, "sub", "weights.bin"))
	if err != nil || string(got) != "\x01\x02\x03\x04" {
		t.Fatalf("weights: %v %q", err, got)
	}
	// Reused as it is: a file changed on disk is not rewritten (the marker says complete).
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir2, err := Unpack(fsys, "toy")
	if err != nil || dir2 != dir {
		t.Fatalf("second unpack: %v, %s vs %s", err, dir2, dir)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(b) != "x" {
		t.Fatalf("a complete folder was written again")
	}
	// Other contents → another folder.
	fsys["config.json"] = &fstest.MapFile{Data: []byte(`{"a":2}`)}
	dir3, err := Unpack(fsys, "toy")
	if err != nil || dir3 == dir {
		t.Fatalf("changed contents reused %s (%v)", dir3, err)
	}
	// No temporary folders left behind.
	entries, _ := os.ReadDir(filepath.Join(cache, "builtin"))
	if len(entries) != 2 {
		t.Fatalf("cache holds %d entries, want 2", len(entries))
	}
}

func TestUnpackIgnoresIncompleteFolder(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("MASQUE_CACHE", cache)
	fsys := fstest.MapFS{"config.json": {Data: []byte(`{}`)}}
	_, sum, err := digest(fsys)
	if err != nil {
		t.Fatal(err)
	}
	// A folder of the right name without the marker (a crash mid-unpack in an
	// older version, or a user's copy) is not trusted.
	stale := filepath.Join(cache, "builtin", "toy-"+sum[:16])
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "config.json"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := Unpack(fsys, "toy")
	if err != nil {
		t.Fatal(err)
	}
	if dir != stale {
		t.Fatalf("unpacked into %s, want %s", dir, stale)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(b) != "{}" {
		t.Fatalf("the incomplete folder was kept: config.json = %q", b)
	}
}

func TestUnpackEmpty(t *testing.T) {
	t.Setenv("MASQUE_CACHE", t.TempDir())
	if _, err := Unpack(fstest.MapFS{}, "none"); err == nil {
		t.Fatal("unpacking nothing succeeded")
	}
}
