// Package report compares role-play evaluation runs (run.json files written
// by eval/roleplay) and renders the comparison as JSON and as a
// self-contained HTML page with inline SVG plots, viewable offline.
//
// For every metric it reports each run's mean and SD over personas, the
// per-persona means, the difference of every run from a reference run with a
// paired, persona-stratified bootstrap confidence interval (seeded, so
// reproducible), the Persona-Pruner "share of the dense model's drop
// recovered" (1 − drop_method / drop_baseline), and optionally pairwise
// win rates from a judge (Pairwise). Run is the whole pipeline of
// "masque eval compare": read runs from disk, compare, judge pairwise, write
// compare.json and report.html.
package report

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/roleplay"
)

// Format is the format name of compare.json.
const Format = "masque-eval-compare/1"

// Num is roleplay.Num: a float64 written as null when undefined.
type Num = roleplay.Num

// Options tune Compare.
type Options struct {
	// Metric is the headline metric of the plots (default: consistency if
	// present, else the first metric).
	Metric string `json:"metric"`
	// Dense is the label of the dense (unpruned) run; default: the first
	// run whose method is "dense". Differences are taken against it (or
	// against the first run when there is none).
	Dense string `json:"dense,omitempty"`
	// Baseline is the label of the baseline run, or a method name whose
	// run at the same sparsity is each run's baseline, for the recovered
	// share. Empty: no recovered share.
	Baseline string `json:"baseline,omitempty"`
	// Resamples is the number of bootstrap resamples (≤ 0: 2000); Seed
	// seeds them; Level is the confidence level (≤ 0 or ≥ 1: 0.95).
	Resamples int     `json:"resamples"`
	Seed      uint64  `json:"seed"`
	Level     float64 `json:"level"`
}

// RunSummary is what the comparison keeps of a run.
type RunSummary struct {
	Label       string                             `json:"label"`
	Method      string                             `json:"method"`
	Sparsity    *float64                           `json:"sparsity,omitempty"`
	Model       string                             `json:"model"`
	Fingerprint string                             `json:"fingerprint"`
	Complete    bool                               `json:"complete"`
	Error       string                             `json:"error,omitempty"`
	Set         roleplay.SetInfo                   `json:"set"`
	Judge       *roleplay.JudgeInfo                `json:"judge,omitempty"`
	Counts      roleplay.Counts                    `json:"counts"`
	Summary     map[string]roleplay.Agg            `json:"summary"`
	PerPersona  map[string]map[string]Num          `json:"per_persona"` // persona → metric → mean
	ByKind      map[string]map[string]roleplay.Agg `json:"summary_by_kind,omitempty"`
	Reference   *roleplay.Reference                `json:"reference,omitempty"`
}

// Diff is run B minus run A on one metric.
type Diff struct {
	Metric string `json:"metric"`
	A      string `json:"a"` // the reference run
	B      string `json:"b"`
	// Mean is the mean over personas of the mean paired difference B − A
	// over the items both runs scored.
	Mean Num `json:"mean"`
	// Lo and Hi bound the bootstrap percentile interval at Level.
	Lo Num `json:"lo"`
	Hi Num `json:"hi"`
	// Pairs and Personas count what entered.
	Pairs    int `json:"pairs"`
	Personas int `json:"personas"`
}

// Recovered is the Persona-Pruner figure for one run: with drop = dense −
// score over the items both the run and the dense run scored (minus the
// run's Diff from the dense run), Share = 1 − drop_run / drop_baseline (1: no drop at all; 0: as bad
// as the baseline). Undefined when the baseline did not drop.
type Recovered struct {
	Metric       string `json:"metric"`
	Run          string `json:"run"`
	Baseline     string `json:"baseline"`
	Dense        string `json:"dense"`
	DropRun      Num    `json:"drop_run"`
	DropBaseline Num    `json:"drop_baseline"`
	Share        Num    `json:"share"`
}

