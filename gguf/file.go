package gguf

import (
	"math"
	"os"
)

// File is an open GGUF file.
type File struct {
	// Path is the file's path (or the name given to Parse).
	Path string
	// Version is the GGUF version, 2 or 3.
	Version uint32
	// Alignment is the tensor data alignment in bytes.
	Alignment int
	// DataOffset is the file offset of the tensor data section.
	DataOffset int64

	// Metadata maps each key to its value. Scalars are uint8, int8, uint16,
	// int16, uint32, int32, float32, bool, string, uint64, int64 or float64.
	// Arrays of those are typed slices ([]uint8 … []float64, []bool,
	// []string); an array of arrays is a []any whose elements are arrays.
	// Values are copies, valid after Close.
	Metadata map[string]any
	// KV holds the same entries in file order.
	KV []KV
	// Tensors describes the tensors in file order.
	Tensors []TensorInfo

	index map[string]int
	data  []byte       // the whole file, mapped or read
	unmap func() error // releases data; nil once closed
}

// Close releases the file's mapping. Tensor Data slices must not be used
// afterwards; metadata stays valid. Close is safe to call more than once.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap = nil
	f.data = nil
	for i := range f.Tensors {
		f.Tensors[i].Data = nil
	}
	if err != nil {
		return &Error{Path: f.Path, Offset: -1, Msg: "unmapping: " + err.Error()}
	}
	return nil
}

// Open maps the GGUF file at path and validates it. The caller must Close it.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		return nil, &Error{Path: path, Offset: -1, Msg: "not a regular file"}
	}
	if size < headerSize {
		return nil, &Error{Path: path, Offset: size, Msg: "truncated: file is shorter than a GGUF header"}
	}
	if size > math.MaxInt {
		return nil, &Error{Path: path, Offset: -1, Msg: "file too large to map on this platform"}
	}
	data, unmap, err := mapFile(fh, int(size))
	if err != nil {
		return nil, &Error{Path: path, Offset: -1, Msg: "mapping: " + err.Error()}
	}
	f, err := parse(path, data)
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse reads a GGUF file held in memory; name is used in error messages.
// Tensor Data slices alias data; Close only drops those references.
func Parse(name string, data []byte) (*File, error) {
	f, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	f.unmap = func() error { return nil }
	return f, nil
}

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// Value returns the metadata value of key.
func (f *File) Value(key string) (any, bool) {
	v, ok := f.Metadata[key]
	return v, ok
}

// String returns the string value of key; ok is false if the key is missing
// or not a string.
func (f *File) String(key string) (string, bool) {
	s, ok := f.Metadata[key].(string)
	return s, ok
}

// Bool returns the bool value of key.
func (f *File) Bool(key string) (v bool, ok bool) {
	v, ok = f.Metadata[key].(bool)
	return v, ok
}

// Uint returns the value of key if it is an integer of any width that is
// not negative.
func (f *File) Uint(key string) (uint64, bool) {
	switch v := f.Metadata[key].(type) {
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	case uint32:
		return uint64(v), true
	case uint64:
		return v, true
	}
	if i, ok := signed(f.Metadata[key]); ok && i >= 0 {
		return uint64(i), true
	}
	return 0, false
}

// Int returns the value of key if it is an integer of any width that fits
// in an int64.
func (f *File) Int(key string) (int64, bool) {
	if i, ok := signed(f.Metadata[key]); ok {
		return i, true
	}
	switch v := f.Metadata[key].(type) {
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	}
	return 0, false
}

func signed(v any) (int64, bool) {
	switch v := v.(type) {
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}

// Float returns the value of key if it is a float32 or float64, or an
// integer (converted).
func (f *File) Float(key string) (float64, bool) {
	switch v := f.Metadata[key].(type) {
	case float32:
		return float64(v), true
	case float64:
		return v, true
	}
	if i, ok := f.Int(key); ok {
		return float64(i), true
	}
	if u, ok := f.Uint(key); ok {
		return float64(u), true
	}
	return 0, false
}

// Strings returns the value of key if it is an array of strings. The slice
// is shared with Metadata.
func (f *File) Strings(key string) ([]string, bool) {
	s, ok := f.Metadata[key].([]string)
	return s, ok
}

// Float32s returns the value of key if it is an array of float32 (shared
// with Metadata) or of float64 (converted).
func (f *File) Float32s(key string) ([]float32, bool) {
	switch v := f.Metadata[key].(type) {
	case []float32:
		return v, true
	case []float64:
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out, true
	}
	return nil, false
}

// Int32s returns the value of key if it is an array of int32 (shared with
// Metadata) or of another integer type whose values all fit (converted).
func (f *File) Int32s(key string) ([]int32, bool) {
	if v, ok := f.Metadata[key].([]int32); ok {
		return v, true
	}
	ints, ok := f.Ints(key)
	if !ok {
		return nil, false
	}
	out := make([]int32, len(ints))
	for i, x := range ints {
		if x < math.MinInt32 || x > math.MaxInt32 {
			return nil, false
		}
		out[i] = int32(x)
	}
	return out, true
}

// Ints returns the value of key, an array of any integer type, as a new
// []int64; ok is false if it is not an integer array or a uint64 element
// exceeds the int64 range.
func (f *File) Ints(key string) ([]int64, bool) {
	var out []int64
	conv := func(n int, at func(int) int64) []int64 {
		out = make([]int64, n)
		for i := range out {
			out[i] = at(i)
		}
		return out
	}
	switch v := f.Metadata[key].(type) {
	case []uint8:
		return conv(len(v), func(i int) int64 { return int64(v[i]) }), true
	case []int8:
		return conv(len(v), func(i int) int64 { return int64(v[i]) }), true
	case []uint16:
		return conv(len(v), func(i int) int64 { return int64(v[i]) }), true
	case []int16:
		return conv(len(v), func(i int) int64 { return int64(v[i]) }), true
	case []uint32:
		return conv(len(v), func(i int) int64 { return int64(v[i]) }), true
	case []int32:
		return conv(len(v), func(i int) int64 { return int64(v[i]) }), true
	case []int64:
		return conv(len(v), func(i int) int64 { return v[i] }), true
	case []uint64:
		for _, x := range v {
			if x > math.MaxInt64 {
				return nil, false
			}
		}
		return conv(len(v), func(i int) int64 { return int64(v[i]) }), true
	}
	return nil, false
}
