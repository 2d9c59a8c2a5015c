package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

func TestGenData(t *testing.T) {
	if os.Getenv("GEN") == "" { t.Skip() }
	r := rand.New(rand.NewPCG(1, 2))
	var x []float32
	for blk := 0; blk < 8192; blk++ {
		kind := blk % 8
		scale := float32(math.Pow(10, r.Float64()*8-4))
		for i := 0; i < 256; i++ {
			var v float64
			switch kind {
			case 0: v = r.NormFloat64()
			case 1: v = r.Float64()*2 - 1
			case 2: v = r.Float64() // positive
			case 3: v = r.ExpFloat64() * float64(1-2*(i%2))
			case 4: v = r.NormFloat64(); if r.IntN(50) == 0 { v *= 20 }
			case 5: v = -r.Float64() - 0.5 // negative only
			case 6: v = float64(r.IntN(17) - 8) // integers (ties)
			case 7: v = r.NormFloat64() + 3 // offset
			}
			x = append(x, float32(v)*scale)
		}
	}
	b := make([]byte, 4*len(x))
	for i, v := range x { binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v)) }
	os.WriteFile("/tmp/xc/x.bin", b, 0o644)
}
