package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	datavoices "github.com/masque-ai/masque/data/voices"
)

const sculptCorpus = "../../sculpt/testdata/corpus"

// TestSculptWorkflow runs sculpt on the built-in model end to end: a
// Persona-Pruner run with its exported model, a second seed and another
// persona for the analysis, a baseline, the comparison's JSON, and the
// errors for bad input.
func TestSculptWorkflow(t *testing.T) {
	dir := t.TempDir()
	learn := []string{"--corpus", sculptCorpus, "--ratio", "0.5", "--steps", "2", "--batch-tokens", "512", "--calib-samples", "4", "--threads", "2"}
	runA := filepath.Join(dir, "slang-1")
	code, _, errs := run(t, "", append([]string{"sculpt", "--persona", "slang", "--out", runA}, learn...)...)
	if code != 0 {
		t.Fatalf("sculpt: %s", errs)
	}
	for _, want := range []string{"smaller model", "report:", "held-out perplexity"} {
		if !strings.Contains(errs, want) {
			t.Errorf("sculpt output lacks %q: %s", want, errs)
		}
	}
	for _, f := range []string{"run.json", "report.html", "keep_indices.json", "model/config.json", "model.gguf"} {
		if _, err := os.Stat(filepath.Join(runA, f)); err != nil {
			t.Error(err)
		}
	}
	gen := []string{"generate", "--model", filepath.Join(runA, "model"), "--prompt", "Once upon a time", "-n", "8", "--temperature", "0"}
	if code, out, errs := run(t, "", gen...); code != 0 || out == "" {
		t.Fatalf("generate from the exported model: %s", errs)
	}
	runB := filepath.Join(dir, "slang-2")
	if code, _, errs := run(t, "", append([]string{"sculpt", "--persona", "slang", "--seed", "2", "--no-export", "--out", runB}, learn...)...); code != 0 {
		t.Fatalf("sculpt seed 2: %s", errs)
	}
	runC := filepath.Join(dir, "gloss")
	if code, _, errs := run(t, "", append([]string{"sculpt", "--persona", "gloss", "--no-export", "--out", runC}, learn...)...); code != 0 {
		t.Fatalf("sculpt gloss: %s", errs)
	}
	code, out, errs := run(t, "", "sculpt", "analyze", "--json", "--corpus", sculptCorpus, "--out", filepath.Join(dir, "an"), runA, runB, runC)
	if code != 0 {
		t.Fatalf("analyze: %s", errs)
	}
	var an struct {
		Seeds    []map[string]any `json:"seed_pairs"`
		Personas []string         `json:"personas"`
	}
	if err := json.Unmarshal([]byte(out), &an); err != nil || len(an.Seeds) != 1 || len(an.Personas) != 2 {
		t.Fatalf("analyze output %s: %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "an", "analysis.html")); err != nil {
		t.Error(err)
	}
	// A baseline.
	if code, _, errs := run(t, "", "sculpt", "baseline", "--method", "magnitude", "--ratio", "0.5", "--no-gguf", "--out", filepath.Join(dir, "mag")); code != 0 {
		t.Fatalf("baseline: %s", errs)
	}
	// The comparison's JSON.
	code, out, errs = run(t, "", append([]string{"sculpt", "compare", "--persona", "gloss", "--out", filepath.Join(dir, "cmp"), "--json", "--no-export",
		"--methods", "magnitude,depth", "--fidelity-limit", "1", "--fidelity-max-tokens", "4"}, learn...)...)
	if code != 0 {
		t.Fatalf("compare: %s", errs)
	}
	var cmp map[string]any
	if err := json.Unmarshal([]byte(out), &cmp); err != nil {
		t.Fatalf("compare output %q: %v", out, err)
	}
	for _, k := range []string{"persona", "ratio", "dense", "methods", "drop_avoided_vs_best_baseline"} {
		if _, ok := cmp[k]; !ok {
			t.Errorf("compare JSON lacks %q", k)
		}
	}
	if ms, _ := cmp["methods"].(map[string]any); len(ms) != 3 {
		t.Errorf("methods %v", cmp["methods"])
	}
	// The report over the comparison, with two runs of slang (seeds 1 and
	// 2) for the mask analyses.
	code, out, errs = run(t, "", "sculpt", "report", "--json", "--out", filepath.Join(dir, "rep"), filepath.Join(dir, "cmp"), runA, runB)
	if code != 0 {
		t.Fatalf("report: %s", errs)
	}
	var rep struct {
		Rows   []map[string]any `json:"rows"`
		Ratios []struct {
			Ratio    float64 `json:"ratio"`
			Analysis struct {
				Seeds    []map[string]any `json:"seed_pairs"`
				Personas []string         `json:"personas"`
			} `json:"analysis"`
		} `json:"ratios"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report output %q: %v", out, err)
	}
	if len(rep.Rows) != 1 || len(rep.Ratios) != 1 || rep.Ratios[0].Ratio != 0.5 || len(rep.Ratios[0].Analysis.Seeds) != 1 ||
		strings.Join(rep.Ratios[0].Analysis.Personas, ",") != "gloss,slang" {
		t.Errorf("report %s", out)
	}
	if code, out, errs := run(t, "", "sculpt", "report", "--out", filepath.Join(dir, "rep2"), filepath.Join(dir, "cmp")); code != 0 || !strings.Contains(out, "ratio 0.5, 1 personas") {
		t.Errorf("report text: exit %d, %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "rep2", "summary.html")); err != nil {
		t.Error(err)
	}

	// Bad input.
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"messages":[{"role":"user","content":"hi"}]}`+"\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sculpt", "--persona", "slang", "--corpus", sculptCorpus, "--ratio", "1", "--out", filepath.Join(dir, "x")}, "outside (0, 1)"},
		{[]string{"sculpt", "--persona", "slang", "--corpus", sculptCorpus, "--ratio", "0", "--out", filepath.Join(dir, "x")}, "outside (0, 1)"},
		{[]string{"sculpt", "--persona", "slang", "--corpus", sculptCorpus, "--ratio", "0.999", "--out", filepath.Join(dir, "x")}, "k = 0"},
		{[]string{"sculpt", "--data", bad, "--out", filepath.Join(dir, "x")}, "no conversation with assistant tokens"},
		{[]string{"sculpt", "--persona", "pirate", "--corpus", sculptCorpus, "--out", filepath.Join(dir, "x")}, "not a voice"},
		{[]string{"sculpt", "export", "--model", "../../testdata/hf-tiny/llama", "--keep", filepath.Join(runA, "keep_indices.json"), "--out", filepath.Join(dir, "x")}, "another model"},
		{[]string{"sculpt", "baseline", "--method", "slicegpt", "--out", filepath.Join(dir, "x")}, "unknown baseline"},
		{[]string{"sculpt", "report", "--out", filepath.Join(dir, "x"), runA}, "no comparison"},
	} {
		code, _, errs := run(t, "", c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %s (want %q)", c.args, code, errs, c.want)
		}
	}
	// Without --model, export uses the base the run records (run.json).
	code, _, errs = run(t, "", "sculpt", "export", "--keep", filepath.Join(runA, "keep_indices.json"), "--no-gguf", "--out", filepath.Join(dir, "again"))
	if code != 0 || !strings.Contains(errs, "using base builtin:stories260K recorded in "+filepath.Join(runA, "run.json")) {
		t.Errorf("export without --model: exit %d, %s", code, errs)
	}
	// Keep indices without a run.json still have to fit the model.
	lone := filepath.Join(dir, "lone.json")
	data, _ := os.ReadFile(filepath.Join(runA, "keep_indices.json"))
	os.WriteFile(lone, data, 0o644)
	code, _, errs = run(t, "", "sculpt", "export", "--model", "../../testdata/hf-tiny/llama", "--keep", lone, "--out", filepath.Join(dir, "y"))
	if code == 0 || !strings.Contains(errs, "another model") {
		t.Errorf("foreign keep indices: exit %d, %s", code, errs)
	}
}

