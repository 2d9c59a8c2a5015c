// Package store is the append-only JSONL cache behind masque's role-play
// evaluation: generations and judgements are written one line each, as
// soon as they exist, so an interrupted run loses at most the line being
// written and a rerun picks up where it stopped.
//
// A line is {"key":"…","value":{…}}. On opening, every readable line is
// indexed by key (a later line with the same key wins); lines that cannot
// be read, such as the torn last line a crash leaves behind, are skipped
// and counted. The file is never rewritten: a torn last line is closed with
// a newline before the next append, so later lines start clean.
package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Store is an append-only JSONL key/value file. It is safe for concurrent
// use by the goroutines of one process.
type Store struct {
	path string
	// Skipped counts the unreadable lines found when the file was opened.
	Skipped int

	mu      sync.Mutex
	f       *os.File
	index   map[string]json.RawMessage
	needsNL bool // the file ends without a newline (torn last line)
}

type line struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// Open opens (creating it and its folder if needed) the store at path and
// reads its index.
func Open(path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{path: path, f: f, index: map[string]json.RawMessage{}}
	if err := s.load(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) load() error {
	br := bufio.NewReaderSize(s.f, 1<<16)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			complete := b[len(b)-1] == '\n'
			s.needsNL = !complete
			b = bytes.TrimSpace(b)
			if len(b) > 0 {
				var l line
				if json.Unmarshal(b, &l) != nil || l.Key == "" || len(l.Value) == 0 {
					s.Skipped++
				} else {
					s.index[l.Key] = l.Value
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: reading %s: %w", s.path, err)
		}
	}
}

// Path returns the file the store appends to.
func (s *Store) Path() string { return s.path }

// Len returns the number of distinct keys.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.index)
}

// Get decodes the value stored under key into v and reports whether there
// was one. A value that no longer decodes into v counts as absent.
func (s *Store) Get(key string, v any) bool {
	s.mu.Lock()
	raw, ok := s.index[key]
	s.mu.Unlock()
	if !ok {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

// Put appends v under key in one write and indexes it.
func (s *Store) Put(key string, v any) error {
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	data, err := json.Marshal(line{Key: key, Value: val})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("store: %s is closed", s.path)
	}
	out := make([]byte, 0, len(data)+2)
	if s.needsNL {
		out = append(out, '\n')
	}
	out = append(append(out, data...), '\n')
	if _, err := s.f.Write(out); err != nil {
		return fmt.Errorf("store: appending to %s: %w", s.path, err)
	}
	s.needsNL = false
	s.index[key] = val
	return nil
}

// Close closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Key returns a stable cache key: the hex SHA-256 of the JSON encoding of
// parts (each part encoded on its own, so that the boundaries count).
func Key(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			b = []byte(fmt.Sprint(p))
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
