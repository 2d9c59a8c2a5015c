package study

import (
	"fmt"
	"html"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/masque-ai/masque/subnet"
)

func f3(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.3f", v)
}

// meanFid is a subject's mean fidelity over the voices it was evaluated on.
func meanFid(s *Subject, prompted bool) float64 {
	m := s.Empty
	if prompted {
		m = s.Prompted
	}
	var sum float64
	n := 0
	for _, f := range m {
		if x := float64(f.Fidelity); !math.IsNaN(x) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// bestOf returns the subject of a kind for voice v with the highest
// empty-prompt fidelity.
func (res *Results) bestOf(kind, v string) *Subject {
	var best *Subject
	for _, s := range res.Subjects {
		if s.Kind != kind || (kind != KindMagnitude && s.Voice != v) {
			continue
		}
		if f := fid(s, v, false); !math.IsNaN(f) && (best == nil || f > fid(best, v, false)) {
			best = s
		}
	}
	return best
}

// HTML renders report.html: one self-contained page with inline SVG plots.
func (res *Results) HTML() ([]byte, error) {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>masque subnet study</title>\n<style>\n" +
		"body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1150px}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}" +
		"table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}" +
		"td.l,th.l{text-align:left}svg{background:#fff;border:1px solid #ddd;margin:0.5em 0.5em 0.5em 0}.note{color:#555}\n</style></head><body>\n")
	b.WriteString("<h1>Do the masks carry the persona?</h1>\n")
	b.WriteString("<p class=\"note\">Training-free persona masks (METHODS §2) on a model trained on the voices corpus. " +
		"Fidelity is the share of a voice's test prompts whose greedy answer the voice classifier assigns to that voice; " +
		"“empty” runs have no system prompt at all (does the mask alone bring the voice?), “prompted” runs the voice's own persona prompt. " +
		"Held-out perplexity is measured on every corpus voice's test passages under that voice's own prompt; its cost is the ratio to the unmasked model.</p>\n")
	s := res.Settings
	b.WriteString("<table>")
	for _, kv := range [][2]string{
		{"model", res.Model}, {"fingerprint", res.Fingerprint}, {"corpus", res.Corpus},
		{"voices", strings.Join(res.Voices, ", ")},
		{"calibration", fmt.Sprintf("%s split, %d passages per voice, %d tokens each at most, system prompt %v", s.CalibSplit, s.CalibSamples, s.CalibMaxTokens, s.CalibSystem)},
		{"methods", strings.Join(s.Methods, ", ")}, {"patterns", strings.Join(s.Patterns, ", ")},
		{"contrast", fmt.Sprintf("variant %s, φ %s; pairs %v", s.Variant, s.Phi, s.Pairs)},
		{"evaluation", fmt.Sprintf("%d test prompts per voice, %d tokens, T=%.2g, seed %d; held-out perplexity on %d passages per voice (%d tokens)", s.EvalLimit, s.EvalMaxTokens, s.Temperature, s.Seed, s.PPLRows, s.PPLMaxTokens)},
		{"LoRA SFT", map[bool]string{true: fmt.Sprintf("rank %d, %d steps, lr %g", s.SFTRank, s.SFTSteps, s.SFTLR), false: "not run"}[s.SFT]},
		{"Persona-Pruner", map[bool]string{true: fmt.Sprintf("%d steps at %s", s.SculptSteps, strings.Join(s.SculptPatterns, ", ")), false: "not run"}[s.Sculpt]},
		{"jobs", fmt.Sprintf("%d computed, %d read from the cache; %.0f s", res.Computed, res.Cached, res.Seconds)},
		{"files", "results.json; " + res.Registry + " (masque serve --personas)"},
	} {
		b.WriteString("<tr><th class=\"l\">" + kv[0] + "</th><td class=\"l\">" + esc(kv[1]) + "</td></tr>")
	}
	b.WriteString("</table>\n")

	// Headline per voice.
	cols := []string{"unmasked, empty", "unmasked, prompted", "best magnitude, empty", "best mask, empty", "best mask, prompted", "contrastive, empty", "LoRA SFT, empty", "Persona-Pruner, empty"}
	b.WriteString("<h2>Fidelity per voice</h2>\n<table><tr><th class=\"l\">voice</th>")
	for _, c := range cols {
		b.WriteString("<th>" + esc(c) + "</th>")
	}
	b.WriteString("<th class=\"l\">best mask (cost on others ≤ 1.5 where any)</th><th>its perplexity cost, own / others</th></tr>\n")
	heat := make([][]float64, len(res.Voices))
	for i, v := range res.Voices {
		row := []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()}
		if res.Dense != nil {
			row[0], row[1] = fid(res.Dense, v, false), fid(res.Dense, v, true)
		}
		if m := res.bestOf(KindMagnitude, v); m != nil {
			row[2] = fid(m, v, false)
		}
		best := res.Best(v)
		if best != nil {
			row[3], row[4] = fid(best, v, false), fid(best, v, true)
		}
		if c := res.bestOf(KindContrast, v); c != nil {
			row[5] = fid(c, v, false)
		}
		if t := res.bestOf(KindSFT, v); t != nil {
			row[6] = fid(t, v, false)
		}
		if t := res.bestOf(KindSculpt, v); t != nil {
			row[7] = fid(t, v, false)
		}
		heat[i] = row
		b.WriteString("<tr><td class=\"l\">" + esc(v) + "</td>")
		for _, x := range row {
			b.WriteString("<td>" + f3(x) + "</td>")
		}
		if best != nil {
			b.WriteString("<td class=\"l\">" + esc(best.ID) + "</td><td>" + f3(float64(best.CostOwn)) + " / " + f3(float64(best.CostOthers)) + "</td>")
		} else {
			b.WriteString("<td>–</td><td>–</td>")
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
	b.WriteString(subnet.HeatPlot("fidelity per voice and condition", res.Voices, cols, heat))

	// Per method: fidelity and cost against sparsity.
	b.WriteString("<h2>Method and sparsity</h2>\n<p class=\"note\">Means over the studied voices (a magnitude mask is the same for every voice). " +
		"The flat lines are the unmasked model.</p>\n")
	var methods []string
	for _, x := range res.Subjects {
		if (x.Kind == KindSingle || x.Kind == KindMagnitude || x.Kind == KindContrast || x.Kind == KindSculpt) && !slices.Contains(methods, x.Method) {
			methods = append(methods, x.Method)
		}
	}
	for _, meth := range methods {
		for _, metric := range []struct {
			name  string
			y     func(*Subject) float64
			dense func() float64
			fixed bool
		}{
			{"fidelity, empty prompt", func(x *Subject) float64 { return meanFid(x, false) }, func() float64 { return meanFid(res.Dense, false) }, true},
			{"fidelity, own prompt", func(x *Subject) float64 { return meanFid(x, true) }, func() float64 { return meanFid(res.Dense, true) }, true},
			{"held-out perplexity cost, other voices", func(x *Subject) float64 { return float64(x.CostOthers) }, func() float64 { return 1 }, false},
		} {
			ss := seriesFor(res, meth, metric.y)
			if len(ss) == 0 {
				continue
			}
			if res.Dense != nil {
				d := metric.dense()
				ss = append(ss, subnet.Series{Name: "unmasked", X: []float64{0.3, 0.7}, Y: []float64{d, d}})
			}
			lo, hi := 0.0, 1.0
			if !metric.fixed {
				lo, hi = 0, 0
			}
			b.WriteString(subnet.LinePlot(meth+": "+metric.name, "sparsity", metric.name, ss, lo, hi))
		}
	}

	// Overlaps.
	if len(res.Overlaps) > 0 {
		b.WriteString("<h2>How far apart are the voices' masks?</h2>\n<p class=\"note\">Share of linear-weight entries in which two voices' masks differ " +
			"(the paper: opposing personas' masks differ in about 1 % of entries). Similarity: " + esc(res.Similarity.Measure) + ".</p>\n")
		b.WriteString("<table><tr><th class=\"l\">method</th><th class=\"l\">pattern</th><th>mean differ</th><th>min</th><th>max</th><th>Pearson(agreement, similarity)</th></tr>\n")
		var scatter []subnet.Series
		for _, o := range res.Overlaps {
			var xs, ys, all []float64
			for i := range o.Voices {
				for j := i + 1; j < len(o.Voices); j++ {
					all = append(all, o.Differ[i][j])
					xs = append(xs, res.similarityOf(o.Voices[i], o.Voices[j]))
					ys = append(ys, 1-o.Differ[i][j])
				}
			}
			mn, mx, mean := math.NaN(), math.NaN(), math.NaN()
			if len(all) > 0 {
				mn, mx = slices.Min(all), slices.Max(all)
				mean = 0
				for _, x := range all {
					mean += x / float64(len(all))
				}
			}
			fmt.Fprintf(&b, "<tr><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%s</td></tr>\n",
				esc(o.Method), esc(o.Pattern), mean, mn, mx, f3(float64(o.Pearson)))
			scatter = append(scatter, subnet.Series{Name: o.Method + " " + o.Pattern, X: xs, Y: ys, Points: true})
		}
		b.WriteString("</table>\n")
		for _, o := range res.Overlaps {
			b.WriteString(subnet.HeatPlot("entries differing: "+o.Method+" "+o.Pattern, o.Voices, o.Voices, o.Differ))
		}
		b.WriteString(subnet.LinePlot("mask agreement against text similarity (voice pairs)", "text similarity", "1 − share differing", scatter, 0, 0))
		if len(res.Similarity.Voices) > 1 {
			b.WriteString(subnet.HeatPlot("text similarity of the voices", res.Similarity.Voices, res.Similarity.Voices, res.Similarity.Matrix))
		}
	}

	// Contrastive pairs.
	if len(res.Pairs) > 0 {
		b.WriteString("<h2>Contrastive pairs</h2>\n<table><tr><th class=\"l\">pair</th><th class=\"l\">pattern</th><th>contrastive masks differ</th><th>single-persona masks differ</th>" +
			"<th>fidelity p+ contrastive / single, empty</th><th>fidelity p− contrastive / single, empty</th></tr>\n")
		for _, p := range res.Pairs {
			a, bb, _ := strings.Cut(p.Pair, ":")
			fmt.Fprintf(&b, "<tr><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%s</td><td>%s (%s)</td><td>%s / %s</td><td>%s / %s</td></tr>\n",
				esc(p.Pair), esc(p.Pattern), f4(float64(p.Contrast)), f4(float64(p.Single)), esc(p.SingleMethod),
				f3(res.fidOf(KindContrast, a, "", p.Pattern)), f3(res.fidOf(KindSingle, a, p.SingleMethod, p.Pattern)),
				f3(res.fidOf(KindContrast, bb, "", p.Pattern)), f3(res.fidOf(KindSingle, bb, p.SingleMethod, p.Pattern)))
		}
		b.WriteString("</table>\n")
	}

	// Every subject.
	b.WriteString("<h2>Every configuration</h2>\n<table><tr><th class=\"l\">configuration</th><th>kept</th><th>fidelity empty</th><th>T=0.8 empty</th>" +
		"<th>fidelity prompted</th><th>conditioning ratio</th><th>held-out ppl own</th><th>cost own</th><th>cost others</th><th class=\"l\">evaluations</th></tr>\n")
	all := append([]*Subject{}, res.Subjects...)
	if res.Dense != nil {
		all = append([]*Subject{res.Dense}, all...)
	}
	for _, x := range all {
		var t08, cond []float64
		for _, f := range x.Empty {
			t08 = append(t08, float64(f.FidelityT08))
		}
		for _, f := range x.Prompted {
			cond = append(cond, float64(f.ConditioningRatio))
		}
		links := ""
		for i, mode := range []map[string]Figures{x.Empty, x.Prompted} {
			for _, f := range mode {
				links += fmt.Sprintf(`<a href="%s" title="%s">%s</a> `, esc(filepath.ToSlash(filepath.Join(f.Run, "report.html"))), esc(f.Run), []string{"empty", "prompted"}[i])
				break
			}
		}
		fmt.Fprintf(&b, "<tr><td class=\"l\">%s</td><td>%.3f</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class=\"l\">%s</td></tr>\n",
			esc(x.ID), x.Density, f3(meanFid(x, false)), f3(mean(t08)), f3(meanFid(x, true)), f3(mean(cond)),
			f3(float64(x.HeldOutOwn)), f3(float64(x.CostOwn)), f3(float64(x.CostOthers)), links)
	}
	b.WriteString("</table>\n<p class=\"note\">Written by masque subnet study.</p>\n</body></html>\n")
	return []byte(b.String()), nil
}

func f4(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.4f", v)
}

func mean(v []float64) float64 {
	var s float64
	n := 0
	for _, x := range v {
		if !math.IsNaN(x) {
			s += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

func (res *Results) similarityOf(a, b string) float64 {
	i, j := slices.Index(res.Similarity.Voices, a), slices.Index(res.Similarity.Voices, b)
	if i < 0 || j < 0 {
		return math.NaN()
	}
	return res.Similarity.Matrix[i][j]
}

func (res *Results) fidOf(kind, v, method, pattern string) float64 {
	for _, s := range res.Subjects {
		if s.Kind == kind && s.Voice == v && s.Pattern != nil && s.Pattern.String() == pattern && (method == "" || s.Method == method) {
			return fid(s, v, false)
		}
	}
	return math.NaN()
}

// seriesFor returns, for one method, a series per granularity of the mean
// over subjects of y against sparsity.
func seriesFor(res *Results, method string, y func(*Subject) float64) []subnet.Series {
	type acc struct{ sum, n map[float64]float64 }
	byG := map[string]*acc{}
	var order []string
	for _, s := range res.Subjects {
		if s.Method != method || s.Pattern == nil {
			continue
		}
		g := s.Pattern.Granularity
		if byG[g] == nil {
			byG[g] = &acc{map[float64]float64{}, map[float64]float64{}}
			order = append(order, g)
		}
		if v := y(s); !math.IsNaN(v) {
			byG[g].sum[s.Pattern.Sparsity] += v
			byG[g].n[s.Pattern.Sparsity]++
		}
	}
	var out []subnet.Series
	for _, g := range order {
		a := byG[g]
		var xs []float64
		for x := range a.sum {
			xs = append(xs, x)
		}
		slices.Sort(xs)
		ser := subnet.Series{Name: g}
		for _, x := range xs {
			ser.X = append(ser.X, x)
			ser.Y = append(ser.Y, a.sum[x]/a.n[x])
		}
		out = append(out, ser)
	}
	return out
}
