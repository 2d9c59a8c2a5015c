// Package safetensors reads and writes the safetensors checkpoint format used
// by Hugging Face models.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON header, then the tensor data. The header maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]}, with offsets relative to
// the start of the data section, plus an optional "__metadata__" object of
// string values.
//
// Open maps a file into memory read-only and validates its header completely,
// so that every Tensor it hands out has in-range data of the right length.
// Tensor data is never copied onto the heap: Tensor.Data slices the mapping
// and is valid only until the File is closed. OpenDir opens one model's
// weights from a folder, sharded or not, and Write produces files atomically.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/masque-ai/masque/internal/fileerr"
)

// maxHeaderLen bounds the JSON header; anything larger is treated as corrupt.
const maxHeaderLen = 100_000_000

// metadataKey is the reserved header key holding the string metadata.
const metadataKey = "__metadata__"

// File is an open safetensors file. Its methods may be called concurrently,
// except Close, which must not overlap any other use.
type File struct {
	path    string
	mapping []byte // the whole file, mapped read-only
	tensors map[string]*Tensor
	names   []string // ordered by data offset
	meta    map[string]string
}

// formatErr builds the error for a problem in the file at path.
func formatErr(path, format string, args ...any) error {
	return fmt.Errorf("safetensors: %s: %s", path, fmt.Sprintf(format, args...))
}

// Open maps the safetensors file at path read-only and validates its header:
// the header must be a JSON object whose tensors have known dtypes,
// non-negative integer shapes and in-range, non-overlapping data offsets
// whose length matches dtype × shape. Every problem is reported as an error
// naming the file. Gaps between tensors are allowed.
//
// Close the File to release the mapping; tensor data must not be used after
// that.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, formatErr(path, "not a regular file")
	}
	size := st.Size()
	if size < 8 {
		return nil, formatErr(path, "file too short: %d bytes, less than the 8-byte header length", size)
	}
	if size > math.MaxInt {
		return nil, formatErr(path, "file too large to map (%d bytes)", size)
	}
	// Check the header length before mapping, so that obviously broken files
	// cost nothing.
	var lenBuf [8]byte
	if _, err := fh.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if err := checkHeaderLen(path, binary.LittleEndian.Uint64(lenBuf[:]), size); err != nil {
		return nil, err
	}
	mapping, err := mapFile(fh, int(size))
	if err != nil {
		return nil, fmt.Errorf("safetensors: mapping %s: %w", path, err)
	}
	f, err := parse(path, mapping)
	if err != nil {
		unmapFile(mapping)
		return nil, err
	}
	return f, nil
}

// checkHeaderLen validates the header length n against the file size.
func checkHeaderLen(path string, n uint64, size int64) error {
	if n > maxHeaderLen {
		// n is the file's first 8 bytes: not echoed (files can be named over
		// the API, and their bytes must not come back in errors).
		return formatErr(path, "not a safetensors file: the header length in its first 8 bytes is beyond the limit of %d bytes", maxHeaderLen)
	}
	if n > uint64(size-8) {
		return formatErr(path, "not a safetensors file: the header length in its first 8 bytes exceeds the file's size (%d bytes after the length field)", size-8)
	}
	return nil
}

// parse validates the header of the file whose full contents are b and
// builds the File.
func parse(path string, b []byte) (*File, error) {
	n := binary.LittleEndian.Uint64(b)
	if err := checkHeaderLen(path, n, int64(len(b))); err != nil {
		return nil, err
	}
	header := b[8 : 8+int(n)]
	data := b[8+int(n):]

	entries, err := splitHeader(path, header)
	if err != nil {
		return nil, err
	}
	f := &File{path: path, mapping: b, tensors: make(map[string]*Tensor, len(entries))}
	type span struct {
		name       string
		begin, end int
	}
	spans := make([]span, 0, len(entries))
	for _, e := range entries {
		if e.name == metadataKey {
			meta, err := parseMetadata(path, e.raw)
			if err != nil {
				return nil, err
			}
			f.meta = meta
			continue
		}
		t, begin, end, err := parseEntry(path, e.name, e.raw, len(data))
		if err != nil {
			return nil, err
		}
		t.Data = data[begin:end:end]
		f.tensors[e.name] = t
		spans = append(spans, span{e.name, begin, end})
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.begin != b.begin {
			return a.begin - b.begin
		}
		if a.end != b.end {
			return a.end - b.end
		}
		if a.name < b.name {
			return -1
		}
		return 1
	})
	// With spans sorted by start, a tensor overlaps an earlier one exactly
	// when it starts before the furthest end seen so far. Empty tensors
	// occupy no bytes and cannot overlap anything.
	var last *span
	for i := range spans {
		s := &spans[i]
		if s.begin == s.end {
			continue
		}
		if last != nil && s.begin < last.end {
			return nil, formatErr(path, "tensors %q [%d, %d) and %q [%d, %d) overlap", last.name, last.begin, last.end, s.name, s.begin, s.end)
		}
		if last == nil || s.end > last.end {
			last = s
		}
	}
	f.names = make([]string, len(spans))
	for i, s := range spans {
		f.names[i] = s.name
	}
	return f, nil
}

// headerEntry is one top-level key of the header and its undecoded value.
type headerEntry struct {
	name string
	raw  json.RawMessage
}

