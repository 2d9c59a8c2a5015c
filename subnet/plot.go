package subnet

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Series is one line (or set of points) of LinePlot.
type Series struct {
	Name string
	X, Y []float64
	// Points draws markers only, no line (a scatter plot).
	Points bool
}

// Palette is the colour cycle of the plots (colour-blind safe first).
var Palette = []string{"#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f", "#8c510a", "#4d4d4d", "#c51b7d", "#7fbc41"}

// LinePlot draws series on linear axes as one inline SVG element (the axes
// of the subnet report), with a legend on the right. The y range is
// [y0, y1] when y1 > y0, otherwise the data's range padded by a tenth.
// Points with a NaN or infinite coordinate are left out.
func LinePlot(title, xlabel, ylabel string, ss []Series, y0, y1 float64) string {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	x0, x1 := math.Inf(1), math.Inf(-1)
	d0, d1 := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for i := range s.X {
			if i < len(s.Y) && finite(s.X[i]) && finite(s.Y[i]) {
				x0, x1 = math.Min(x0, s.X[i]), math.Max(x1, s.X[i])
				d0, d1 = math.Min(d0, s.Y[i]), math.Max(d1, s.Y[i])
			}
		}
	}
	if !finite(x0) {
		return ""
	}
	if y1 <= y0 {
		// At least 2 % of the values' magnitude, so that tiny differences
		// do not fill the plot with identical tick labels.
		span := math.Max(d1-d0, 0.02*math.Max(math.Abs(d0), math.Abs(d1)))
		mid := (d0 + d1) / 2
		y0, y1 = mid-span*0.6, mid+span*0.6
	}
	if x1 == x0 {
		x0, x1 = x0-0.05, x1+0.05
	}
	var b strings.Builder
	fx, fy := axes(&b, title, xlabel, ylabel, x0, x1, y0, y1, true, 170)
	for si, s := range ss {
		col := Palette[si%len(Palette)]
		var pts []string
		for i := range s.X {
			if i >= len(s.Y) || !finite(s.X[i]) || !finite(s.Y[i]) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", fx(s.X[i]), fy(s.Y[i])))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s: (%.4g, %.4g)</title></circle>`,
				fx(s.X[i]), fy(s.Y[i]), col, html.EscapeString(s.Name), s.X[i], s.Y[i])
		}
		if !s.Points && len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, col, strings.Join(pts, " "))
		}
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="10" height="10" fill="%s"/><text x="%.0f" y="%d">%s</text>`,
			fx(x1)+15, 36+14*si, col, fx(x1)+29, 45+14*si, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// HeatPlot draws a matrix of values in [0, 1] (NaN: blank) as an inline SVG
// heat map, white to blue, with the value in every cell large enough to
// hold it.
func HeatPlot(title string, rows, cols []string, v [][]float64) string {
	cell := 34.0
	if len(cols) > 16 {
		cell = 16
	}
	left, top := 150.0, 34.0
	W := left + cell*float64(len(cols)) + 70
	H := top + cell*float64(len(rows)) + 130
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-size="11">`, W, H)
	fmt.Fprintf(&b, `<text x="4" y="18" font-size="13">%s</text>`, html.EscapeString(title))
	for i, r := range rows {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, left-5, top+cell*float64(i)+cell*0.6, html.EscapeString(r))
		for j := range cols {
			if i >= len(v) || j >= len(v[i]) || math.IsNaN(v[i][j]) {
				continue
			}
			x := v[i][j]
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s / %s: %.4g</title></rect>`,
				left+cell*float64(j), top+cell*float64(i), cell-1, cell-1, colour(x), html.EscapeString(r), html.EscapeString(cols[j]), x)
			if cell >= 30 {
				tc := "#000"
				if x > 0.6 {
					tc = "#fff"
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9" fill="%s">%s</text>`,
					left+cell*float64(j)+cell/2, top+cell*float64(i)+cell*0.6, tc, shortNum(x))
			}
		}
	}
	for j, c := range cols {
		x := left + cell*float64(j) + cell/2
		y := top + cell*float64(len(rows)) + 8
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" transform="rotate(-50 %.1f %.1f)">%s</text>`, x, y, x, y, html.EscapeString(c))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func shortNum(x float64) string {
	if x != 0 && math.Abs(x) < 0.01 {
		return fmt.Sprintf("%.0e", x)
	}
	return fmt.Sprintf("%.2f", x)
}
