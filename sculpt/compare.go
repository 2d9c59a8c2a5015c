package sculpt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/voices"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
)

// Compared methods: the channel baselines run with the persona's data and
// (suffix -generic) with the other voices' data.
const (
	MethodWandaGeneric  = "wanda-generic"
	MethodTaylorGeneric = "taylor-generic"
	// MethodRecovered is Persona-Pruner's model after recovery
	// fine-tuning (CompareConfig.Recover); it is not a baseline.
	MethodRecovered = "persona-pruner+recovery"
)

// displayOrder is the order of the methods in tables.
func displayOrder() []string {
	return append([]string{MethodPersonaPruner, MethodRecovered}, CompareMethods[1:]...)
}

// notBaseline reports whether a method is Persona-Pruner itself.
func notBaseline(name string) bool { return name == MethodPersonaPruner || name == MethodRecovered }

// CompareMethods lists every method Compare runs, Persona-Pruner first.
var CompareMethods = []string{MethodPersonaPruner, MethodGlobal, MethodMagnitude, MethodWanda, MethodWandaGeneric,
	MethodTaylor, MethodTaylorGeneric, MethodDepth, MethodDepthAngular}

// CompareConfig is a comparison of Persona-Pruner with every baseline on
// one persona of a voices corpus.
type CompareConfig struct {
	// Checkpoint is the dense model (required).
	Checkpoint *checkpoint.Checkpoint
	// Corpus and Persona choose the data: the persona's train split to
	// learn and calibrate on, its valid split for the perplexity; the
	// other voices are the generic data.
	Corpus, Persona string
	Ratio           float64
	// Out receives one run folder per method (Out/<method>), the
	// evaluations and compare.json / compare.html. An interrupted
	// comparison resumes: finished methods are read back.
	Out string
	// Learn is the template of the Persona-Pruner and global-mask runs
	// (Steps, LR, BatchTokens, Seed, Estimator, …); Checkpoint, Data, Out,
	// Ratio and Method are filled in.
	Learn Config
	// GlobalPerVoice bounds each voice's rows in the global mask's pooled
	// data (≤ 0: as many as the persona has).
	GlobalPerVoice int
	// GlobalRun, if set, is a finished global-mask run folder (masque
	// sculpt --global) of the same model and ratio, used as the global
	// method instead of learning one for this comparison: one global mask
	// serves the comparisons of every persona.
	GlobalRun string
	// MaxLen cuts conversations to so many tokens (≤ 0: the model's
	// context); MaxRows, if > 0, uses only the persona's first MaxRows
	// training rows (the persona's held-out split stays whole).
	MaxLen, MaxRows int
	// GenericValidRows bounds each other voice's held-out rows in the
	// generic perplexity (default DefaultGenericValidRows; < 0: all).
	GenericValidRows int
	// Methods restricts the methods (nil: CompareMethods; Persona-Pruner
	// is always run).
	Methods []string
	// CalibSamples bounds the calibration sequences of the baselines
	// (default DefaultCalibSamples).
	CalibSamples int
	// NoFidelity skips the persona-fidelity benchmark; FidelityLimit test
	// prompts of the persona are answered (default 20), with at most
	// FidelityMaxTokens tokens (default voices.DefaultMaxTokens).
	NoFidelity                       bool
	FidelityLimit, FidelityMaxTokens int
	// NoExport skips writing the models (the comparison still evaluates
	// them in memory).
	NoExport bool
	// Recover, if set, adds recovery fine-tuning to the Persona-Pruner run
	// and measures the recovered model as MethodRecovered (it needs the
	// export).
	Recover *RecoverConfig
	// Stage, if set, is told what is being done; Learn.Progress reports
	// the learning steps.
	Stage func(format string, a ...any)
}

// Figures are one model's measurements.
type Figures struct {
	// PPL is the perplexity of the persona's valid split (assistant
	// tokens); GenericPPL of the other voices' valid splits.
	PPL        float64 `json:"ppl"`
	GenericPPL float64 `json:"generic_ppl"`
	// Fidelity is the share of the greedy answers to the persona's test
	// prompts classified as the persona (eval/voices); NaN when not
	// measured. ConditioningRatio is eval/voices' ppl(own persona)/mean
	// ppl(other personas) on the persona's test answers.
	Fidelity          float64 `json:"fidelity"`
	ConditioningRatio float64 `json:"conditioning_ratio"`
	Params            int64   `json:"params"`
	// Dir is the method's run folder.
	Dir     string  `json:"dir,omitempty"`
	Seconds float64 `json:"seconds"`
}

