// Package atomicfile writes files so that readers see either the old contents
// or the complete new contents, never a partial file.
//
// The new contents go to a temporary file in the destination's directory,
// which is flushed to stable storage and then renamed over the destination.
// If anything fails, the temporary file is removed and an existing file at
// the destination is left untouched.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// File is a pending replacement of a file. Write to it, then call Commit to
// put it in place or Abort to throw it away. A File is not safe for
// concurrent use.
type File struct {
	tmp  *os.File
	path string
	perm fs.FileMode
	done bool
}

// Create starts writing a replacement for path. The temporary file lives in
// the same directory as path, so the final rename stays on one file system.
// The committed file gets the permission bits of the file it replaces, or
// 0644 if there was none.
//
// Temporaries that killed writes of path left beside it are removed first
// (CleanStale: only path's own, only those untouched for StaleAge).
//
// Callers should defer Abort right after a successful Create; Abort after a
// successful Commit does nothing.
func Create(path string) (*File, error) {
	perm := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("atomicfile: %s exists and is not a regular file", path)
		}
		perm = st.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	CleanStale(path) // best effort: a folder that cannot be read fails CreateTemp below
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	return &File{tmp: tmp, path: path, perm: perm}, nil
}

// Write writes p to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	if f.done {
		return 0, fmt.Errorf("atomicfile: write to %s after Commit or Abort", f.path)
	}
	return f.tmp.Write(p)
}

// Name returns the destination path given to Create.
func (f *File) Name() string { return f.path }

// TempName returns the path of the temporary file being written.
func (f *File) TempName() string { return f.tmp.Name() }

// Commit flushes the temporary file to stable storage and renames it over
// the destination. On failure the temporary file is removed and the
// destination is unchanged. Commit may be called only once.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("atomicfile: %s already committed or aborted", f.path)
	}
	f.done = true
	tmpName := f.tmp.Name()
	fail := func(err error) error {
		f.tmp.Close()
		os.Remove(tmpName)
		return fmt.Errorf("atomicfile: writing %s: %w", f.path, err)
	}
	if err := f.tmp.Chmod(f.perm); err != nil && runtime.GOOS != "windows" {
		return fail(err)
	}
	if err := f.tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := f.tmp.Close(); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("atomicfile: writing %s: %w", f.path, err)
	}
	if err := os.Rename(tmpName, f.path); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("atomicfile: %w", err)
	}
	syncDir(filepath.Dir(f.path))
	return nil
}

// Abort closes and removes the temporary file, leaving the destination
// untouched. It does nothing if Commit or Abort already ran, so it is safe to
// defer.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	errClose := f.tmp.Close()
	errRemove := os.Remove(f.tmp.Name())
	if errRemove != nil && !errors.Is(errRemove, fs.ErrNotExist) {
		return fmt.Errorf("atomicfile: %w", errRemove)
	}
	if errClose != nil && !errors.Is(errClose, os.ErrClosed) {
		return fmt.Errorf("atomicfile: %w", errClose)
	}
	return nil
}

// WriteFile atomically replaces path with what write produces. If write
// returns an error (or panics), or the file cannot be flushed and renamed,
// the temporary file is removed, an existing file at path is left as it was,
// and the error is returned.
func WriteFile(path string, write func(w io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := write(f); err != nil {
		return err
	}
	return f.Commit()
}

// syncDir makes a completed rename durable where the platform supports
// fsync on directories. It is best effort: the rename has already happened,
// so a failure here is not reported.
func syncDir(dir string) {
	if runtime.GOOS == "windows" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" || runtime.GOOS == "plan9" {
		return
	}
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// WriteBytes atomically replaces path with data (see WriteFile).
func WriteBytes(path string, data []byte) error {
	return WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileAll is WriteFile after creating path's folder (and its parents,
// mode 0755) where missing.
func WriteFileAll(path string, write func(w io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return WriteFile(path, write)
}
