package quant

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"encoding/binary"
	"math"
)

// minimal gguf tensor reader for debugging: uses the gguf package indirectly via files dumped
func loadRaw(path string) []byte { b, _ := os.ReadFile(path); return b }

func TestExp2(t *testing.T) {
	if os.Getenv("EXP2") == "" {
		t.Skip()
	}
	// /tmp/xc/dump.bin: f32 rows of output.weight; /tmp/xc/dump_q6.bin: ggml q6 bytes
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw("/tmp/xc/q.bin")
	typ := Q6_K
	if os.Getenv("EXP2") == "4" { typ = Q4_K }
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	bb := typ.BlockBytes()
	mine := make([]byte, len(qb))
	QuantizeRow(typ, x, mine)
	nbad := 0
	for b := 0; b < len(qb)/bb; b++ {
		m, g := mine[b*bb:(b+1)*bb], qb[b*bb:(b+1)*bb]
		if bytes.Equal(m, g) { continue }
		nbad++
		if nbad > 3 { continue }
		xs := x[b*256:(b+1)*256]
		if typ == Q6_K {
			fmt.Printf("block %d d mine %x ggml %x\n", b, m[208:], g[208:])
			for j := 0; j < 16; j++ {
				var L [16]uint8
				s := searchScale6(xs[16*j:16*j+16], L[:])
				fmt.Printf(" sub %d: sc mine %d ggml %d  myscale %g\n", j, int8(m[192+j]), int8(g[192+j]), s)
			}
			ym := make([]float32, 256); yg := make([]float32, 256)
			dequantQ6K(m, ym); dequantQ6K(g, yg)
			for i := range 256 { if ym[i] != yg[i] { fmt.Printf("  elem %d x=%g mine %g ggml %g\n", i, xs[i], ym[i], yg[i]) } }
		} else {
			fmt.Printf("block %d d mine %x ggml %x\n", b, m[:4], g[:4])
			for j := 0; j < 8; j++ {
				s1, m1 := scaleMinK4(j, m[4:16]); s2, m2 := scaleMinK4(j, g[4:16])
				var L [32]uint8
				var w [32]float32
				xx := xs[32*j:32*j+32]
				var sumX2 float32
				for _, v := range xx { sumX2 += v*v }
				av := float32(math.Sqrt(float64(sumX2/32)))
				for l, v := range xx { w[l] = av + abs32(v) }
				sc, mn := searchScaleMin(xx, w[:], L[:])
				fmt.Printf(" sub %d: mine %d/%d ggml %d/%d  search scale %g min %g\n", j, s1, m1, s2, m2, sc, mn)
			}
		}
	}
	fmt.Println("bad", nbad)
}
