package train

import (
	"math"
	"sync"
)

// This file holds the element-wise operations, each forward next to its
// backward. Shapes are row-major; d is the row length.

// rmsnormFwd sets y = x·rstd·w row by row (rows of length d) and records
// rstd = 1/√(mean(x²)+eps) per row. y must not alias x.
func rmsnormFwd(y, rstd, x, w []float32, d int, eps float32) {
	rows := len(x) / d
	for i := 0; i < rows; i++ {
		xr := x[i*d : (i+1)*d]
		var ss float32
		for _, v := range xr {
			ss += v * v
		}
		r := float32(1 / math.Sqrt(float64(ss/float32(d)+eps)))
		rstd[i] = r
		yr := y[i*d : (i+1)*d]
		for j, v := range xr {
			yr[j] = v * r * w[j]
		}
	}
}

// rmsnormBwd computes the input gradient of rmsnormFwd from dy and adds it
// to dx (acc) or stores it (!acc):
//
//	dx_j = r·w_j·dy_j − x_j·r³/d·Σ_k w_k·dy_k·x_k.
//
// If gw is not nil it also accumulates the weight gradient Σ_rows dy·x·r.
func rmsnormBwd(dx, dy, x, rstd, w, gw []float32, d int, acc bool) {
	rows := len(x) / d
	for i := 0; i < rows; i++ {
		xr, dyr, dxr := x[i*d:(i+1)*d], dy[i*d:(i+1)*d], dx[i*d:(i+1)*d]
		r := rstd[i]
		var dot float32
		for j, v := range xr {
			dot += w[j] * dyr[j] * v
		}
		c := dot * r * r * r / float32(d)
		if acc {
			for j, v := range xr {
				dxr[j] += r*w[j]*dyr[j] - c*v
			}
		} else {
			for j, v := range xr {
				dxr[j] = r*w[j]*dyr[j] - c*v
			}
		}
		if gw != nil {
			for j, v := range xr {
				gw[j] += dyr[j] * v * r
			}
		}
	}
}

// ropeFwd rotates the heads of each row of x in place (rotate-half layout:
// dimension j pairs with j+D/2). Row i uses the tables at cos/sin row
// pos[i]; tables have D/2 entries per position.
func ropeFwd(x []float32, pos []int, heads, D int, cos, sin []float32) {
	half := D / 2
	w := heads * D
	for i, p := range pos {
		cs, sn := cos[p*half:(p+1)*half], sin[p*half:(p+1)*half]
		row := x[i*w : (i+1)*w]
		for h := 0; h < heads; h++ {
			v := row[h*D : (h+1)*D]
			for j := 0; j < half; j++ {
				a, b := v[j], v[j+half]
				v[j] = a*cs[j] - b*sn[j]
				v[j+half] = b*cs[j] + a*sn[j]
			}
		}
	}
}

// ropeBwd maps the gradient of ropeFwd's output to its input, in place: the
// transpose of a rotation is the rotation by the opposite angle.
func ropeBwd(dx []float32, pos []int, heads, D int, cos, sin []float32) {
	half := D / 2
	w := heads * D
	for i, p := range pos {
		cs, sn := cos[p*half:(p+1)*half], sin[p*half:(p+1)*half]
		row := dx[i*w : (i+1)*w]
		for h := 0; h < heads; h++ {
			v := row[h*D : (h+1)*D]
			for j := 0; j < half; j++ {
				a, b := v[j], v[j+half]
				v[j] = a*cs[j] + b*sn[j]
				v[j+half] = b*cs[j] - a*sn[j]
			}
		}
	}
}

// exp2Table[j] = 2^(j/64).
var exp2Table = func() (t [64]float32) {
	for j := range t {
		t[j] = float32(math.Exp2(float64(j) / 64))
	}
	return t
}()

