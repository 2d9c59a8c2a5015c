package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExp10(t *testing.T) {
	if os.Getenv("EXP10") == "" { t.Skip() }
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw("/tmp/oracle/o-fast-4k.bin")
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	base := uint32(1<<5 | 1<<6 | 1<<7 | 1<<9 | 1<<18)
	sites := []int{2, 3, 8, 10, 17, 19, 24}
	mine := make([]byte, 144)
	for c := 0; c < 1<<len(sites); c++ {
		m := base
		for i, s := range sites { if c&(1<<i) != 0 { m |= 1 << s } }
		fmaSites = m
		bad := 0
		var which []int
		for b := 0; b < len(qb)/144; b++ {
			quantQ4K(x[b*256:(b+1)*256], mine)
			if !bytes.Equal(mine, qb[b*144:(b+1)*144]) { bad++; which = append(which, b) }
		}
		fmt.Printf("%025b %d %v\n", m, bad, which)
	}
}
