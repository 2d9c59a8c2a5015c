package quant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

type knobs struct {
	wv      int
	rmin, rdelta float32
	nstep   int
	upd     int // 0 both, 1 none, 2 x only, 3 range only
}

func searchK(k knobs, x, w []float32, L []uint8) (float32, float32) {
	n := len(x)
	lo, hi := x[0], x[0]
	sumW := w[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		lo = min(lo, x[i]); hi = max(hi, x[i])
		sumW += w[i]; sumX += w[i] * x[i]
	}
	if lo > 0 { lo = 0 }
	if hi == lo { for i := range L { L[i] = 0 }; return 0, -lo }
	iscale := 15 / (hi - lo)
	scale := 1 / iscale
	var best float32
	for i := range n {
		l := uint8(clampInt(nearestInt(iscale*(x[i]-lo)), 0, 15))
		L[i] = l
		d := scale*float32(l) + lo - x[i]
		best += w[i] * d * d
	}
	lo0 := lo
	bestMin := lo
	var aux [32]uint8
	for is := 0; is <= k.nstep; is++ {
		lx, lr := lo0, lo0
		switch k.upd { case 0: lx, lr = bestMin, bestMin; case 2: lx = bestMin; case 3: lr = bestMin }
		iscale = (k.rmin + k.rdelta*float32(is) + 15) / (hi - lr)
		var sl, sl2, sxl float32
		for i := range n {
			l := uint8(clampInt(nearestInt(iscale*(x[i]-lx)), 0, 15))
			aux[i] = l
			wl := w[i] * float32(l)
			sl += wl; sl2 += wl * float32(l); sxl += wl * x[i]
		}
		D := sumW*sl2 - sl*sl
		if !(D > 0) { continue }
		ts := (sumW*sxl - sumX*sl) / D
		tm := (sl2*sumX - sl*sxl) / D
		if tm > 0 { tm = 0; ts = sxl / sl2 }
		var e float32
		for i := range n { d := ts*float32(aux[i]) + tm - x[i]; e += w[i] * d * d }
		if e < best { copy(L, aux[:n]); best = e; scale = ts; bestMin = tm }
	}
	return scale, -bestMin
}

func quantQ4KK(k knobs, x []float32, b []byte) {
	var L [256]uint8
	var w [32]float32
	var scales, mins [8]float32
	var maxScale, maxM float32
	for j := range 8 {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs { sumX2 += v * v }
		avX := float32(math.Sqrt(float64(sumX2 / 32)))
		for l, v := range xs {
			switch k.wv {
			case 0: w[l] = avX + abs32(v)
			case 1: w[l] = 1
			case 2: w[l] = v * v
			case 3: w[l] = abs32(v)
			}
		}
		scales[j], mins[j] = searchK(k, xs, w[:], L[32*j:32*j+32])
		maxScale = max(maxScale, scales[j]); maxM = max(maxM, mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 { invScale = 63 / maxScale }
	if maxM > 0 { invMin = 63 / maxM }
	sc := b[4:16]
	clear(sc)
	for j := range 8 {
		ls := min(63, nearestInt(invScale*scales[j]))
		lm := min(63, nearestInt(invMin*mins[j]))
		packScaleMinK4(j, sc, uint8(max(ls, 0)), uint8(max(lm, 0)))
	}
	putF16(b[0:], scaleToF16(maxScale/63))
	putF16(b[2:], scaleToF16(maxM/63))
	d, dmin := getF16(b[0:]), getF16(b[2:])
	for j := range 8 {
		s, m := scaleMinK4(j, sc)
		dj := d * float32(s)
		if dj == 0 { continue }
		dm := dmin * float32(m)
		for i, v := range x[32*j : 32*j+32] { L[32*j+i] = uint8(clampInt(nearestInt((v+dm)/dj), 0, 15)) }
	}
	qs := b[16:144]
	for c := range 4 { for l := range 32 { qs[32*c+l] = L[64*c+l] | L[64*c+32+l]<<4 } }
}

func TestExp5(t *testing.T) {
	if os.Getenv("EXP5") == "" { t.Skip() }
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw("/tmp/xc/q.bin")
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	for _, wv := range []int{0, 1, 2, 3} {
		for _, p := range [][3]float32{{-1, 0.1, 20}, {-0.5, 0.1, 15}, {-0.9, 0.05, 36}} {
			for upd := 0; upd < 4; upd++ {
				k := knobs{wv, p[0], p[1], int(p[2]), upd}
				bad := 0
				mine := make([]byte, 144)
				for b := 0; b < len(qb)/144; b++ {
					quantQ4KK(k, x[b*256:(b+1)*256], mine)
					if !bytes.Equal(mine, qb[b*144:(b+1)*144]) { bad++ }
				}
				fmt.Printf("%+v: %d/%d\n", k, bad, len(qb)/144)
			}
		}
	}
}
