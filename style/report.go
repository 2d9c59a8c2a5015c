package style

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// reportColors are the characters' colours, in order (repeating).
var reportColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// radarSVG draws the 14 dimensions of every character on one radar chart;
// each axis is scaled by the largest value any character has on it.
func radarSVG(set *Set) template.HTML {
	const size, cx, cy, r = 520.0, 260.0, 260.0, 170.0
	n := len(Dimensions)
	scale := make([]float64, n)
	for _, p := range set.Characters {
		for d, v := range p.Syntax.Vector {
			scale[d] = math.Max(scale[d], v)
		}
	}
	pt := func(d int, f float64) (float64, float64) {
		a := -math.Pi/2 + 2*math.Pi*float64(d)/float64(n)
		return cx + r*f*math.Cos(a), cy + r*f*math.Sin(a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="radar" xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="radar chart of the 14 syntactic dimensions">`, size, size, size, size)
	for _, f := range []float64{0.25, 0.5, 0.75, 1} {
		var pts []string
		for d := 0; d < n; d++ {
			x, y := pt(d, f)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&b, `<polygon points="%s" fill="none" stroke="#ccc"/>`, strings.Join(pts, " "))
	}
	for d, name := range Dimensions {
		x, y := pt(d, 1)
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%.1f" y2="%.1f" stroke="#ccc"/>`, cx, cy, x, y)
		lx, ly := pt(d, 1.12)
		anchor := "middle"
		if lx < cx-10 {
			anchor = "end"
		} else if lx > cx+10 {
			anchor = "start"
		}
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="%s" font-size="11">%s (%.2f)</text>`, lx, ly+4, anchor, template.HTMLEscapeString(name), scale[d])
	}
	for i, p := range set.Characters {
		var pts []string
		for d, v := range p.Syntax.Vector {
			f := 0.0
			if scale[d] > 0 {
				f = v / scale[d]
			}
			x, y := pt(d, f)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		c := reportColors[i%len(reportColors)]
		fmt.Fprintf(&b, `<polygon class="series" data-character="%s" points="%s" fill="%s" fill-opacity="0.08" stroke="%s" stroke-width="1.6"><title>%s</title></polygon>`,
			template.HTMLEscapeString(p.Name), strings.Join(pts, " "), c, c, template.HTMLEscapeString(p.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// tagsSVG draws each character's tag scores as bars (cosine, from −1 to 1,
// with the threshold marked).
func tagsSVG(set *Set, p *Profile) template.HTML {
	if len(p.Tags) == 0 {
		return ""
	}
	const w, row, left = 360.0, 18.0, 110.0
	h := row*float64(len(p.Tags)) + 8
	bw := w - left - 50
	x0 := left + bw/2
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="tags" xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g">`, w, h, w, h)
	for i, t := range p.Tags {
		y := 4 + row*float64(i)
		x := x0 + bw/2*math.Min(0, t.Score)
		wd := bw / 2 * math.Abs(t.Score)
		fill := "#bbb"
		if t.On {
			fill = "#2ca02c"
		}
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" font-size="11">%s</text>`, left-6, y+12, template.HTMLEscapeString(t.Name))
		fmt.Fprintf(&b, `<rect class="bar" data-tag="%s" x="%.1f" y="%.1f" width="%.1f" height="%g" fill="%s"/>`, template.HTMLEscapeString(t.Name), x, y+2, wd, row-5, fill)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="10">%+.2f</text>`, left+bw+4, y+12, t.Score)
	}
	th := x0 + bw/2*set.Pragmatic.Threshold
	fmt.Fprintf(&b, `<line x1="%g" y1="0" x2="%g" y2="%g" stroke="#000"/><line x1="%.1f" y1="0" x2="%.1f" y2="%g" stroke="#d62728" stroke-dasharray="3,2"/>`, x0, x0, h, th, th, h)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"color": func(i int) string { return reportColors[i%len(reportColors)] },
	"f2":    func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"f3":    func(v float64) string { return fmt.Sprintf("%.3f", v) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>masque style report</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}
.chars{display:flex;flex-wrap:wrap;gap:18px}
.char{border:1px solid #ddd;border-radius:6px;padding:8px 12px;width:360px}
.char h3{margin:4px 0}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:middle}
.note{color:#666;font-size:12px}
</style></head><body>
<h1>Style profiles</h1>
<p class="note">{{len .Set.Characters}} characters · language {{.Set.Language}} · keywords: top {{.Set.TopK}} by (1+ln count)·PMI, words used at least {{.Set.MinCount}} times{{if .Set.Pragmatic}} · embedder {{.Set.Pragmatic.Embedder}} · tag set {{.Set.Pragmatic.TagSet}} (on above {{f2 .Set.Pragmatic.Threshold}}){{end}}</p>
<h2>Syntactic profile</h2>
<div style="display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start">
{{.Radar}}
<div><table id="dims"><tr><th>dimension</th>{{range $i, $c := .Set.Characters}}<th><span class="swatch" style="background:{{color $i}}"></span>{{$c.Name}}</th>{{end}}</tr>
{{range $d, $name := .Dims}}<tr><td>{{$name}}</td>{{range $.Set.Characters}}<td>{{f3 (index .Syntax.Vector $d)}}</td>{{end}}</tr>
{{end}}</table>
<p class="note">Each radar axis is scaled by the largest value of any character (in brackets).</p></div>
</div>
<h2>Characters</h2>
<div class="chars">
{{range $i, $c := .Chars}}<div class="char" id="char-{{$i}}"><h3><span class="swatch" style="background:{{color $i}}"></span>{{$c.P.Name}}</h3>
<p class="note">{{$c.P.Lines}} lines · {{$c.P.Sentences}} sentences · {{$c.P.Words}} content words</p>
{{if $c.Tags}}<h4>Pragmatic tags</h4>{{$c.Tags}}{{end}}
<h4>Keywords</h4>
<table class="keywords"><tr><th>word</th><th>count</th><th>PMI</th><th>score</th></tr>
{{range $c.P.Keywords}}<tr><td>{{.Word}}</td><td>{{.Count}}</td><td>{{f2 .PMI}}</td><td>{{f2 .Score}}</td></tr>
{{end}}</table></div>
{{end}}</div>
</body></html>
`))

// WriteReport renders a self-contained HTML page comparing the characters
// of a profile set: the radar chart and table of the 14 dimensions, and per
// character its keyword table and tag bars.
func WriteReport(w io.Writer, set *Set) error {
	type char struct {
		P    *Profile
		Tags template.HTML
	}
	var cs []char
	for _, p := range set.Characters {
		c := char{P: p}
		if set.Pragmatic != nil {
			c.Tags = tagsSVG(set, p)
		}
		cs = append(cs, c)
	}
	return reportTmpl.Execute(w, map[string]any{"Set": set, "Dims": Dimensions, "Radar": radarSVG(set), "Chars": cs})
}
