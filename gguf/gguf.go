// Package gguf reads and writes GGUF files, the container format of
// llama.cpp/GGML: a little-endian header of typed key/value metadata and
// tensor descriptions, followed by aligned tensor data.
//
// Open memory-maps a file (reading it into memory on platforms without mmap)
// and validates every count, length, shape and offset before use, so a
// damaged or hostile file produces an error naming the file and the problem,
// never a panic. Tensor data is exposed in place as slices of the mapping;
// the supported tensor types are those of package quant (F32, F16, BF16,
// Q8_0, Q4_0, Q4_K, Q6_K), whose block layouts are GGML's.
//
// Write and Create write version-3 files atomically (a temporary file in the
// same directory, renamed into place on success).
//
// Layout (all integers little-endian):
//
//	"GGUF" | version u32 | tensor count u64 | kv count u64
//	kv count × (key string | value type u32 | value)
//	tensor count × (name string | n_dims u32 | n_dims × u64 ne | ggml type u32 | offset u64)
//	padding to the alignment | tensor data (each tensor at offset, a multiple of the alignment)
//
// where a string is a u64 length and that many bytes, and an array value is
// an element type u32, a u64 count and the elements.
package gguf

import (
	"fmt"
	"math"

	"github.com/masque-ai/masque/quant"
)

// Magic is the four bytes every GGUF file starts with.
const Magic = "GGUF"

// DefaultAlignment is the tensor data alignment used when a file has no
// general.alignment key.
const DefaultAlignment = 32

// AlignmentKey is the metadata key that overrides the tensor data alignment
// (a uint32 power of two).
const AlignmentKey = "general.alignment"

// MaxDims is the largest number of dimensions a GGUF tensor may have.
const MaxDims = 4

// maxArrayDepth bounds how deeply metadata arrays may nest (an array of
// arrays has depth 2).
const maxArrayDepth = 4

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The metadata value types, with their GGUF numbering. In Go, a scalar value
// is held as the Go type of the same name (TypeBool as bool, TypeString as
// string); see File.Metadata for arrays.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

// String returns the GGUF name of t ("uint32", "string", …).
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// size is the encoded size of a fixed-size scalar type, or 0 for strings,
// arrays and unknown types.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// GGML tensor type ids of the types masque supports.
const (
	GGMLTypeF32    uint32 = 0
	GGMLTypeF16    uint32 = 1
	GGMLTypeQ4_0   uint32 = 2
	GGMLTypeQ4_1   uint32 = 3
	GGMLTypeQ5_0   uint32 = 6
	GGMLTypeQ5_1   uint32 = 7
	GGMLTypeQ8_0   uint32 = 8
	GGMLTypeQ2_K   uint32 = 10
	GGMLTypeQ3_K   uint32 = 11
	GGMLTypeQ4_K   uint32 = 12
	GGMLTypeQ5_K   uint32 = 13
	GGMLTypeQ6_K   uint32 = 14
	GGMLTypeQ8_K   uint32 = 15
	GGMLTypeIQ4_NL uint32 = 20
	GGMLTypeIQ4_XS uint32 = 23
	GGMLTypeBF16   uint32 = 30
)

// ggmlOfDType pairs each quant.DType with its GGML id.
var ggmlOfDType = map[quant.DType]uint32{
	quant.F32: GGMLTypeF32, quant.F16: GGMLTypeF16, quant.BF16: GGMLTypeBF16,
	quant.Q8_0: GGMLTypeQ8_0, quant.Q4_0: GGMLTypeQ4_0, quant.Q4_1: GGMLTypeQ4_1,
	quant.Q5_0: GGMLTypeQ5_0, quant.Q5_1: GGMLTypeQ5_1, quant.Q2_K: GGMLTypeQ2_K,
	quant.Q3_K: GGMLTypeQ3_K, quant.Q4_K: GGMLTypeQ4_K, quant.Q5_K: GGMLTypeQ5_K,
	quant.Q6_K: GGMLTypeQ6_K, quant.Q8_K: GGMLTypeQ8_K, quant.IQ4_NL: GGMLTypeIQ4_NL,
	quant.IQ4_XS: GGMLTypeIQ4_XS,
}

// ggmlTypeNames names GGML's tensor types (including ones masque cannot
// read) for error messages. Gaps are ids GGML has retired.
var ggmlTypeNames = map[uint32]string{
	0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 9: "q8_1",
	10: "q2_k", 11: "q3_k", 12: "q4_k", 13: "q5_k", 14: "q6_k", 15: "q8_k",
	16: "iq2_xxs", 17: "iq2_xs", 18: "iq3_xxs", 19: "iq1_s", 20: "iq4_nl", 21: "iq3_s",
	22: "iq2_s", 23: "iq4_xs", 24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64",
	29: "iq1_m", 30: "bf16", 34: "tq1_0", 35: "tq2_0", 39: "mxfp4",
}