// MarshalJSON writes NaN as null.
func (f Figures) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"ppl": nanNil(f.PPL), "generic_ppl": nanNil(f.GenericPPL), "fidelity": nanNil(f.Fidelity),
		"conditioning_ratio": nanNil(f.ConditioningRatio), "params": f.Params, "dir": f.Dir, "seconds": f.Seconds})
}

// CompareResult is compare.json.
type CompareResult struct {
	Format  string              `json:"format"`
	Model   string              `json:"model"`
	Corpus  string              `json:"corpus"`
	Persona string              `json:"persona"`
	Ratio   float64             `json:"ratio"`
	K       int                 `json:"k"`
	DFF     int                 `json:"intermediate_size"`
	Dense   Figures             `json:"dense"`
	Methods map[string]*Figures `json:"methods"`
	// BestBaseline has the lowest persona perplexity among the methods
	// other than Persona-Pruner; DropAvoided = 1 − (ppl_PP − ppl_dense) /
	// (ppl_best − ppl_dense) (null when the best baseline does not lose
	// perplexity). The fidelity versions use the highest fidelity and the
	// fidelity drop.
	BestBaseline         string            `json:"best_baseline"`
	DropAvoided          *float64          `json:"drop_avoided_vs_best_baseline"`
	BestBaselineFidelity string            `json:"best_baseline_fidelity,omitempty"`
	DropAvoidedFidelity  *float64          `json:"drop_avoided_fidelity_vs_best_baseline"`
	Definitions          map[string]string `json:"definitions"`
	Seconds              float64           `json:"seconds"`
	Finished             time.Time         `json:"finished"`
}

// DefaultGenericValidRows is the number of held-out rows of each other
// voice in the generic perplexity.
const DefaultGenericValidRows = 20

// CompareFile is the comparison's JSON file in Out.
const CompareFile = "compare.json"

