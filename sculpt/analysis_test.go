package sculpt

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPearsonAndOverlap(t *testing.T) {
	// By hand: dx = (−1, 0, 1), dy = (−7/3, −1/3, 8/3); Σdxdy = 5, Σdx² = 2,
	// Σdy² = 38/3, r = 5/√(76/3).
	if r := Pearson([]float64{1, 2, 3}, []float64{2, 4, 7}); !near(r, 5/math.Sqrt(76.0/3)) {
		t.Errorf("Pearson = %v", r)
	}
	if r := Pearson([]float64{1, 1, 1}, []float64{2, 4, 7}); !math.IsNaN(r) {
		t.Errorf("Pearson of a constant = %v, want NaN", r)
	}
	if r := Pearson([]float64{1, 2}, []float64{1}); !math.IsNaN(r) {
		t.Errorf("Pearson of unequal lengths = %v", r)
	}
	lo := LayerOverlap([][]int{{0, 1, 2}, {1, 2, 3}}, [][]int{{0, 1, 3}, {1, 2, 3}})
	if len(lo) != 2 || !near(lo[0], 2.0/3) || lo[1] != 1 {
		t.Errorf("LayerOverlap = %v", lo)
	}
	mv := maskVector([][]int{{0, 2}, {1}}, 3)
	if want := []float64{1, 0, 1, 0, 1, 0}; len(mv) != len(want) || mv[0] != 1 || mv[1] != 0 || mv[2] != 1 || mv[4] != 1 || mv[3]+mv[5] != 0 {
		t.Errorf("maskVector = %v", mv)
	}
}

