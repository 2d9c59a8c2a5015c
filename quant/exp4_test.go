package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExp4(t *testing.T) {
	if os.Getenv("EXP4") == "" {
		t.Skip()
	}
	xb := loadRaw("/tmp/xc/x.bin")
	qb := loadRaw("/tmp/xc/q.bin")
	x := make([]float32, len(xb)/4)
	for i := range x { x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:])) }
	blk, sub := 5, 7
	g := qb[blk*144:(blk+1)*144]
	d, dmin := getF16(g), getF16(g[2:])
	s, m := scaleMinK4(sub, g[4:16])
	fmt.Printf("ggml scale %g min %g\n", d*float32(s), dmin*float32(m))
	xs := x[blk*256+32*sub : blk*256+32*sub+32]
	var sumX2 float32
	for _, v := range xs { sumX2 += v*v }
	av := float32(math.Sqrt(float64(sumX2/32)))
	w := make([]float32, 32)
	for l, v := range xs { w[l] = av + abs32(v) }
	lo, hi := xs[0], xs[0]
	var sumW, sumX float32
	for i, v := range xs { lo = min(lo, v); hi = max(hi, v); sumW += w[i]; sumX += w[i]*v }
	if lo > 0 { lo = 0 }
	fmt.Println("lo hi", lo, hi)
	iscale0 := 15 / (hi - lo)
	scale0 := 1 / iscale0
	var best float32
	for i, v := range xs {
		l := float32(clampInt(nearestInt(iscale0*(v-lo)), 0, 15))
		df := scale0*l + lo - v
		best += w[i] * df * df
	}
	fmt.Println("initial err", best, "scale", scale0)
	for is := 0; is <= 20; is++ {
		iscale := (-1 + 0.1*float32(is) + 15) / (hi - lo)
		var sl, sl2, sxl float32
		var L [32]float32
		for i, v := range xs {
			l := float32(clampInt(nearestInt(iscale*(v-lo)), 0, 15))
			L[i] = l
			sl += w[i]*l; sl2 += w[i]*l*l; sxl += w[i]*l*v
		}
		D := sumW*sl2 - sl*sl
		sc := (sumW*sxl - sumX*sl) / D
		mn := (sl2*sumX - sl*sxl) / D
		if mn > 0 { mn = 0; sc = sxl/sl2 }
		var e float32
		for i, v := range xs { df := sc*L[i] + mn - v; e += w[i]*df*df }
		fmt.Printf("   iscale %.9g  t28 %.9g  exact %.12g  (x28-lo) %.9g\n", iscale, iscale*(xs[28]-lo), float64(iscale)*(float64(xs[28])-float64(lo)), xs[28]-lo)
		fmt.Printf("is %d lo %g scale %g min %g err %g  L %v\n", is, lo, sc, mn, e, L)
		if e < best { best = e; lo = mn; fmt.Println("   take") }
	}
}