// Comparison is the content of compare.json.
type Comparison struct {
	Format    string           `json:"format"`
	Created   time.Time        `json:"created"`
	Options   Options          `json:"options"`
	Reference string           `json:"reference_run"` // the run differences are taken against
	Metrics   []string         `json:"metrics"`
	Personas  []string         `json:"personas"`
	Runs      []RunSummary     `json:"runs"`
	Diffs     []Diff           `json:"diffs"`
	Recovered []Recovered      `json:"recovered,omitempty"`
	Pairwise  []PairwiseResult `json:"pairwise,omitempty"`
	// Prompts are the judge prompts of the runs, by metric.
	Prompts  []judge.Metric `json:"prompts,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`

	runs []*roleplay.Run
}

// Compare summarises and compares runs.
func Compare(runs []*roleplay.Run, o Options) (*Comparison, error) {
	if len(runs) == 0 {
		return nil, errors.New("compare: no runs")
	}
	if o.Resamples <= 0 {
		o.Resamples = 2000
	}
	if o.Level <= 0 || o.Level >= 1 {
		o.Level = 0.95
	}
	c := &Comparison{Format: Format, Created: time.Now().UTC(), runs: runs}
	// Unique labels.
	seen := map[string]int{}
	for _, r := range runs {
		seen[r.Label]++
		if n := seen[r.Label]; n > 1 {
			r.Label = fmt.Sprintf("%s#%d", r.Label, n)
		}
	}
	for _, r := range runs {
		for _, m := range r.Metrics {
			if !slices.Contains(c.Metrics, m) {
				c.Metrics = append(c.Metrics, m)
			}
		}
		for _, p := range r.Personas {
			if !slices.Contains(c.Personas, p.ID) {
				c.Personas = append(c.Personas, p.ID)
			}
		}
		for _, p := range r.Prompts {
			if !slices.ContainsFunc(c.Prompts, func(q judge.Metric) bool { return q.Name == p.Name && q.User == p.User }) {
				c.Prompts = append(c.Prompts, p)
			}
		}
		c.Runs = append(c.Runs, summarize(r))
		if !r.Complete {
			c.Warnings = append(c.Warnings, fmt.Sprintf("run %s is incomplete (%s): its numbers cover only what was finished", r.Label, r.Error))
		}
	}
	if o.Metric == "" {
		o.Metric = "consistency"
		if !slices.Contains(c.Metrics, o.Metric) && len(c.Metrics) > 0 {
			o.Metric = c.Metrics[0]
		}
	}
	if len(c.Metrics) > 0 && !slices.Contains(c.Metrics, o.Metric) {
		return nil, fmt.Errorf("compare: no run has metric %q (have %s)", o.Metric, strings.Join(c.Metrics, ", "))
	}
	c.checkComparable()
	// A metric a run lacks is undefined there, not zero.
	nan := Num(math.NaN())
	for i := range c.Runs {
		r := &c.Runs[i]
		if r.Summary == nil {
			r.Summary = map[string]roleplay.Agg{}
		}
		for _, m := range c.Metrics {
			if _, ok := r.Summary[m]; !ok {
				r.Summary[m] = roleplay.Agg{Mean: nan, SD: nan}
			}
			for _, p := range c.Personas {
				if r.PerPersona[p] == nil {
					r.PerPersona[p] = map[string]Num{}
				}
				if _, ok := r.PerPersona[p][m]; !ok {
					r.PerPersona[p][m] = nan
				}
			}
		}
	}

	ref := 0
	dense := -1
	if o.Dense != "" {
		dense = slices.IndexFunc(runs, func(r *roleplay.Run) bool { return r.Label == o.Dense })
		if dense < 0 {
			return nil, fmt.Errorf("compare: no run labelled %q (--dense)", o.Dense)
		}
	} else {
		dense = slices.IndexFunc(runs, func(r *roleplay.Run) bool { return strings.EqualFold(r.Method, "dense") })
	}
	if dense >= 0 {
		ref = dense
		o.Dense = runs[dense].Label
	} else {
		c.Notes = append(c.Notes, "no dense run (method \"dense\" or --dense): differences are taken against the first run and no recovered share is computed")
	}
	c.Options = o
	c.Reference = runs[ref].Label
	for i, r := range runs {
		if i == ref {
			continue
		}
		for _, m := range c.Metrics {
			c.Diffs = append(c.Diffs, PairedBootstrap(runs[ref], r, m, o.Resamples, o.Seed, o.Level))
		}
	}
	if dense >= 0 && o.Baseline != "" {
		rec, err := recovered(runs, dense, o.Baseline, c.Metrics)
		if err != nil {
			return nil, err
		}
		c.Recovered = rec
	}
	c.Notes = append(c.Notes,
		fmt.Sprintf("differences: mean over personas of the mean paired difference (items scored in both runs); %g%% percentile intervals from %d persona-stratified paired bootstrap resamples, seed %d", 100*o.Level, o.Resamples, o.Seed))
	if !slices.Contains(c.Metrics, roleplay.MetricStyle) {
		c.Notes = append(c.Notes, roleplay.StyleNote)
	}
	return c, nil
}

