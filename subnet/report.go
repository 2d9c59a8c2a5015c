package subnet

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

// ReportRun is one mask of a report: its density per layer and module and
// any evaluation metrics measured with it.
type ReportRun struct {
	Label    string  `json:"label"`
	Sparsity float64 `json:"sparsity"`
	MaskFile string  `json:"mask_file,omitempty"`
	// Density[l][p] is the kept share of projection p in layer l.
	Density [][model.NumProj]float64 `json:"density"`
	// Overall is the kept share over all linear layers.
	Overall float64 `json:"overall_density"`
	// Metrics are evaluation results (name → value), e.g. "accuracy".
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// RunFromMask summarises mk for a report.
func RunFromMask(label string, sparsity float64, mk *mask.Mask) ReportRun {
	r := ReportRun{Label: label, Sparsity: sparsity, Density: make([][model.NumProj]float64, mk.Layers), Overall: mk.Density()}
	for l := 0; l < mk.Layers; l++ {
		for p := model.Proj(0); p < model.NumProj; p++ {
			r.Density[l][p] = 1
			if b := mk.Get(mask.Key{Layer: l, Proj: p}); b != nil {
				r.Density[l][p] = b.Density()
			}
		}
	}
	return r
}

// Report is a self-contained HTML report of one or more masks.
type Report struct {
	Title       string      `json:"title"`
	Model       string      `json:"model"`
	Method      string      `json:"method"`
	Calibration string      `json:"calibration,omitempty"`
	Runs        []ReportRun `json:"runs"`
	Notes       []string    `json:"notes,omitempty"`
}

// WriteHTML writes the report as one HTML page with inline SVG plots: mask
// density per layer and module for every run, the density per module, and,
// when the runs carry metrics, every metric against sparsity.
func (r *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + esc(r.Title) + "</title>\n<style>\n" +
		"body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}" +
		"table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}" +
		"svg{background:#fff;border:1px solid #ddd;margin:0.5em 0}.note{color:#555}\n</style></head><body>\n")
	b.WriteString("<h1>" + esc(r.Title) + "</h1>\n<table>")
	for _, kv := range [][2]string{{"model", r.Model}, {"method", r.Method}, {"calibration", r.Calibration}} {
		if kv[1] != "" {
			b.WriteString("<tr><th style=\"text-align:left\">" + kv[0] + "</th><td style=\"text-align:left\">" + esc(kv[1]) + "</td></tr>")
		}
	}
	b.WriteString("</table>\n")
	for _, n := range r.Notes {
		b.WriteString("<p class=\"note\">" + esc(n) + "</p>\n")
	}
	// Summary table.
	metrics := r.metricNames()
	b.WriteString("<h2>Runs</h2>\n<table><tr><th>run</th><th>target sparsity</th><th>kept share</th>")
	for _, m := range metrics {
		b.WriteString("<th>" + esc(m) + "</th>")
	}
	b.WriteString("<th>mask file</th></tr>\n")
	for _, run := range r.Runs {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%.3f</td><td>%.4f</td>", esc(run.Label), run.Sparsity, run.Overall)
		for _, m := range metrics {
			if v, ok := run.Metrics[m]; ok {
				fmt.Fprintf(&b, "<td>%.4g</td>", v)
			} else {
				b.WriteString("<td>–</td>")
			}
		}
		b.WriteString("<td style=\"text-align:left\">" + esc(run.MaskFile) + "</td></tr>\n")
	}
	b.WriteString("</table>\n")
	if len(metrics) > 0 && len(r.Runs) > 0 {
		b.WriteString("<h2>Evaluation against sparsity</h2>\n")
		for _, m := range metrics {
			b.WriteString(r.lineChart(m))
		}
	}
	if len(r.Runs) > 0 {
		b.WriteString("<h2>Kept share per module</h2>\n")
		b.WriteString(r.moduleBars())
	}
	for _, run := range r.Runs {
		b.WriteString("<h2>Mask density per layer and module: " + esc(run.Label) + "</h2>\n")
		b.WriteString(heatmap(run))
	}
	b.WriteString("<p class=\"note\">Written by masque subnet. Density = share of weights kept (1 = dense).</p>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) metricNames() []string {
	set := map[string]bool{}
	for _, run := range r.Runs {
		for k := range run.Metrics {
			set[k] = true
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// colour maps a density in [0,1] to a white→blue colour.
func colour(v float64) string {
	v = math.Max(0, math.Min(1, v))
	r := int(255 - v*(255-33))
	g := int(255 - v*(255-102))
	b := int(255 - v*(255-172))
	return fmt.Sprintf("#%02x%02x%02x", r, g, b)
}

func heatmap(run ReportRun) string {
	L := len(run.Density)
	cell := 28.0
	if L > 40 {
		cell = math.Max(8, 1100.0/float64(L))
	}
	left, top := 60.0, 20.0
	W := left + cell*float64(L) + 80
	H := top + 22*float64(model.NumProj) + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-size="11">`, W, H)
	for p := model.Proj(0); p < model.NumProj; p++ {
		y := top + 22*float64(p)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, left-6, y+15, p)
		for l := 0; l < L; l++ {
			d := run.Density[l][p]
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="20" fill="%s"><title>layer %d %s: %.4f</title></rect>`,
				left+cell*float64(l), y, cell-1, colour(d), l, p, d)
			if cell >= 26 {
				tc := "#000"
				if d > 0.6 {
					tc = "#fff"
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9" fill="%s">%.2f</text>`, left+cell*float64(l)+cell/2, y+14, tc, d)
			}
		}
	}
	yb := top + 22*float64(model.NumProj) + 14
	step := max(1, L/20)
	for l := 0; l < L; l += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`, left+cell*float64(l)+cell/2, yb, l)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">layer</text>`, left+cell*float64(L)/2, yb+16)
	// legend
	lx := left + cell*float64(L) + 20
	for i := 0; i <= 10; i++ {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="14" height="12" fill="%s"/>`, lx, top+float64(10-i)*13, colour(float64(i)/10))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">1</text><text x="%.1f" y="%.1f">0</text>`, lx+18, top+10, lx+18, top+140)
	b.WriteString("</svg>\n")
	return b.String()
}

// axes draws a plot frame with x in [x0,x1] and y in [y0,y1] and returns
// functions mapping data to pixels.
func axes(b *strings.Builder, title, xlabel, ylabel string, x0, x1, y0, y1 float64, xticks bool, legend float64) (fx, fy func(float64) float64) {
	const H, L, T, B = 300.0, 60.0, 30.0, 45.0
	R := 20.0 + legend
	W := 560.0 + legend
	if x1 <= x0 {
		x0, x1 = x0-0.05, x1+0.05
	}
	if y1 <= y0 {
		y0, y1 = y0-0.05, y1+0.05
	}
	fx = func(x float64) float64 { return L + (x-x0)/(x1-x0)*(W-L-R) }
	fy = func(y float64) float64 { return H - B - (y-y0)/(y1-y0)*(H-T-B) }
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-size="11">`, W, H)
	fmt.Fprintf(b, `<text x="%.0f" y="18" text-anchor="middle" font-size="13">%s</text>`, W/2, html.EscapeString(title))
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, L, H-B, W-R, H-B)
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, L, T, L, H-B)
	for i := 0; i <= 4; i++ {
		xv := x0 + (x1-x0)*float64(i)/4
		yv := y0 + (y1-y0)*float64(i)/4
		if xticks {
			fmt.Fprintf(b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.3g</text>`, fx(xv), H-B+15, xv)
		}
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">%.3g</text>`, L-5, fy(yv)+4, yv)
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, L+1, fy(yv), W-R, fy(yv))
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`, (L+W-R)/2, H-8, html.EscapeString(xlabel))
	fmt.Fprintf(b, `<text x="14" y="%.0f" text-anchor="middle" transform="rotate(-90 14 %.0f)">%s</text>`, (T+H-B)/2, (T+H-B)/2, html.EscapeString(ylabel))
	return fx, fy
}

func (r *Report) lineChart(metric string) string {
	type pt struct{ x, y float64 }
	var pts []pt
	for _, run := range r.Runs {
		if v, ok := run.Metrics[metric]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			pts = append(pts, pt{run.Sparsity, v})
		}
	}
	if len(pts) == 0 {
		return ""
	}
	slices.SortFunc(pts, func(a, b pt) int {
		if a.x < b.x {
			return -1
		}
		if a.x > b.x {
			return 1
		}
		return 0
	})
	x0, x1 := pts[0].x, pts[len(pts)-1].x
	y0, y1 := pts[0].y, pts[0].y
	for _, p := range pts {
		y0, y1 = math.Min(y0, p.y), math.Max(y1, p.y)
	}
	if strings.Contains(metric, "accuracy") {
		y0, y1 = 0, 1
	} else {
		pad := (y1 - y0) * 0.1
		y0, y1 = y0-pad, y1+pad
	}
	var b strings.Builder
	fx, fy := axes(&b, metric+" against sparsity", "sparsity", metric, math.Min(x0, 0), math.Max(x1, x0+0.1), y0, y1, true, 0)
	var path []string
	for _, p := range pts {
		path = append(path, fmt.Sprintf("%.1f,%.1f", fx(p.x), fy(p.y)))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#2166ac" stroke-width="2" points="%s"/>`, strings.Join(path, " "))
	for _, p := range pts {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#2166ac"><title>sparsity %.3f: %.4g</title></circle>`, fx(p.x), fy(p.y), p.x, p.y)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func (r *Report) moduleBars() string {
	var b strings.Builder
	fx, fy := axes(&b, "kept share per module (mean over layers)", "module", "kept share", 0, float64(model.NumProj), 0, 1, false, 150)
	n := float64(len(r.Runs))
	palette := []string{"#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f", "#8c510a"}
	for i, run := range r.Runs {
		for p := model.Proj(0); p < model.NumProj; p++ {
			var s float64
			for _, d := range run.Density {
				s += d[p]
			}
			if len(run.Density) > 0 {
				s /= float64(len(run.Density))
			}
			w := 0.8 / n
			x := float64(p) + 0.1 + w*float64(i)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.4f</title></rect>`,
				fx(x), fy(s), fx(x+w)-fx(x)-1, fy(0)-fy(s), palette[i%len(palette)], html.EscapeString(run.Label), p, s)
		}
	}
	for p := model.Proj(0); p < model.NumProj; p++ {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, fx(float64(p)+0.5), fy(0)+15, p)
	}
	for i, run := range r.Runs {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="10" height="10" fill="%s"/><text x="%.0f" y="%d">%s</text>`,
			fx(float64(model.NumProj))+15, 36+14*i, palette[i%len(palette)], fx(float64(model.NumProj))+29, 45+14*i, html.EscapeString(run.Label))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