// GGMLTypeName returns GGML's name for a tensor type id ("q4_k"), or
// "unknown" for ids GGML does not define.
func GGMLTypeName(id uint32) string {
	if s, ok := ggmlTypeNames[id]; ok {
		return s
	}
	return "unknown"
}

// DTypeFromGGML maps a GGML tensor type id to a quant.DType; ok is false for
// types masque does not support.
func DTypeFromGGML(id uint32) (t quant.DType, ok bool) {
	for t, g := range ggmlOfDType {
		if g == id {
			return t, true
		}
	}
	return 0, false
}

// GGMLType returns the GGML tensor type id of t. It panics if t is not a
// valid quant.DType.
func GGMLType(t quant.DType) uint32 {
	if g, ok := ggmlOfDType[t]; ok {
		return g
	}
	panic("gguf: no GGML type for " + t.String())
}

// KV is one metadata entry. Value holds one of the Go types described at
// File.Metadata.
type KV struct {
	Key   string
	Value any
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	// Name is the tensor's name, e.g. "blk.0.attn_q.weight".
	Name string
	// Shape is in GGUF (GGML) order: Shape[0] is the innermost dimension,
	// the row length; a matrix with R rows of C columns is {C, R}.
	Shape []int
	// Type is the element type; GGMLType is its GGML id as stored.
	Type     quant.DType
	GGMLType uint32
	// Offset is the position of the data relative to the start of the
	// file's tensor data section.
	Offset uint64
	// Data is the tensor's bytes: a read-only slice of the mapped file,
	// valid until File.Close.
	Data []byte
}

// Elements returns the number of elements of the tensor.
func (t *TensorInfo) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Rows returns the number of rows (the element count over Shape[0]).
func (t *TensorInfo) Rows() int {
	if len(t.Shape) == 0 || t.Shape[0] == 0 {
		return 0
	}
	return t.Elements() / t.Shape[0]
}

// Dequantize decodes the whole tensor to float32, in storage order.
func (t *TensorInfo) Dequantize() ([]float32, error) {
	if len(t.Shape) == 0 {
		return nil, fmt.Errorf("gguf: tensor %s has no shape", t.Name)
	}
	cols := t.Shape[0]
	rb, err := t.Type.RowBytes(cols)
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
	}
	rows := t.Rows()
	if len(t.Data) != rb*rows {
		return nil, fmt.Errorf("gguf: tensor %s has %d bytes of data, want %d", t.Name, len(t.Data), rb*rows)
	}
	out := make([]float32, cols*rows)
	for r := range rows {
		if err := quant.DequantizeRow(t.Type, t.Data[r*rb:(r+1)*rb], out[r*cols:(r+1)*cols]); err != nil {
			return nil, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
		}
	}
	return out, nil
}

// tensorBytes returns the data size of a tensor of the given type and shape,
// or an error if the shape is invalid or the size overflows.
func tensorBytes(t quant.DType, shape []int) (int64, error) {
	if len(shape) == 0 {
		return 0, fmt.Errorf("has no dimensions")
	}
	if len(shape) > MaxDims {
		return 0, fmt.Errorf("has %d dimensions (at most %d)", len(shape), MaxDims)
	}
	n := int64(1)
	for i, d := range shape {
		if d <= 0 {
			return 0, fmt.Errorf("has dimension %d of size %d", i, d)
		}
		if int64(d) > math.MaxInt64/n {
			return 0, fmt.Errorf("has shape %v, whose element count overflows", shape)
		}
		n *= int64(d)
	}
	be := int64(t.BlockElems())
	if int64(shape[0])%be != 0 {
		return 0, fmt.Errorf("has rows of %d elements, not a multiple of the %s block size %d", shape[0], t, be)
	}
	blocks := n / be
	bb := int64(t.BlockBytes())
	if blocks > math.MaxInt64/bb {
		return 0, fmt.Errorf("has shape %v, whose byte size overflows", shape)
	}
	return blocks * bb, nil
}

// Error is a problem with a GGUF file's contents.
type Error struct {
	Path   string // the file (or the name given to Parse)
	Offset int64  // byte offset where the problem was found, or -1
	Msg    string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("gguf: %s: %s (at byte %d)", e.Path, e.Msg, e.Offset)
	}
	return fmt.Sprintf("gguf: %s: %s", e.Path, e.Msg)
}

// UnsupportedTypeError reports a tensor whose GGML type masque cannot read.
type UnsupportedTypeError struct {
	Path     string
	Tensor   string
	GGMLType uint32
}

// Error implements error.
func (e *UnsupportedTypeError) Error() string {
	what := "an unknown GGML type"
	if n, ok := ggmlTypeNames[e.GGMLType]; ok {
		what = "GGML type " + n + ", which masque does not support"
	}
	return fmt.Sprintf("gguf: %s: tensor %s has %s (type id %d); masque reads f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k, iq4_nl and iq4_xs",
		e.Path, e.Tensor, what, e.GGMLType)
}
