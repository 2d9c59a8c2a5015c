package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/quant"
)

// WriteTensor is a tensor to write. Shape is in GGUF order (Shape[0] is the
// row length); Data must hold exactly the encoded bytes of Type for Shape
// (Create ignores Data).
type WriteTensor struct {
	Name  string
	Shape []int
	Type  quant.DType
	Data  []byte
}

// Write writes a version-3 GGUF file with the given metadata (in order) and
// tensors (in order, each at the next aligned offset). The alignment is
// meta's general.alignment (a uint32 power of two) or DefaultAlignment. The
// file appears at path only once it is complete.
func Write(path string, meta []KV, tensors []WriteTensor) error {
	w, err := Create(path, meta, tensors)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// Writer streams a GGUF file: Create writes the header, WriteTensor each
// tensor's data in the declared order, and Close finishes the file and
// renames it into place. Until Close succeeds the data lives in a temporary
// file in the same directory; Abort removes it.
type Writer struct {
	path    string
	tmp     *os.File
	bw      *bufio.Writer
	align   int64
	tensors []WriteTensor
	sizes   []int64
	next    int   // index of the next tensor to write
	pos     int64 // bytes written to the data section
	err     error // sticky error
}

// Create validates meta and the tensor descriptions (Name, Shape, Type; Data
// is ignored) and writes the header to a temporary file next to path.
func Create(path string, meta []KV, tensors []WriteTensor) (*Writer, error) {
	w := &Writer{path: path, align: DefaultAlignment, tensors: make([]WriteTensor, len(tensors))}
	for i, t := range tensors { // keep the descriptions, not the data
		w.tensors[i] = WriteTensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Type: t.Type}
	}
	var hdr []byte
	hdr = append(hdr, Magic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, 3)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(tensors)))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(meta)))
	seen := make(map[string]bool, len(meta))
	for _, kv := range meta {
		if seen[kv.Key] {
			return nil, fmt.Errorf("gguf: writing %s: duplicate metadata key %q", path, kv.Key)
		}
		seen[kv.Key] = true
		if kv.Key == AlignmentKey {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return nil, fmt.Errorf("gguf: writing %s: %s must be a uint32 power of two, got %T %v", path, AlignmentKey, kv.Value, kv.Value)
			}
			w.align = int64(a)
		}
		hdr = appendString(hdr, kv.Key)
		var err error
		if hdr, err = appendValue(hdr, kv.Value, true, 1); err != nil {
			return nil, fmt.Errorf("gguf: writing %s: metadata %q: %w", path, kv.Key, err)
		}
	}
	names := make(map[string]bool, len(tensors))
	var off int64
	for _, t := range tensors {
		if names[t.Name] {
			return nil, fmt.Errorf("gguf: writing %s: duplicate tensor name %q", path, t.Name)
		}
		names[t.Name] = true
		if !t.Type.Valid() {
			return nil, fmt.Errorf("gguf: writing %s: tensor %q has invalid type %v", path, t.Name, t.Type)
		}
		size, err := tensorBytes(t.Type, t.Shape)
		if err != nil {
			return nil, fmt.Errorf("gguf: writing %s: tensor %q %s", path, t.Name, err)
		}
		hdr = appendString(hdr, t.Name)
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(t.Shape)))
		for _, d := range t.Shape {
			hdr = binary.LittleEndian.AppendUint64(hdr, uint64(d))
		}
		hdr = binary.LittleEndian.AppendUint32(hdr, GGMLType(t.Type))
		hdr = binary.LittleEndian.AppendUint64(hdr, uint64(off))
		w.sizes = append(w.sizes, size)
		off = alignUp(off+size, w.align)
	}
	hdr = append(hdr, make([]byte, alignUp(int64(len(hdr)), w.align)-int64(len(hdr)))...)

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	atomicfile.CleanStale(path) // what killed writes left (reported; only old ones)
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("gguf: writing %s: %w", path, err)
	}
	w.tmp = tmp
	w.bw = bufio.NewWriterSize(tmp, 1<<20)
	if _, err := w.bw.Write(hdr); err != nil {
		w.Abort()
		return nil, fmt.Errorf("gguf: writing %s: %w", path, err)
	}
	return w, nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// WriteTensor writes the data of the next tensor, which must be the one
// named name, padded to the alignment.
func (w *Writer) WriteTensor(name string, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.next >= len(w.tensors) {
		return w.fail(fmt.Errorf("tensor %q was not declared (all %d tensors are written)", name, len(w.tensors)))
	}
	t := w.tensors[w.next]
	if t.Name != name {
		return w.fail(fmt.Errorf("tensor %q written out of order: expected %q", name, t.Name))
	}
	if int64(len(data)) != w.sizes[w.next] {
		return w.fail(fmt.Errorf("tensor %q (%s %v) needs %d bytes of data, got %d", name, t.Type, t.Shape, w.sizes[w.next], len(data)))
	}
	if _, err := w.bw.Write(data); err != nil {
		return w.fail(err)
	}
	end := w.pos + int64(len(data))
	w.pos = alignUp(end, w.align)
	if _, err := w.bw.Write(make([]byte, w.pos-end)); err != nil {
		return w.fail(err)
	}
	w.next++
	return nil
}

func (w *Writer) fail(err error) error {
	w.err = fmt.Errorf("gguf: writing %s: %w", w.path, err)
	return w.err
}

