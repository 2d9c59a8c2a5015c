package synth

import (
	"fmt"
	"html"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// report gathers what the HTML report shows.
type report struct {
	stage     string
	stats     *FinalStats
	lengths   []float64 // words per kept output
	rejected  []float64 // words per rejected output
	attrs     map[string]map[string]int
	seenChars map[string]bool
	scores    []float64
}

func newReport(stage string) *report {
	return &report{stage: stage, attrs: map[string]map[string]int{}, seenChars: map[string]bool{}}
}

func words(s string) float64 { return float64(len(strings.Fields(s))) }

var firstNumber = regexp.MustCompile(`\d+`)

// addAttrs counts the profile attributes of one character.
func (r *report) addAttrs(key, profile string) {
	if r.seenChars[key] {
		return
	}
	r.seenChars[key] = true
	for f, v := range profileAttrs(profile) {
		if f == "Age" {
			v = ageBin(v)
		} else {
			v = strings.ToLower(strings.TrimRight(v, ". "))
			if len(v) > 40 {
				v = v[:40] + "…"
			}
		}
		if r.attrs[f] == nil {
			r.attrs[f] = map[string]int{}
		}
		r.attrs[f][v]++
	}
}

func ageBin(v string) string {
	n, err := strconv.Atoi(firstNumber.FindString(v))
	switch {
	case err != nil:
		return "unknown"
	case n < 18:
		return "under 18"
	case n < 30:
		return "18–29"
	case n < 45:
		return "30–44"
	case n < 60:
		return "45–59"
	case n < 100:
		return "60–99"
	}
	return "100+"
}

func (r *report) addKept(stage string, row *anyRow) {
	switch stage {
	case StageScores:
		if row.Score != nil {
			r.scores = append(r.scores, *row.Score)
		}
		return
	case StageProfiles:
		r.addAttrs(row.ID, row.Character)
	case StageAnswers:
		r.addAttrs(row.CharacterID, row.System)
	case StagePersona:
		if row.Score != nil {
			r.scores = append(r.scores, *row.Score)
		}
	}
	r.lengths = append(r.lengths, words(row.text(stage)))
}

func (r *report) addRejected(stage string, row *anyRow) {
	r.rejected = append(r.rejected, words(row.text(stage)))
}

type kv struct {
	k string
	v int
}

func topCounts(m map[string]int, n int) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].v != out[j].v {
			return out[i].v > out[j].v
		}
		return out[i].k < out[j].k
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// barChart is a horizontal bar chart as inline SVG.
func barChart(items []kv, color string) string {
	if len(items) == 0 {
		return "<p class=muted>none</p>"
	}
	const labelW, barW, rowH = 220, 360, 22
	maxV := 1
	for _, it := range items {
		maxV = max(maxV, it.v)
	}
	var b strings.Builder
	h := rowH*len(items) + 4
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img">`, labelW+barW+70, h)
	for i, it := range items {
		y := i*rowH + 2
		w := float64(barW) * float64(it.v) / float64(maxV)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-size="12">%s</text>`, labelW-6, y+15, html.EscapeString(it.k))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, labelW, y+3, max(w, 1), rowH-6, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12">%d</text>`, float64(labelW)+max(w, 1)+4, y+15, it.v)
	}
	b.WriteString("</svg>")
	return b.String()
}

