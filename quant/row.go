package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DequantizeRow decodes len(dst) elements of type t from src into dst.
// len(dst) must be a multiple of t's block size and src must hold exactly
// RowBytes(len(dst)) bytes.
func DequantizeRow(t DType, src []byte, dst []float32) error {
	n, err := t.RowBytes(len(dst))
	if err != nil {
		return err
	}
	if len(src) != n {
		return fmt.Errorf("%s row of %d elements needs %d bytes, got %d", t, len(dst), n, len(src))
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	default:
		dequantizeBlocks(t, src, dst)
	}
	return nil
}

// QuantizeRow encodes src as type t into dst, which must hold RowBytes(len(src)) bytes.
// Types that are read but not written (see Encodable) give an error.
func QuantizeRow(t DType, src []float32, dst []byte) error {
	if t.Valid() && !t.Encodable() {
		return fmt.Errorf("masque reads %s but cannot write it", t)
	}
	n, err := t.RowBytes(len(src))
	if err != nil {
		return err
	}
	if len(dst) != n {
		return fmt.Errorf("%s row of %d elements needs %d bytes, got %d", t, len(src), n, len(dst))
	}
	switch t {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
		}
	default:
		quantizeBlocks(t, src, dst)
	}
	return nil
}
