package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExp7(t *testing.T) {
	ty := os.Getenv("EXP7")
	if ty == "" { t.Skip() }
	fmaSites = 0
	if s := os.Getenv("SITES"); s != "" { var m uint32; fmt.Sscan(s, &m); fmaSites = m }
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw(os.Getenv("REF"))
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	typ := map[string]DType{"4k": Q4_K, "6k": Q6_K, "40": Q4_0, "80": Q8_0}[ty]
	bb := typ.BlockBytes()
	mine := make([]byte, len(qb))
	QuantizeRow(typ, x, mine)
	bad := 0
	for b := 0; b < len(qb)/bb; b++ { if !bytes.Equal(mine[b*bb:(b+1)*bb], qb[b*bb:(b+1)*bb]) { bad++ } }
	fmt.Printf("%s: %d of %d blocks differ\n", ty, bad, len(qb)/bb)
}
