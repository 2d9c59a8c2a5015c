package voices

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// Colours (Okabe–Ito, as in eval/report).
const (
	colGreedy = "#0072B2"
	colT08    = "#E69F00"
	colOwn    = "#009E73"
	colOther  = "#D55E00"
)

type svg struct{ b strings.Builder }

func newSVGDoc(w, h float64, title string) *svg {
	s := &svg{}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" role="img" font-family="sans-serif" font-size="12"><title>%s</title><rect width="100%%" height="100%%" fill="#ffffff"/>`,
		w, h, w, h, html.EscapeString(title))
	return s
}

func (s *svg) add(format string, a ...any) { fmt.Fprintf(&s.b, format, a...) }

func (s *svg) text(x, y float64, anchor, extra, t string) {
	s.add(`<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`, x, y, anchor, extra, html.EscapeString(t))
}

func (s *svg) html() template.HTML { return template.HTML(s.b.String() + "</svg>") }

// heatMap draws counts (rows × cols) shaded by each row's share.
func heatMap(title string, rows, cols []string, counts [][]int) template.HTML {
	const cell, left, top = 46.0, 90.0, 80.0
	w := left + cell*float64(len(cols)) + 20
	h := top + cell*float64(len(rows)) + 16
	s := newSVGDoc(w, h, title)
	s.text(left+cell*float64(len(cols))/2, 16, "middle", `font-weight="bold"`, title)
	for j, c := range cols {
		x := left + cell*(float64(j)+0.5)
		s.add(`<text x="%.1f" y="%.1f" text-anchor="start" transform="rotate(-45 %.1f %.1f)">%s</text>`, x, top-6, x, top-6, html.EscapeString(c))
	}
	for i, r := range rows {
		y := top + cell*float64(i)
		s.text(left-6, y+cell/2+4, "end", "", r)
		total := 0
		for _, n := range counts[i] {
			total += n
		}
		for j, n := range counts[i] {
			share := 0.0
			if total > 0 {
				share = float64(n) / float64(total)
			}
			// White to #0072B2.
			rr, gg, bb := 255-int(255*share), 255-int((255-114)*share), 255-int((255-178)*share)
			x := left + cell*float64(j)
			stroke := "#dddddd"
			if j < len(rows) && cols[j] == r {
				stroke = "#333333"
			}
			s.add(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="rgb(%d,%d,%d)" stroke="%s"><title>%s → %s: %d of %d</title></rect>`,
				x, y, cell, cell, rr, gg, bb, stroke, html.EscapeString(r), html.EscapeString(cols[j]), n, total)
			if n > 0 {
				fill := "#222222"
				if share > 0.5 {
					fill = "#ffffff"
				}
				s.text(x+cell/2, y+cell/2+4, "middle", fmt.Sprintf(`fill="%s"`, fill), fmt.Sprint(n))
			}
		}
	}
	return s.html()
}

type series struct {
	name  string
	color string
	vals  []float64
}

// bars draws grouped bars per voice, from 0 to hi (hi ≤ 0: the data's
// maximum), with an optional dashed target line.
func bars(title string, voices []string, ss []series, hi, target float64, percent bool) template.HTML {
	const left, top, bottom, group = 60.0, 40.0, 70.0, 64.0
	plotH := 220.0
	legend := 0.0
	for _, x := range ss {
		legend += 24 + 7*float64(len([]rune(x.name)))
	}
	w := max(left+group*float64(len(voices))+30, left+legend+10)
	h := top + plotH + bottom
	if hi <= 0 {
		for _, x := range ss {
			for _, v := range x.vals {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					hi = max(hi, v)
				}
			}
		}
		hi = niceCeil(hi)
	}
	y := func(v float64) float64 { return top + plotH - v/hi*plotH }
	s := newSVGDoc(w, h, title)
	s.text(left+group*float64(len(voices))/2, 18, "middle", `font-weight="bold"`, title)
	for k := 0; k <= 4; k++ {
		v := hi * float64(k) / 4
		s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>`, left, y(v), w-20, y(v))
		lbl := fmt.Sprintf("%.3g", v)
		if percent {
			lbl = fmt.Sprintf("%.0f%%", 100*v)
		}
		s.text(left-6, y(v)+4, "end", `fill="#333"`, lbl)
	}
	bw := (group - 16) / float64(len(ss))
	for i, v := range voices {
		x0 := left + group*float64(i) + 8
		for k, x := range ss {
			val := x.vals[i]
			if math.IsNaN(val) || math.IsInf(val, 0) {
				continue
			}
			top := y(min(val, hi))
			lbl := fmt.Sprintf("%.3g", val)
			if percent {
				lbl = fmt.Sprintf("%.1f%%", 100*val)
			}
			s.add(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				x0+bw*float64(k), top, bw-2, y(0)-top, x.color, html.EscapeString(v), html.EscapeString(x.name), lbl)
		}
		cx := x0 + (group-16)/2
		s.add(`<text x="%.1f" y="%.1f" text-anchor="end" transform="rotate(-35 %.1f %.1f)">%s</text>`, cx, y(0)+16, cx, y(0)+16, html.EscapeString(v))
	}
	if target > 0 && target <= hi {
		s.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333" stroke-dasharray="5,4"/>`, left, y(target), w-20, y(target))
	}
	// Legend.
	lx := left
	for _, x := range ss {
		s.add(`<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/>`, lx, h-18, x.color)
		s.text(lx+16, h-8, "start", "", x.name)
		lx += 24 + 7*float64(len([]rune(x.name)))
	}
	return s.html()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

type htmlVoice struct {
	Name string
	*VoiceResult
	Samples []Item
}

type htmlTarget struct {
	Name, Value, Target string
	Met                 bool
}

type htmlData struct {
	*Report
	Heat, HeatT08, HeatClf template.HTML
	Fidelity, PPL          template.HTML
	TargetRows             []htmlTarget
	Rows                   []htmlVoice
	Override               string
}

func pct(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.3g", v)
}

var page = template.Must(template.New("voices").Funcs(template.FuncMap{
	"pct":  func(v any) string { return pct(toF(v)) },
	"num":  func(v any) string { return num(toF(v)) },
	"log2": func(n int) int { return int(math.Round(math.Log2(float64(n)))) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Persona fidelity: {{.Label}}</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.note{color:#555;font-size:13px}
.ok{color:#007a3d;font-weight:bold}.bad{color:#b00020;font-weight:bold}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plot{border:1px solid #eee;padding:4px}
.ans{white-space:pre-wrap;max-width:700px;text-align:left}
</style></head><body>
<h1>Persona fidelity: {{.Label}}</h1>
<div class="note">model <b>{{.Model}}</b> (method {{.Method}}); corpus {{.Corpus}}; {{.Settings.Limit}} test prompts per voice at most, answers up to {{.Settings.MaxTokens}} tokens, greedy and T={{.Settings.Temperature}} (seed {{.Settings.Seed}}); {{printf "%.0f" .Seconds}} s.{{if .SystemOverride}} System prompt of every generation replaced by: “{{.Override}}”.{{end}}</div>
<h2>Targets</h2>
<table><tr><th class="l">measure</th><th>value</th><th>target</th><th>met</th></tr>
{{range .TargetRows}}<tr><td class="l">{{.Name}}</td><td>{{.Value}}</td><td>{{.Target}}</td><td>{{if .Met}}<span class="ok">yes</span>{{else}}<span class="bad">no</span>{{end}}</td></tr>
{{end}}</table>
<h2>Per voice</h2>
<div class="plots"><div class="plot">{{.Fidelity}}</div><div class="plot">{{.PPL}}</div></div>
<table><tr><th class="l">voice</th><th>prompts</th><th>fidelity</th><th>fidelity T=0.8</th><th>p(own)</th><th>ppl</th><th>ppl own</th><th>ppl other personas</th><th>ratio</th><th>distinct-1</th><th>distinct-2</th><th>repetition</th><th>tokens</th><th>classifier acc.</th></tr>
{{range .Rows}}<tr><td class="l" title="{{.Title}}">{{.Name}}</td><td>{{.Prompts}}</td><td>{{pct .Fidelity}}</td><td>{{pct .FidelityT08}}</td><td>{{printf "%.3f" .POwn}}</td><td>{{num .PPL}}</td><td>{{num .PPLOwn}}</td><td>{{num .PPLOtherPersonas}}</td><td>{{num .ConditioningRatio}}</td><td>{{num .Distinct1}}</td><td>{{num .Distinct2}}</td><td>{{num .Repetition}}</td><td>{{printf "%.1f" .MeanTokens}}</td><td>{{pct .ClassifierAccuracy}}</td></tr>
{{end}}</table>
<div class="note">fidelity: share of answers the voice classifier assigns to the persona's voice. ppl: perplexity of the held-out answers (assistant tokens, the same leading tokens under every persona) under the run's system prompt; ratio = ppl own / mean ppl under the other personas (target ≤ {{.Targets.ConditioningRatio}}). distinct-n over all greedy answers of the voice; repetition: share of repeated word 4-grams within an answer.</div>
<h2>Confusion</h2>
<div class="plots"><div class="plot">{{.Heat}}</div><div class="plot">{{.HeatT08}}</div></div>
<div class="note">Rows: the persona prompted; columns: the voice the classifier assigns to the answer ("none": no known feature); shade: share of the row; the diagonal is outlined.</div>
<h2>Classifier</h2>
<div class="note">Multinomial naive Bayes over hashed word {{.Classifier.Features.WordMin}}–{{.Classifier.Features.WordMax}}-grams and character {{.Classifier.Features.CharMin}}–{{.Classifier.Features.CharMax}}-grams; {{.Classifier.Selected}} features of 2^{{log2 .Classifier.Features.Buckets}} buckets, α = {{.Classifier.Alpha}}; {{.Classifier.Bytes}} bytes{{with .Classifier.Path}} ({{.}}){{end}}. Held-out test passages: {{.Classifier.Test.Texts}}, accuracy {{pct .ClassifierAccuracy}} (macro {{pct .ClassifierAccuracyMacro}}).</div>
<div class="plot" style="display:inline-block">{{.HeatClf}}</div>
<h2>Sample answers (greedy)</h2>
<table><tr><th class="l">voice</th><th class="l">prompt</th><th class="l">answer</th><th class="l">classified</th></tr>
{{range .Rows}}{{range .Samples}}<tr><td class="l">{{.Voice}}</td><td class="l ans">{{.Prompt}}</td><td class="l ans">{{.Greedy.Text}}</td><td class="l">{{.Greedy.Voice}}</td></tr>
{{end}}{{end}}</table>
</body></html>
`))

func toF(v any) float64 {
	switch x := v.(type) {
	case Num:
		return float64(x)
	case float64:
		return x
	case int:
		return float64(x)
	}
	return math.NaN()
}

// HTML renders the report as a self-contained page (inline SVG, no
// external assets).
func (r *Report) HTML() ([]byte, error) {
	d := htmlData{Report: r}
	if r.SystemOverride != nil {
		d.Override = *r.SystemOverride
	}
	d.TargetRows = []htmlTarget{
		{"classifier accuracy on held-out passages", pct(r.ClassifierAccuracy), "≥ " + pct(r.Targets.ClassifierAccuracy), r.Targets.Met["classifier_accuracy"]},
		{"mean fidelity (greedy)", pct(float64(r.MeanFidelity)), "≥ " + pct(r.Targets.MeanFidelity), r.Targets.Met["mean_fidelity"]},
		{"lowest voice fidelity (greedy)", pct(float64(r.MinFidelity)), "≥ " + pct(r.Targets.MinFidelity), r.Targets.Met["min_fidelity"]},
		{"worst conditioning ratio (ppl own / other personas)", num(float64(r.MaxConditioningRatio)), fmt.Sprintf("≤ %g", r.Targets.ConditioningRatio), r.Targets.Met["conditioning_ratio"]},
	}
	var fg, ft, po, pther []float64
	for _, v := range r.VoiceOrder {
		vr := r.Voices[v]
		hv := htmlVoice{Name: v, VoiceResult: vr}
		for _, it := range r.Items {
			if it.Voice == v && len(hv.Samples) < 3 {
				hv.Samples = append(hv.Samples, it)
			}
		}
		d.Rows = append(d.Rows, hv)
		fg, ft = append(fg, float64(vr.Fidelity)), append(ft, float64(vr.FidelityT08))
		po, pther = append(po, float64(vr.PPLOwn)), append(pther, float64(vr.PPLOtherPersonas))
	}
	d.Fidelity = bars("Persona fidelity", r.VoiceOrder, []series{{"greedy", colGreedy, fg}, {"T=0.8", colT08, ft}}, 1, r.Targets.MeanFidelity, true)
	d.PPL = bars("Perplexity of the test answers", r.VoiceOrder, []series{{"own persona", colOwn, po}, {"other personas (mean)", colOther, pther}}, 0, 0, false)
	d.Heat = heatMap("Confusion, greedy answers", r.Confusion.Rows, r.Confusion.Cols, r.Confusion.Greedy)
	d.HeatT08 = heatMap("Confusion, T=0.8 answers", r.Confusion.Rows, r.Confusion.Cols, r.Confusion.T08)
	if t := r.Classifier.Test; t != nil {
		d.HeatClf = heatMap("Classifier on held-out passages", t.Voices, append(append([]string(nil), t.Voices...), "none"), t.Confusion)
	}
	var b bytes.Buffer
	if err := page.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("voices: rendering the report: %w", err)
	}
	return b.Bytes(), nil
}
