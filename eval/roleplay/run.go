package roleplay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/rouge"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/jsonlstore"
)

// RunFormat is the format name written to run.json.
const RunFormat = "masque-eval-run/1"

// File names inside a run folder.
const (
	RunFile         = "run.json"          // the results, rewritten whole (atomically) at the end
	GenerationsFile = "generations.jsonl" // append-only cache of answers
	JudgementsFile  = "judgements.jsonl"  // append-only cache of judge replies
)

// Derived metric names (besides the judge.Metric names).
const (
	// MetricPScore is the PersonaGym PScore: per item the mean of the
	// rubric tasks that were scored, then averaged like any metric.
	MetricPScore = "pscore"
	// MetricRougeL is ROUGE-L F of the answer against the reference
	// (RoleBench generated[0]), in [0, 1].
	MetricRougeL = "rouge_l"
)

// StyleNote says why a run has no style scores.
const StyleNote = "style scores: none: give style profiles of the set's personas (masque style profile; masque eval run --style-profile) to score the answers' style, semantic fidelity and VSS (METHODS.md §3)"

// Num is a float64 that is written as JSON null when it is NaN or infinite
// (a mean over nothing).
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler (null reads as NaN).
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// Valid reports whether n is a number (not NaN or infinite).
func (n Num) Valid() bool { return !math.IsNaN(float64(n)) && !math.IsInf(float64(n), 0) }

// Agg summarises one metric over items (for a persona) or over personas
// (for a run).
type Agg struct {
	// Mean is the mean of the persona means (run) or of the item scores
	// (persona); null when nothing was scored.
	Mean Num `json:"mean"`
	// SD is the sample standard deviation of the same values (0 with one).
	SD Num `json:"sd"`
	// N is the number of values: personas with a score (run) or scored
	// items (persona).
	N int `json:"n"`
	// Items is the number of scored items.
	Items int `json:"items"`
	// Failures and Refusals count the items without a score: unreadable
	// judge replies and REFUSAL verdicts.
	Failures int `json:"failures"`
	Refusals int `json:"refusals"`
}

// ItemScore is one metric's score of one answer.
type ItemScore struct {
	judge.Score
	// PromptVersion is the judge prompt's version (judged metrics only).
	PromptVersion string `json:"prompt_version,omitempty"`
	// Reply is the judge's reply when no score could be read from it.
	Reply string `json:"reply,omitempty"`
}

// Item is one question with the answer and its scores.
type Item struct {
	// ID is persona/kind/index.
	ID        string `json:"id"`
	Persona   string `json:"persona"`
	Kind      string `json:"kind"`
	Index     int    `json:"index"`
	Question  string `json:"question"`
	Reference string `json:"reference,omitempty"`
	// Answered says the answer exists (false when the run stopped first).
	Answered     bool                 `json:"answered"`
	Answer       string               `json:"answer"`
	FinishReason string               `json:"finish_reason,omitempty"`
	Scores       map[string]ItemScore `json:"scores,omitempty"`
}

// PersonaResult holds one persona's aggregates.
type PersonaResult struct {
	ID          string         `json:"id"`
	Description string         `json:"description"`
	Metrics     map[string]Agg `json:"metrics"`
}

// SetInfo describes the evaluation set of a run.
type SetInfo struct {
	Name      string `json:"name"`
	Version   string `json:"version,omitempty"`
	Source    string `json:"source"`
	Kind      string `json:"kind"`
	Personas  int    `json:"personas"`
	Questions int    `json:"questions"`
	// Skipped counts the source rows left out (Set.Skipped).
	Skipped int `json:"skipped,omitempty"`
}

// JudgeInfo describes the judge of a run.
type JudgeInfo struct {
	URL           string `json:"url"`
	Model         string `json:"model"`
	PromptVersion string `json:"prompt_version"`
}

// Counts are the run's bookkeeping numbers.
type Counts struct {
	Items       int `json:"items"`
	Answered    int `json:"answered"`
	GenCached   int `json:"generations_cached"`
	Judgements  int `json:"judgements"`
	JudgeCached int `json:"judgements_cached"`
	Scored      int `json:"scored"`
	Failures    int `json:"failures"`
	Refusals    int `json:"refusals"`
}

