package sculpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// UnmarshalJSON reads Figures back from compare.json (null is NaN).
func (f *Figures) UnmarshalJSON(data []byte) error {
	var raw struct {
		PPL               *float64 `json:"ppl"`
		GenericPPL        *float64 `json:"generic_ppl"`
		Fidelity          *float64 `json:"fidelity"`
		ConditioningRatio *float64 `json:"conditioning_ratio"`
		Params            int64    `json:"params"`
		Dir               string   `json:"dir"`
		Seconds           float64  `json:"seconds"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	val := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*f = Figures{PPL: val(raw.PPL), GenericPPL: val(raw.GenericPPL), Fidelity: val(raw.Fidelity),
		ConditioningRatio: val(raw.ConditioningRatio), Params: raw.Params, Dir: raw.Dir, Seconds: raw.Seconds}
	return nil
}

// LoadCompare reads a finished comparison (dir/compare.json).
func LoadCompare(dir string) (*CompareResult, error) {
	path := filepath.Join(dir, CompareFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sculpt: %s is not a finished comparison: %w", dir, err)
	}
	var r CompareResult
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("sculpt: %s: %v", path, err)
	}
	if r.Format != compareFormat {
		return nil, fmt.Errorf("sculpt: %s: not a sculpt comparison (format %q, want %q)", path, r.Format, compareFormat)
	}
	if r.Methods[MethodPersonaPruner] == nil {
		return nil, fmt.Errorf("sculpt: %s has no %s figures", path, MethodPersonaPruner)
	}
	return &r, nil
}

// ReportConfig gathers finished comparisons into one report (issue 14,
// item 6) with the mask analyses (item 5).
type ReportConfig struct {
	// Dirs are comparison folders (`masque sculpt compare --out`, holding
	// compare.json) and, for the seed-to-seed analysis, further sculpt run
	// folders of Persona-Pruner (other seeds of a compared persona).
	Dirs []string
	// Corpus is the voices corpus for the persona similarity (default:
	// the one recorded in the first comparison, when it is there).
	Corpus string
	// Out receives summary.json and summary.html (none when empty).
	Out string
}

// ReportRow is one comparison: one persona at one ratio.
type ReportRow struct {
	Persona string              `json:"persona"`
	Ratio   float64             `json:"ratio"`
	Dir     string              `json:"dir"`
	Dense   Figures             `json:"dense"`
	Methods map[string]*Figures `json:"methods"`
	// BestBaseline, DropAvoided, BestBaselineFidelity and
	// DropAvoidedFidelity are compare.json's.
	BestBaseline         string   `json:"best_baseline"`
	DropAvoided          *float64 `json:"drop_avoided_vs_best_baseline"`
	BestBaselineFidelity string   `json:"best_baseline_fidelity,omitempty"`
	DropAvoidedFidelity  *float64 `json:"drop_avoided_fidelity_vs_best_baseline"`
	// BeatsPPL: Persona-Pruner's persona perplexity is lower than every
	// other method's (the global mask included). BeatsFidelity: its
	// fidelity is higher than every other method's (nil when not
	// measured). BeatsGlobal: its persona perplexity is lower than the
	// global mask's (nil without a global mask).
	BeatsPPL      bool  `json:"beats_every_baseline_ppl"`
	BeatsFidelity *bool `json:"beats_every_baseline_fidelity"`
	BeatsGlobal   *bool `json:"beats_global_mask_ppl"`
}

// RatioSummary is the headline of one ratio, over the personas compared.
type RatioSummary struct {
	Ratio    float64  `json:"ratio"`
	Personas []string `json:"personas"`
	// MeanDropAvoided is the mean over personas of 1 − drop_PP /
	// drop_best_baseline (perplexity), over the personas where it is
	// defined (Defined of them); MeanDropAvoidedFidelity the same for the
	// fidelity.
	MeanDropAvoided         *float64 `json:"mean_drop_avoided_vs_best_baseline"`
	Defined                 int      `json:"drop_avoided_defined"`
	MeanDropAvoidedFidelity *float64 `json:"mean_drop_avoided_fidelity_vs_best_baseline"`
	DefinedFidelity         int      `json:"drop_avoided_fidelity_defined"`
	// BeatsPPL, BeatsFidelity and BeatsGlobal count the personas where
	// Persona-Pruner wins (see ReportRow); FidelityCompared and
	// GlobalCompared the personas where the fidelity, and a global mask,
	// were measured.
	BeatsPPL         int `json:"beats_every_baseline_ppl"`
	BeatsFidelity    int `json:"beats_every_baseline_fidelity"`
	BeatsGlobal      int `json:"beats_global_mask_ppl"`
	FidelityCompared int `json:"fidelity_compared"`
	GlobalCompared   int `json:"global_compared"`
	// Analysis compares the Persona-Pruner masks of this ratio: the
	// comparisons' own and the extra run folders given.
	Analysis *Analysis `json:"analysis,omitempty"`
}

// Report is summary.json.
type Report struct {
	Format   string         `json:"format"`
	Rows     []ReportRow    `json:"rows"`
	Ratios   []RatioSummary `json:"ratios"`
	Corpus   string         `json:"corpus,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
	Finished time.Time      `json:"finished"`
}

const (
	compareFormat = "masque-sculpt-compare/1"
	reportFormat  = "masque-sculpt-report/1"
	// SummaryFile is BuildReport's JSON file in Out.
	SummaryFile = "summary.json"
)

// BuildReport reads finished comparisons (and extra Persona-Pruner runs)
// and writes the report: per persona and ratio, the dense model against
// Persona-Pruner and every baseline; per ratio, the headline averaged over
// personas and the mask analyses.
func BuildReport(cfg ReportConfig) (*Report, error) {
	if len(cfg.Dirs) == 0 {
		return nil, errors.New("sculpt: no comparison folders to report on")
	}
	rep := &Report{Format: reportFormat, Corpus: cfg.Corpus}
	var extra []*RunInfo
	seen := map[[2]string]string{}
	for _, d := range cfg.Dirs {
		if _, err := os.Stat(filepath.Join(d, CompareFile)); err != nil {
			// Not a comparison: a Persona-Pruner run folder for the
			// seed analysis.
			ri, rerr := LoadRun(d)
			if rerr != nil {
				return nil, fmt.Errorf("sculpt: %s holds neither %s nor %s", d, CompareFile, RunFile)
			}
			if ri.Method != MethodPersonaPruner || ri.Persona == "" {
				return nil, fmt.Errorf("sculpt: %s is a %q run; only Persona-Pruner runs of one persona join the mask analysis", d, ri.Method)
			}
			extra = append(extra, ri)
			continue
		}
		c, err := LoadCompare(d)
		if err != nil {
			return nil, err
		}
		key := [2]string{c.Persona, fmt.Sprint(c.Ratio)}
		if prev, ok := seen[key]; ok {
			return nil, fmt.Errorf("sculpt: %s and %s both compare %s at ratio %g", prev, d, c.Persona, c.Ratio)
		}
		seen[key] = d
		if rep.Corpus == "" {
			rep.Corpus = c.Corpus
		}
		rep.Rows = append(rep.Rows, reportRow(c, d))
	}
	if len(rep.Rows) == 0 {
		return nil, errors.New("sculpt: no comparison among the folders given (compare.json)")
	}
	sort.SliceStable(rep.Rows, func(i, j int) bool {
		a, b := rep.Rows[i], rep.Rows[j]
		if a.Ratio != b.Ratio {
			return a.Ratio < b.Ratio
		}
		return a.Persona < b.Persona
	})
	corpus := rep.Corpus
	if cfg.Corpus == "" && corpus != "" {
		if _, err := os.Stat(corpus); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("persona similarity left out: the comparisons' corpus %s is not there (give the corpus folder)", corpus))
			corpus = ""
		}
	}
	for _, row := range rep.Rows {
		if len(rep.Ratios) == 0 || rep.Ratios[len(rep.Ratios)-1].Ratio != row.Ratio {
			rep.Ratios = append(rep.Ratios, RatioSummary{Ratio: row.Ratio})
		}
		rs := &rep.Ratios[len(rep.Ratios)-1]
		rs.Personas = append(rs.Personas, row.Persona)
		if row.BeatsPPL {
			rs.BeatsPPL++
		}
		if row.BeatsFidelity != nil {
			rs.FidelityCompared++
			if *row.BeatsFidelity {
				rs.BeatsFidelity++
			}
		}
		if row.BeatsGlobal != nil {
			rs.GlobalCompared++
			if *row.BeatsGlobal {
				rs.BeatsGlobal++
			}
		}
		rs.MeanDropAvoided, rs.Defined = addMean(rs.MeanDropAvoided, rs.Defined, row.DropAvoided)
		rs.MeanDropAvoidedFidelity, rs.DefinedFidelity = addMean(rs.MeanDropAvoidedFidelity, rs.DefinedFidelity, row.DropAvoidedFidelity)
	}
	for i := range rep.Ratios {
		rs := &rep.Ratios[i]
		var runs []string
		for _, row := range rep.Rows {
			if row.Ratio == rs.Ratio {
				if dir := filepath.Join(row.Dir, MethodPersonaPruner); hasRun(dir) {
					runs = append(runs, dir)
				}
			}
		}
		for _, ri := range extra {
			if ri.Ratio == rs.Ratio {
				runs = append(runs, ri.Dir)
			}
		}
		if len(runs) == 0 {
			continue
		}
		a, err := Analyze(AnalyzeConfig{Runs: runs, Corpus: corpus})
		if err != nil {
			return nil, err
		}
		rs.Analysis = a
	}
	for _, ri := range extra {
		if !slices.ContainsFunc(rep.Ratios, func(rs RatioSummary) bool { return rs.Ratio == ri.Ratio }) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("run %s (ratio %g) matches no comparison's ratio and is left out", ri.Dir, ri.Ratio))
		}
	}
	rep.Finished = time.Now().UTC()
	if cfg.Out != "" {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return nil, fmt.Errorf("sculpt: %w", err)
		}
		if err := writeReport(cfg.Out, strings.TrimSuffix(SummaryFile, ".json"), rep, rep.HTML); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func hasRun(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, RunFile))
	return err == nil
}