// writeCorpus writes a voices corpus with the given train texts (one row
// per text) and returns its folder.
func writeCorpus(t *testing.T, texts map[string][]string, order []string) string {
	t.Helper()
	dir := t.TempDir()
	var ps []string
	for _, v := range order {
		ps = append(ps, `{"name":"`+v+`","persona":"You are `+v+`."}`)
		var rows []string
		for i, tx := range texts[v] {
			rows = append(rows, `{"id":"`+v+`/train/`+string(rune('0'+i))+`","voice":"`+v+`","text":"`+tx+
				`","messages":[{"role":"system","content":"You are `+v+`."},{"role":"user","content":"Say it."},{"role":"assistant","content":"`+tx+`"}]}`)
		}
		if err := os.MkdirAll(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, v, "train.jsonl"), []byte(strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "personas.json"), []byte(`{"voices":[`+strings.Join(ps, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPersonaSimilarity(t *testing.T) {
	corp := writeCorpus(t, map[string][]string{"p": {"A a", "b"}, "q": {"a C."}, "r": {"zz"}}, []string{"p", "q", "r"})
	sim, err := PersonaSimilarity(corp, []string{"p", "q", "r"})
	if err != nil {
		t.Fatal(err)
	}
	// p = {a:2, b:1}, q = {a:1, c:1}: cos = 2/(√5·√2); r shares no word.
	if !near(sim[0][1], 2/math.Sqrt(10)) || !near(sim[1][0], sim[0][1]) || !near(sim[0][0], 1) || sim[0][2] != 0 || sim[2][1] != 0 {
		t.Errorf("similarity %v", sim)
	}
	if _, err := PersonaSimilarity(corp, []string{"p", "x"}); err == nil || !strings.Contains(err.Error(), "x") {
		t.Errorf("unknown voice: %v", err)
	}
}

// writeRun writes a minimal finished sculpt run folder.
func writeRun(t *testing.T, dir, persona string, seed int, ratio float64, dff int, keep [][]int, scores [][]float32) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := RunRecord{Format: RunFormat, Method: MethodPersonaPruner, Persona: persona, ModelFingerprint: "fp", Ratio: ratio, DFF: dff,
		Layers: len(keep), K: len(keep[0]), Choices: map[string]any{"seed": seed}}
	if err := writeJSONFile(filepath.Join(dir, RunFile), rec); err != nil {
		t.Fatal(err)
	}
	if err := SaveKeep(filepath.Join(dir, KeepFile), keep); err != nil {
		t.Fatal(err)
	}
	if scores != nil {
		if err := writeJSONFile(filepath.Join(dir, ScoresFile), scores); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAnalyze(t *testing.T) {
	corp := writeCorpus(t, map[string][]string{"p": {"a a b"}, "q": {"a c"}, "r": {"b b c d"}}, []string{"p", "q", "r"})
	root := t.TempDir()
	d := func(n string) string { return filepath.Join(root, n) }
	// Two layers, d_ff = 4, k = 2.
	writeRun(t, d("p1"), "p", 1, 0.5, 4, [][]int{{0, 1}, {2, 3}}, [][]float32{{4, 3, 2, 1}, {1, 2, 3, 4}})
	writeRun(t, d("p2"), "p", 2, 0.5, 4, [][]int{{0, 2}, {2, 3}}, [][]float32{{4, 2, 3, 1}, {1, 2, 3, 4}})
	writeRun(t, d("q"), "q", 1, 0.5, 4, [][]int{{0, 1}, {0, 1}}, nil)
	writeRun(t, d("r"), "r", 1, 0.5, 4, [][]int{{2, 3}, {0, 3}}, nil)
	out := filepath.Join(root, "an")
	a, err := Analyze(AnalyzeConfig{Runs: []string{d("p1"), d("p2"), d("q"), d("r")}, Corpus: corp, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Seeds) != 1 {
		t.Fatalf("seed pairs %+v", a.Seeds)
	}
	sp := a.Seeds[0]
	// Layer overlaps 1/2 and 1: mean 3/4. Masks 1100 0011 vs 1010 0011:
	// x = y except positions 1 and 2; by hand r = 0.5.
	if sp.Persona != "p" || !near(sp.Overlap, 0.75) || !near(sp.MaskCorr, 0.5) {
		t.Errorf("seed pair %+v", sp)
	}
	wantScore := Pearson([]float64{4, 3, 2, 1, 1, 2, 3, 4}, []float64{4, 2, 3, 1, 1, 2, 3, 4})
	if !near(sp.ScoreCorr, wantScore) {
		t.Errorf("score r %v, want %v", sp.ScoreCorr, wantScore)
	}
	if strings.Join(a.Personas, ",") != "p,q,r" {
		t.Fatalf("personas %v", a.Personas)
	}
	// p (first run) vs q: layers 1 and 0 → 0.5; p vs r: 0 and 1/2 → 0.25;
	// q vs r: 0 and 1/2 → 0.25.
	if !near(a.MaskOverlap[0][1], 0.5) || !near(a.MaskOverlap[0][2], 0.25) || !near(a.MaskOverlap[1][2], 0.25) || a.MaskOverlap[2][2] != 1 {
		t.Errorf("mask overlap %v", a.MaskOverlap)
	}
	if len(a.LayerOverlap) != 2 || a.LayerOverlap[0][0][1] != 1 || a.LayerOverlap[1][0][1] != 0 || a.LayerOverlap[1][1][2] != 0.5 {
		t.Errorf("layer overlap %v", a.LayerOverlap)
	}
	sim, err := PersonaSimilarity(corp, a.Personas)
	if err != nil {
		t.Fatal(err)
	}
	want := Pearson([]float64{0.5, 0.25, 0.25}, []float64{sim[0][1], sim[0][2], sim[1][2]})
	if a.Pairs != 3 || a.SimilarityCorrelation == nil || !near(*a.SimilarityCorrelation, want) {
		t.Errorf("similarity correlation %v over %d pairs, want %v", a.SimilarityCorrelation, a.Pairs, want)
	}
	for _, f := range []string{"analysis.json", "analysis.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	html, _ := os.ReadFile(filepath.Join(out, "analysis.html"))
	for _, s := range []string{"layer 0", "layer 1", "Pearson r", "persona similarity"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("analysis.html lacks %q", s)
		}
	}

	// Runs at another ratio or of another model are refused.
	writeRun(t, d("other"), "q", 1, 0.75, 4, [][]int{{0}, {1}}, nil)
	if _, err := Analyze(AnalyzeConfig{Runs: []string{d("p1"), d("other")}}); err == nil || !strings.Contains(err.Error(), "different models or ratios") {
		t.Errorf("mixed ratios: %v", err)
	}
	if _, err := Analyze(AnalyzeConfig{Runs: []string{root}}); err == nil || !strings.Contains(err.Error(), "not a finished sculpt run") {
		t.Errorf("not a run: %v", err)
	}
	// Without a corpus the note says why there is no similarity.
	a, err = Analyze(AnalyzeConfig{Runs: []string{d("p1"), d("q")}})
	if err != nil || a.SimilarityCorrelation != nil || !strings.Contains(a.Note, "no voices corpus") {
		t.Errorf("no corpus: %v %+v", err, a)
	}
}

func TestBuildReport(t *testing.T) {
	corp := writeCorpus(t, map[string][]string{"p": {"a a b"}, "q": {"a c"}, "r": {"b b c d"}}, []string{"p", "q", "r"})
	root := t.TempDir()
	nan := math.NaN()
	fig := func(ppl, fid float64) *Figures {
		return &Figures{PPL: ppl, GenericPPL: ppl + 1, Fidelity: fid, ConditioningRatio: nan, Params: 100}
	}
	mk := func(name, persona string, ratio float64, dense Figures, methods map[string]*Figures, keep [][]int) string {
		dir := filepath.Join(root, name)
		c := &CompareResult{Format: compareFormat, Corpus: corp, Persona: persona, Ratio: ratio, Dense: dense, Methods: methods}
		c.summarise()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeJSONFile(filepath.Join(dir, CompareFile), c); err != nil {
			t.Fatal(err)
		}
		writeRun(t, filepath.Join(dir, MethodPersonaPruner), persona, 1, ratio, 4, keep, nil)
		return dir
	}
	// p: dense 10, PP 11, best baseline global 12 → 1 − 1/2 = 0.5.
	// q: dense 10, PP 10.5, best baseline magnitude 12 → 1 − 0.5/2 = 0.75.
	// r: PP worse than magnitude: 1 − 4/2 = −1.
	// Mean at 0.5: (0.5 + 0.75 − 1)/3.
	dp := mk("p50", "p", 0.5, *fig(10, 1), map[string]*Figures{MethodPersonaPruner: fig(11, 0.9), MethodGlobal: fig(12, 0.5), MethodMagnitude: fig(14, 0.9)}, [][]int{{0, 1}, {2, 3}})
	dq := mk("q50", "q", 0.5, *fig(10, nan), map[string]*Figures{MethodPersonaPruner: fig(10.5, nan), MethodGlobal: fig(13, nan), MethodMagnitude: fig(12, nan)}, [][]int{{0, 1}, {0, 1}})
	dr := mk("r50", "r", 0.5, *fig(10, 1), map[string]*Figures{MethodPersonaPruner: fig(14, 1), MethodMagnitude: fig(12, 0.5)}, [][]int{{2, 3}, {0, 3}})
	dp25 := mk("p25", "p", 0.25, *fig(10, 1), map[string]*Figures{MethodPersonaPruner: fig(10.2, 1), MethodMagnitude: fig(11, 0.5)}, [][]int{{0, 1, 2}, {1, 2, 3}})
	seed2 := filepath.Join(root, "p50-seed2")
	writeRun(t, seed2, "p", 2, 0.5, 4, [][]int{{0, 2}, {2, 3}}, nil)
	out := filepath.Join(root, "report")
	rep, err := BuildReport(ReportConfig{Dirs: []string{dr, dp25, dp, dq, seed2}, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 4 || rep.Rows[0].Ratio != 0.25 || rep.Rows[1].Persona != "p" || rep.Rows[3].Persona != "r" {
		t.Fatalf("rows %+v", rep.Rows)
	}
	if len(rep.Ratios) != 2 {
		t.Fatalf("ratios %+v", rep.Ratios)
	}
	r50 := rep.Ratios[1]
	if r50.Ratio != 0.5 || r50.Defined != 3 || r50.MeanDropAvoided == nil || !near(*r50.MeanDropAvoided, (0.5+0.75-1)/3) {
		t.Errorf("headline at 0.5: %+v", r50)
	}
	// Fidelity: p: best baseline magnitude 0.9, drop 0.1, PP drop 0.1 → 0;
	// r: baseline drop 0.5, PP none → 1. q not measured.
	if r50.DefinedFidelity != 2 || !near(*r50.MeanDropAvoidedFidelity, 0.5) {
		t.Errorf("fidelity headline at 0.5: %v over %d", r50.MeanDropAvoidedFidelity, r50.DefinedFidelity)
	}
	// Wins: ppl p, q (not r); fidelity r only (p ties magnitude); global p, q.
	if r50.BeatsPPL != 2 || r50.BeatsFidelity != 1 || r50.FidelityCompared != 2 || r50.BeatsGlobal != 2 || r50.GlobalCompared != 2 {
		t.Errorf("wins at 0.5: %+v", r50)
	}
	if rep.Rows[2].BeatsFidelity != nil || rep.Rows[3].BeatsGlobal != nil {
		t.Errorf("unmeasured wins should be null: %+v %+v", rep.Rows[2], rep.Rows[3])
	}
	if a := r50.Analysis; a == nil || len(a.Seeds) != 1 || !near(a.Seeds[0].Overlap, 0.75) || a.SimilarityCorrelation == nil || strings.Join(a.Personas, ",") != "p,q,r" {
		t.Errorf("analysis at 0.5: %+v", r50.Analysis)
	}
	if rep.Ratios[0].Analysis == nil || len(rep.Ratios[0].Analysis.Personas) != 1 {
		t.Errorf("analysis at 0.25: %+v", rep.Ratios[0].Analysis)
	}
	html, err := os.ReadFile(filepath.Join(out, "summary.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Headline", "q at ratio 0.5", "Masks at ratio 0.5", "layer 1", "Across seeds", "8.3 % (3)"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("summary.html lacks %q", s)
		}
	}
	if _, err := os.Stat(filepath.Join(out, SummaryFile)); err != nil {
		t.Error(err)
	}
	// Figures survive the round trip through compare.json, NaN as null.
	c, err := LoadCompare(dq)
	if err != nil || !math.IsNaN(c.Dense.Fidelity) || c.Methods[MethodGlobal].PPL != 13 {
		t.Errorf("LoadCompare: %v %+v", err, c)
	}

	// Bad input.
	if _, err := BuildReport(ReportConfig{Dirs: []string{dp, filepath.Join(root, "p50")}}); err == nil || !strings.Contains(err.Error(), "both compare p") {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := BuildReport(ReportConfig{Dirs: []string{corp}}); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("not a comparison: %v", err)
	}
	if _, err := BuildReport(ReportConfig{Dirs: []string{seed2}}); err == nil || !strings.Contains(err.Error(), "no comparison") {
		t.Errorf("runs only: %v", err)
	}
}
