package safetensors

import (
	"fmt"

	"github.com/masque-ai/masque/quant"
)

// Tensor is one tensor of a safetensors file.
//
// Data points straight into the file's read-only memory mapping: it must not
// be written to (where the file is mapped, a write crashes the program), and
// must not be used after the File (or Set) it came from is closed. Copy it,
// or use Float32s, to keep values beyond that.
type Tensor struct {
	Name  string // name in the header, e.g. "model.layers.0.mlp.up_proj.weight"
	DType string // element type as written in the file: "F32", "F16", "BF16", "F64", "I64", …
	Shape []int  // dimensions, outermost first; empty for a scalar
	Data  []byte // the raw little-endian elements (a slice of the mapping, read-only)
	File  string // path of the file the tensor was read from
}

// NumElements returns the number of elements, the product of Shape (1 for a
// scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Type returns the quant.DType for F32, F16 and BF16 tensors; any other
// dtype is an error naming the tensor and its file.
func (t *Tensor) Type() (quant.DType, error) {
	switch t.DType {
	case "F32":
		return quant.F32, nil
	case "F16":
		return quant.F16, nil
	case "BF16":
		return quant.BF16, nil
	}
	return 0, fmt.Errorf("safetensors: %s: tensor %q has dtype %s, which has no quant type (want F32, F16 or BF16)", t.File, t.Name, t.DType)
}

// Float32s converts an F32, F16, BF16 or F64 tensor to a new []float32 of
// NumElements values (F64 rounds to nearest). The result does not depend on
// the file staying open.
func (t *Tensor) Float32s() ([]float32, error) {
	size := DTypeSize(t.DType)
	if n := t.NumElements(); size != 0 && len(t.Data) != n*size {
		return nil, fmt.Errorf("safetensors: %s: tensor %q holds %d bytes, but %s × %v needs %d", t.File, t.Name, len(t.Data), t.DType, t.Shape, n*size)
	}
	v, err := DecodeFloat32s(t.DType, t.Data)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", t.File, t.Name, err)
	}
	return v, nil
}
