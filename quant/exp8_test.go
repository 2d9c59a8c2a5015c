package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExp8(t *testing.T) {
	ty := os.Getenv("EXP8")
	if ty == "" { t.Skip() }
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw(os.Getenv("REF"))
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	typ := map[string]DType{"4k": Q4_K, "6k": Q6_K}[ty]
	bb := typ.BlockBytes()
	mine := make([]byte, len(qb))
	eval := func(m uint32) int {
		fmaSites = m
		QuantizeRow(typ, x, mine)
		bad := 0
		for b := 0; b < len(qb)/bb; b++ { if !bytes.Equal(mine[b*bb:(b+1)*bb], qb[b*bb:(b+1)*bb]) { bad++ } }
		return bad
	}
	sites := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 17, 18, 19}
	if ty == "6k" { sites = []int{11, 12, 13, 15, 16, 20, 21, 22, 23} }
	m := uint32(0)
	if st := os.Getenv("START"); st != "" { fmt.Sscan(st, &m) }
	cur := eval(m)
	fmt.Println("start", cur)
	for {
		bestS, bestV := -1, cur
		for _, s := range sites {
			nm := m ^ (1 << s)
			if nm&(1<<7) != 0 && nm&(1<<14) != 0 { continue }
			if v := eval(nm); v < bestV { bestS, bestV = s, v }
		}
		if bestS < 0 { break }
		m ^= 1 << bestS
		cur = bestV
		fmt.Printf("flip %d -> %d (mask %b)\n", bestS, cur, m)
	}
	for _, s := range sites { fmt.Printf("final: flip %d gives %d\n", s, eval(m^(1<<s))) }
}