// addMean folds v into the running mean m of n values.
func addMean(m *float64, n int, v *float64) (*float64, int) {
	if v == nil || !finite(*v) {
		return m, n
	}
	s := *v
	if m != nil {
		s = (*m*float64(n) + *v) / float64(n+1)
	}
	return &s, n + 1
}

func reportRow(c *CompareResult, dir string) ReportRow {
	row := ReportRow{Persona: c.Persona, Ratio: c.Ratio, Dir: dir, Dense: c.Dense, Methods: c.Methods, BestBaseline: c.BestBaseline,
		DropAvoided: c.DropAvoided, BestBaselineFidelity: c.BestBaselineFidelity, DropAvoidedFidelity: c.DropAvoidedFidelity}
	pp := c.Methods[MethodPersonaPruner]
	row.BeatsPPL = finite(pp.PPL)
	fid := finite(pp.Fidelity)
	others := 0
	for name, f := range c.Methods {
		if notBaseline(name) {
			continue
		}
		others++
		if !(pp.PPL < f.PPL) && finite(f.PPL) {
			row.BeatsPPL = false
		}
		if finite(f.Fidelity) && !(pp.Fidelity > f.Fidelity) {
			fid = false
		}
	}
	if others == 0 {
		row.BeatsPPL = false
	}
	if finite(pp.Fidelity) && others > 0 {
		row.BeatsFidelity = &fid
	}
	if g := c.Methods[MethodGlobal]; g != nil && finite(g.PPL) && finite(pp.PPL) {
		b := pp.PPL < g.PPL
		row.BeatsGlobal = &b
	}
	return row
}

