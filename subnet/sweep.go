package subnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/eval/mc"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/stats"
)

// Test is a multiple-choice persona test (package eval/mc) run with every
// mask of a sweep.
type Test struct {
	Path     string      // the test, .csv or .jsonl
	Prompter mc.Prompter // how questions are rendered
	System   string      // system prompt ("" : the mask alone)
	Limit    int         // evaluate only the first Limit items (≤ 0: all)
}

// run evaluates m; label names the progress stage ("eval "+label).
func (t *Test) run(ctx context.Context, m *model.Model, opposing bool, label string, progress func(string, int, int)) (*mc.Report, error) {
	items, err := mc.Load(t.Path)
	if err != nil {
		return nil, err
	}
	return mc.Evaluate(ctx, m, t.Prompter, items, mc.Options{Name: filepath.Base(t.Path), System: t.System, Opposing: opposing,
		Limit: t.Limit, Progress: stage(progress, "eval "+label)})
}

// SweepConfig is one `masque subnet` run: a mask per pattern (sparsity) by
// one method, each saved, optionally applied, tested and reported.
type SweepConfig struct {
	Model     *model.Model
	ModelName string // for the report
	Method    Method
	// Patterns are the masks to build, one per entry (Method is set from
	// the config). With several, every output path gets "-s0.30" (Suffixed).
	Patterns []Options

	// StatsDir holds statistics saved by masque stats (checked against the
	// model). Without it Wanda collects statistics over Calib, and SparseGPT
	// prunes layer by layer over Calib, each block seeing the pruned blocks
	// before it; magnitude needs none.
	StatsDir   string
	Calib      calib.Source
	CalibModel calib.Model

	Out       string            // mask file (.safetensors), required
	ModelOut  string            // also write the masked model (SparseGPT: with its updated weights) here
	Files     map[string][]byte // extra files for ModelOut (a tokenizer for models without a folder)
	Overwrite bool              // replace existing outputs
	Test      *Test             // run with the dense model and every mask
	Report    string            // HTML report (density per layer and module, accuracy against sparsity)

	// Progress, if set, follows each stage (named, e.g. "wanda ρ=0.50").
	Progress func(stage string, done, total int)
	// Logf, if set, receives notes and warnings.
	Logf func(format string, a ...any)
}

// SweepRun is one mask of a sweep.
type SweepRun struct {
	Sparsity float64            `json:"sparsity"`
	Density  float64            `json:"density"`
	Mask     string             `json:"mask"`
	ModelOut string             `json:"model_out,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"` // "accuracy" with a Test
}

// Sweep builds, saves and evaluates the masks of cfg, and writes its report.
func Sweep(ctx context.Context, cfg SweepConfig) ([]SweepRun, error) {
	m, meth := cfg.Model, cfg.Method
	if cfg.Out == "" {
		return nil, errors.New("subnet: no output mask file")
	}
	many := len(cfg.Patterns) > 1
	for _, o := range cfg.Patterns {
		o.Method = meth
		if err := o.Validate(&m.Config); err != nil {
			return nil, err
		}
		if meth == SparseGPT && o.Structured {
			return nil, errors.New("SparseGPT does not support --structured")
		}
		if err := checkFree(cfg.Overwrite, Suffixed(cfg.Out, o, many)); err != nil {
			return nil, err
		}
	}
	st, set, err := cfg.statistics(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Title: "masque subnet: " + string(meth), Model: cfg.ModelName, Method: string(meth)}
	if st != nil {
		rep.Calibration = fmt.Sprintf("%s (%d samples, %d tokens)", st.Manifest.Calibration.Name, st.Manifest.Samples, st.Manifest.Tokens)
	} else if set != nil {
		rep.Calibration = fmt.Sprintf("%s (%d samples, %d tokens)", set.Name, len(set.Samples), set.Tokens())
	}
	if cfg.Test != nil {
		r, err := cfg.Test.run(ctx, m, false, "dense", cfg.Progress)
		if err != nil {
			return nil, err
		}
		dense := RunFromMask("dense", 0, mask.New(m))
		dense.Metrics = map[string]float64{"accuracy": r.Accuracy}
		rep.Runs = append(rep.Runs, dense)
	}
	var runs []SweepRun
	for _, o := range cfg.Patterns {
		run, rr, err := cfg.one(ctx, o, many, st, set)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, rr)
		runs = append(runs, run)
	}
	return runs, writeReport(cfg.Report, rep)
}

// statistics loads or collects what the method needs.
func (cfg *SweepConfig) statistics(ctx context.Context) (*stats.Stats, *calib.Set, error) {
	switch {
	case cfg.StatsDir != "":
		st, err := stats.Load(cfg.StatsDir)
		if err == nil {
			err = st.Check(cfg.Model)
		}
		return st, nil, err
	case cfg.Method == Magnitude:
		return nil, nil, nil
	}
	set, err := BuildCalib(ctx, cfg.Calib, cfg.CalibModel, cfg.Progress, cfg.Logf)
	if err != nil || cfg.Method != Wanda {
		return nil, set, err
	}
	st, err := stats.Collect(ctx, cfg.Model, set.Samples, set.Record(), stats.Options{}, stage(cfg.Progress, "statistics"))
	return st, set, err
}