// histogram is a vertical histogram of values as inline SVG.
func histogram(values []float64, bins int, xlabel, color string) string {
	if len(values) == 0 {
		return "<p class=muted>no data</p>"
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi == lo {
		hi = lo + 1
	}
	counts := make([]int, bins)
	for _, v := range values {
		i := int(float64(bins) * (v - lo) / (hi - lo))
		counts[min(max(i, 0), bins-1)]++
	}
	maxC := 1
	for _, c := range counts {
		maxC = max(maxC, c)
	}
	const W, H, left, bottom = 560, 200, 40, 36
	bw := float64(W-left-10) / float64(bins)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img">`, W, H)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#555"/>`, left, H-bottom, W-10, H-bottom)
	for i, c := range counts {
		h := float64(H-bottom-12) * float64(c) / float64(maxC)
		x := float64(left) + float64(i)*bw
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d</title></rect>`, x+1, float64(H-bottom)-h, bw-2, h, color, c)
	}
	fmtNum := func(v float64) string {
		if math.Abs(hi-lo) < 10 {
			return strconv.FormatFloat(v, 'f', 3, 64)
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">%s</text>`, left, H-bottom+14, fmtNum(lo))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`, W-10, H-bottom+14, fmtNum(hi))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>`, (W+left)/2, H-6, html.EscapeString(xlabel))
	fmt.Fprintf(&b, `<text x="4" y="14" font-size="11">max %d</text>`, maxC)
	b.WriteString("</svg>")
	return b.String()
}

func quantiles(v []float64) string {
	if len(v) == 0 {
		return "no rows"
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	q := func(p float64) float64 { return s[int(math.Round(p*float64(len(s)-1)))] }
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return fmt.Sprintf("min %.0f · p10 %.0f · median %.0f · mean %.1f · p90 %.0f · max %.0f", s[0], q(0.1), q(0.5), sum/float64(len(s)), q(0.9), s[len(s)-1])
}

// writeHTML writes the report: a self-contained HTML page with inline SVG.
func (r *report) writeHTML(w io.Writer) error {
	st := r.stats
	var b strings.Builder
	title := "masque synth report: " + r.stage
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}table{border-collapse:collapse}
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}.muted{color:#888}
.grid{display:flex;flex-wrap:wrap;gap:2em}</style></head><body>
<h1>%s</h1><p class=muted>generated %s</p>
`, html.EscapeString(title), html.EscapeString(title), time.Now().UTC().Format(time.RFC3339))

	b.WriteString("<h2>Rows</h2><table>")
	row := func(k string, v int) { fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td></tr>", html.EscapeString(k), v) }
	row("kept (in the output)", st.Rows)
	rejected := 0
	for _, v := range st.Rejected {
		rejected += v
	}
	row("dropped by a quality check", rejected)
	if st.FlagOnly {
		row("near duplicates (flagged)", st.NearDuplicates)
	} else {
		row("near duplicates (dropped)", st.NearDuplicates)
	}
	row("failed, still to do (rerun)", st.Failed)
	b.WriteString("</table>")

	outcomes := []kv{{"kept", st.Rows}}
	for _, it := range topCounts(st.Rejected, 0) {
		outcomes = append(outcomes, kv{"dropped: " + it.k, it.v})
	}
	if st.NearDuplicates > 0 && !st.FlagOnly {
		outcomes = append(outcomes, kv{"dropped: " + ReasonNearDuplicate, st.NearDuplicates})
	}
	if st.Failed > 0 {
		outcomes = append(outcomes, kv{"failed", st.Failed})
	}
	b.WriteString("<h2>Kept and dropped, by reason</h2>")
	b.WriteString(barChart(outcomes, "#4a7bd0"))
	if len(st.Flagged) > 0 {
		b.WriteString("<h2>Flagged (kept) by reason</h2>")
		b.WriteString(barChart(topCounts(st.Flagged, 0), "#d09a4a"))
	}
	if r.stage != StageScores {
		b.WriteString("<h2>Length of kept outputs (words)</h2>")
		fmt.Fprintf(&b, "<p>%s</p>", quantiles(r.lengths))
		b.WriteString(histogram(r.lengths, 24, "words per output", "#5a9e6f"))
		if len(r.rejected) > 0 {
			b.WriteString("<h2>Length of dropped outputs (words)</h2>")
			fmt.Fprintf(&b, "<p>%s</p>", quantiles(r.rejected))
			b.WriteString(histogram(r.rejected, 24, "words per output", "#c0504d"))
		}
	}
	if len(r.scores) > 0 {
		b.WriteString("<h2>Persona-sensitivity scores</h2>")
		b.WriteString(histogram(r.scores, 24, "s(q)", "#7d5ab0"))
	}
	if len(r.attrs) > 0 {
		fmt.Fprintf(&b, "<h2>Top profile attributes (%d characters)</h2><div class=grid>", len(r.seenChars))
		for _, f := range []string{"Gender", "Age", "Race", "Birthplace"} {
			if m := r.attrs[f]; len(m) > 0 {
				fmt.Fprintf(&b, "<div><h3>%s</h3>%s</div>", f, barChart(topCounts(m, 12), "#4a9bb0"))
			}
		}
		b.WriteString("</div>")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