// splitHeader checks that header is a single JSON object with unique keys
// and returns its members in order.
func splitHeader(path string, header []byte) ([]headerEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, formatErr(path, "header is not valid JSON: %s", fileerr.JSON(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, formatErr(path, "header is not a JSON object")
	}
	var entries []headerEntry
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, formatErr(path, "header is not valid JSON: %s", fileerr.JSON(err))
		}
		name, ok := tok.(string)
		if !ok {
			return nil, formatErr(path, "header is not valid JSON: a key that is not a string (at byte %d)", dec.InputOffset())
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, formatErr(path, "header is not valid JSON: %s", fileerr.JSON(err))
		}
		if seen[name] {
			return nil, formatErr(path, "duplicate tensor name %q in header", name)
		}
		seen[name] = true
		entries = append(entries, headerEntry{name, raw})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, formatErr(path, "header is not valid JSON: %s", fileerr.JSON(err))
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("unexpected %v after the header object", tok)
		}
		return nil, formatErr(path, "header is not valid JSON: %v", err)
	}
	return entries, nil
}

// parseMetadata decodes the __metadata__ object (null means none).
func parseMetadata(path string, raw json.RawMessage) (map[string]string, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, formatErr(path, "%s is not a JSON object", metadataKey)
	}
	var meta map[string]string
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, formatErr(path, "%s must map strings to strings: %v", metadataKey, err)
	}
	return meta, nil
}

// parseEntry validates one tensor's header entry against a data section of
// dataLen bytes and returns the tensor (without Data) and its byte range.
func parseEntry(path, name string, raw json.RawMessage, dataLen int) (t *Tensor, begin, end int, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, 0, 0, formatErr(path, "tensor %q: entry is not a JSON object", name)
	}
	var e struct {
		DType   *string           `json:"dtype"`
		Shape   []json.RawMessage `json:"shape"`
		Offsets []json.RawMessage `json:"data_offsets"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, 0, 0, formatErr(path, "tensor %q: bad entry: %v", name, err)
	}
	if e.DType == nil {
		return nil, 0, 0, formatErr(path, "tensor %q: missing dtype", name)
	}
	size := DTypeSize(*e.DType)
	if size == 0 {
		return nil, 0, 0, formatErr(path, "tensor %q: unknown dtype %q", name, *e.DType)
	}
	if e.Shape == nil {
		return nil, 0, 0, formatErr(path, "tensor %q: missing shape", name)
	}
	shape := make([]int, len(e.Shape))
	hasZero := false
	for i, r := range e.Shape {
		d, ok, tooBig := parseInt(r)
		if tooBig {
			return nil, 0, 0, formatErr(path, "tensor %q: shape dimension %d (%s) overflows", name, i, r)
		}
		if !ok {
			return nil, 0, 0, formatErr(path, "tensor %q: shape dimension %d (%s) is not an integer", name, i, r)
		}
		if d < 0 {
			return nil, 0, 0, formatErr(path, "tensor %q: shape dimension %d is negative (%d)", name, i, d)
		}
		shape[i] = d
		hasZero = hasZero || d == 0
	}
	elems := 1
	if hasZero {
		elems = 0
	} else {
		for _, d := range shape {
			if elems > math.MaxInt/d {
				return nil, 0, 0, formatErr(path, "tensor %q: element count of shape %v overflows", name, shape)
			}
			elems *= d
		}
	}
	if elems > math.MaxInt/size {
		return nil, 0, 0, formatErr(path, "tensor %q: byte count of shape %v overflows", name, shape)
	}
	want := elems * size

	if len(e.Offsets) != 2 {
		return nil, 0, 0, formatErr(path, "tensor %q: data_offsets must be two ascending integers, got %d values", name, len(e.Offsets))
	}
	begin, ok1, _ := parseInt(e.Offsets[0])
	end, ok2, _ := parseInt(e.Offsets[1])
	if !ok1 || !ok2 || begin < 0 || end < begin {
		return nil, 0, 0, formatErr(path, "tensor %q: data_offsets must be two ascending integers, got [%s, %s]", name, e.Offsets[0], e.Offsets[1])
	}
	if end > dataLen {
		return nil, 0, 0, formatErr(path, "tensor %q: data_offsets [%d, %d] out of range: end beyond the data section (%d bytes)", name, begin, end, dataLen)
	}
	if end-begin != want {
		return nil, 0, 0, formatErr(path, "tensor %q: wrong byte count: data_offsets span %d bytes, but %s × %v needs %d", name, end-begin, *e.DType, shape, want)
	}
	return &Tensor{Name: name, DType: *e.DType, Shape: shape, File: path}, begin, end, nil
}

// parseInt parses a JSON number that must be written as a plain integer
// (no fraction, no exponent, not a string) and fit in an int. tooBig reports
// an integer that does not fit.
func parseInt(raw json.RawMessage) (v int, ok, tooBig bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, false, false
	}
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		return 0, false, errors.Is(err, strconv.ErrRange)
	}
	return int(n), true, false
}

// Close releases the file's memory mapping. Tensor.Data slices obtained from
// the File must not be used afterwards. Closing twice is harmless.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	m := f.mapping
	f.mapping, f.tensors, f.names = nil, nil, nil
	if err := unmapFile(m); err != nil {
		return fmt.Errorf("safetensors: unmapping %s: %w", f.path, err)
	}
	return nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Names returns the tensor names ordered by data offset (storage order).
func (f *File) Names() []string { return slices.Clone(f.names) }

// Tensor returns the named tensor. The returned value is the caller's own
// copy of the description; its Data still aliases the mapping.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, false
	}
	c := *t
	c.Shape = slices.Clone(t.Shape)
	return &c, true
}

// Metadata returns a copy of the header's "__metadata__" map (empty, not
// nil, if the file has none).
func (f *File) Metadata() map[string]string {
	m := make(map[string]string, len(f.meta))
	for k, v := range f.meta {
		m[k] = v
	}
	return m
}
