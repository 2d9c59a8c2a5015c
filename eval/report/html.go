package report

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/masque-ai/masque/eval/roleplay"
	"github.com/masque-ai/masque/internal/atomicfile"
)

// palette is the Okabe–Ito colour-blind-safe palette.
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F", "#000000"}

func color(i int) string { return palette[i%len(palette)] }

// scale returns the axis range of metric m: its judge scale when known,
// else the data's range.
func scale(m string, vals []float64) (lo, hi float64) {
	switch {
	case m == "consistency" || m == "coherence":
		return 0, 100
	case strings.HasPrefix(m, "gym_") || m == roleplay.MetricPScore:
		return 1, 5
	case m == roleplay.MetricRougeL:
		return 0, 1
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if !math.IsNaN(v) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if math.IsInf(lo, 0) {
		return 0, 1
	}
	if hi == lo {
		return lo - 1, hi + 1
	}
	return lo, hi
}

// svgDoc accumulates an SVG picture.
type svgDoc struct {
	b    strings.Builder
	w, h float64
}

func newSVG(w, h float64, title string) *svgDoc {
	s := &svgDoc{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" role="img" font-family="sans-serif" font-size="12"><title>%s</title><rect width="100%%" height="100%%" fill="#ffffff"/>`, w, h, w, h, html.EscapeString(title))
	return s
}

func (s *svgDoc) add(format string, a ...any) { fmt.Fprintf(&s.b, format, a...) }

func (s *svgDoc) text(x, y float64, anchor, extra, t string) {
	s.add(`<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`, x, y, anchor, extra, html.EscapeString(t))
}

func (s *svgDoc) html() template.HTML { return template.HTML(s.b.String() + "</svg>") }

// axes draws a frame with y ticks over [lo, hi] and returns the mapping
// from values to y pixels.
type frame struct {
	x0, y0, x1, y1 float64 // plot area: left, top, right, bottom
	lo, hi         float64
}

func (f frame) y(v float64) float64 { return f.y1 - (v-f.lo)/(f.hi-f.lo)*(f.y1-f.y0) }

func (s *svgDoc) yAxis(f frame, label string) {
	for _, v := range niceTicks(f.lo, f.hi, 5) {
		y := f.y(v)
		s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>`, f.x0, y, f.x1, y)
		s.text(f.x0-6, y+4, "end", `fill="#333"`, trimNum(v))
	}
	s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, f.x0, f.y0, f.x0, f.y1)
	s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, f.x0, f.y1, f.x1, f.y1)
	s.text(14, (f.y0+f.y1)/2, "middle", fmt.Sprintf(`transform="rotate(-90 14 %.1f)" fill="#333"`, (f.y0+f.y1)/2), label)
}

// niceTicks returns about n round tick values covering [lo, hi] (steps of
// 1, 2 or 5 times a power of ten).
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) || n < 1 {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := p
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step-1e-9) * step; v <= hi+step*1e-9; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}

func trimNum(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

// plotSparsity draws the headline metric against sparsity, one line per
// method, with ±SD-over-personas whiskers and the dense run as a dashed
// reference line.
func (c *Comparison) plotSparsity(m string) template.HTML {
	const W, H = 820.0, 400.0
	s := newSVG(W, H, m+" against sparsity")
	idx := c.sortedBySparsity()
	var vals []float64
	for _, r := range c.Runs {
		vals = append(vals, float64(r.Summary[m].Mean))
	}
	lo, hi := scale(m, vals)
	f := frame{x0: 64, y0: 24, x1: W - 200, y1: H - 52, lo: lo, hi: hi}
	s.yAxis(f, m)
	maxX := 0.0
	for _, i := range idx {
		maxX = max(maxX, *c.Runs[i].Sparsity)
	}
	maxX = math.Max(0.1, math.Ceil(maxX*10+0.5)/10)
	x := func(v float64) float64 { return f.x0 + v/maxX*(f.x1-f.x0) }
	for _, v := range niceTicks(0, maxX, 6) {
		s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, x(v), f.y1, x(v), f.y1+5)
		s.text(x(v), f.y1+18, "middle", `fill="#333"`, trimNum(100*v)+"%")
	}
	s.text((f.x0+f.x1)/2, H-12, "middle", `fill="#333"`, "sparsity (share of weights or channels removed)")
	if c.Options.Dense != "" {
		for _, r := range c.Runs {
			if r.Label == c.Options.Dense && r.Summary[m].Mean.Valid() {
				y := f.y(float64(r.Summary[m].Mean))
				s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="6 4"/>`, f.x0, y, f.x1, y)
				s.text(f.x1-4, y-6, "end", `fill="#555"`, "dense: "+r.Label)
			}
		}
	}
	if len(idx) == 0 {
		s.text((f.x0+f.x1)/2, (f.y0+f.y1)/2, "middle", `fill="#a00"`, "no run records a sparsity (eval run --sparsity)")
		return s.html()
	}
	if !slices.ContainsFunc(idx, func(i int) bool { return c.Runs[i].Summary[m].Mean.Valid() }) {
		s.text((f.x0+f.x1)/2, (f.y0+f.y1)/2, "middle", `fill="#a00"`, "no "+m+" scores: every verdict was unreadable or missing")
	}
	var methods []string // in order of first appearance among the runs
	for _, r := range c.Runs {
		if r.Sparsity != nil && !slices.Contains(methods, r.Method) {
			methods = append(methods, r.Method)
		}
	}
	for mi, meth := range methods {
		col := color(mi)
		var pts []string
		for _, i := range idx {
			r := c.Runs[i]
			a := r.Summary[m]
			if r.Method != meth || !a.Mean.Valid() {
				continue
			}
			px, py := x(*r.Sparsity), f.y(float64(a.Mean))
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
			if a.SD.Valid() && a.SD > 0 {
				y0, y1 := f.y(max(lo, float64(a.Mean-a.SD))), f.y(min(hi, float64(a.Mean+a.SD)))
				s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-opacity="0.5"/>`, px, y0, px, y1, col)
			}
			s.add(`<circle cx="%.1f" cy="%.1f" r="5" fill="%s"><title>%s</title></circle>`, px, py, col,
				html.EscapeString(fmt.Sprintf("%s: %s %.2f ± %.2f", r.Label, m, float64(a.Mean), float64(a.SD))))
		}
		if len(pts) > 1 {
			s.add(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"/>`, strings.Join(pts, " "), col)
		}
		ly := f.y0 + 10 + float64(mi)*22
		s.add(`<rect x="%.1f" y="%.1f" width="14" height="14" fill="%s"/>`, f.x1+20, ly-11, col)
		s.text(f.x1+40, ly, "start", `fill="#222"`, meth)
	}
	return s.html()
}

