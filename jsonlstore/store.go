// Package jsonlstore is masque's append-only JSONL key/value file: the
// cache of the role-play and voices evaluations (generations and
// judgements) and of synth's teacher responses. Values are written one line
// each, as soon as they exist, so an interrupted run loses at most the line
// being written and a rerun picks up where it stopped.
//
// A line is {"key":"…","value":{…}} (the value's field name can be chosen
// when opening, so that existing files keep their layout: synth's teacher
// cache names it "response"). On opening, every readable line is indexed
// by key (a later line with the same key wins); only the offsets are kept
// in memory, values are read back from the file. Lines that cannot be
// read, such as the torn last line a crash leaves behind, are skipped and
// counted. The file is never rewritten: a torn last line is closed with a
// newline before the next append, so later lines start clean. Every Put is
// one write(2) of a whole line, so several processes may append to the same
// file; each sees the others' lines only after reopening it.
package jsonlstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// DefaultField is the value's field name in a line unless Options say
// otherwise.
const DefaultField = "value"

// Options tune Open.
type Options struct {
	// Field is the value's field name in a line ("": DefaultField).
	Field string
	// Sync flushes the file to stable storage after every Put (protection
	// against power loss, not needed against process crashes).
	Sync bool
}

// Store is an append-only JSONL key/value file. It is safe for concurrent
// use by the goroutines of one process.
type Store struct {
	path  string
	field string
	sync  bool
	// Skipped counts the unreadable lines found when the file was opened.
	Skipped int

	mu      sync.Mutex
	f       *os.File
	index   map[string]entry
	needsNL bool // the file ends without a newline (torn last line)
}

// entry is where a key's last line lies in the file.
type entry struct {
	off int64
	n   int
}

// Open opens (creating it and its folder if needed) the store at path with
// the default options, and reads its index.
func Open(path string) (*Store, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, o Options) (*Store, error) {
	if o.Field == "" {
		o.Field = DefaultField
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("opening %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s := &Store{path: path, field: o.Field, sync: o.Sync, f: f, index: map[string]entry{}}
	if err := s.load(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// decode reads one line: its key and raw value, ok false when the line is
// not {"key": non-empty string, field: non-null value}.
func (s *Store) decode(b []byte) (string, json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return "", nil, false
	}
	var key string
	if json.Unmarshal(m["key"], &key) != nil || key == "" {
		return "", nil, false
	}
	v := m[s.field]
	if len(v) == 0 || string(v) == "null" {
		return "", nil, false
	}
	return key, v, true
}

func (s *Store) load() error {
	br := bufio.NewReaderSize(s.f, 1<<16)
	var off int64
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			complete := b[len(b)-1] == '\n'
			s.needsNL = !complete
			if t := bytes.TrimSpace(b); len(t) > 0 {
				if key, _, ok := s.decode(t); ok && complete {
					s.index[key] = entry{off, len(b)}
				} else {
					s.Skipped++
				}
			}
			off += int64(len(b))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.path, err)
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

// Has reports whether key is stored.
func (s *Store) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.index[key]
	return ok
}

// Get decodes the value stored under key into v and reports whether there
// was one. A value that cannot be read back or no longer decodes into v
// counts as absent.
func (s *Store) Get(key string, v any) bool {
	s.mu.Lock()
	e, ok := s.index[key]
	f := s.f
	s.mu.Unlock()
	if !ok || f == nil {
		return false
	}
	buf := make([]byte, e.n)
	if _, err := f.ReadAt(buf, e.off); err != nil {
		return false
	}
	k, raw, ok := s.decode(bytes.TrimSpace(buf))
	return ok && k == key && json.Unmarshal(raw, v) == nil
}

// Put appends v under key in one write and indexes it (a later Put of the
// same key wins).
func (s *Store) Put(key string, v any) error {
	_, err := s.put(key, v, true)
	return err
}

// Add is Put that leaves a key already stored as it is; it reports whether
// v was written.
func (s *Store) Add(key string, v any) (bool, error) { return s.put(key, v, false) }

func (s *Store) put(key string, v any, replace bool) (bool, error) {
	if key == "" {
		return false, fmt.Errorf("writing %s: empty key", s.path)
	}
	val, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("writing %s: %w", s.path, err)
	}
	kb, _ := json.Marshal(key)
	fb, _ := json.Marshal(s.field)
	line := make([]byte, 0, len(kb)+len(fb)+len(val)+12)
	line = append(append(append(line, `{"key":`...), kb...), ',')
	line = append(append(append(line, fb...), ':'), val...)
	line = append(line, '}', '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return false, fmt.Errorf("writing %s: the store is closed", s.path)
	}
	if _, ok := s.index[key]; ok && !replace {
		return false, nil
	}
	out := line
	if s.needsNL {
		out = append([]byte{'\n'}, line...)
	}
	if _, err := s.f.Write(out); err != nil {
		return false, fmt.Errorf("appending to %s: %w", s.path, err)
	}
	s.needsNL = false
	end, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, fmt.Errorf("appending to %s: %w", s.path, err)
	}
	s.index[key] = entry{end - int64(len(line)), len(line)}
	if s.sync {
		if err := s.f.Sync(); err != nil {
			return true, fmt.Errorf("syncing %s: %w", s.path, err)
		}
	}
	return true, nil
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
