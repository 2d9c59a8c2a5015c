package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// onlyEntries fails the test unless dir holds exactly the named entries
// (so no temporary file was left behind).
func onlyEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if len(got) != len(names) {
		t.Fatalf("directory holds %v, want %v", got, names)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("directory holds %v, want %v", got, names)
		}
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFileNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	err := WriteFile(p, func(w io.Writer) error {
		_, err := io.WriteString(w, "hello")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readString(t, p); got != "hello" {
		t.Fatalf("content %q", got)
	}
	onlyEntries(t, dir, "out.bin")
	if runtime.GOOS != "windows" {
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o644 {
			t.Errorf("mode %v, want 0644", st.Mode().Perm())
		}
	}
}

func TestWriteFileReplacesAndKeepsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	if err := os.WriteFile(p, []byte("old contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, p); got != "new" {
		t.Fatalf("content %q", got)
	}
	onlyEntries(t, dir, "out.bin")
	if runtime.GOOS != "windows" {
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", st.Mode().Perm())
		}
	}
}

func TestWriteFileErrorLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFile(p, func(w io.Writer) error {
		io.WriteString(w, "partial new data")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if got := readString(t, p); got != "old" {
		t.Fatalf("old file changed to %q", got)
	}
	onlyEntries(t, dir, "out.bin")
}

func TestWriteFileErrorNoFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	err := WriteFile(p, func(w io.Writer) error { return errors.New("nope") })
	if err == nil {
		t.Fatal("want error")
	}
	onlyEntries(t, dir)
}

func TestWriteFilePanicCleansUp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic was swallowed")
			}
		}()
		WriteFile(p, func(w io.Writer) error {
			io.WriteString(w, "x")
			panic("writer panicked")
		})
	}()
	onlyEntries(t, dir)
}

func TestCreateMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "such", "dir", "f")
	if _, err := Create(p); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
	if err := WriteFile(p, func(io.Writer) error { return nil }); err == nil {
		t.Fatal("WriteFile in a missing directory succeeded")
	}
}

func TestCreateOverDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir); err == nil {
		t.Fatal("Create over a directory succeeded")
	}
}

func TestStreamingCommit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stream.bin")
	f, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if f.Name() != p {
		t.Errorf("Name() = %q", f.Name())
	}
	for _, s := range []string{"a", "b", "c"} {
		if _, err := io.WriteString(f, s); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing visible at the destination before Commit.
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("destination exists before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, p); got != "abc" {
		t.Fatalf("content %q", got)
	}
	if err := f.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if err := f.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	onlyEntries(t, dir, "stream.bin")
}

func TestStreamingAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keep.bin")
	os.WriteFile(p, []byte("keep"), 0o644)
	f, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "discard")
	if _, err := os.Stat(f.TempName()); err != nil {
		t.Fatalf("temp file missing while writing: %v", err)
	}
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := f.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if got := readString(t, p); got != "keep" {
		t.Fatalf("content %q", got)
	}
	onlyEntries(t, dir, "keep.bin")
}

// TestCommitRenameFails replaces the destination with a non-empty directory
// after Create, so the final rename fails; the temp file must be cleaned up.
func TestCommitRenameFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "target")
	f, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	io.WriteString(f, "data")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "inner"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("Commit over a non-empty directory succeeded")
	}
	onlyEntries(t, dir, "target")
	if got := readString(t, filepath.Join(p, "inner")); got != "x" {
		t.Fatalf("directory contents changed: %q", got)
	}
}

func TestWriteBytesAndWriteFileAll(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := WriteBytes(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, p); got != "one" {
		t.Fatalf("WriteBytes wrote %q", got)
	}
	deep := filepath.Join(dir, "x", "y", "b.txt")
	if err := WriteFile(deep, func(w io.Writer) error { return nil }); err == nil {
		t.Fatal("WriteFile created missing folders")
	}
	if err := WriteFileAll(deep, func(w io.Writer) error { _, err := io.WriteString(w, "two"); return err }); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, deep); got != "two" {
		t.Fatalf("WriteFileAll wrote %q", got)
	}
	if st, err := os.Stat(filepath.Dir(deep)); err != nil || st.Mode().Perm()&0o055 == 0 {
		t.Errorf("the folder is private (%v, %v); want normal permissions", st.Mode(), err)
	}
}
