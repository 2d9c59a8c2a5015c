package subnet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/internal/textarg"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
)

// ContrastConfig is one `masque subnet contrast` run: the masks of two
// opposing personas per pattern, saved, compared, tested and reported.
type ContrastConfig struct {
	Model     *model.Model
	ModelName string // for the report
	// Pos and Neg are statistics specs (see StatsFromSpec) of the positive
	// and the opposing persona.
	Pos, Neg   string
	Calib      calib.Source // truncation, limits and persona options for the specs
	CalibModel calib.Model
	Variant    Variant
	Phi        Phi
	Patterns   []Options // one pair of masks per entry ("-s0.30" suffixes with several)

	OutPos, OutNeg string // mask files, required
	Overwrite      bool
	// Test, if set, scores the p+ mask on the test and the p− mask on its
	// opposing side.
	Test   *Test
	Report string // HTML report

	Progress func(stage string, done, total int)
	Logf     func(format string, a ...any)
}

// ContrastRun is one pattern's pair of masks.
type ContrastRun struct {
	Sparsity  float64            `json:"sparsity"`
	Pos       string             `json:"pos_mask"`
	Neg       string             `json:"neg_mask"`
	DiffShare float64            `json:"diff_share"`        // share of mask entries that differ
	Metrics   map[string]float64 `json:"metrics,omitempty"` // "accuracy (p+)", "accuracy (p− opposing)"
}

// RunContrast builds the contrastive masks of cfg.
func RunContrast(ctx context.Context, cfg ContrastConfig) ([]ContrastRun, error) {
	many := len(cfg.Patterns) > 1
	for _, o := range cfg.Patterns {
		if err := checkFree(cfg.Overwrite, Suffixed(cfg.OutPos, o, many), Suffixed(cfg.OutNeg, o, many)); err != nil {
			return nil, err
		}
	}
	for _, o := range cfg.Patterns {
		if err := o.Validate(&cfg.Model.Config); err != nil {
			return nil, err
		}
	}
	sp, err := StatsFromSpec(ctx, cfg.Pos, "pos", cfg.Calib, cfg.CalibModel, cfg.Progress, cfg.Logf)
	if err != nil {
		return nil, err
	}
	sn, err := StatsFromSpec(ctx, cfg.Neg, "neg", cfg.Calib, cfg.CalibModel, cfg.Progress, cfg.Logf)
	if err != nil {
		return nil, err
	}
	rep := &Report{Title: "masque subnet contrast (" + string(cfg.Variant) + ")", Model: cfg.ModelName, Method: "contrast-" + string(cfg.Variant),
		Calibration: fmt.Sprintf("pos: %s (%d samples); neg: %s (%d samples)", sp.Manifest.Calibration.Name, sp.Manifest.Samples, sn.Manifest.Calibration.Name, sn.Manifest.Samples)}
	var rows []ContrastRun
	for _, o := range cfg.Patterns {
		r, ra, rb, err := cfg.pair(ctx, o, many, sp, sn)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, ra, rb)
		rows = append(rows, r)
	}
	return rows, writeReport(cfg.Report, rep)
}

func (cfg *ContrastConfig) pair(ctx context.Context, o Options, many bool, sp, sn *stats.Stats) (ContrastRun, ReportRun, ReportRun, error) {
	var ra, rb ReportRun
	o.Progress = stage(cfg.Progress, fmt.Sprintf("contrast ρ=%.2f", o.Sparsity))
	a, b, err := Contrast(cfg.Model, sp, sn, ContrastOptions{Options: o, Variant: cfg.Variant, Phi: cfg.Phi})
	if err != nil {
		return ContrastRun{}, ra, rb, err
	}
	r := ContrastRun{Sparsity: a.Info.Sparsity, Pos: Suffixed(cfg.OutPos, o, many), Neg: Suffixed(cfg.OutNeg, o, many)}
	if err := a.Save(r.Pos); err != nil {
		return r, ra, rb, err
	}
	if err := b.Save(r.Neg); err != nil {
		return r, ra, rb, err
	}
	d, err := mask.Diff(a, b)
	if err != nil {
		return r, ra, rb, err
	}
	r.DiffShare = d.Total.Share
	ra = RunFromMask(fmt.Sprintf("p+ ρ=%.2f", r.Sparsity), r.Sparsity, a)
	rb = RunFromMask(fmt.Sprintf("p− ρ=%.2f", r.Sparsity), r.Sparsity, b)
	ra.MaskFile, rb.MaskFile = r.Pos, r.Neg
	if cfg.Test == nil {
		return r, ra, rb, nil
	}
	names := []string{"accuracy (p+)", "accuracy (p− opposing)"}
	r.Metrics = map[string]float64{}
	for i, mk := range []*mask.Mask{a, b} {
		mm, err := testModel(cfg.Model, mk, nil)
		if err != nil {
			return r, ra, rb, err
		}
		rp, err := cfg.Test.run(ctx, mm, i == 1, []string{"p+", "p−"}[i], cfg.Progress)
		if err != nil {
			return r, ra, rb, err
		}
		r.Metrics[names[i]] = rp.Accuracy
	}
	ra.Metrics = map[string]float64{names[0]: r.Metrics[names[0]]}
	rb.Metrics = map[string]float64{names[1]: r.Metrics[names[1]]}
	return r, ra, rb, nil
}

// StatsFromSpec returns statistics from a spec, the small language of
// contrast's --pos and --neg: a statistics folder (masque stats; checked
// against the model), a text file (one sample per line), a chat .jsonl
// file, "persona:DESCRIPTION" (or persona:@FILE) or "generic". Sets are
// truncated and limited as src says and collected as the "SIDE statistics"
// stage; side names the spec in errors ("--pos: ...").
func StatsFromSpec(ctx context.Context, spec, side string, src calib.Source, m calib.Model, progress func(string, int, int), lf func(string, ...any)) (*stats.Stats, error) {
	var set *calib.Set
	var err error
	o := src.Options
	switch {
	case spec == "":
		return nil, fmt.Errorf("--%s is required", side)
	case spec == "generic":
		set, err = calib.Generic(m.Tok, o)
	case strings.HasPrefix(spec, "persona:"):
		desc, rerr := textarg.Read(strings.TrimPrefix(spec, "persona:"))
		if rerr != nil {
			return nil, fmt.Errorf("--%s: %w", side, rerr)
		}
		if set, err = src.FromPersona(ctx, m, desc, stage(progress, "persona answers")); err == nil {
			warnEmpty(set, lf)
		}
	default:
		fi, serr := os.Stat(spec)
		switch {
		case serr != nil:
			return nil, fmt.Errorf("--%s: %w (want a statistics folder, a .txt or .jsonl file, persona:TEXT or generic)", side, serr)
		case fi.IsDir():
			st, err := stats.Load(spec)
			if err != nil {
				return nil, err
			}
			return st, st.Check(m.Model)
		case strings.EqualFold(filepath.Ext(spec), ".jsonl"):
			set, err = calib.FromChatJSONL(spec, m.Chat, o)
		default:
			set, err = calib.FromTextFile(spec, m.Tok, o)
		}
	}
	if err != nil {
		return nil, err
	}
	return stats.Collect(ctx, m.Model, set.Samples, set.Record(), stats.Options{}, stage(progress, side+" statistics"))
}
