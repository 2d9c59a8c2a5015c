package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// headerSize is the size of the fixed part of the header: magic, version,
// tensor count and kv count.
const headerSize = 4 + 4 + 8 + 8

// Minimum encoded sizes, used to reject counts the file cannot hold before
// allocating anything for them.
const (
	minKVSize     = 8 + 4 + 1         // empty key, type, 1-byte value
	minTensorSize = 8 + 4 + 8 + 4 + 8 // empty name, n_dims, one dim, type, offset
	minArraySize  = 4 + 8             // element type, count
)

// reader is a bounds-checked cursor over the file bytes.
type reader struct {
	path string
	b    []byte
	off  int
}

func (r *reader) errorf(off int, format string, args ...any) error {
	return &Error{Path: r.path, Offset: int64(off), Msg: fmt.Sprintf(format, args...)}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

// need fails with a truncation error unless n more bytes are available.
func (r *reader) need(n uint64, what string) error {
	if n > uint64(r.remaining()) {
		return r.errorf(r.off, "truncated: %s needs %d bytes, %d left in the file", what, n, r.remaining())
	}
	return nil
}

func (r *reader) u32(what string) (uint32, error) {
	if err := r.need(4, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v, nil
}

func (r *reader) u64(what string) (uint64, error) {
	if err := r.need(8, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v, nil
}

// strBytes reads a length-prefixed string and returns its bytes in place.
func (r *reader) strBytes(what string) ([]byte, error) {
	start := r.off
	n, err := r.u64(what + " length")
	if err != nil {
		return nil, err
	}
	if n > uint64(r.remaining()) {
		return nil, r.errorf(start, "%s length %d exceeds the %d bytes left in the file", what, n, r.remaining())
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

func (r *reader) str(what string) (string, error) {
	b, err := r.strBytes(what)
	return string(b), err
}

func parse(path string, data []byte) (*File, error) {
	r := &reader{path: path, b: data}
	if len(data) < 4 || string(data[:4]) != Magic {
		// The bytes are not echoed: files can be named over the API.
		return nil, r.errorf(0, "not a GGUF file (it does not start with the GGUF magic)")
	}
	r.off = 4
	version, err := r.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 2 || version == 3:
	case version == 1:
		return nil, r.errorf(4, "unsupported GGUF version 1 (only versions 2 and 3 are read)")
	case version&0xffff == 0 && version != 0:
		return nil, r.errorf(4, "unsupported GGUF version %d (a big-endian file? only little-endian versions 2 and 3 are read)", version)
	default:
		return nil, r.errorf(4, "unsupported GGUF version %d (only versions 2 and 3 are read)", version)
	}
	nTensors, err := r.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := r.u64("metadata count")
	if err != nil {
		return nil, err
	}
	if nKV > uint64(r.remaining()/minKVSize) {
		return nil, r.errorf(16, "metadata count %d is more than the file could hold", nKV)
	}
	if nTensors > uint64(r.remaining()/minTensorSize) {
		return nil, r.errorf(8, "tensor count %d is more than the file could hold", nTensors)
	}

	// The counts are only bounded by the file size so far: cap what is
	// allocated up front, and let real entries grow the rest.
	const maxHint = 4096
	f := &File{
		Path:      path,
		Version:   version,
		Alignment: DefaultAlignment,
		Metadata:  make(map[string]any, min(nKV, maxHint)),
		KV:        make([]KV, 0, min(nKV, maxHint)),
		index:     make(map[string]int, min(nTensors, maxHint)),
		data:      data,
	}
	for range nKV {
		at := r.off
		key, err := r.str("metadata key")
		if err != nil {
			return nil, err
		}
		if _, dup := f.Metadata[key]; dup {
			return nil, r.errorf(at, "duplicate metadata key %q", key)
		}
		typOff := r.off
		typ, err := r.u32("value type of " + key)
		if err != nil {
			return nil, err
		}
		v, err := r.value(ValueType(typ), key, typOff, 1)
		if err != nil {
			return nil, err
		}
		f.Metadata[key] = v
		f.KV = append(f.KV, KV{Key: key, Value: v})
		if key == AlignmentKey {
			a, ok := v.(uint32)
			if !ok {
				return nil, r.errorf(typOff, "%s must be a uint32, got %s", AlignmentKey, ValueType(typ))
			}
			if a == 0 || a&(a-1) != 0 {
				return nil, r.errorf(typOff, "%s is %d, not a power of two", AlignmentKey, a)
			}
			f.Alignment = int(a)
		}
	}

	f.Tensors = make([]TensorInfo, 0, min(nTensors, maxHint))
	for range nTensors {
		at := r.off
		ti, err := r.tensorInfo()
		if err != nil {
			return nil, err
		}
		if _, dup := f.index[ti.Name]; dup {
			return nil, r.errorf(at, "duplicate tensor name %q", ti.Name)
		}
		f.index[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}

	align := uint64(f.Alignment)
	dataStart := (uint64(r.off) + align - 1) / align * align
	f.DataOffset = int64(dataStart)
	var section []byte
	if dataStart <= uint64(len(data)) {
		section = data[dataStart:]
	} else if len(f.Tensors) > 0 {
		return nil, r.errorf(len(data), "truncated: tensor data section would start at byte %d, past the end of the file", dataStart)
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		size, _ := tensorBytes(t.Type, t.Shape) // validated in tensorInfo
		if t.Offset%align != 0 {
			return nil, r.errorf(-1, "tensor %q data offset %d is not a multiple of the alignment %d", t.Name, t.Offset, align)
		}
		if t.Offset > uint64(len(section)) || uint64(size) > uint64(len(section))-t.Offset {
			return nil, r.errorf(-1, "truncated: tensor %q needs bytes %d..%d of the data section, which has %d",
				t.Name, t.Offset, t.Offset+uint64(size), len(section))
		}
		end := int(t.Offset) + int(size)
		t.Data = section[t.Offset:end:end]
	}
	return f, nil
}

func (r *reader) tensorInfo() (TensorInfo, error) {
	start := r.off
	name, err := r.str("tensor name")
	if err != nil {
		return TensorInfo{}, err
	}
	nd, err := r.u32("dimension count of tensor " + name)
	if err != nil {
		return TensorInfo{}, err
	}
	if nd == 0 || nd > MaxDims {
		return TensorInfo{}, r.errorf(r.off-4, "tensor %q has %d dimensions (want 1 to %d)", name, nd, MaxDims)
	}
	shape := make([]int, nd)
	for i := range shape {
		d, err := r.u64("dimension of tensor " + name)
		if err != nil {
			return TensorInfo{}, err
		}
		if d == 0 || d > math.MaxInt64 || d > math.MaxInt {
			return TensorInfo{}, r.errorf(r.off-8, "tensor %q dimension %d has invalid size %d", name, i, d)
		}
		shape[i] = int(d)
	}
	gt, err := r.u32("type of tensor " + name)
	if err != nil {
		return TensorInfo{}, err
	}
	off, err := r.u64("data offset of tensor " + name)
	if err != nil {
		return TensorInfo{}, err
	}
	dt, ok := DTypeFromGGML(gt)
	if !ok {
		return TensorInfo{}, &UnsupportedTypeError{Path: r.path, Tensor: name, GGMLType: gt}
	}
	if _, err := tensorBytes(dt, shape); err != nil {
		return TensorInfo{}, r.errorf(start, "tensor %q %s", name, err)
	}
	return TensorInfo{Name: name, Shape: shape, Type: dt, GGMLType: gt, Offset: off}, nil
}

// value reads a metadata value of type t; at is the offset of the type tag,
// depth the array nesting level of the value.
func (r *reader) value(t ValueType, key string, at int, depth int) (any, error) {
	if t == TypeArray {
		return r.array(key, depth)
	}
	if t == TypeString {
		return r.str("string value of " + key)
	}
	n := t.size()
	if n == 0 {
		return nil, r.errorf(at, "metadata key %q has unknown value type %d", key, uint32(t))
	}
	if err := r.need(uint64(n), "value of "+key); err != nil {
		return nil, err
	}
	b := r.b[r.off:]
	r.off += n
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return b[0], nil
	case TypeInt8:
		return int8(b[0]), nil
	case TypeBool:
		if b[0] > 1 {
			return nil, r.errorf(r.off-1, "metadata key %q has bool value %d (want 0 or 1)", key, b[0])
		}
		return b[0] == 1, nil
	case TypeUint16:
		return le.Uint16(b), nil
	case TypeInt16:
		return int16(le.Uint16(b)), nil
	case TypeUint32:
		return le.Uint32(b), nil
	case TypeInt32:
		return int32(le.Uint32(b)), nil
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case TypeUint64:
		return le.Uint64(b), nil
	case TypeInt64:
		return int64(le.Uint64(b)), nil
	default: // TypeFloat64
		return math.Float64frombits(le.Uint64(b)), nil
	}
}

// array reads an array value (after its type tag) as a typed slice, or a
// []any of arrays for nested arrays.
func (r *reader) array(key string, depth int) (any, error) {
	if depth > maxArrayDepth {
		return nil, r.errorf(r.off, "metadata key %q nests arrays more than %d deep", key, maxArrayDepth)
	}
	at := r.off
	et, err := r.u32("array element type of " + key)
	if err != nil {
		return nil, err
	}
	n, err := r.u64("array length of " + key)
	if err != nil {
		return nil, err
	}
	elem := ValueType(et)
	minSize := elem.size()
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = minArraySize
	}
	if minSize == 0 {
		return nil, r.errorf(at, "metadata key %q has arrays of unknown value type %d", key, et)
	}
	if n > uint64(r.remaining()/minSize) {
		return nil, r.errorf(at+4, "metadata key %q has array length %d, more than the file could hold", key, n)
	}
	count := int(n)
	switch elem {
	case TypeString:
		return r.stringArray(key, count)
	case TypeArray:
		out := make([]any, count)
		for i := range out {
			v, err := r.array(key, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	size := count * minSize
	b := r.b[r.off : r.off+size]
	r.off += size
	le := binary.LittleEndian
	switch elem {
	case TypeUint8:
		return append([]uint8(nil), b...), nil
	case TypeInt8:
		return fill(count, func(i int) int8 { return int8(b[i]) }), nil
	case TypeBool:
		for i, c := range b {
			if c > 1 {
				return nil, r.errorf(r.off-size+i, "metadata key %q has bool element %d of value %d (want 0 or 1)", key, i, c)
			}
		}
		return fill(count, func(i int) bool { return b[i] == 1 }), nil
	case TypeUint16:
		return fill(count, func(i int) uint16 { return le.Uint16(b[2*i:]) }), nil
	case TypeInt16:
		return fill(count, func(i int) int16 { return int16(le.Uint16(b[2*i:])) }), nil
	case TypeUint32:
		return fill(count, func(i int) uint32 { return le.Uint32(b[4*i:]) }), nil
	case TypeInt32:
		return fill(count, func(i int) int32 { return int32(le.Uint32(b[4*i:])) }), nil
	case TypeFloat32:
		return fill(count, func(i int) float32 { return math.Float32frombits(le.Uint32(b[4*i:])) }), nil
	case TypeUint64:
		return fill(count, func(i int) uint64 { return le.Uint64(b[8*i:]) }), nil
	case TypeInt64:
		return fill(count, func(i int) int64 { return int64(le.Uint64(b[8*i:])) }), nil
	default: // TypeFloat64
		return fill(count, func(i int) float64 { return math.Float64frombits(le.Uint64(b[8*i:])) }), nil
	}
}

func fill[T any](n int, at func(int) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = at(i)
	}
	return out
}

// stringArray reads n length-prefixed strings into one shared allocation.
func (r *reader) stringArray(key string, n int) ([]string, error) {
	le := binary.LittleEndian
	// Pass 1: validate the lengths and find the end, allocating nothing.
	start := r.off
	for i := range n {
		at := r.off
		if r.remaining() < 8 {
			return nil, r.errorf(at, "truncated: element %d of %s needs a length", i, key)
		}
		l := le.Uint64(r.b[at:])
		r.off += 8
		if l > uint64(r.remaining()) {
			return nil, r.errorf(at, "element %d of %s has length %d, more than the %d bytes left in the file", i, key, l, r.remaining())
		}
		r.off += int(l)
	}
	end := r.off
	// Pass 2: copy all the bytes into one string. Pass 3: slice it.
	var sb strings.Builder
	sb.Grow(end - start - 8*n)
	for p := start; p < end; {
		l := int(le.Uint64(r.b[p:]))
		sb.Write(r.b[p+8 : p+8+l])
		p += 8 + l
	}
	all := sb.String()
	out := make([]string, n)
	for i, p, pos := 0, start, 0; i < n; i++ {
		l := int(le.Uint64(r.b[p:]))
		out[i] = all[pos : pos+l]
		p += 8 + l
		pos += l
	}
	return out, nil
}
