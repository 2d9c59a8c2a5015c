package report

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/roleplay"
)

// The files Run writes in its output folder.
const (
	CompareFile = "compare.json" // the Comparison as JSON
	ReportFile  = "report.html"  // the comparison as a self-contained page
)

// OptionsError is an error of Compare: Options ask for what the runs do not
// have (a --dense label, a baseline or a metric no run has) or there are no
// runs. The caller chose wrongly; the runs themselves were read.
type OptionsError struct{ Err error }

func (e *OptionsError) Error() string { return e.Err.Error() }
func (e *OptionsError) Unwrap() error { return e.Err }

// Config configures Run: a comparison of evaluation runs on disk, as
// "masque eval compare" makes it.
type Config struct {
	// Runs are the runs to compare, in order: folders written by
	// roleplay.Evaluate (eval run, eval rolebench, eval voices) or their
	// run.json files.
	Runs []string
	// Options tune the comparison (Compare).
	Options Options
	// Out is the output folder (required; created if needed).
	Out string
	// Judge, when set, also judges every run against the reference run
	// pairwise (AddPairwise), JudgeConcurrency requests at once, with its
	// replies cached in Out/judgements.jsonl so that a rerun resumes.
	Judge            *judge.Judge
	JudgeConcurrency int
	// Progress, when set, follows the pairwise judging of each run by its
	// label.
	Progress func(label string, done, total int)
}

// Run reads cfg.Runs (roleplay.ReadRun), compares them (Compare; its errors
// are *OptionsError), adds the pairwise verdicts when cfg.Judge is set, and
// writes Out/compare.json and Out/report.html. When the pairwise judging
// fails, both files are still written, without the missing verdicts, and
// Run returns the comparison with an error that says so; any other error
// returns no comparison.
func Run(ctx context.Context, cfg Config) (*Comparison, error) {
	if cfg.Out == "" {
		return nil, errors.New("report: no output folder")
	}
	var runs []*roleplay.Run
	for _, a := range cfg.Runs {
		r, err := roleplay.ReadRun(a)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	c, err := Compare(runs, cfg.Options)
	if err != nil {
		return nil, &OptionsError{err}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	var perr error
	if cfg.Judge != nil {
		perr = c.AddPairwise(ctx, cfg.Judge, runs, filepath.Join(cfg.Out, roleplay.JudgementsFile), cfg.JudgeConcurrency, cfg.Progress)
	}
	if err := c.Save(filepath.Join(cfg.Out, CompareFile), filepath.Join(cfg.Out, ReportFile)); err != nil {
		return nil, errors.Join(perr, err)
	}
	if perr != nil {
		return c, fmt.Errorf("%w (the report was written without the missing pairwise verdicts; rerun to resume)", perr)
	}
	return c, nil
}

// WriteRunPage writes the report page of one run alone to htmlPath, as
// "masque eval run" writes OUT/report.html: the comparison of r with
// itself (default Options), as HTML only.
func WriteRunPage(r *roleplay.Run, htmlPath string) error {
	c, err := Compare([]*roleplay.Run{r}, Options{})
	if err != nil {
		return err
	}
	return c.Save("", htmlPath)
}
