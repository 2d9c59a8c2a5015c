//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris)

package safetensors

import (
	"io"
	"os"
)

// mapFile reads the first size bytes of f into memory, for platforms where
// memory mapping is unavailable (windows, js, wasip1, plan9). The slice is
// writable here, but callers must treat it as read-only all the same.
func mapFile(f *os.File, size int) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, int64(size)), b); err != nil {
		return nil, err
	}
	return b, nil
}

// unmapFile releases memory obtained from mapFile (nothing to do).
func unmapFile([]byte) error { return nil }