// plotPersonas draws grouped bars: for every persona, one bar per run.
func (c *Comparison) plotPersonas(m string) template.HTML {
	k := len(c.Runs)
	bw := math.Max(4, math.Min(18, 120/float64(k)))
	group := float64(k)*bw + 14
	W := math.Max(820, 80+group*float64(len(c.Personas))+20)
	legendRows := (k + 3) / 4
	H := 430.0 + 20*float64(legendRows)
	s := newSVG(W, H, m+" by persona")
	var vals []float64
	for _, r := range c.Runs {
		for _, v := range r.PerPersona {
			vals = append(vals, float64(v[m]))
		}
	}
	lo, hi := scale(m, vals)
	f := frame{x0: 64, y0: 24 + 20*float64(legendRows), x1: W - 20, y1: H - 130, lo: lo, hi: hi}
	s.yAxis(f, m)
	for ri, r := range c.Runs {
		lx := 70 + float64(ri%4)*((W-80)/4)
		ly := 18 + 20*float64(ri/4)
		s.add(`<rect x="%.1f" y="%.1f" width="14" height="14" fill="%s"/>`, lx, ly-11, color(ri))
		s.text(lx+20, ly, "start", `fill="#222"`, r.Label)
	}
	step := math.Max(group, (f.x1-f.x0-20)/float64(max(len(c.Personas), 1)))
	if !slices.ContainsFunc(vals, func(v float64) bool { return !math.IsNaN(v) }) {
		s.text((f.x0+f.x1)/2, (f.y0+f.y1)/2, "middle", `fill="#a00"`, "no "+m+" scores: every verdict was unreadable or missing")
	}
	for pi, p := range c.Personas {
		gx := f.x0 + 10 + float64(pi)*step + (step-group)/2
		for ri, r := range c.Runs {
			v, ok := r.PerPersona[p][m]
			if !ok || !v.Valid() {
				continue
			}
			top := f.y(math.Min(hi, math.Max(lo, float64(v))))
			s.add(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
				gx+float64(ri)*bw, top, bw-1, math.Max(0, f.y1-top), color(ri), html.EscapeString(fmt.Sprintf("%s, %s: %.2f", p, r.Label, float64(v))))
		}
		cx := gx + float64(k)*bw/2
		s.text(cx, f.y1+14, "end", fmt.Sprintf(`transform="rotate(-40 %.1f %.1f)" fill="#333"`, cx, f.y1+14), p)
	}
	return s.html()
}

