package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExp3(t *testing.T) {
	if os.Getenv("EXP3") == "" {
		t.Skip()
	}
	xb := loadRaw("/tmp/xc/x.bin")
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	xs := x[154*256+48 : 154*256+64]
	var amax, mx float32
	for _, v := range xs { if a := abs32(v); a > amax { amax, mx = a, v } }
	for variant := 0; variant < 8; variant++ {
		fmt.Printf("variant %d:", variant)
		var best float32
		for _, is := range []int{0, -9} {
			iscale := -(32 + 0.1*float32(is)) / mx
			if is == 0 { iscale = -32/mx }
			var sumlx, suml2 float32
			for _, v := range xs {
				l := float32(clampInt(nearestInt(iscale*v), -32, 31))
				w := v * v
				switch variant {
				case 0:
					sumlx += float32(w*v) * l
					suml2 += float32(w*l) * l
				case 1:
					sumlx = fma32(w*v, l, sumlx)
					suml2 += float32(w*l) * l
				case 2:
					sumlx += float32(w*v) * l
					suml2 = fma32(w*l, l, suml2)
				case 3:
					sumlx = fma32(w*v, l, sumlx)
					suml2 = fma32(w*l, l, suml2)
				case 4: // w*(x*l)
					sumlx += w * float32(v*l)
					suml2 += w * float32(l*l)
				case 5:
					sumlx = fma32(w, float32(v*l), sumlx)
					suml2 = fma32(w, float32(l*l), suml2)
				case 6: // double accum
					sumlx = float32(float64(sumlx) + float64(w*v)*float64(l))
					suml2 = float32(float64(suml2) + float64(w*l)*float64(l))
				case 7:
					sumlx = fma32(v*v, v*l, sumlx)
					suml2 = fma32(w*l, l, suml2)
				}
			}
			if is == 0 {
				best = sumlx / suml2 * sumlx
				fmt.Printf(" best0 %.9g", best)
			} else {
				fmt.Printf(" lhs %.9g rhs %.9g pick=%v", sumlx*sumlx, best*suml2, sumlx*sumlx > best*suml2)
			}
		}
		fmt.Println()
	}
}
