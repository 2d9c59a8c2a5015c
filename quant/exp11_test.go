package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExp11(t *testing.T) {
	if os.Getenv("EXP11") == "" { t.Skip() }
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw("/tmp/oracle/o-fast-4k.bin")
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	fmaSites = uint32(1<<5 | 1<<6 | 1<<7 | 1<<9 | 1<<18)
	b := 3524
	mine := make([]byte, 144)
	quantQ4K(x[b*256:(b+1)*256], mine)
	g := qb[b*144:(b+1)*144]
	fmt.Printf("d/dmin mine %x ggml %x\n", mine[:4], g[:4])
	for j := range 8 {
		s1, m1 := scaleMinK4(j, mine[4:16]); s2, m2 := scaleMinK4(j, g[4:16])
		fmt.Printf("sub %d mine %d/%d ggml %d/%d\n", j, s1, m1, s2, m2)
	}
	for i := 16; i < 144; i++ { if mine[i] != g[i] { fmt.Printf("qs byte %d mine %02x ggml %02x\n", i-16, mine[i], g[i]) } }
}
