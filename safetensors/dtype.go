package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/masque-ai/masque/quant"
)

// dtypeSizes maps the safetensors element type names this package accepts to
// their size in bytes. Sub-byte types (F4, F6_*) are not supported.
var dtypeSizes = map[string]int{
	"BOOL":    1,
	"U8":      1,
	"I8":      1,
	"F8_E5M2": 1,
	"F8_E4M3": 1,
	"F8_E8M0": 1,
	"I16":     2,
	"U16":     2,
	"F16":     2,
	"BF16":    2,
	"I32":     4,
	"U32":     4,
	"F32":     4,
	"F64":     8,
	"I64":     8,
	"U64":     8,
	"C64":     8,
}

// DTypeSize returns the size in bytes of one element of the safetensors type
// dtype ("F32", "BF16", "I64", …), or 0 if the type is unknown.
func DTypeSize(dtype string) int { return dtypeSizes[dtype] }

// DecodeFloat32s converts little-endian data of the safetensors type dtype
// (F32, F16, BF16 or F64) to a new []float32. F64 values are rounded to the
// nearest float32. It is the reverse of F32Bytes, F16Bytes, BF16Bytes and
// F64Bytes.
func DecodeFloat32s(dtype string, data []byte) ([]float32, error) {
	size := DTypeSize(dtype)
	switch dtype {
	case "F32", "F16", "BF16", "F64":
	default:
		return nil, fmt.Errorf("cannot convert dtype %q to float32 (want F32, F16, BF16 or F64)", dtype)
	}
	if len(data)%size != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %s elements", len(data), dtype)
	}
	out := make([]float32, len(data)/size)
	switch dtype {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case "F16":
		for i := range out {
			out[i] = quant.F16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = quant.BF16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:])))
		}
	}
	return out, nil
}

// F32Bytes encodes v as little-endian float32 values (safetensors dtype F32).
func F32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// F16Bytes encodes v as little-endian IEEE half-precision values (dtype F16),
// rounding to nearest even; values beyond the half range become ±Inf.
func F16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], quant.F32ToF16(x))
	}
	return b
}

// BF16Bytes encodes v as little-endian bfloat16 values (dtype BF16), rounding
// to nearest even.
func BF16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], quant.F32ToBF16(x))
	}
	return b
}

// F64Bytes encodes v as little-endian float64 values (dtype F64).
func F64Bytes(v []float64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}
