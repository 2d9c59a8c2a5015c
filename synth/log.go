package synth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// Problem is an input line (or file) that could not be used. Runs report
// problems and go on; they never abort silently because of one.
type Problem struct {
	File string `json:"file"`           // the input file
	Line int    `json:"line,omitempty"` // 1-based; 0 when about the whole file
	Msg  string `json:"msg"`            // what is wrong
}

// Error formats the problem as "file:line: message".
func (p Problem) Error() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// marshalLine encodes v as one JSON line (HTML characters unescaped).
func marshalLine(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Log is an append-only JSONL file of rows, each an object with a string
// "id". Every Append is a single write(2) of a whole line, so rows are
// flushed one by one and a crash or kill -9 can leave at most one torn line
// at the end. OpenLog removes such a torn line (and reports it), so a rerun
// continues with no duplicate, lost or torn rows. A Log is safe for
// concurrent use; only one process should append to a log at a time.
type Log struct {
	path string
	// Sync, when true, flushes the file to stable storage after every
	// Append (protection against power loss as well as crashes).
	Sync bool
	// Problems lists the lines found unreadable when the log was opened,
	// including a removed torn last line.
	Problems []Problem

	mu  sync.Mutex
	f   *os.File
	ids map[string]struct{}
}

// logRow is what every log line must hold.
type logRow struct {
	ID string `json:"id"`
}

// OpenLog opens (creating if needed) the log at path and indexes its ids.
func OpenLog(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	l := &Log{path: path, f: f, ids: map[string]struct{}{}}
	good, err := scanLog(f, path, func(id string, _ []byte, line int, _ int64, _ int) {
		if _, dup := l.ids[id]; dup {
			l.Problems = append(l.Problems, Problem{path, line, "duplicate row id " + id + " (ignored)"})
		}
		l.ids[id] = struct{}{}
	}, func(p Problem) { l.Problems = append(l.Problems, p) })
	if err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() > good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("removing the torn last line of %s: %w", path, err)
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// scanLog reads a log, calling row for every readable row (with its line
// number, byte offset and length) and problem for every other line. It returns the offset just past the last complete
// (newline-terminated) line; anything after it is a torn line.
func scanLog(r io.Reader, name string, row func(id string, raw []byte, line int, off int64, n int), problem func(Problem)) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var off int64
	for line := 1; ; line++ {
		data, err := br.ReadBytes('\n')
		if len(data) > 0 {
			if data[len(data)-1] != '\n' {
				problem(Problem{name, line, fmt.Sprintf("torn last line (%d bytes, no newline) removed", len(data))})
				return off, nil
			}
			start := off
			off += int64(len(data))
			t := bytes.TrimSpace(data)
			if len(t) > 0 {
				var lr logRow
				if e := json.Unmarshal(t, &lr); e != nil || lr.ID == "" {
					msg := "row without an id"
					if e != nil {
						msg = "malformed JSON: " + e.Error()
					}
					problem(Problem{name, line, msg + " (ignored)"})
				} else {
					row(lr.ID, t, line, start, len(data))
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, fmt.Errorf("reading %s: %w", name, err)
		}
	}
}

// ReadLog calls fn for every readable row of the log file at path, in file
// order; a missing file has no rows. Unreadable lines, a torn last line
// included, are skipped and returned as problems.
func ReadLog(path string, fn func(id string, raw []byte) error) ([]Problem, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var probs []Problem
	var ferr error
	_, err = scanLog(f, path, func(id string, raw []byte, _ int, _ int64, _ int) {
		if ferr == nil {
			ferr = fn(id, raw)
		}
	}, func(p Problem) { probs = append(probs, p) })
	if err != nil {
		return probs, err
	}
	return probs, ferr
}

// Path is the log's file.
func (l *Log) Path() string { return l.path }

// Has reports whether a row with this id is in the log.
func (l *Log) Has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.ids[id]
	return ok
}

// Len is the number of rows.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// Append writes row (which must marshal to an object whose "id" is id) as
// one line, unless a row with that id is already there.
func (l *Log) Append(id string, row any) error {
	data, err := marshalLine(row)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.ids[id]; ok {
		return nil
	}
	if l.f == nil {
		return fmt.Errorf("%s: log is closed", l.path)
	}
	if _, err := l.f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", l.path, err)
	}
	if l.Sync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("writing %s: %w", l.path, err)
		}
	}
	l.ids[id] = struct{}{}
	return nil
}

// Close closes the file (after syncing it).
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	l.f.Sync()
	err := l.f.Close()
	l.f = nil
	return err
}