func summarize(r *roleplay.Run) RunSummary {
	s := RunSummary{Label: r.Label, Method: r.Method, Sparsity: r.Sparsity, Model: r.Model, Fingerprint: r.Fingerprint,
		Complete: r.Complete, Error: r.Error, Set: r.Set, Judge: r.Judge, Counts: r.Counts, Summary: r.Summary,
		ByKind: r.SummaryByKind, Reference: r.Reference, PerPersona: map[string]map[string]Num{}}
	for _, p := range r.Personas {
		m := map[string]Num{}
		for k, a := range p.Metrics {
			m[k] = a.Mean
		}
		s.PerPersona[p.ID] = m
	}
	return s
}

// checkComparable warns when runs used different sets or judges.
func (c *Comparison) checkComparable() {
	r0 := c.Runs[0]
	for _, r := range c.Runs[1:] {
		if r.Set.Name != r0.Set.Name || r.Set.Questions != r0.Set.Questions {
			c.Warnings = append(c.Warnings, fmt.Sprintf("runs %s and %s used different evaluation sets (%s/%d vs %s/%d questions)", r0.Label, r.Label, r0.Set.Name, r0.Set.Questions, r.Set.Name, r.Set.Questions))
		}
		j0, j := r0.Judge, r.Judge
		if (j0 == nil) != (j == nil) || (j0 != nil && (j0.Model != j.Model || j0.PromptVersion != j.PromptVersion)) {
			c.Warnings = append(c.Warnings, fmt.Sprintf("runs %s and %s were judged differently (judge model or prompt version)", r0.Label, r.Label))
		}
	}
}

// PairedBootstrap compares metric m of run b with run a over the items both
// scored (matched by item ID). The statistic is the mean over personas of
// each persona's mean difference b − a; the interval comes from resampling,
// within every persona, its paired differences with replacement (a
// persona-stratified paired bootstrap) and taking percentiles. The same
// seed gives the same interval.
func PairedBootstrap(a, b *roleplay.Run, m string, resamples int, seed uint64, level float64) Diff {
	d := Diff{Metric: m, A: a.Label, B: b.Label, Mean: Num(math.NaN()), Lo: Num(math.NaN()), Hi: Num(math.NaN())}
	groups, pairs := pairedDiffs(a, b, m)
	d.Pairs, d.Personas = pairs, len(groups)
	if d.Pairs == 0 {
		return d
	}
	stat := func(pick func(g []float64) float64) float64 {
		var s float64
		for _, g := range groups {
			s += pick(g)
		}
		return s / float64(len(groups))
	}
	d.Mean = Num(stat(mean))
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	boot := make([]float64, resamples)
	for k := range boot {
		boot[k] = stat(func(g []float64) float64 {
			var s float64
			for range g {
				s += g[rng.IntN(len(g))]
			}
			return s / float64(len(g))
		})
	}
	slices.Sort(boot)
	alpha := (1 - level) / 2
	d.Lo, d.Hi = Num(quantile(boot, alpha)), Num(quantile(boot, 1-alpha))
	return d
}