// TestSculptRecover: --recover fine-tunes the exported model and writes it
// whole to DIR/recovered; generate runs it.
func TestSculptRecover(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "rec")
	args := []string{"sculpt", "--persona", "slang", "--corpus", sculptCorpus, "--ratio", "0.5", "--steps", "2", "--batch-tokens", "512",
		"--calib-samples", "4", "--threads", "2", "--no-gguf", "--out", out}
	code, _, errs := run(t, "", append(args, "--recover", "lora", "--recover-steps", "3", "--recover-lr", "1e-3")...)
	if code != 0 {
		t.Fatalf("sculpt --recover: %s", errs)
	}
	for _, want := range []string{"recovery (lora, 3 steps", "recovered model: " + filepath.Join(out, "recovered", "model")} {
		if !strings.Contains(errs, want) {
			t.Errorf("output lacks %q: %s", want, errs)
		}
	}
	gen := []string{"generate", "--model", filepath.Join(out, "recovered", "model"), "--prompt", "Once upon a time", "-n", "4", "--temperature", "0"}
	if code, got, errs := run(t, "", gen...); code != 0 || got == "" {
		t.Fatalf("generate from the recovered model: %s", errs)
	}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--recover", "qlora"}, "unknown recovery"},
		{[]string{"--recover-steps", "5"}, "needs --recover"},
		{[]string{"--recover", "full", "--no-export"}, "--no-export"},
	} {
		a := append(append([]string{}, args...), c.extra...)
		a[len(args)-1] = filepath.Join(dir, "x")
		if code, _, errs := run(t, "", a...); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %s (want %q)", c.extra, code, errs, c.want)
		}
	}
}