// Compare runs Persona-Pruner and every baseline at the same ratio on one
// persona and measures each model.
func Compare(ctx context.Context, cfg CompareConfig) (*CompareResult, error) {
	start := time.Now()
	if cfg.Checkpoint == nil || cfg.Checkpoint.Model == nil {
		return nil, errors.New("sculpt: no model")
	}
	if cfg.Out == "" {
		return nil, errors.New("sculpt: no output folder")
	}
	if cfg.Persona == "" {
		return nil, errors.New("sculpt: compare needs a persona of a voices corpus")
	}
	if cfg.Recover != nil && cfg.NoExport {
		return nil, errors.New("sculpt: recovery fine-tuning trains the exported model; it cannot be combined with no export")
	}
	m := cfg.Checkpoint.Model
	k, err := KeepCount(m.Config.Intermediate, cfg.Ratio)
	if err != nil {
		return nil, err
	}
	methods := cfg.Methods
	if methods == nil {
		methods = CompareMethods
	}
	for _, mt := range methods {
		if !slices.Contains(CompareMethods, mt) {
			return nil, fmt.Errorf("sculpt: unknown method %q (want %v)", mt, CompareMethods)
		}
	}
	if !slices.Contains(methods, MethodPersonaPruner) {
		methods = append([]string{MethodPersonaPruner}, methods...)
	}
	if cfg.CalibSamples <= 0 {
		cfg.CalibSamples = DefaultCalibSamples
	}
	if cfg.FidelityLimit <= 0 {
		cfg.FidelityLimit = 20
	}
	stage := cfg.Stage
	if stage == nil {
		stage = func(string, ...any) {}
	}
	do := DataOptions{MaxLen: cfg.MaxLen, Seed: cfg.Learn.Seed, MaxRows: cfg.MaxRows}
	pd, err := LoadPersona(cfg.Checkpoint, cfg.Corpus, cfg.Persona, do)
	if err != nil {
		return nil, err
	}
	others, err := OtherVoices(cfg.Corpus, cfg.Persona)
	if err != nil {
		return nil, err
	}
	perVoice := cfg.GlobalPerVoice
	if perVoice <= 0 {
		perVoice = len(pd.Train)
	}
	gvr := cfg.GenericValidRows
	if gvr == 0 {
		gvr = DefaultGenericValidRows
	}
	gd, err := LoadPooled(cfg.Checkpoint, cfg.Corpus, others, max(1, perVoice), DataOptions{MaxLen: cfg.MaxLen, Seed: cfg.Learn.Seed, MaxValidRows: max(0, gvr)})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	res := &CompareResult{Format: compareFormat, Model: cfg.Checkpoint.Path, Corpus: cfg.Corpus, Persona: cfg.Persona, Ratio: cfg.Ratio,
		K: k, DFF: m.Config.Intermediate, Methods: map[string]*Figures{}, Definitions: map[string]string{}}
	for mt, d := range definitions {
		res.Definitions[mt] = d
	}
	res.Definitions[MethodPersonaPruner] = "Persona-Pruner: TopK(z, k) masks learned on the persona's train split (see its run.json)"
	res.Definitions[MethodGlobal] = "the same learning on all voices pooled (one mask for every persona)"
	if cfg.GlobalRun != "" {
		res.Definitions[MethodGlobal] += "; learned once in " + cfg.GlobalRun + " (see its run.json) and shared by the comparisons of every persona"
	}
	res.Definitions[MethodWandaGeneric] = "Wanda with the other voices' data as calibration"
	res.Definitions[MethodTaylorGeneric] = "Taylor with the other voices' data as calibration"
	res.Definitions["ppl"] = fmt.Sprintf("perplexity of the assistant tokens of the persona's valid split (%d rows)", len(pd.Valid))
	res.Definitions["generic_ppl"] = fmt.Sprintf("perplexity of the assistant tokens of the other voices' valid splits (%d rows: the first %s of each)",
		len(gd.Valid), map[bool]string{true: "all", false: fmt.Sprint(gvr)}[gvr < 0])
	res.Definitions[MethodWanda] += " (persona calibration data)"
	res.Definitions[MethodTaylor] += " (persona calibration data)"

	classifier := filepath.Join(cfg.Corpus, "classifier.bin")
	if _, err := os.Stat(classifier); err != nil {
		classifier = filepath.Join(cfg.Out, "classifier.bin")
	}
	measure := func(name string, mm *model.Model, dir string) (Figures, error) {
		f := Figures{Params: mm.NumParams(), Dir: dir, Fidelity: math.NaN(), ConditioningRatio: math.NaN()}
		net, err := train.New(mm, train.Options{Threads: cfg.Learn.Threads})
		if err != nil {
			return f, err
		}
		bt := max(cfg.Learn.BatchTokens, DefaultBatchTokens)
		r, err := train.EvaluateSet(net, pd.Valid, bt)
		if err != nil {
			return f, err
		}
		f.PPL = math.Exp(r.Mean())
		g, err := train.EvaluateSet(net, gd.Valid, bt)
		if err != nil {
			return f, err
		}
		f.GenericPPL = math.Exp(g.Mean())
		if !cfg.NoFidelity {
			stage("%s: persona fidelity", name)
			sp := cfg.Ratio
			rep, err := voices.Run(ctx, voices.Config{Corpus: cfg.Corpus, Checkpoint: cfg.Checkpoint, Model: mm, ModelName: name, ModelExtra: name,
				Label: name, Method: name, Sparsity: &sp, ClassifierPath: classifier, Voices: []string{cfg.Persona}, Limit: cfg.FidelityLimit,
				MaxTokens: cfg.FidelityMaxTokens, Seed: cfg.Learn.Seed, Out: filepath.Join(cfg.Out, "eval", name)})
			if err != nil {
				return f, err
			}
			if vr := rep.Voices[cfg.Persona]; vr != nil {
				f.Fidelity = float64(vr.Fidelity)
				f.ConditioningRatio = float64(vr.ConditioningRatio)
			}
		}
		return f, nil
	}

	stage("dense model")
	t0 := time.Now()
	if res.Dense, err = measure("dense", m, ""); err != nil {
		return nil, err
	}
	res.Dense.Seconds = time.Since(t0).Seconds()
	for _, mt := range methods {
		if ctx.Err() != nil {
			return nil, ErrInterrupted
		}
		dir := filepath.Join(cfg.Out, mt)
		if mt == MethodGlobal && cfg.GlobalRun != "" {
			dir = cfg.GlobalRun
		}
		t0 := time.Now()
		stage("%s", mt)
		mm, err := cfg.methodModel(ctx, mt, dir, pd, gd)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mt, err)
		}
		f, err := measure(mt, mm, dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mt, err)
		}
		f.Seconds = time.Since(t0).Seconds()
		res.Methods[mt] = &f
		if mt == MethodPersonaPruner && cfg.Recover != nil {
			t0 := time.Now()
			path := filepath.Join(dir, RecoveredDir, recoveredHFPart)
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("sculpt: %s holds a Persona-Pruner run without a recovered model (%s); remove it to rerun with recovery", dir, path)
			}
			rck, err := checkpoint.Open(path, checkpoint.Options{})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", MethodRecovered, err)
			}
			f, err := measure(MethodRecovered, rck.Model, filepath.Join(dir, RecoveredDir))
			rck.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", MethodRecovered, err)
			}
			f.Seconds = time.Since(t0).Seconds()
			res.Methods[MethodRecovered] = &f
			res.Definitions[MethodRecovered] = fmt.Sprintf("Persona-Pruner's model after recovery fine-tuning (%s, %d steps) on the persona's train split; not a baseline", cfg.Recover.Mode, cfg.Recover.Steps)
		}
	}
	res.summarise()
	res.Seconds = time.Since(start).Seconds()
	res.Finished = time.Now().UTC()
	if err := writeReport(cfg.Out, strings.TrimSuffix(CompareFile, ".json"), res, res.HTML); err != nil {
		return nil, err
	}
	return res, nil
}