// plotDiffs draws each run's difference from the reference run with its
// bootstrap interval.
func (c *Comparison) plotDiffs(m string) template.HTML {
	var ds []Diff
	for _, d := range c.Diffs {
		if d.Metric == m {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return ""
	}
	const W = 820.0
	H := 70 + 28*float64(len(ds))
	s := newSVG(W, H, m+": difference from "+c.Reference)
	lo, hi := 0.0, 0.0
	for _, d := range ds {
		for _, v := range []Num{d.Lo, d.Hi, d.Mean} {
			if v.Valid() {
				lo, hi = min(lo, float64(v)), max(hi, float64(v))
			}
		}
	}
	pad := math.Max((hi-lo)*0.08, 0.5)
	lo, hi = lo-pad, hi+pad
	x0, x1 := 220.0, W-30
	x := func(v float64) float64 { return x0 + (v-lo)/(hi-lo)*(x1-x0) }
	y1 := H - 40
	s.add(`<line x1="%.1f" y1="16" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="4 3"/>`, x(0), x(0), y1)
	for _, v := range niceTicks(lo, hi, 6) {
		s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, x(v), y1, x(v), y1+5)
		s.text(x(v), y1+18, "middle", `fill="#333"`, trimNum(v))
	}
	s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, x0, y1, x1, y1)
	s.text((x0+x1)/2, H-4, "middle", `fill="#333"`, fmt.Sprintf("%s − %s (%g%% interval)", m, c.Reference, 100*c.Options.Level))
	for i, d := range ds {
		y := 30 + 28*float64(i)
		col := color(slices.IndexFunc(c.Runs, func(r RunSummary) bool { return r.Label == d.B }))
		s.text(x0-10, y+4, "end", `fill="#222"`, d.B)
		if !d.Mean.Valid() {
			s.text(x0+6, y+4, "start", `fill="#a00"`, "no paired scores")
			continue
		}
		s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, x(float64(d.Lo)), y, x(float64(d.Hi)), y, col)
		s.add(`<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/>`, x(float64(d.Mean)), y, col)
	}
	return s.html()
}

func fmtNum(v Num, digits int) string {
	if !v.Valid() {
		return "—"
	}
	return fmt.Sprintf("%.*f", digits, float64(v))
}

func digitsFor(m string) int {
	if m == roleplay.MetricRougeL || strings.HasPrefix(m, "gym_") || m == roleplay.MetricPScore {
		return 3
	}
	return 2
}

