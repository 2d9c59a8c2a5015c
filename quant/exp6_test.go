package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sort"
	"testing"
)

func TestExp6(t *testing.T) {
	if os.Getenv("EXP6") == "" { t.Skip() }
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw("/tmp/xc/q.bin")
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	sites := []int{0, 1, 2, 3, 4, 5, 6, 8, 9, 10}
	type res struct{ m uint32; bad int }
	var rs []res
	mine := make([]byte, 144)
	for c := 0; c < 1<<len(sites); c++ {
		for dv := 0; dv < 3; dv++ {
			m := uint32(0)
			for i, s := range sites { if c&(1<<i) != 0 { m |= 1 << s } }
			if dv == 1 { m |= 1 << 7 }
			if dv == 2 { m |= 1 << 14 }
			fmaSites = m
			bad := 0
			for b := 0; b < len(qb)/144; b++ {
				quantQ4K(x[b*256:(b+1)*256], mine)
				if !bytes.Equal(mine, qb[b*144:(b+1)*144]) { bad++ }
			}
			rs = append(rs, res{m, bad})
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].bad < rs[j].bad })
	for _, r := range rs[:15] { fmt.Printf("%015b %d\n", r.m, r.bad) }
}