// methodModel returns the pruned model of one method, reading a finished
// run folder back when there is one.
func (cfg *CompareConfig) methodModel(ctx context.Context, mt, dir string, pd, gd *Data) (*model.Model, error) {
	if mt == MethodGlobal && cfg.GlobalRun != "" {
		return cfg.globalRunModel()
	}
	ck := cfg.Checkpoint
	m := ck.Model
	if _, err := os.Stat(filepath.Join(dir, RunFile)); err == nil {
		if mt == MethodDepth || mt == MethodDepthAngular {
			data, err := os.ReadFile(filepath.Join(dir, RunFile))
			if err != nil {
				return nil, err
			}
			var rec BaselineRecord
			if err := json.Unmarshal(data, &rec); err != nil || rec.Result == nil || rec.Ratio != cfg.Ratio {
				return nil, fmt.Errorf("sculpt: %s holds another run; remove it or choose another output folder", dir)
			}
			return DropLayers(m, rec.Result.Drop)
		}
		keep, fp, err := LoadKeep(filepath.Join(dir, KeepFile))
		if err != nil {
			return nil, err
		}
		if err := checkFingerprint(m, fp, dir); err != nil {
			return nil, err
		}
		k, _ := KeepCount(m.Config.Intermediate, cfg.Ratio)
		if len(keep) > 0 && len(keep[0]) != k {
			return nil, fmt.Errorf("sculpt: %s was made at another ratio (k = %d, not %d); remove it or choose another output folder", dir, len(keep[0]), k)
		}
		return Slice(m, keep)
	}
	switch mt {
	case MethodPersonaPruner, MethodGlobal:
		lc := cfg.Learn
		lc.Checkpoint, lc.Ratio, lc.Out, lc.Method, lc.NoExport = ck, cfg.Ratio, dir, mt, cfg.NoExport
		lc.Data, lc.Persona = pd, cfg.Persona
		if mt == MethodPersonaPruner {
			lc.Recover = cfg.Recover
		}
		if mt == MethodGlobal {
			perVoice := cfg.GlobalPerVoice
			if perVoice <= 0 {
				perVoice = len(pd.Train)
			}
			// The pooled validation loss only tracks the learning: a few
			// held-out rows per voice, as for the generic perplexity.
			gvr := cfg.GenericValidRows
			if gvr == 0 {
				gvr = DefaultGenericValidRows
			}
			all, err := LoadPooled(ck, cfg.Corpus, nil, perVoice, DataOptions{MaxLen: cfg.MaxLen, Seed: cfg.Learn.Seed, MaxValidRows: max(0, gvr)})
			if err != nil {
				return nil, err
			}
			lc.Data, lc.Persona = all, ""
		}
		lc.Resume = hasCheckpoint(filepath.Join(dir, CkptDir))
		r, err := Run(ctx, lc)
		if err != nil {
			return nil, err
		}
		return Slice(m, r.Keep)
	}
	bc := BaselineConfig{Checkpoint: ck, Ratio: cfg.Ratio, Calib: pd, CalibName: "persona " + cfg.Persona, CalibSamples: cfg.CalibSamples,
		BatchTokens: cfg.Learn.BatchTokens, Out: dir, NoExport: cfg.NoExport}
	switch mt {
	case MethodWandaGeneric, MethodTaylorGeneric:
		bc.Calib, bc.CalibName = gd, "generic (the other voices)"
		bc.Method = map[string]string{MethodWandaGeneric: MethodWanda, MethodTaylorGeneric: MethodTaylor}[mt]
	default:
		bc.Method = mt
	}
	r, err := RunBaseline(ctx, bc)
	if err != nil {
		return nil, err
	}
	return r.Model, nil
}

