// Package quant defines the element types masque stores weights in (F32, F16,
// BF16 and GGML's block-quantised formats: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, the
// k-quants Q2_K…Q6_K and Q8_K, IQ4_NL and IQ4_XS) and the portable reference
// code that converts them to and from float32. Every type decodes; all but
// Q8_K also encode, byte for byte as llama.cpp's quantize tool writes them
// without an importance matrix (tested against its output, testdata/gguf).
//
// Everything here is plain, obviously-correct Go. The kernels package has the
// fast versions and checks them against these.
package quant

import (
	"fmt"
	"slices"
	"strings"
)

// DType is the storage type of a tensor's elements.
type DType uint8

// The supported storage types. Block formats follow GGML's layouts byte for byte,
// so GGUF data can be used in place.
const (
	F32    DType = iota // IEEE float32
	F16                 // IEEE float16
	BF16                // bfloat16 (the top half of a float32)
	Q8_0                // blocks of 32: f16 scale, 32 × int8
	Q4_0                // blocks of 32: f16 scale, 16 bytes of 4-bit values (offset 8)
	Q4_K                // super-blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of 4-bit values
	Q6_K                // super-blocks of 256: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, f16 d
	Q4_1                // blocks of 32: f16 d, f16 m, 16 bytes of 4-bit values; x = d·q + m
	Q5_0                // blocks of 32: f16 d, 4 bytes of fifth bits, 16 bytes of low nibbles; x = d·(q-16)
	Q5_1                // blocks of 32: f16 d, f16 m, 4 bytes of fifth bits, 16 bytes of low nibbles; x = d·q + m
	Q2_K                // super-blocks of 256: 16 bytes of 4-bit scales/mins, 64 bytes of 2-bit values, f16 d, f16 dmin
	Q3_K                // super-blocks of 256: 32 bytes high bits, 64 bytes low 2 bits, 12 bytes of 6-bit scales, f16 d
	Q5_K                // super-blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 32 bytes high bits, 128 bytes low nibbles
	Q8_K                // super-blocks of 256: f32 d, 256 × int8, 16 int16 block sums
	IQ4_NL              // blocks of 32: f16 d, 16 bytes of 4-bit indices into a non-linear table
	IQ4_XS              // super-blocks of 256: f16 d, 6-bit scales per 32 (2 + 4 bytes), 128 bytes of 4-bit table indices
	numDTypes
)

var dtypeInfo = [numDTypes]struct {
	name       string
	blockElems int
	blockBytes int
}{
	F32:    {"f32", 1, 4},
	F16:    {"f16", 1, 2},
	BF16:   {"bf16", 1, 2},
	Q8_0:   {"q8_0", 32, 34},
	Q4_0:   {"q4_0", 32, 18},
	Q4_K:   {"q4_k", 256, 144},
	Q6_K:   {"q6_k", 256, 210},
	Q4_1:   {"q4_1", 32, 20},
	Q5_0:   {"q5_0", 32, 22},
	Q5_1:   {"q5_1", 32, 24},
	Q2_K:   {"q2_k", 256, 84},
	Q3_K:   {"q3_k", 256, 110},
	Q5_K:   {"q5_k", 256, 176},
	Q8_K:   {"q8_k", 256, 292},
	IQ4_NL: {"iq4_nl", 32, 18},
	IQ4_XS: {"iq4_xs", 256, 136},
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

// Encodable reports whether QuantizeRow can write t (every type but Q8_K,
// which appears only as llama.cpp's activation type).
func (t DType) Encodable() bool {
	switch t {
	case Q8_K:
		return false
	}
	return t.Valid()
}

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
	names := make([]string, numDTypes)
	for t := range names {
		names[t] = dtypeInfo[t].name
	}
	return 0, fmt.Errorf("unknown type %q (want one of %s)", s, strings.Join(names, ", "))
}

// ParseDTypeOf parses s as ParseDType does and checks that the type is one
// of want (a writer that supports only some types). The error names s and
// the types wanted.
func ParseDTypeOf(s string, want ...DType) (DType, error) {
	t, err := ParseDType(s)
	if err == nil && slices.Contains(want, t) {
		return t, nil
	}
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = w.String()
	}
	list := strings.Join(names, ", ")
	if n := len(names); n > 1 {
		list = strings.Join(names[:n-1], ", ") + " or " + names[n-1]
	}
	return 0, fmt.Errorf("unsupported type %q (want %s)", s, list)
}

// FromTorchDType is the type a Hugging Face config's torch_dtype names:
// BF16 for "bfloat16", F16 for "float16", and F32 for anything else
// ("float32", empty or unknown).
func FromTorchDType(s string) DType {
	switch s {
	case "bfloat16":
		return BF16
	case "float16":
		return F16
	}
	return F32
}

// TorchDType is the torch_dtype name of F32, F16 and BF16 ("" for the
// block types, which have none).
func (t DType) TorchDType() string {
	switch t {
	case F32:
		return "float32"
	case F16:
		return "float16"
	case BF16:
		return "bfloat16"
	}
	return ""
}