// expNeg returns e^x for x ≤ 0 in float32, within about one unit in the
// last place: x = (64n + j)·ln2/64 + r with k = 64n + j rounded to nearest
// (the 1.5·2²³ trick) and |r| ≤ ln2/128 (Cody-Waite reduction), so
// e^x = 2^n · 2^(j/64) · e^r with a table for 2^(j/64) and a cubic for e^r.
// Results below the smallest normal float32 are flushed to 0. It is
// several times faster than math.Exp; softmax, cross-entropy and SiLU only
// ever need non-positive arguments.
func expNeg(x float32) float32 {
	if !(x > -87.33) {
		if x != x {
			return x // NaN
		}
		return 0
	}
	const magic = 12582912            // 1.5·2²³: adding it rounds to an integer
	kr := x*92.33248261689366 + magic // x·64/ln2
	k := int32(math.Float32bits(kr)&0x7fffff) - 0x400000
	kf := kr - magic
	r := x - kf*0.01082611083984375 - kf*4.313856405395097e-06 // ln2/64 = hi + lo, kf·hi exact
	p := 1 + r*(1+r*(0.5+r*(1.0/6)))
	return p * exp2Table[k&63] * math.Float32frombits(uint32((k>>6)+127)<<23)
}

// sigmoid returns 1/(1+e^-x).
func sigmoid(x float32) float32 {
	if x >= 0 {
		return 1 / (1 + expNeg(-x))
	}
	e := expNeg(x)
	return e / (1 + e)
}

// swigluFwd sets sig = σ(g) and h = silu(g)·u = g·σ(g)·u, times mask (per
// column of rows of length d) when mask is not nil.
func swigluFwd(h, sig, g, u, mask []float32, d int) {
	for i, gv := range g {
		s := sigmoid(gv)
		sig[i] = s
		v := gv * s * u[i]
		if mask != nil {
			v *= mask[i%d]
		}
		h[i] = v
	}
}

// swigluRedo recomputes h from the stored g, σ(g) and u (no exponentials).
func swigluRedo(h, sig, g, u, mask []float32, d int) {
	for i, gv := range g {
		v := gv * sig[i] * u[i]
		if mask != nil {
			v *= mask[i%d]
		}
		h[i] = v
	}
}

// swigluBwd turns dh into dg (stored in dg) and du (stored in du), given
// g, u and sig = σ(g). With a mask, the unmasked activations' contribution
// Σ_rows dh·silu(g)·u is added to gmask.
func swigluBwd(dg, du, dh, g, u, sig, mask, gmask []float32, d int) {
	for i, gv := range g {
		s := sig[i]
		silu := gv * s
		dhv := dh[i]
		if mask != nil {
			if gmask != nil {
				gmask[i%d] += dhv * silu * u[i]
			}
			dhv *= mask[i%d]
		}
		dg[i] = dhv * u[i] * s * (1 + gv*(1-s))
		du[i] = dhv * silu
	}
}

// addRowVec adds b to every row of y (row length len(b)).
func addRowVec(y, b []float32) {
	d := len(b)
	for off := 0; off+d <= len(y); off += d {
		r := y[off : off+d]
		for j, v := range b {
			r[j] += v
		}
	}
}

// colSum adds the column sums of dy (row length len(g)) to g.
func colSum(g, dy []float32) {
	d := len(g)
	for off := 0; off+d <= len(dy); off += d {
		r := dy[off : off+d]
		for j, v := range r {
			g[j] += v
		}
	}
}

func addTo(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}

func scaleBy(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

// parRows runs fn over [0,rows) split into at most threads contiguous
// ranges, in parallel when the work (rows·width) is large enough.
func parRows(threads, rows, width int, fn func(lo, hi int)) {
	if threads <= 1 || rows < 2 || rows*width < 1<<14 {
		fn(0, rows)
		return
	}
	t := min(threads, rows)
	var wg sync.WaitGroup
	for w := 0; w < t; w++ {
		lo, hi := rows*w/t, rows*(w+1)/t
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// buf returns (*p)[:n], reallocating when the capacity is too small. The
// contents are not cleared.
func buf(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return *p
}
