package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExp12(t *testing.T) {
	if os.Getenv("EXP12") == "" { t.Skip() }
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw("/tmp/oracle/o-fast-4k.bin")
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	base := uint32(1<<5 | 1<<6 | 1<<9 | 1<<18)
	mine := make([]byte, 144)
	blocks := []int{3524}
	for b := 0; b < 600; b++ { blocks = append(blocks, b) }
	for _, s1 := range []int{0, 7, 14} {
		for _, s2 := range []int{0, 25, 26} {
			for _, s3 := range []int{0, 27, 28} {
				for _, extra := range []uint32{0, 1 << 1, 1 << 4, 1<<2 | 1<<3 | 1<<10 | 1<<17 | 1<<8} {
				m := base | extra
				for _, s := range []int{s1, s2, s3} { if s != 0 { m |= 1 << s } }
				fmaSites = m
				bad := 0
				for _, b := range blocks {
					quantQ4K(x[b*256:(b+1)*256], mine)
					if !bytes.Equal(mine, qb[b*144:(b+1)*144]) { bad++ }
				}
				if bad < 3 { fmt.Printf("%d %d %d extra %b: %d\n", s1, s2, s3, extra, bad) }
				}
			}
		}
	}
}