type pageData struct {
	*Comparison
	Title                           string
	SparsityPlot, PersonaPlot, Diff template.HTML
	Rows                            [][]string // summary table
	PersonaRows                     [][]string
	HasReference                    bool
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"num":    fmtNum,
	"digits": digitsFor,
	"pct": func(v Num) string {
		if !v.Valid() {
			return "—"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(v))
	},
	"sp": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return trimNum(100*(*p)) + "%"
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#1d1d1f;background:#fafafa}
h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;background:#fff;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eef2f7}
td.l,th.l{text-align:left}.warn{background:#fff4e5;border-left:4px solid #e69f00;padding:6px 10px;margin:6px 0}
.note{color:#444;font-size:13px}pre{background:#fff;border:1px solid #ccc;padding:8px;white-space:pre-wrap;font-size:12px}
.plot{background:#fff;border:1px solid #ddd;margin:8px 0;overflow-x:auto}
</style></head><body>
<h1>{{.Title}}</h1>
<div class="note">{{len .Runs}} run(s); headline metric <b>{{.Options.Metric}}</b>; differences against <b>{{.Reference}}</b>; created {{.Created.Format "2006-01-02 15:04 MST"}}.</div>
{{range .Warnings}}<div class="warn">{{.}}</div>{{end}}

<h2>Summary (mean ± SD over personas)</h2>
<table><tr><th class="l">run</th><th class="l">method</th><th>sparsity</th>{{range .Metrics}}<th>{{.}}</th>{{end}}<th>failures</th><th>refusals</th></tr>
{{range .Rows}}<tr>{{range $i, $c := .}}<td{{if lt $i 2}} class="l"{{end}}>{{$c}}</td>{{end}}</tr>{{end}}
</table>

<h2>{{.Options.Metric}} against sparsity</h2>
<div class="plot">{{.SparsityPlot}}</div>
<h2>{{.Options.Metric}} by persona</h2>
<div class="plot">{{.PersonaPlot}}</div>
{{if .Diff}}<h2>Differences from {{.Reference}}</h2><div class="plot">{{.Diff}}</div>{{end}}

{{if .Diffs}}<table><tr><th class="l">run</th><th class="l">metric</th><th>difference</th><th>interval</th><th>pairs</th><th>personas</th></tr>
{{range .Diffs}}<tr><td class="l">{{.B}}</td><td class="l">{{.Metric}}</td><td>{{num .Mean (digits .Metric)}}</td><td>[{{num .Lo (digits .Metric)}}, {{num .Hi (digits .Metric)}}]</td><td>{{.Pairs}}</td><td>{{.Personas}}</td></tr>{{end}}
</table>{{end}}

{{if .Recovered}}<h2>Share of the dense model's drop recovered</h2>
<div class="note">1 − drop<sub>run</sub> / drop<sub>baseline</sub>, drop = dense − score (Persona-Pruner).</div>
<table><tr><th class="l">run</th><th class="l">baseline</th><th class="l">metric</th><th>drop (run)</th><th>drop (baseline)</th><th>recovered</th></tr>
{{range .Recovered}}<tr><td class="l">{{.Run}}</td><td class="l">{{.Baseline}}</td><td class="l">{{.Metric}}</td><td>{{num .DropRun 2}}</td><td>{{num .DropBaseline 2}}</td><td>{{pct .Share}}</td></tr>{{end}}
</table>{{end}}

{{if .Pairwise}}<h2>Pairwise (both orders)</h2>
<table><tr><th class="l">A</th><th class="l">B</th><th>items</th><th>A wins</th><th>B wins</th><th>ties</th><th>unreadable</th><th>orders agree</th><th>B win rate</th></tr>
{{range .Pairwise}}<tr><td class="l">{{.A}}</td><td class="l">{{.B}}</td><td>{{.Items}}</td><td>{{.WinsA}}</td><td>{{.WinsB}}</td><td>{{.Ties}}</td><td>{{.Invalid}}</td><td>{{.Consistent}}</td><td>{{pct .WinRateB}}</td></tr>{{end}}
</table>{{end}}

<h2>{{.Options.Metric}} per persona</h2>
<table><tr><th class="l">persona</th>{{range .Runs}}<th>{{.Label}}</th>{{end}}</tr>
{{range .PersonaRows}}<tr>{{range $i, $c := .}}<td{{if eq $i 0}} class="l"{{end}}>{{$c}}</td>{{end}}</tr>{{end}}
</table>

<h2>Reference metrics</h2>
{{if not .HasReference}}<div class="note">No multiple-choice tests or perplexity in these runs (eval run --mc-tests, --ppl-data).</div>{{end}}
{{range .Runs}}{{$r := .}}{{with .Reference}}{{if .MC}}<table><tr><th class="l">{{$r.Label}}: multiple-choice test</th><th>items</th><th>accuracy</th><th>matching rate</th><th>mean margin</th></tr>
{{range .MC}}<tr><td class="l">{{.Name}}{{if .Opposing}} (opposing){{end}}</td><td>{{.Items}}</td><td>{{printf "%.3f" .Accuracy}}</td><td>{{printf "%.3f" .MatchingRate}}</td><td>{{printf "%+.3f" .MeanMargin}}</td></tr>{{end}}</table>{{end}}
{{if .PPL}}<table><tr><th class="l">{{$r.Label}}: perplexity data</th><th>samples</th><th>tokens</th><th>NLL</th><th>perplexity</th></tr>
{{range .PPL}}<tr><td class="l">{{.Name}}</td><td>{{.Samples}}</td><td>{{.Tokens}}</td><td>{{printf "%.4f" .NLL}}</td><td>{{printf "%.3f" .PPL}}</td></tr>{{end}}</table>{{end}}{{end}}{{end}}
{{range .Notes}}<div class="note">• {{.}}</div>{{end}}

<h2>Runs</h2>
<table><tr><th class="l">run</th><th class="l">model</th><th class="l">fingerprint</th><th class="l">set</th><th class="l">judge</th><th>items</th><th>answered</th><th>scored</th><th class="l">status</th></tr>
{{range .Runs}}<tr><td class="l">{{.Label}}</td><td class="l">{{.Model}}</td><td class="l">{{short .Fingerprint}}</td><td class="l">{{.Set.Name}} ({{.Set.Personas}} personas, {{.Set.Questions}} questions)</td><td class="l">{{with .Judge}}{{.Model}} · {{.PromptVersion}}{{else}}none{{end}}</td><td>{{.Counts.Items}}</td><td>{{.Counts.Answered}}</td><td>{{.Counts.Scored}}</td><td class="l">{{if .Complete}}complete{{else}}incomplete: {{.Error}}{{end}}</td></tr>{{end}}
</table>

{{if .Prompts}}<h2>Judge prompts</h2>
{{range .Prompts}}<h3>{{.Title}} <span class="note">({{.Name}}, {{.Version}}, {{.Family}}, scale {{.Lo}}–{{.Hi}}, max {{.MaxTokens}} tokens)</span></h3>
<pre>{{if .System}}[system]
{{.System}}

{{end}}[user]
{{.User}}</pre>{{end}}{{end}}
{{range .Pairwise}}<h3>Pairwise prompt <span class="note">({{.PromptVersion}}, {{.A}} vs {{.B}})</span></h3><pre>{{.Prompt}}</pre>{{end}}
</body></html>
`))

// WriteHTML renders the comparison as one self-contained HTML page: inline
// CSS and SVG, no scripts, no external resources.
func (c *Comparison) WriteHTML(w io.Writer) error {
	m := c.Options.Metric
	d := pageData{Comparison: c, Title: "masque role-play evaluation"}
	if len(c.Runs) == 1 {
		d.Title += ": " + c.Runs[0].Label
	}
	if m != "" {
		d.SparsityPlot = c.plotSparsity(m)
		d.PersonaPlot = c.plotPersonas(m)
		d.Diff = c.plotDiffs(m)
	}
	for _, r := range c.Runs {
		if r.Reference != nil && (len(r.Reference.MC) > 0 || len(r.Reference.PPL) > 0) {
			d.HasReference = true
		}
		row := []string{r.Label, r.Method, "—"}
		if r.Sparsity != nil {
			row[2] = trimNum(100*(*r.Sparsity)) + "%"
		}
		fails, refs := 0, 0
		for _, mm := range c.Metrics {
			a, ok := r.Summary[mm]
			if !ok {
				row = append(row, "—")
				continue
			}
			dg := digitsFor(mm)
			if a.Mean.Valid() {
				row = append(row, fmt.Sprintf("%s ± %s (%d)", fmtNum(a.Mean, dg), fmtNum(a.SD, dg), a.N))
			} else {
				row = append(row, "—")
			}
			fails += a.Failures
			refs += a.Refusals
		}
		d.Rows = append(d.Rows, append(row, fmt.Sprint(fails), fmt.Sprint(refs)))
	}
	for _, p := range c.Personas {
		row := []string{p}
		for _, r := range c.Runs {
			v, ok := r.PerPersona[p][m]
			if !ok {
				v = Num(math.NaN())
			}
			row = append(row, fmtNum(v, digitsFor(m)))
		}
		d.PersonaRows = append(d.PersonaRows, row)
	}
	return page.Execute(w, d)
}

// Save writes compare.json (when jsonPath is not empty) and the HTML page
// (when htmlPath is not empty), each atomically.
func (c *Comparison) Save(jsonPath, htmlPath string) error {
	if jsonPath != "" {
		data, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(jsonPath, func(w io.Writer) error {
			_, err := w.Write(append(data, '\n'))
			return err
		}); err != nil {
			return err
		}
	}
	if htmlPath != "" {
		return atomicfile.WriteFile(htmlPath, c.WriteHTML)
	}
	return nil
}
