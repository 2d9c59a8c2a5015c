package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExp13(t *testing.T) {
	if os.Getenv("EXP13") == "" { t.Skip() }
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw("/tmp/oracle/o-fast-4k.bin")
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	base := uint32(1<<5 | 1<<6 | 1<<9 | 1<<18 | 1<<7 | 1<<26 | 1<<27)
	mine := make([]byte, 144)
	for _, extra := range []uint32{0, 1<<2 | 1<<3 | 1<<10 | 1<<17 | 1<<8 | 1<<19 | 1<<24, 1<<17 | 1<<2 | 1<<3 | 1<<10, 1<<17|1<<2|1<<10} {
		fmaSites = base | extra
		bad := 0
		for b := 0; b < len(qb)/144; b++ {
			quantQ4K(x[b*256:(b+1)*256], mine)
			if !bytes.Equal(mine, qb[b*144:(b+1)*144]) { bad++ }
		}
		fmt.Printf("extra %025b: %d\n", extra, bad)
	}
}