// Close checks that every tensor was written, flushes and syncs the
// temporary file and renames it to the target path. On failure the
// temporary file is removed.
func (w *Writer) Close() error {
	if w.tmp == nil {
		return w.err
	}
	if w.err == nil && w.next != len(w.tensors) {
		w.fail(fmt.Errorf("only %d of %d tensors were written", w.next, len(w.tensors)))
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.fail(err)
		} else if err := w.tmp.Sync(); err != nil {
			w.fail(err)
		} else if err := w.tmp.Chmod(0o644); err != nil {
			w.fail(err)
		}
	}
	tmp := w.tmp
	w.tmp = nil
	if err := tmp.Close(); err != nil && w.err == nil {
		w.fail(err)
	}
	if w.err == nil {
		if err := os.Rename(tmp.Name(), w.path); err != nil {
			w.fail(err)
		}
	}
	if w.err != nil {
		os.Remove(tmp.Name())
		return w.err
	}
	w.err = errors.New("gguf: writer is closed")
	return nil
}

// Abort discards the partly written file.
func (w *Writer) Abort() {
	if w.tmp != nil {
		w.tmp.Close()
		os.Remove(w.tmp.Name())
		w.tmp = nil
	}
	if w.err == nil {
		w.err = errors.New("gguf: writer was aborted")
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// valueType returns the GGUF type of a Go metadata value.
func valueType(v any) (ValueType, bool) {
	switch v.(type) {
	case uint8:
		return TypeUint8, true
	case int8:
		return TypeInt8, true
	case uint16:
		return TypeUint16, true
	case int16:
		return TypeInt16, true
	case uint32:
		return TypeUint32, true
	case int32:
		return TypeInt32, true
	case float32:
		return TypeFloat32, true
	case bool:
		return TypeBool, true
	case string:
		return TypeString, true
	case uint64:
		return TypeUint64, true
	case int64:
		return TypeInt64, true
	case float64:
		return TypeFloat64, true
	case []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32, []bool, []string, []uint64, []int64, []float64, []any:
		return TypeArray, true
	}
	return 0, false
}

// appendValue encodes v, preceded by its type tag if tagged.
func appendValue(b []byte, v any, tagged bool, depth int) ([]byte, error) {
	t, ok := valueType(v)
	if !ok {
		return nil, fmt.Errorf("unsupported value type %T (use a sized integer, float32/64, bool, string or a slice of those)", v)
	}
	if tagged {
		b = binary.LittleEndian.AppendUint32(b, uint32(t))
	}
	le := binary.LittleEndian
	switch v := v.(type) {
	case uint8:
		return append(b, v), nil
	case int8:
		return append(b, byte(v)), nil
	case uint16:
		return le.AppendUint16(b, v), nil
	case int16:
		return le.AppendUint16(b, uint16(v)), nil
	case uint32:
		return le.AppendUint32(b, v), nil
	case int32:
		return le.AppendUint32(b, uint32(v)), nil
	case float32:
		return le.AppendUint32(b, math.Float32bits(v)), nil
	case bool:
		if v {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case string:
		return appendString(b, v), nil
	case uint64:
		return le.AppendUint64(b, v), nil
	case int64:
		return le.AppendUint64(b, uint64(v)), nil
	case float64:
		return le.AppendUint64(b, math.Float64bits(v)), nil
	}
	if depth > maxArrayDepth {
		return nil, fmt.Errorf("arrays nest more than %d deep", maxArrayDepth)
	}
	arr := func(b []byte, et ValueType, n int) []byte {
		b = le.AppendUint32(b, uint32(et))
		return le.AppendUint64(b, uint64(n))
	}
	switch v := v.(type) {
	case []uint8:
		return append(arr(b, TypeUint8, len(v)), v...), nil
	case []int8:
		b = arr(b, TypeInt8, len(v))
		for _, x := range v {
			b = append(b, byte(x))
		}
	case []bool:
		b = arr(b, TypeBool, len(v))
		for _, x := range v {
			if x {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	case []uint16:
		b = arr(b, TypeUint16, len(v))
		for _, x := range v {
			b = le.AppendUint16(b, x)
		}
	case []int16:
		b = arr(b, TypeInt16, len(v))
		for _, x := range v {
			b = le.AppendUint16(b, uint16(x))
		}
	case []uint32:
		b = arr(b, TypeUint32, len(v))
		for _, x := range v {
			b = le.AppendUint32(b, x)
		}
	case []int32:
		b = arr(b, TypeInt32, len(v))
		for _, x := range v {
			b = le.AppendUint32(b, uint32(x))
		}
	case []float32:
		b = arr(b, TypeFloat32, len(v))
		for _, x := range v {
			b = le.AppendUint32(b, math.Float32bits(x))
		}
	case []uint64:
		b = arr(b, TypeUint64, len(v))
		for _, x := range v {
			b = le.AppendUint64(b, x)
		}
	case []int64:
		b = arr(b, TypeInt64, len(v))
		for _, x := range v {
			b = le.AppendUint64(b, uint64(x))
		}
	case []float64:
		b = arr(b, TypeFloat64, len(v))
		for _, x := range v {
			b = le.AppendUint64(b, math.Float64bits(x))
		}
	case []string:
		b = arr(b, TypeString, len(v))
		for _, x := range v {
			b = appendString(b, x)
		}
	case []any:
		// A []any is an array whose elements all have one GGUF type
		// (typically arrays); an empty one is an empty array of arrays.
		et := TypeArray
		for i, x := range v {
			xt, ok := valueType(x)
			if !ok {
				return nil, fmt.Errorf("array element %d has unsupported type %T", i, x)
			}
			if i == 0 {
				et = xt
			} else if xt != et {
				return nil, fmt.Errorf("array mixes %s and %s elements", et, xt)
			}
		}
		b = arr(b, et, len(v))
		for _, x := range v {
			var err error
			if b, err = appendValue(b, x, false, depth+1); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}
