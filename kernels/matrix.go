package kernels

import (
	"fmt"
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// Matrix is a weight matrix W with Rows×Cols elements stored row-major in
// Type (the Hugging Face Linear layout [out, in]). Data may be memory-mapped
// and must be treated as read-only.
type Matrix struct {
	Type       quant.DType
	Rows, Cols int
	Data       []byte

	f32 []float32 // Data viewed as float32 when Type == F32

	// Prepared holds an implementation-specific repacking of the weights
	// (for example interleaved for SIMD loads), made on first use. Nil until then.
	Prepared any
}

// NewMatrix wraps data as a Rows×Cols matrix of type t, checking its length.
func NewMatrix(t quant.DType, rows, cols int, data []byte) (*Matrix, error) {
	rb, err := t.RowBytes(cols)
	if err != nil {
		return nil, err
	}
	if rows < 0 || len(data) != rows*rb {
		return nil, fmt.Errorf("%s matrix %d×%d needs %d bytes, got %d", t, rows, cols, rows*rb, len(data))
	}
	m := &Matrix{Type: t, Rows: rows, Cols: cols, Data: data}
	if t == quant.F32 && len(data) > 0 {
		m.f32 = unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), rows*cols)
	}
	return m, nil
}

// FromF32 wraps v (len rows*cols) as an F32 matrix without copying.
func FromF32(rows, cols int, v []float32) *Matrix {
	if len(v) != rows*cols {
		panic(fmt.Sprintf("kernels.FromF32: %d values for %d×%d", len(v), rows, cols))
	}
	m := &Matrix{Type: quant.F32, Rows: rows, Cols: cols, f32: v}
	if len(v) > 0 {
		m.Data = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	return m
}

// F32 returns the elements of an F32 matrix (nil for other types).
func (m *Matrix) F32() []float32 { return m.f32 }

// RowBytes is the number of bytes one row occupies.
func (m *Matrix) RowBytes() int {
	n, _ := m.Type.RowBytes(m.Cols)
	return n
}

// RowData returns the raw bytes of row i.
func (m *Matrix) RowData(i int) []byte {
	rb := m.RowBytes()
	return m.Data[i*rb : (i+1)*rb]
}

// Float32s returns a copy of the whole matrix decoded to float32.
func (m *Matrix) Float32s() []float32 {
	out := make([]float32, m.Rows*m.Cols)
	for i := 0; i < m.Rows; i++ {
		_ = quant.DequantizeRow(m.Type, m.RowData(i), out[i*m.Cols:(i+1)*m.Cols])
	}
	return out
}
