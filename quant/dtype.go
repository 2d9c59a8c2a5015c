// Package quant defines the element types masque stores weights in (F32, F16,
// BF16 and the GGML block-quantised formats Q8_0, Q4_0, Q4_K, Q6_K) and the
// portable reference code that converts them to and from float32.
//
// Everything here is plain, obviously-correct Go. The kernels package has the
// fast versions and checks them against these.
package quant

import (
	"fmt"
	"strings"
)

// DType is the storage type of a tensor's elements.
type DType uint8

// The supported storage types. Block formats follow GGML's layouts byte for byte,
// so GGUF data can be used in place.
const (
	F32  DType = iota // IEEE float32
	F16               // IEEE float16
	BF16              // bfloat16 (the top half of a float32)
	Q8_0              // blocks of 32: f16 scale, 32 × int8
	Q4_0              // blocks of 32: f16 scale, 16 bytes of 4-bit values (offset 8)
	Q4_K              // super-blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of 4-bit values
	Q6_K              // super-blocks of 256: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, f16 d
	numDTypes
)

var dtypeInfo = [numDTypes]struct {
	name       string
	blockElems int
	blockBytes int
}{
	F32:  {"f32", 1, 4},
	F16:  {"f16", 1, 2},
	BF16: {"bf16", 1, 2},
	Q8_0: {"q8_0", 32, 34},
	Q4_0: {"q4_0", 32, 18},
	Q4_K: {"q4_k", 256, 144},
	Q6_K: {"q6_k", 256, 210},
}

// String returns the lower-case name of t ("f32", "bf16", "q4_k", …).
func (t DType) String() string {
	if t < numDTypes {
		return dtypeInfo[t].name
	}
	return fmt.Sprintf("dtype(%d)", uint8(t))
}

// Valid reports whether t is a known type.
func (t DType) Valid() bool { return t < numDTypes }

// BlockElems is the number of elements in one block (1 for the float types).
func (t DType) BlockElems() int { return dtypeInfo[t].blockElems }

// BlockBytes is the number of bytes one block occupies.
func (t DType) BlockBytes() int { return dtypeInfo[t].blockBytes }

// Quantized reports whether t is a block-quantised format.
func (t DType) Quantized() bool { return dtypeInfo[t].blockElems > 1 }

// RowBytes returns the number of bytes a row of n elements occupies, or an
// error if n is not a multiple of the block size.
func (t DType) RowBytes(n int) (int, error) {
	if !t.Valid() {
		return 0, fmt.Errorf("unknown dtype %d", uint8(t))
	}
	be := dtypeInfo[t].blockElems
	if n < 0 || n%be != 0 {
		return 0, fmt.Errorf("%s needs rows that are a multiple of %d elements, got %d", t, be, n)
	}
	return n / be * dtypeInfo[t].blockBytes, nil
}

// ParseDType parses a type name as printed by String (case-insensitive; "float32",
// "float16" and "bfloat16" are accepted too).
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "float32", "fp32":
		return F32, nil
	case "float16", "fp16", "half":
		return F16, nil
	case "bfloat16":
		return BF16, nil
	}
	for t := DType(0); t < numDTypes; t++ {
		if strings.EqualFold(s, dtypeInfo[t].name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown type %q (want f32, f16, bf16, q8_0, q4_0, q4_k or q6_k)", s)
}