var reportTmpl = template.Must(template.New("r").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>masque sculpt report</title>
<style>body{font-family:sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;margin-bottom:12px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}.win{font-weight:bold}</style>
</head><body>
<h1>Persona-Pruner vs baselines</h1>
{{range .Notes}}<p><i>{{.}}</i></p>{{end}}
<h2>Headline</h2>
<p>Share of the best baseline's drop from the dense model that Persona-Pruner avoids, 1 − drop_PP / drop_best, averaged over personas
(perplexity of the persona's held-out split; fidelity of eval voices). "Wins" count the personas where Persona-Pruner is strictly better than every other method,
the global mask included.</p>
<table><tr><th>ratio</th><th>personas</th><th>drop avoided (ppl)</th><th>drop avoided (fidelity)</th><th>wins on ppl</th><th>wins on fidelity</th><th>beats the global mask (ppl)</th></tr>
{{range .Heads}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
{{range .Tables}}
<h2>{{.Title}}</h2>
<p>{{.Sub}}</p>
<table><tr><th>method</th><th>persona ppl</th><th>generic ppl</th><th>fidelity</th><th>conditioning ratio</th><th>parameters</th></tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
{{end}}
{{range .Analyses}}<h1>Masks at ratio {{.Ratio}}</h1>{{.Body}}{{end}}
</body></html>
`))

// HTML renders summary.html.
func (r *Report) HTML() ([]byte, error) {
	num := func(v float64, f string) string {
		if !finite(v) {
			return "–"
		}
		return fmt.Sprintf(f, v)
	}
	pct := func(v *float64, n int) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.1f %% (%d)", 100**v, n)
	}
	var heads [][]string
	for _, rs := range r.Ratios {
		n := len(rs.Personas)
		heads = append(heads, []string{fmt.Sprint(rs.Ratio), fmt.Sprint(n), pct(rs.MeanDropAvoided, rs.Defined), pct(rs.MeanDropAvoidedFidelity, rs.DefinedFidelity),
			fmt.Sprintf("%d / %d", rs.BeatsPPL, n), fmt.Sprintf("%d / %d", rs.BeatsFidelity, rs.FidelityCompared), fmt.Sprintf("%d / %d", rs.BeatsGlobal, rs.GlobalCompared)})
	}
	type table struct {
		Title, Sub string
		Rows       [][]string
	}
	var tables []table
	for _, row := range r.Rows {
		t := table{Title: fmt.Sprintf("%s at ratio %g", row.Persona, row.Ratio)}
		t.Sub = fmt.Sprintf("Best baseline by perplexity: %s, drop avoided %s; by fidelity: %s, drop avoided %s. Folder %s.",
			row.BestBaseline, pct(row.DropAvoided, 1), row.BestBaselineFidelity, pct(row.DropAvoidedFidelity, 1), row.Dir)
		add := func(name string, f *Figures) {
			t.Rows = append(t.Rows, []string{name, num(f.PPL, "%.3f"), num(f.GenericPPL, "%.3f"), num(f.Fidelity, "%.3f"),
				num(f.ConditioningRatio, "%.3f"), fmt.Sprint(f.Params)})
		}
		add("dense", &row.Dense)
		for _, mt := range displayOrder() {
			if f := row.Methods[mt]; f != nil {
				add(mt, f)
			}
		}
		tables = append(tables, t)
	}
	type analysis struct {
		Ratio float64
		Body  template.HTML
	}
	var as []analysis
	for _, rs := range r.Ratios {
		if rs.Analysis == nil {
			continue
		}
		body, err := rs.Analysis.bodyHTML()
		if err != nil {
			return nil, err
		}
		as = append(as, analysis{rs.Ratio, body})
	}
	var b bytes.Buffer
	err := reportTmpl.Execute(&b, map[string]any{"Notes": r.Notes, "Heads": heads, "Tables": tables, "Analyses": as})
	return b.Bytes(), err
}
