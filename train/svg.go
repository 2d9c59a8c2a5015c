package train

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"sort"
	"strconv"
)

// LossSVG draws the loss curves of a run as a standalone SVG image: the
// training loss per step (blue line) and the held-out loss where it was
// measured (orange line with dots), on linear axes with tick labels. Points
// with EvalGroups add one curve per named held-out set (thin lines with
// dots, in the order the names first appear, legend at the right).
func LossSVG(history []Point, title string) []byte {
	const (
		W, H                     = 720, 420
		left, right, top, bottom = 64, 20, 40, 50
	)
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	lo, hi := math.Inf(1), math.Inf(-1)
	maxStep := 1
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for _, p := range history {
		if finite(p.TrainLoss) {
			lo, hi = math.Min(lo, p.TrainLoss), math.Max(hi, p.TrainLoss)
		}
		if p.EvalLoss != nil && finite(*p.EvalLoss) {
			lo, hi = math.Min(lo, *p.EvalLoss), math.Max(hi, *p.EvalLoss)
		}
		for _, v := range p.EvalGroups {
			if finite(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		maxStep = max(maxStep, p.Step)
	}
	groups := groupNames(history)
	if math.IsInf(lo, 0) {
		lo, hi = 0, 1
	}
	lo = math.Min(0, lo)
	if hi-lo < 1e-9 {
		hi = lo + 1
	}
	ticks := niceTicks(lo, hi, 6)
	hi = math.Max(hi, ticks[len(ticks)-1])
	x := func(step int) float64 { return float64(left) + pw*float64(step)/float64(maxStep) }
	y := func(v float64) float64 { return float64(top) + ph*(1-(v-lo)/(hi-lo)) }
	// Grid and axes.
	for _, t := range ticks {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, W-right, y(t), y(t))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, y(t), fmtTick(t))
	}
	for _, s := range niceTicks(0, float64(maxStep), 8) {
		if s > float64(maxStep) {
			continue
		}
		xs := float64(left) + pw*s/float64(maxStep)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999"/>`+"\n", xs, xs, H-bottom, H-bottom+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", xs, H-bottom+18, fmtTick(s))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">step</text>`+"\n", float64(left)+pw/2, H-12)
	fmt.Fprintf(&b, `<text x="16" y="%.0f" text-anchor="middle" transform="rotate(-90 16 %.0f)">cross-entropy loss</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2)
	// Curves.
	poly := func(color string, pts [][2]float64, dots bool) {
		if len(pts) == 0 {
			return
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="`, color)
		for i, p := range pts {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", p[0], p[1])
		}
		b.WriteString(`"/>` + "\n")
		if dots {
			for _, p := range pts {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", p[0], p[1], color)
			}
		}
	}
	var tr, ev [][2]float64
	for _, p := range history {
		if finite(p.TrainLoss) {
			tr = append(tr, [2]float64{x(p.Step), y(p.TrainLoss)})
		}
		if p.EvalLoss != nil && finite(*p.EvalLoss) {
			ev = append(ev, [2]float64{x(p.Step), y(*p.EvalLoss)})
		}
	}
	poly("#1f77b4", tr, len(tr) == 1)
	for gi, g := range groups {
		var pts [][2]float64
		for _, p := range history {
			if v, ok := p.EvalGroups[g]; ok && finite(v) {
				pts = append(pts, [2]float64{x(p.Step), y(v)})
			}
		}
		poly(groupPalette[gi%len(groupPalette)], pts, true)
	}
	poly("#ff7f0e", ev, true)
	// Legend.
	lx := W - right - 150
	legend := func(i int, color, name string) {
		ly := top + 14 + 18*i
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n",
			lx, lx+24, ly, ly, color, lx+30, ly, html.EscapeString(name))
	}
	legend(0, "#1f77b4", "train")
	if len(ev) > 0 {
		name := "held-out"
		if len(groups) > 0 {
			name = "held-out (all)"
		}
		legend(1, "#ff7f0e", name)
	}
	for gi, g := range groups {
		legend(2+gi, groupPalette[gi%len(groupPalette)], g)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// groupPalette colours the per-set held-out curves.
var groupPalette = []string{"#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39"}

// groupNames lists the EvalGroups names of history in order of first
// appearance (names within one point sorted).
func groupNames(history []Point) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range history {
		var names []string
		for k := range p.EvalGroups {
			if !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	span := hi - lo
	if span <= 0 {
		return []float64{lo}
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Floor(lo/step) * step; v <= hi+step*0.999; v += step {
		out = append(out, math.Round(v/step)*step)
		if len(out) > 4*n {
			break
		}
	}
	return out
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e9 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
