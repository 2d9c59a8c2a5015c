package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// decodedTypes are the block types without integer tiles: every level
// multiplies them by decoding rows to float32 (gemmDecoded).
var decodedTypes = []quant.DType{quant.Q2_K, quant.Q3_K, quant.Q8_K}

// randBlocks returns random block data of type dt with every scale set to a
// small finite value, so all bit patterns of the quants are exercised.
func randBlocks(rng *rand.Rand, dt quant.DType, n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	f16 := func(o int) { binary.LittleEndian.PutUint16(data[o:], quant.F32ToF16(float32(rng.Float64()*0.1+0.01))) }
	bb := dt.BlockBytes()
	for o := 0; o+bb <= len(data); o += bb {
		switch dt {
		case quant.Q4_1, quant.Q5_1, quant.Q5_K:
			f16(o)
			f16(o + 2)
		case quant.Q5_0, quant.IQ4_NL, quant.IQ4_XS:
			f16(o)
		case quant.Q2_K:
			f16(o + 80)
			f16(o + 82)
		case quant.Q3_K:
			f16(o + 108)
		case quant.Q8_K:
			binary.LittleEndian.PutUint32(data[o:], math.Float32bits(0.01))
		}
	}
	return data
}

func TestMatMulDecodedTypes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range decodedTypes {
		for _, sh := range []struct{ m, n, k int }{{1, 37, 512}, {3, 64, 768}, {20, 70, 256}, {1, 1030, 256}} {
			rb, _ := dt.RowBytes(sh.k)
			data := randBlocks(rng, dt, sh.n*rb)
			w, err := NewMatrix(dt, sh.n, sh.k, data)
			if err != nil {
				t.Fatal(err)
			}
			dec := make([]float32, sh.n*sh.k)
			for r := range sh.n {
				if err := quant.DequantizeRow(dt, w.RowData(r), dec[r*sh.k:(r+1)*sh.k]); err != nil {
					t.Fatal(err)
				}
			}
			x := randVec(rng, sh.m*sh.k, 1)
			want, mag := refMatMul(x, dec, sh.m, sh.n, sh.k)
			for _, k := range append([]Kernels{Portable{}}, testLevels(t)...) {
				name := fmt.Sprintf("%s %s m=%d n=%d k=%d", k.Name(), dt, sh.m, sh.n, sh.k)
				dst := randVec(rng, sh.m*sh.n, 1)
				k.MatMul(dst, x, w, sh.m)
				checkClose(t, name, dst, want, mag, nil, tolFloat)
				row := make([]float32, sh.k)
				k.Row(row, w, sh.n-1)
				for c, v := range row {
					if v != dec[(sh.n-1)*sh.k+c] {
						t.Fatalf("%s: Row[%d] = %g, want %g", name, c, v, dec[(sh.n-1)*sh.k+c])
					}
				}
				// The input gradient goes through the same decoder.
				dy := randVec(rng, sh.m*sh.n, 1)
				dx := make([]float32, sh.m*sh.k)
				k.MatMulBackInput(dx, dy, w, sh.m)
				wantX, magX := refMatMul(dy, transpose(dec, sh.n, sh.k), sh.m, sh.k, sh.n)
				checkClose(t, name+" back", dx, wantX, magX, nil, tolFloat)
			}
		}
	}
}

func transpose(a []float32, rows, cols int) []float32 {
	out := make([]float32, len(a))
	for r := range rows {
		for c := range cols {
			out[c*rows+r] = a[r*cols+c]
		}
	}
	return out
}
