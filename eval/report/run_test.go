package report

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/roleplay"
	"github.com/masque-ai/masque/openaiclient"
)

// writeRuns writes a dense run "a" as a folder and a pruned run "b" as a
// bare run.json, and returns the two paths Run is given.
func writeRuns(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	a := synthRun("a", "dense", sp(0), map[string][]float64{"ann": {80, 70}, "bob": {50, 55}})
	b := synthRun("b", "wanda", sp(0.5), map[string][]float64{"ann": {70, 72}, "bob": {45, 45}})
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	if err := roleplay.WriteRun(filepath.Join(dir, "a", roleplay.RunFile), a); err != nil {
		t.Fatal(err)
	}
	if err := roleplay.WriteRun(filepath.Join(dir, "b.json"), b); err != nil {
		t.Fatal(err)
	}
	return []string{filepath.Join(dir, "a"), filepath.Join(dir, "b.json")}
}

// pairJudge is a judge behind a test endpoint that answers every pairwise
// question with reply (an HTTP 400 when reply is empty), counting requests.
func pairJudge(t *testing.T, reply string) (*judge.Judge, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if reply == "" {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": reply}}}})
	}))
	t.Cleanup(srv.Close)
	c := &openaiclient.Client{Name: "judge", URL: srv.URL, MaxAttempts: 1, BaseBackoff: time.Millisecond, Timeout: 5 * time.Second}
	return &judge.Judge{Client: c, Model: "j", Prompts: judge.Compact}, &n
}

func TestRunWritesComparison(t *testing.T) {
	runs := writeRuns(t)
	out := filepath.Join(t.TempDir(), "cmp")
	o := Options{Seed: 7, Resamples: 200}
	c, err := Run(context.Background(), Config{Runs: runs, Options: o, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if c.Reference != "a" || len(c.Runs) != 2 || c.Runs[1].Label != "b" || len(c.Diffs) != 1 || len(c.Pairwise) != 0 {
		t.Fatalf("comparison: reference %q, runs %+v, diffs %+v, pairwise %d", c.Reference, c.Runs, c.Diffs, len(c.Pairwise))
	}
	// The same numbers as comparing the runs in memory.
	ra, _ := roleplay.ReadRun(runs[0])
	rb, _ := roleplay.ReadRun(runs[1])
	if want := PairedBootstrap(ra, rb, "consistency", 200, 7, 0.95); c.Diffs[0] != want {
		t.Fatalf("diff %+v, want %+v", c.Diffs[0], want)
	}
	var saved Comparison
	data, err := os.ReadFile(filepath.Join(out, CompareFile))
	if err != nil || json.Unmarshal(data, &saved) != nil || saved.Format != Format || saved.Reference != "a" || len(saved.Diffs) != 1 {
		t.Fatalf("%s: %v %.200s", CompareFile, err, data)
	}
	if page, err := os.ReadFile(filepath.Join(out, ReportFile)); err != nil || !strings.Contains(string(page), "<svg") {
		t.Fatalf("%s: %v", ReportFile, err)
	}
}

func TestRunErrors(t *testing.T) {
	runs := writeRuns(t)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "cmp")
	var oe *OptionsError
	for _, o := range []Options{{Dense: "zzz"}, {Baseline: "zzz"}, {Metric: "charm"}} {
		_, err := Run(ctx, Config{Runs: runs, Options: o, Out: out})
		if !errors.As(err, &oe) {
			t.Errorf("%+v: %v, want an *OptionsError", o, err)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed comparison created its output folder")
	}
	_, err := Run(ctx, Config{Runs: []string{runs[0], filepath.Join(t.TempDir(), "none")}, Out: out})
	if err == nil || errors.As(err, &oe) || !strings.Contains(err.Error(), "reading a run") {
		t.Errorf("a missing run: %v", err)
	}
	if _, err := Run(ctx, Config{Runs: runs}); err == nil {
		t.Error("no output folder: no error")
	}
}

func TestRunPairwise(t *testing.T) {
	runs := writeRuns(t)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "cmp")
	j, calls := pairJudge(t, "TIE")
	followed := map[string]bool{}
	cfg := Config{Runs: runs, Out: out, Judge: j, JudgeConcurrency: 2, Progress: func(label string, d, n int) { followed[label] = true }}
	c, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The 4 items of b against the reference a (identical questions are
	// asked once: the judge caches them).
	if len(c.Pairwise) != 1 || c.Pairwise[0].A != "a" || c.Pairwise[0].B != "b" || c.Pairwise[0].Ties != 4 || calls.Load() == 0 || !followed["b"] || followed["a"] {
		t.Fatalf("pairwise %+v after %d requests, progress of %v", c.Pairwise, calls.Load(), followed)
	}
	// A rerun reads the verdicts from Out's cache.
	cfg.Judge, _ = pairJudge(t, "")
	if c, err = Run(ctx, cfg); err != nil || c.Pairwise[0].Ties != 4 {
		t.Fatalf("rerun from the cache: %v", err)
	}
	// A failing judge: the files are written without the verdicts, and the
	// error says so.
	out2 := filepath.Join(t.TempDir(), "cmp")
	c, err = Run(ctx, Config{Runs: runs, Out: out2, Judge: cfg.Judge})
	if err == nil || !strings.Contains(err.Error(), "rerun to resume") || c == nil {
		t.Fatalf("failing judge: %v", err)
	}
	for _, f := range []string{CompareFile, ReportFile} {
		if _, err := os.Stat(filepath.Join(out2, f)); err != nil {
			t.Errorf("failing judge: %v", err)
		}
	}
}

func TestWriteRunPage(t *testing.T) {
	r := synthRun("solo-run", "dense", sp(0), map[string][]float64{"ann": {80, 70}, "bob": {50, 55}})
	path := filepath.Join(t.TempDir(), ReportFile)
	if err := WriteRunPage(r, path); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "solo-run") {
		t.Fatalf("page: %v %.300s", err, page)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("wrote %d files, want the page alone", len(entries))
	}
}