// checkFingerprint refuses keep indices recorded for another model.
// globalRunModel slices the model with the keep indices of cfg.GlobalRun,
// after checking that the run is a global mask of this model and ratio.
func (cfg *CompareConfig) globalRunModel() (*model.Model, error) {
	ri, err := LoadRun(cfg.GlobalRun)
	if err != nil {
		return nil, err
	}
	m := cfg.Checkpoint.Model
	if ri.Method != MethodGlobal {
		return nil, fmt.Errorf("sculpt: %s is a %q run, not a global mask (masque sculpt --global)", cfg.GlobalRun, ri.Method)
	}
	if ri.Ratio != cfg.Ratio {
		return nil, fmt.Errorf("sculpt: %s was learned at ratio %g, not %g", cfg.GlobalRun, ri.Ratio, cfg.Ratio)
	}
	if err := checkFingerprint(m, ri.ModelFingerprint, cfg.GlobalRun); err != nil {
		return nil, err
	}
	return Slice(m, ri.Keep)
}

func checkFingerprint(m *model.Model, fp, where string) error {
	if fp == "" {
		return nil
	}
	if got := fingerprintOf(m); got != fp {
		return fmt.Errorf("sculpt: %s was made for another model (fingerprint %.16s…, this model %.16s…)", where, fp, got)
	}
	return nil
}

func (r *CompareResult) summarise() {
	pp := r.Methods[MethodPersonaPruner]
	bestP, bestF := "", ""
	for name, f := range r.Methods {
		if notBaseline(name) {
			continue
		}
		if finite(f.PPL) && (bestP == "" || f.PPL < r.Methods[bestP].PPL || f.PPL == r.Methods[bestP].PPL && name < bestP) {
			bestP = name
		}
		if finite(f.Fidelity) && (bestF == "" || f.Fidelity > r.Methods[bestF].Fidelity || f.Fidelity == r.Methods[bestF].Fidelity && name < bestF) {
			bestF = name
		}
	}
	r.BestBaseline, r.BestBaselineFidelity = bestP, bestF
	if pp == nil {
		return
	}
	if bestP != "" {
		if drop := r.Methods[bestP].PPL - r.Dense.PPL; drop > 0 {
			v := 1 - (pp.PPL-r.Dense.PPL)/drop
			r.DropAvoided = &v
		}
	}
	if bestF != "" && finite(pp.Fidelity) && finite(r.Dense.Fidelity) {
		if drop := r.Dense.Fidelity - r.Methods[bestF].Fidelity; drop > 0 {
			v := 1 - (r.Dense.Fidelity-pp.Fidelity)/drop
			r.DropAvoidedFidelity = &v
		}
	}
}

var compareTmpl = template.Must(template.New("c").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>masque sculpt compare: {{.R.Persona}} at {{.R.Ratio}}</title>
<style>body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}</style>
</head><body>
<h1>Persona-Pruner vs baselines: {{.R.Persona}}, ratio {{.R.Ratio}} (k = {{.R.K}} of {{.R.DFF}})</h1>
<p>Model {{.R.Model}}; corpus {{.R.Corpus}}. Best baseline by perplexity: {{.R.BestBaseline}}; drop avoided: {{.DA}}. By fidelity: {{.R.BestBaselineFidelity}}; drop avoided: {{.DAF}}.</p>
<table><tr><th>method</th><th>persona ppl</th><th>generic ppl</th><th>fidelity</th><th>conditioning ratio</th><th>parameters</th><th>seconds</th></tr>
{{range .Rows}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td><td>{{index . 2}}</td><td>{{index . 3}}</td><td>{{index . 4}}</td><td>{{index . 5}}</td><td>{{index . 6}}</td></tr>
{{end}}</table>
<h2>Definitions</h2><ul>{{range $k, $v := .R.Definitions}}<li><b>{{$k}}</b>: {{$v}}</li>{{end}}</ul>
</body></html>
`))

// HTML renders compare.html.
func (r *CompareResult) HTML() ([]byte, error) {
	num := func(v float64, f string) string {
		if !finite(v) {
			return "–"
		}
		return fmt.Sprintf(f, v)
	}
	row := func(name string, f *Figures) []string {
		return []string{name, num(f.PPL, "%.3f"), num(f.GenericPPL, "%.3f"), num(f.Fidelity, "%.3f"), num(f.ConditioningRatio, "%.3f"),
			fmt.Sprint(f.Params), fmt.Sprintf("%.1f", f.Seconds)}
	}
	rows := [][]string{row("dense", &r.Dense)}
	for _, mt := range displayOrder() {
		if f := r.Methods[mt]; f != nil {
			rows = append(rows, row(mt, f))
		}
	}
	p := func(v *float64) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.1f %%", 100**v)
	}
	var b bytes.Buffer
	err := compareTmpl.Execute(&b, map[string]any{"R": r, "Rows": rows, "DA": p(r.DropAvoided), "DAF": p(r.DropAvoidedFidelity)})
	return b.Bytes(), err
}