// Run is the content of run.json: everything one evaluation produced.
type Run struct {
	Format string `json:"format"`
	// Label names the run in comparisons; Method and Sparsity place it in
	// the score-vs-sparsity plot (Sparsity nil: unknown).
	Label    string   `json:"label"`
	Method   string   `json:"method"`
	Sparsity *float64 `json:"sparsity,omitempty"`
	// Model says what was evaluated; Fingerprint is the generator's.
	Model       string     `json:"model"`
	Fingerprint string     `json:"fingerprint"`
	Set         SetInfo    `json:"set"`
	Judge       *JudgeInfo `json:"judge,omitempty"`
	// Metrics lists the metric names in display order.
	Metrics []string `json:"metrics"`
	// Prompts are the judge prompts used, verbatim.
	Prompts  []judge.Metric `json:"prompts,omitempty"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	// Complete is false when the run stopped early; Error says why. Rerun
	// the same command to resume from the caches.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	Counts   Counts `json:"counts"`
	// Summary has, per metric, the mean and SD over personas.
	Summary map[string]Agg `json:"summary"`
	// SummaryByKind splits Summary by question kind.
	SummaryByKind map[string]map[string]Agg `json:"summary_by_kind"`
	Personas      []PersonaResult           `json:"personas"`
	Items         []Item                    `json:"items"`
	Reference     *Reference                `json:"reference,omitempty"`
	Notes         []string                  `json:"notes,omitempty"`
}

// Config is what Evaluate needs.
type Config struct {
	// Out is the run folder: run.json and, unless CacheDir is set, the
	// caches go there.
	Out string
	// CacheDir, if set, holds generations.jsonl and judgements.jsonl
	// instead (several runs may share it).
	CacheDir string
	// Label, Method and Sparsity are recorded (Label defaults to Out's
	// base name, Method to "model").
	Label    string
	Method   string
	Sparsity *float64
	// Model describes the model under test.
	Model string
	// Set is the evaluation set.
	Set *Set
	// Gen answers the questions; GenConcurrency answers at once (≤ 0: 1).
	Gen            Generator
	GenConcurrency int
	// Judge, if set, scores every answer with each of Metrics;
	// JudgeConcurrency requests at once (≤ 0: 4). JudgeURL is recorded.
	Judge            *judge.Judge
	JudgeURL         string
	Metrics          []judge.Metric
	JudgeConcurrency int
	// Reference holds metrics computed outside the run (multiple-choice
	// tests, perplexity); it is stored as given.
	Reference *Reference
	// Style, if set, scores every answer's style against its persona's
	// style profile (and, with references and an embedder, semantic
	// fidelity, VSS and H).
	Style *StyleConfig
	// Progress, if set, is called as work completes; stage is "generate"
	// or "judge".
	Progress func(stage string, done, total int)
}

// Evaluate runs an evaluation: it answers every question of the set with cfg.Gen, has
// every answer judged with each metric, computes ROUGE-L where questions
// have references, aggregates, and writes run.json. Answers and judge
// replies are appended to the caches as soon as they exist, so a rerun
// with the same settings resumes where a failed or interrupted run
// stopped. On failure run.json is still written, with Complete false and
// the error, and the error is returned with the partial Run.
func Evaluate(ctx context.Context, cfg Config) (*Run, error) {
	if cfg.Out == "" || cfg.Set == nil || cfg.Gen == nil {
		return nil, errors.New("roleplay: Out, Set and Gen are required")
	}
	if len(cfg.Metrics) > 0 && cfg.Judge == nil {
		return nil, errors.New("roleplay: judge metrics need a judge")
	}
	if cfg.Style != nil {
		if err := checkStyle(cfg.Style, cfg.Set); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	cacheDir := cfg.CacheDir
	if cacheDir == "" {
		cacheDir = cfg.Out
	}
	gens, err := jsonlstore.Open(filepath.Join(cacheDir, GenerationsFile))
	if err != nil {
		return nil, err
	}
	defer gens.Close()
	var jd *judge.Judge
	if cfg.Judge != nil && len(cfg.Metrics) > 0 {
		js, err := jsonlstore.Open(filepath.Join(cacheDir, JudgementsFile))
		if err != nil {
			return nil, err
		}
		defer js.Close()
		j := *cfg.Judge
		j.Cache = js
		jd = &j
	}
	r := newRun(cfg)
	progress := func(stage string) func(done, total int) {
		if cfg.Progress == nil {
			return nil
		}
		return func(done, total int) { cfg.Progress(stage, done, total) }
	}

	// Stage 1: answers.
	personaOf := map[string]*Persona{}
	for i := range cfg.Set.Personas {
		personaOf[cfg.Set.Personas[i].ID] = &cfg.Set.Personas[i]
	}
	var genCached atomic.Int64
	fp := cfg.Gen.Fingerprint()
	err = forEach(ctx, len(r.Items), max(cfg.GenConcurrency, 1), func(ctx context.Context, i int) error {
		it := &r.Items[i]
		p := personaOf[it.Persona]
		key := jsonlstore.Key("generation", fp, p.System, it.Question)
		var g Generation
		if gens.Get(key, &g) {
			genCached.Add(1)
		} else {
			var err error
			if g, err = cfg.Gen.Generate(ctx, p.System, it.Question); err != nil {
				return fmt.Errorf("answering %s: %w", it.ID, err)
			}
			if err := gens.Put(key, g); err != nil {
				return err
			}
		}
		it.Answer, it.FinishReason, it.Answered = g.Text, g.FinishReason, true
		return nil
	}, progress("generate"))
	r.Counts.GenCached = int(genCached.Load())

	// Stage 2: judgements.
	if err == nil && jd != nil {
		type task struct {
			item int
			m    judge.Metric
		}
		var tasks []task
		for i := range r.Items {
			for _, m := range cfg.Metrics {
				tasks = append(tasks, task{i, m})
			}
		}
		var mu sync.Mutex
		var cached atomic.Int64
		err = forEach(ctx, len(tasks), max(cfg.JudgeConcurrency, 1), func(ctx context.Context, k int) error {
			t := tasks[k]
			it := &r.Items[t.item]
			c := judge.Case{Persona: personaOf[it.Persona].Description, Question: it.Question, Response: it.Answer}
			if jd.Cached(t.m, c) {
				cached.Add(1)
			}
			v, err := jd.Judge(ctx, t.m, c)
			if err != nil {
				return fmt.Errorf("judging %s (%s): %w", it.ID, t.m.Name, err)
			}
			s := ItemScore{Score: v.Score, PromptVersion: v.PromptVersion}
			if !v.OK {
				s.Reply = v.Reply
			}
			mu.Lock()
			it.Scores[t.m.Name] = s
			mu.Unlock()
			return nil
		}, progress("judge"))
		r.Counts.JudgeCached = int(cached.Load())
	}

	// ROUGE-L needs no judge.
	for i := range r.Items {
		it := &r.Items[i]
		if it.Answered && it.Reference != "" {
			s := rouge.L(it.Answer, it.Reference)
			it.Scores[MetricRougeL] = ItemScore{Score: judge.Score{Value: s.F, OK: true, Method: "rouge-l"}}
		}
	}
	if err == nil && cfg.Style != nil {
		err = scoreStyle(ctx, cfg.Style, r)
	}
	r.finish(err)
	if werr := WriteRun(filepath.Join(cfg.Out, RunFile), r); werr != nil {
		return r, errors.Join(err, werr)
	}
	if err != nil {
		return r, fmt.Errorf("%w (partial results are in %s; rerun the same command to resume)", err, cfg.Out)
	}
	return r, nil
}

func newRun(cfg Config) *Run {
	label := cfg.Label
	if label == "" {
		label = filepath.Base(filepath.Clean(cfg.Out))
	}
	method := cfg.Method
	if method == "" {
		method = "model"
	}
	r := &Run{
		Format: RunFormat, Label: label, Method: method, Sparsity: cfg.Sparsity, Model: cfg.Model,
		Fingerprint: cfg.Gen.Fingerprint(), Started: time.Now().UTC(), Reference: cfg.Reference,
		Set: SetInfo{Name: cfg.Set.Name, Version: cfg.Set.Version, Source: cfg.Set.Source, Kind: cfg.Set.Kind,
			Personas: len(cfg.Set.Personas), Questions: cfg.Set.Count(), Skipped: len(cfg.Set.Skipped)},
	}
	if sk := cfg.Set.SkippedSummary(); sk != "" {
		r.Notes = append(r.Notes, "set: "+sk+".")
	}
	if cfg.Judge != nil && len(cfg.Metrics) > 0 {
		r.Judge = &JudgeInfo{URL: cfg.JudgeURL, Model: cfg.Judge.Model, PromptVersion: cfg.Metrics[0].Version}
	}
	gym := false
	for _, m := range cfg.Metrics {
		r.Metrics = append(r.Metrics, m.Name)
		r.Prompts = append(r.Prompts, m)
		gym = gym || m.Family == judge.FamilyPersonaGym
	}
	if gym {
		r.Metrics = append(r.Metrics, MetricPScore)
		r.Notes = append(r.Notes, "PersonaGym-style rubrics are applied to this set's questions; PersonaGym's own generation of task-specific questions is not reproduced.")
	}
	hasRef := false
	for _, p := range cfg.Set.Personas {
		for _, q := range p.Questions {
			hasRef = hasRef || q.Reference != ""
			r.Items = append(r.Items, Item{
				ID: fmt.Sprintf("%s/%s/%02d", p.ID, q.Kind, q.Index), Persona: p.ID, Kind: q.Kind, Index: q.Index,
				Question: q.Text, Reference: q.Reference, Scores: map[string]ItemScore{},
			})
		}
	}
	if hasRef {
		r.Metrics = append(r.Metrics, MetricRougeL)
		r.Notes = append(r.Notes, "rouge_l: ROUGE-L F against the first reference answer; tokens are lower-cased runs of letters, digits and marks, each Han/kana character alone, punctuation dropped, no stemming (package eval/rouge).")
	}
	if cfg.Style != nil {
		sm := styleMetrics(cfg.Style, hasRef)
		r.Metrics = append(r.Metrics, sm...)
		r.Notes = append(r.Notes, styleNote(cfg.Style, sm))
	} else {
		r.Notes = append(r.Notes, StyleNote)
	}
	for _, p := range cfg.Set.Personas {
		r.Personas = append(r.Personas, PersonaResult{ID: p.ID, Description: p.Description})
	}
	return r
}

// finish fills the counts and aggregates.
func (r *Run) finish(err error) {
	r.Finished = time.Now().UTC()
	r.Complete = err == nil
	if err != nil {
		r.Error = err.Error()
		if errors.Is(err, context.Canceled) {
			r.Error = "interrupted: " + r.Error
		}
	}
	gym := slices.Contains(r.Metrics, MetricPScore)
	c := &r.Counts
	c.Items = len(r.Items)
	c.Answered, c.Judgements, c.Scored, c.Failures, c.Refusals = 0, 0, 0, 0, 0
	for i := range r.Items {
		it := &r.Items[i]
		if it.Answered {
			c.Answered++
		}
		var sum float64
		n := 0
		for name, s := range it.Scores {
			if name == MetricRougeL || name == MetricPScore || isStyleMetric(name) {
				continue
			}
			c.Judgements++
			switch {
			case s.OK:
				c.Scored++
			case s.Refusal:
				c.Refusals++
			default:
				c.Failures++
			}
			if m, ok := judge.MetricByName(name); ok && m.Family == judge.FamilyPersonaGym && s.OK {
				sum += s.Value
				n++
			}
		}
		if gym && n > 0 {
			it.Scores[MetricPScore] = ItemScore{Score: judge.Score{Value: sum / float64(n), OK: true, Method: "mean of rubric tasks"}}
		}
	}
	r.Aggregate()
}

// Aggregate recomputes Personas[].Metrics, Summary and SummaryByKind from
// the items.
func (r *Run) Aggregate() {
	r.Summary = map[string]Agg{}
	r.SummaryByKind = map[string]map[string]Agg{}
	var kinds []string
	for _, it := range r.Items {
		if !slices.Contains(kinds, it.Kind) {
			kinds = append(kinds, it.Kind)
		}
	}
	for pi := range r.Personas {
		r.Personas[pi].Metrics = map[string]Agg{}
	}
	for _, m := range r.Metrics {
		per := make([]Agg, len(r.Personas))
		for pi, p := range r.Personas {
			per[pi] = aggItems(r.Items, p.ID, "", m)
			r.Personas[pi].Metrics[m] = per[pi]
		}
		r.Summary[m] = overPersonas(per)
		if len(kinds) > 1 {
			for _, k := range kinds {
				if r.SummaryByKind[k] == nil {
					r.SummaryByKind[k] = map[string]Agg{}
				}
				pk := make([]Agg, len(r.Personas))
				for pi, p := range r.Personas {
					pk[pi] = aggItems(r.Items, p.ID, k, m)
				}
				r.SummaryByKind[k][m] = overPersonas(pk)
			}
		}
	}
}

// aggItems aggregates metric m over one persona's items (of kind k, or all).
func aggItems(items []Item, persona, kind, m string) Agg {
	var vals []float64
	a := Agg{}
	for _, it := range items {
		if it.Persona != persona || (kind != "" && it.Kind != kind) {
			continue
		}
		s, ok := it.Scores[m]
		switch {
		case !ok:
		case s.OK:
			vals = append(vals, s.Value)
		case s.Refusal:
			a.Refusals++
		default:
			a.Failures++
		}
	}
	a.Mean, a.SD = meanSD(vals)
	a.N, a.Items = len(vals), len(vals)
	return a
}

// overPersonas aggregates persona aggregates: mean and SD of their means.
func overPersonas(per []Agg) Agg {
	var vals []float64
	a := Agg{}
	for _, p := range per {
		if p.Mean.Valid() && p.N > 0 {
			vals = append(vals, float64(p.Mean))
		}
		a.Items += p.Items
		a.Failures += p.Failures
		a.Refusals += p.Refusals
	}
	a.Mean, a.SD = meanSD(vals)
	a.N = len(vals)
	return a
}

// meanSD returns the mean and sample standard deviation (NaN, NaN for no
// values; SD 0 for one).
func meanSD(v []float64) (Num, Num) {
	if len(v) == 0 {
		return Num(math.NaN()), Num(math.NaN())
	}
	var s float64
	for _, x := range v {
		s += x
	}
	mean := s / float64(len(v))
	if len(v) == 1 {
		return Num(mean), 0
	}
	var ss float64
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	return Num(mean), Num(math.Sqrt(ss / float64(len(v)-1)))
}

// forEach runs fn(i) for i in [0, n) on workers goroutines. The first error
// cancels the rest and is returned; a cancelled ctx returns its error.
// progress, if set, is called after each success.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error, progress func(done, total int)) error {
	if n == 0 {
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	done := 0
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := fn(ctx, i)
				mu.Lock()
				if err != nil {
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					return
				}
				done++
				if progress != nil {
					progress(done, n)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// OpenCache opens (creating it if needed) an append-only JSONL cache such
// as a run's judgements.jsonl, for a judge.Judge outside Evaluate (for
// example pairwise comparisons). Close it when done.
func OpenCache(path string) (*jsonlstore.Store, error) { return jsonlstore.Open(path) }

// WriteRun writes r as indented JSON to path, atomically.
func WriteRun(path string, r *Run) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}

// ReadRun reads a run.json, given the file or its folder.
func ReadRun(path string) (*Run, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, RunFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading a run: %w", err)
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("reading a run: %s: malformed JSON: %v", path, err)
	}
	if r.Format != RunFormat {
		return nil, fmt.Errorf("reading a run: %s: format %q, want %q", path, r.Format, RunFormat)
	}
	return &r, nil
}
