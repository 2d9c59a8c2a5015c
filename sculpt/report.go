package sculpt

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"

	"github.com/masque-ai/masque/train"
)

// series is one line of a chart.
type series struct {
	Name   string
	Colour string
	X, Y   []float64
	Dots   bool
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// lineSVG draws series on linear axes as a standalone SVG element.
func lineSVG(title, xlabel, ylabel string, ss []series) string {
	const W, H = 720, 360
	const left, right, top, bottom = 64, 150, 36, 46
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for i := range s.X {
			if finite(s.X[i]) && finite(s.Y[i]) {
				x0, x1 = math.Min(x0, s.X[i]), math.Max(x1, s.X[i])
				y0, y1 = math.Min(y0, s.Y[i]), math.Max(y1, s.Y[i])
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`, W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/><text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`, W, H, left, html.EscapeString(title))
	if !finite(x0) {
		b.WriteString(`<text x="100" y="100">no data</text></svg>`)
		return b.String()
	}
	if x1 == x0 {
		x1 = x0 + 1
	}
	if y1 == y0 {
		y0, y1 = y0-0.5, y1+0.5
	}
	pad := (y1 - y0) * 0.05
	y0, y1 = y0-pad, y1+pad
	fx := func(v float64) float64 { return float64(left) + (v-x0)/(x1-x0)*pw }
	fy := func(v float64) float64 { return float64(top) + (1-(v-y0)/(y1-y0))*ph }
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#888"/>`, left, top, pw, ph)
	for i := 0; i <= 4; i++ {
		yv := y0 + (y1-y0)*float64(i)/4
		xv := x0 + (x1-x0)*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`, left, float64(left)+pw, fy(yv), fy(yv))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, left-4, fy(yv)+4, tick(yv))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, fx(xv), float64(top)+ph+16, tick(xv))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, float64(left)+pw/2, H-8, html.EscapeString(xlabel))
	fmt.Fprintf(&b, `<text x="14" y="%.1f" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>`, float64(top)+ph/2, float64(top)+ph/2, html.EscapeString(ylabel))
	for si, s := range ss {
		col := s.Colour
		if col == "" {
			col = palette[si%len(palette)]
		}
		var pts []string
		for i := range s.X {
			if finite(s.X[i]) && finite(s.Y[i]) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", fx(s.X[i]), fy(s.Y[i])))
				if s.Dots {
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, fx(s.X[i]), fy(s.Y[i]), col)
				}
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, col, strings.Join(pts, " "))
		}
		ly := top + 14 + 18*si
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d">%s</text>`,
			W-right+10, W-right+28, ly-4, ly-4, col, W-right+32, ly, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func tick(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1000 || a < 0.01:
		return fmt.Sprintf("%.2g", v)
	case a >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// heatSVG draws a matrix of values in [0, 1] (NaN blank) with row and
// column labels.
func heatSVG(title string, rows, cols []string, v [][]float64) string {
	cell := 22.0
	if len(cols) > 24 {
		cell = 12
	}
	left, top := 110.0, 40.0
	W := left + cell*float64(len(cols)) + 80
	H := top + cell*float64(len(rows)) + 70
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`, W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/><text x="4" y="18" font-size="13" font-weight="bold">%s</text>`, W, H, html.EscapeString(title))
	for i, r := range rows {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, left-4, top+cell*float64(i)+cell*0.7, html.EscapeString(r))
		for j := range cols {
			x := v[i][j]
			if !finite(x) {
				continue
			}
			c := math.Max(0, math.Min(1, x))
			// white → dark blue
			rC, gC, bC := int(255-200*c), int(255-160*c), int(255-60*c)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="rgb(%d,%d,%d)"><title>%s / %s: %.3f</title></rect>`,
				left+cell*float64(j), top+cell*float64(i), cell, cell, rC, gC, bC, html.EscapeString(rows[i]), html.EscapeString(cols[j]), x)
			if cell >= 20 {
				fc := "black"
				if c > 0.6 {
					fc = "white"
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="8" fill="%s">%.2f</text>`, left+cell*float64(j)+cell/2, top+cell*float64(i)+cell*0.65, fc, x)
			}
		}
	}
	for j, c := range cols {
		x := left + cell*float64(j) + cell/2
		y := top + cell*float64(len(rows)) + 6
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" transform="rotate(-60 %.1f %.1f)">%s</text>`, x, y, x, y, html.EscapeString(c))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

var runTmpl = template.Must(template.New("run").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>masque sculpt: {{.Title}}</title>
<style>body{font-family:sans-serif;margin:24px;max-width:1000px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f4f4f4}</style>
</head><body>
<h1>masque sculpt: {{.Title}}</h1>
<table>{{range .Rows}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>
<h2>Loss</h2>
{{.Loss}}
<h2>Mask churn</h2>
<p>Channels that entered the hard mask TopK(z, k) at each step (as many left it), all layers and per layer.</p>
{{.Churn}}
{{.Recovery}}
</body></html>
`))

// RunReportHTML renders a run's report.html: its settings, the loss curves
// (training loss under the forward mask, validation loss under the hard
// mask) and the mask-churn curves, as inline SVG without external assets.
func RunReportHTML(rec *RunRecord) ([]byte, error) {
	var hist []train.Point
	for _, p := range rec.History {
		hist = append(hist, train.Point{Step: p.Step, TrainLoss: p.Loss, EvalLoss: p.EvalLoss})
	}
	if rec.InitValidLoss != nil {
		v := *rec.InitValidLoss
		hist = append([]train.Point{{Step: 0, TrainLoss: math.NaN(), EvalLoss: &v}}, hist...)
	}
	loss := train.LossSVG(hist, "loss (assistant tokens)")
	if i := bytes.Index(loss, []byte("<svg")); i > 0 {
		loss = loss[i:]
	}
	all := series{Name: "all layers", Colour: "#000"}
	per := make([]series, rec.Layers)
	for l := range per {
		per[l].Name = fmt.Sprintf("layer %d", l)
	}
	for _, p := range rec.History {
		all.X = append(all.X, float64(p.Step))
		all.Y = append(all.Y, float64(p.Churn))
		for l, c := range p.ChurnLayers {
			if l < len(per) {
				per[l].X = append(per[l].X, float64(p.Step))
				per[l].Y = append(per[l].Y, float64(c))
			}
		}
	}
	churn := lineSVG("mask churn", "step", "channels changed", append([]series{all}, per...))
	f := func(p *float64) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprintf("%.4f", *p)
	}
	rows := [][2]string{
		{"model", rec.Model}, {"method", rec.Method}, {"persona", rec.Persona}, {"data", rec.Data},
		{"ratio", fmt.Sprintf("%g (k = %d of %d channels in each of %d layers)", rec.Ratio, rec.K, rec.DFF, rec.Layers)},
		{"parameters", fmt.Sprintf("%d → %d", rec.Params, rec.ParamsPruned)},
		{"estimator", fmt.Sprint(rec.Choices["estimator"])},
		{"steps", fmt.Sprintf("%d in %.1f s (%.2f steps/s, %.0f tokens/s)", rec.Steps, rec.Seconds, rec.StepsPerSec, rec.TokensPerSec)},
		{"validation loss", fmt.Sprintf("dense %s, initial mask %s, learned mask %s", f(rec.DenseValidLoss), f(rec.InitValidLoss), f(rec.ValidLoss))},
		{"validation perplexity", fmt.Sprintf("dense %s, learned mask %s", f(rec.DensePPL), f(rec.PPL))},
	}
	if rec.Export != nil {
		g := rec.Export.GGUF
		if g == "" {
			g = "not written: " + rec.Export.GGUFSkipped
		}
		rows = append(rows, [2]string{"exported model", rec.Export.Model}, [2]string{"GGUF", g}, [2]string{"keep indices", rec.Export.Keep})
	}
	var recovery template.HTML
	if rv := rec.Recovery; rv != nil {
		what := rv.Mode
		if rv.LoRARank > 0 {
			what = fmt.Sprintf("LoRA r=%d alpha=%g, merged", rv.LoRARank, rv.LoRAAlpha)
		}
		g := rv.GGUF
		if g == "" {
			g = "no GGUF: " + rv.GGUFSkipped
		}
		rows = append(rows, [2]string{"recovery fine-tuning", fmt.Sprintf("%s, %d steps at lr %g in %.1f s; train loss %.4f → %.4f; validation loss %s → %s",
			what, rv.Steps, rv.LR, rv.Seconds, rv.FirstTrainLoss, rv.LastTrainLoss, f(rv.InitValidLoss), f(rv.ValidLoss))},
			[2]string{"recovered model", rv.Model + " (" + g + ")"})
		hist := rv.History
		if rv.InitValidLoss != nil {
			v := *rv.InitValidLoss
			hist = append([]train.Point{{Step: 0, TrainLoss: math.NaN(), EvalLoss: &v}}, hist...)
		}
		svg := train.LossSVG(hist, "recovery fine-tuning loss")
		if i := bytes.Index(svg, []byte("<svg")); i > 0 {
			svg = svg[i:]
		}
		recovery = template.HTML("<h2>Recovery fine-tuning</h2>\n" + string(svg))
	}
	var buf bytes.Buffer
	err := runTmpl.Execute(&buf, map[string]any{"Title": rec.Method + " " + rec.Persona, "Rows": rows,
		"Loss": template.HTML(loss), "Churn": template.HTML(churn), "Recovery": recovery})
	return buf.Bytes(), err
}
