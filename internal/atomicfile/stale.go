package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// StaleAge is how long a temporary must have been left unmodified (a
// folder: nothing in it modified either) before CleanStale takes it for
// the remains of an interrupted write. A writer still at work keeps
// touching its temporary, so a live write is never removed.
var StaleAge = 10 * time.Minute

// Stale is a temporary that CleanStale removed.
type Stale struct {
	Path     string    // the temporary's path
	Bytes    int64     // its size (a folder: of the files in it)
	Modified time.Time // its last modification
}

var reporter atomic.Pointer[func(Stale)]

// SetReporter sets the function told of each stale temporary removed (the
// CLI prints a line); nil: none.
func SetReporter(fn func(Stale)) {
	if fn == nil {
		reporter.Store(nil)
		return
	}
	reporter.Store(&fn)
}

// CleanStale removes the temporaries that interrupted writes of target
// left beside it, and returns them: the entries of target's folder named
// "." + the target's name + ".tmp-" + digits (exactly what Create,
// os.CreateTemp and os.MkdirTemp make for it; nothing else is touched)
// that have not been modified for StaleAge. Each is also reported to the
// reporter (SetReporter). Errors reading the folder are returned; a
// temporary that cannot be removed is skipped.
func CleanStale(target string) ([]Stale, error) {
	dir, base := filepath.Split(filepath.Clean(target))
	if dir == "" {
		dir = "."
	}
	prefix := "." + base + ".tmp-"
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	cutoff := time.Now().Add(-StaleAge)
	var out []Stale
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		p := filepath.Join(dir, name)
		newest, size, ok := newestModification(p)
		if !ok || newest.After(cutoff) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			continue
		}
		s := Stale{Path: p, Bytes: size, Modified: newest}
		out = append(out, s)
		if fn := reporter.Load(); fn != nil {
			(*fn)(s)
		}
	}
	return out, nil
}

// newestModification returns the latest modification time of p and of
// everything under it, and the bytes of its regular files; ok is false
// when p cannot be read (or holds something other than files and
// folders, which an interrupted write does not leave).
func newestModification(p string) (newest time.Time, size int64, ok bool) {
	ok = true
	err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return errors.New("not a file")
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		if info.Mode().IsRegular() {
			size += info.Size()
		}
		return nil
	})
	if err != nil {
		return time.Time{}, 0, false
	}
	return newest, size, ok
}