// TestSculptPersonaFromVoicesCorpus: --persona NAME --corpus DIR takes the
// persona's rows from a voices corpus as `masque corpus voices` writes it
// (built here from the source slices of data/voices's tests), so a sculpt
// run needs no hand-made JSONL; an evaluation kit (no train splits, as the
// one built into builtin:voices, the default --corpus) learns on its valid
// split with a tenth held out; an unknown persona is refused with the list.
func TestSculptPersonaFromVoicesCorpus(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus")
	if _, err := datavoices.Run(context.Background(), datavoices.Config{Out: corpus, Sources: "../../data/voices/testdata/sources",
		System: t.TempDir(), Seed: 7, MaxWords: 60, Voices: []string{"kjv", "web", "jargon"}}); err != nil {
		t.Fatal(err)
	}
	learn := []string{"--corpus", corpus, "--ratio", "0.5", "--steps", "2", "--batch-tokens", "512", "--calib-samples", "2", "--threads", "2", "--no-gguf"}
	out := filepath.Join(dir, "kjv")
	code, _, errs := run(t, "", append([]string{"sculpt", "--persona", "kjv", "--out", out}, learn...)...)
	if code != 0 {
		t.Fatalf("sculpt --persona kjv: %s", errs)
	}
	trainRows := countLines(t, filepath.Join(corpus, "kjv", "train.jsonl"))
	validRows := countLines(t, filepath.Join(corpus, "kjv", "valid.jsonl"))
	if want := fmt.Sprintf("data: %d training rows", trainRows); trainRows == 0 || !strings.Contains(errs, want) || !strings.Contains(errs, fmt.Sprintf("%d held out", validRows)) {
		t.Errorf("want %q and %d held out: %s", want, validRows, errs)
	}
	var rec struct {
		Persona   string `json:"persona"`
		Data      string `json:"data"`
		TrainRows int    `json:"train_rows"`
	}
	data, err := os.ReadFile(filepath.Join(out, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Persona != "kjv" || rec.TrainRows != trainRows || !strings.Contains(rec.Data, "persona kjv") {
		t.Errorf("run.json: %v %+v", err, rec)
	}
	// A voice whose valid split is empty in so small a corpus still learns.
	if countLines(t, filepath.Join(corpus, "jargon", "valid.jsonl")) != 0 {
		t.Fatal("the jargon slice now has validation rows: choose another voice with an empty valid split")
	} else {
		code, _, errs := run(t, "", append([]string{"sculpt", "--persona", "jargon", "--no-export", "--out", filepath.Join(dir, "jargon")}, learn...)...)
		if code != 0 || !strings.Contains(errs, "0 held out") {
			t.Errorf("jargon: exit %d: %s", code, errs)
		}
	}
	// An evaluation kit: the corpus without its train splits.
	kit := filepath.Join(dir, "kit")
	for _, f := range []string{"personas.json", "kjv/valid.jsonl", "kjv/test.jsonl"} {
		b, err := os.ReadFile(filepath.Join(corpus, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(kit, f)), 0o755)
		os.WriteFile(filepath.Join(kit, f), b, 0o644)
	}
	kitOut := filepath.Join(dir, "kit-kjv")
	code, _, errs = run(t, "", append([]string{"sculpt", "--persona", "kjv", "--no-export", "--out", kitOut}, append(learn, "--corpus", kit)...)...)
	var held int
	if i := strings.Index(errs, " held out"); i > 0 {
		f := strings.Fields(errs[:i])
		held, _ = strconv.Atoi(f[len(f)-1])
	}
	rec.TrainRows = 0
	if data, err := os.ReadFile(filepath.Join(kitOut, "run.json")); err == nil {
		json.Unmarshal(data, &rec)
	}
	if code != 0 || rec.TrainRows == 0 || rec.TrainRows+held != validRows || !strings.Contains(rec.Data, "evaluation kit") {
		t.Errorf("sculpt on a kit: exit %d, %d training + %d held-out rows of %d, data %q: %s", code, rec.TrainRows, held, validRows, rec.Data, errs)
	}
	t.Setenv("MASQUE_CACHE", t.TempDir())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sculpt", "--persona", "pirate", "--out", filepath.Join(dir, "x")}, "kjv, web, spurgeon, sotu"},
		{[]string{"sculpt", "--persona", "pirate", "--corpus", corpus, "--out", filepath.Join(dir, "x")}, "kjv, web, jargon"},
	} {
		if code, _, errs := run(t, "", c.args...); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %s (want %q)", c.args, code, errs, c.want)
		}
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}