// pairedDiffs returns, per persona (in b's order), the differences b − a of
// metric m over the items both runs scored (matched by item ID), and how
// many pairs there are in all.
func pairedDiffs(a, b *roleplay.Run, m string) (groups [][]float64, pairs int) {
	av := map[string]float64{}
	for _, it := range a.Items {
		if s, ok := it.Scores[m]; ok && s.OK {
			av[it.ID] = s.Value
		}
	}
	byPersona := map[string][]float64{}
	var order []string
	for _, it := range b.Items {
		s, ok := it.Scores[m]
		x, ok2 := av[it.ID]
		if !ok || !s.OK || !ok2 {
			continue
		}
		if _, seen := byPersona[it.Persona]; !seen {
			order = append(order, it.Persona)
		}
		byPersona[it.Persona] = append(byPersona[it.Persona], s.Value-x)
		pairs++
	}
	for _, p := range order {
		groups = append(groups, byPersona[p])
	}
	return groups, pairs
}

// pairedMean is Diff.Mean without the interval: the mean over personas of
// the mean paired difference b − a of metric m; NaN with no pairs.
func pairedMean(a, b *roleplay.Run, m string) Num {
	groups, pairs := pairedDiffs(a, b, m)
	if pairs == 0 {
		return Num(math.NaN())
	}
	var s float64
	for _, g := range groups {
		s += mean(g)
	}
	return Num(s / float64(len(groups)))
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// quantile is the q-quantile of sorted v with linear interpolation
// between order statistics.
func quantile(v []float64, q float64) float64 {
	if len(v) == 1 {
		return v[0]
	}
	pos := q * float64(len(v)-1)
	i := int(math.Floor(pos))
	if i >= len(v)-1 {
		return v[len(v)-1]
	}
	f := pos - float64(i)
	return v[i]*(1-f) + v[i+1]*f
}

// recovered computes the recovered share of every run other than the dense
// one and its baseline. Each drop is the paired difference from the dense
// run, the same statistic as the run's Diff (items scored by both runs,
// mean of the persona means), so with missing items the recovered share
// and the "Δ vs dense" lines agree: DropRun is minus the run's Diff.Mean.
func recovered(runs []*roleplay.Run, dense int, baseline string, metrics []string) ([]Recovered, error) {
	byLabel := slices.IndexFunc(runs, func(r *roleplay.Run) bool { return r.Label == baseline })
	hasMethod := slices.ContainsFunc(runs, func(r *roleplay.Run) bool { return r.Method == baseline })
	if byLabel < 0 && !hasMethod {
		return nil, fmt.Errorf("compare: no run is labelled %q and none has method %q (--baseline)", baseline, baseline)
	}
	var out []Recovered
	for i, r := range runs {
		if i == dense || i == byLabel || (byLabel < 0 && r.Method == baseline) {
			continue
		}
		b := byLabel
		if b < 0 {
			b = findBaseline(runs, baseline, r.Sparsity)
			if b < 0 {
				continue
			}
		}
		for _, m := range metrics {
			dr, db := -pairedMean(runs[dense], r, m), -pairedMean(runs[dense], runs[b], m)
			if !dr.Valid() || !db.Valid() {
				continue
			}
			rec := Recovered{Metric: m, Run: r.Label, Baseline: runs[b].Label, Dense: runs[dense].Label,
				DropRun: dr, DropBaseline: db, Share: Num(math.NaN())}
			if rec.DropBaseline > 0 {
				rec.Share = 1 - rec.DropRun/rec.DropBaseline
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

// findBaseline picks the run of the baseline method at the given sparsity,
// or the only run of that method.
func findBaseline(runs []*roleplay.Run, method string, sp *float64) int {
	var idx []int
	for i, r := range runs {
		if r.Method == method {
			idx = append(idx, i)
		}
	}
	for _, i := range idx {
		if sp != nil && runs[i].Sparsity != nil && math.Abs(*runs[i].Sparsity-*sp) < 1e-9 {
			return i
		}
	}
	if len(idx) == 1 {
		return idx[0]
	}
	return -1
}

// sortedBySparsity returns run indices with a sparsity, by method then
// sparsity.
func (c *Comparison) sortedBySparsity() []int {
	var idx []int
	for i, r := range c.Runs {
		if r.Sparsity != nil {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return cmp.Or(strings.Compare(c.Runs[a].Method, c.Runs[b].Method), cmp.Compare(*c.Runs[a].Sparsity, *c.Runs[b].Sparsity))
	})
	return idx
}