// one builds, saves, applies and tests the mask of one pattern.
func (cfg *SweepConfig) one(ctx context.Context, o Options, many bool, st *stats.Stats, set *calib.Set) (SweepRun, ReportRun, error) {
	m, meth := cfg.Model, cfg.Method
	o.Method = meth
	o.Progress = stage(cfg.Progress, fmt.Sprintf("%s ρ=%.2f", meth, o.Sparsity))
	var res *Result
	var err error
	if meth == SparseGPT && st == nil {
		o.Progress = nil
		res, err = SparseGPTSequential(ctx, m, set.Samples, set.Record(), o, stage(cfg.Progress, fmt.Sprintf("sparsegpt ρ=%.2f (layer by layer)", o.Sparsity)))
	} else {
		res, err = Prune(m, st, o)
	}
	if err != nil {
		return SweepRun{}, ReportRun{}, err
	}
	run := SweepRun{Sparsity: res.Mask.Info.Sparsity, Density: res.Mask.Density(), Mask: Suffixed(cfg.Out, o, many)}
	if err := res.Mask.Save(run.Mask); err != nil {
		return run, ReportRun{}, err
	}
	if cfg.ModelOut != "" {
		run.ModelOut = Suffixed(cfg.ModelOut, o, many)
		if err := mask.Apply(m, res.Mask, run.ModelOut, mask.ApplyOptions{Overwrite: cfg.Overwrite, Weights: res.Weights, Files: cfg.Files}); err != nil {
			return run, ReportRun{}, err
		}
	} else if meth == SparseGPT {
		logf(cfg.Logf, "note: SparseGPT's updated weights are kept only with --model-out; the mask file alone drops them")
	}
	rr := RunFromMask(fmt.Sprintf("ρ=%.2f", run.Sparsity), run.Sparsity, res.Mask)
	rr.MaskFile = run.Mask
	if cfg.Test != nil {
		mm, err := testModel(m, res.Mask, res.Weights)
		if err != nil {
			return run, rr, err
		}
		r, err := cfg.Test.run(ctx, mm, false, rr.Label, cfg.Progress)
		if err != nil {
			return run, rr, err
		}
		run.Metrics = map[string]float64{"accuracy": r.Accuracy}
		rr.Metrics = run.Metrics
	}
	return run, rr, nil
}

// BuildCalib builds the calibration set src selects, warning through logf
// when persona answers came out empty; the persona answers are the
// "persona answers" stage of progress.
func BuildCalib(ctx context.Context, src calib.Source, m calib.Model, progress func(string, int, int), logf func(string, ...any)) (*calib.Set, error) {
	set, err := src.Build(ctx, m, stage(progress, "persona answers"))
	if err == nil {
		warnEmpty(set, logf)
	}
	return set, err
}

func warnEmpty(set *calib.Set, lf func(string, ...any)) {
	if set.EmptyAnswers > 0 {
		logf(lf, "warning: %d of %d persona answers are empty (the model stopped at once)", set.EmptyAnswers, len(set.Samples))
	}
}

// Suffixed inserts "-s0.30" (the pattern's sparsity) before the extension of
// path when a sweep has several patterns (many).
func Suffixed(path string, o Options, many bool) string {
	if !many || path == "" {
		return path
	}
	ext := filepath.Ext(path)
	if strings.HasSuffix(path, string(filepath.Separator)) || ext == "" {
		return strings.TrimRight(path, string(filepath.Separator)) + fmt.Sprintf("-s%.2f", o.Sparsity)
	}
	return strings.TrimSuffix(path, ext) + fmt.Sprintf("-s%.2f", o.Sparsity) + ext
}

// checkFree refuses to overwrite an existing output unless allowed.
func checkFree(overwrite bool, paths ...string) error {
	if overwrite {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists (use --force to overwrite)", p)
		}
	}
	return nil
}

// writeReport writes rep as HTML to path (nothing when path is empty),
// creating its folder.
func writeReport(path string, rep *Report) error {
	if path == "" {
		return nil
	}
	return atomicfile.WriteFileAll(path, rep.WriteHTML)
}

// stage adapts a staged progress callback to one stage.
func stage(progress func(string, int, int), name string) func(done, total int) {
	if progress == nil {
		return nil
	}
	return func(done, total int) { progress(name, done, total) }
}

func logf(lf func(string, ...any), format string, a ...any) {
	if lf != nil {
		lf(format, a...)
	}
}

// testModel is m as a mask's tests run it: the mask applied per sequence
// (persona.MaskedModel, nothing copied), or, with SparseGPT's updated
// weights w, which change the model itself, a masked copy.
func testModel(m *model.Model, mk *mask.Mask, w mask.Weights) (*model.Model, error) {
	if w != nil {
		return mask.Masked(m, mk, w)
	}
	return persona.MaskedModel(m, mk)
}
