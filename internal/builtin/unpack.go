package builtin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
)

// completeMarker is written last into an unpacked folder: a folder without it
// is an interrupted unpack and is never used.
const completeMarker = ".complete"

// Unpack makes the files of fsys (an embedded folder) available as an
// ordinary folder, so that every loader that reads a Hugging Face folder —
// memory-mapped weights, tokenizer files, the chat template — works on a
// built-in model unchanged. The folder is
//
//	$MASQUE_CACHE/builtin/NAME-HASH, or <user cache dir>/masque/builtin/NAME-HASH
//
// (falling back to the system temp folder when neither can be written), where
// HASH is a digest of every file's path and contents: a new binary with other
// contents gets a new folder, and an existing complete folder is reused
// without being written again. Files are written to a temporary folder that is
// renamed into place only once complete, so a killed process never leaves a
// half-written model that a later run would trust.
func Unpack(fsys fs.FS, name string) (string, error) {
	files, sum, err := digest(fsys)
	return unpackDigested(fsys, name, files, sum, err)
}

// folder is an embedded folder whose digest is computed once: the built-in
// folders never change while the program runs, and hashing them (tens of
// megabytes) on every open would be repeated work.
type folder struct {
	fsys   fs.FS
	name   string
	digest func() (digested, error)
}

type digested struct {
	files []string
	sum   string
}

// newFolder returns fsys, to be unpacked as name (see Unpack).
func newFolder(fsys fs.FS, name string) *folder {
	return &folder{fsys: fsys, name: name, digest: sync.OnceValues(func() (digested, error) {
		files, sum, err := digest(fsys)
		return digested{files, sum}, err
	})}
}

// Dir unpacks the folder (as Unpack) and returns its path.
func (f *folder) Dir() (string, error) {
	d, err := f.digest()
	return unpackDigested(f.fsys, f.name, d.files, d.sum, err)
}

func unpackDigested(fsys fs.FS, name string, files []string, sum string, err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("builtin %s: %w", name, err)
	}
	leaf := name + "-" + sum[:16]
	var firstErr error
	for _, root := range cacheRoots() {
		dir := filepath.Join(root, leaf)
		if _, err := os.Stat(filepath.Join(dir, completeMarker)); err == nil {
			return dir, nil
		}
		if err := unpackInto(fsys, files, root, leaf); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return dir, nil
	}
	return "", fmt.Errorf("builtin %s: no writable cache folder to unpack it into: %w", name, firstErr)
}

// cacheRoots lists where built-in models may be unpacked, in order of preference.
func cacheRoots() []string {
	var roots []string
	if c := os.Getenv("MASQUE_CACHE"); c != "" {
		roots = append(roots, filepath.Join(c, "builtin"))
	}
	if c, err := os.UserCacheDir(); err == nil {
		roots = append(roots, filepath.Join(c, "masque", "builtin"))
	}
	return append(roots, filepath.Join(os.TempDir(), "masque-builtin-"+strconv.Itoa(os.Getuid())))
}

// digest lists the regular files of fsys in a fixed order and hashes their
// paths and contents.
func digest(fsys fs.FS) ([]string, string, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(files) == 0 {
		return nil, "", errors.New("no files")
	}
	sort.Strings(files)
	h := sha256.New()
	for _, p := range files {
		f, err := fsys.Open(p)
		if err != nil {
			return nil, "", err
		}
		fmt.Fprintf(h, "%s\x00", p)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
	}
	return files, hex.EncodeToString(h.Sum(nil)), nil
}

// unpackInto writes files into root/leaf through a temporary sibling folder.
func unpackInto(fsys fs.FS, files []string, root, leaf string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(root, "."+leaf+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // after a successful rename there is nothing left to remove
	for _, p := range files {
		if err := copyOut(fsys, p, filepath.Join(tmp, filepath.FromSlash(p))); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(root, leaf)
	if _, err := os.Stat(filepath.Join(dst, completeMarker)); err != nil {
		// A folder of this name without the marker was never completed by
		// this code (it renames only complete folders): replace it.
		os.RemoveAll(dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		// Another process may have unpacked the same contents meanwhile.
		if _, serr := os.Stat(filepath.Join(dst, completeMarker)); serr == nil {
			return nil
		}
		return err
	}
	return nil
}

func copyOut(fsys fs.FS, p, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	src, err := fsys.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return fmt.Errorf("writing %s: %w", path.Base(p), err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
