package study

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/masque-ai/masque/internal/browsertest"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/voices"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/randmodel"
	"github.com/masque-ai/masque/subnet"
)

// tinyVoices opens builtin:voices (its tokenizer and chat template, and the
// evaluation kit) over a tiny random model of its vocabulary, so that the
// tests take seconds whatever model is embedded.
func tinyVoices(t *testing.T) *checkpoint.Checkpoint {
	t.Helper()
	ck, err := checkpoint.Open("builtin:voices", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	c := ck.Model.Config
	c.Hidden, c.Intermediate, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.MaxSeq = 64, 176, 2, 4, 2, 16, 512
	m, err := randmodel.New(c, 7, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	ck.Model = m
	return ck
}

func quick(t *testing.T, ck *checkpoint.Checkpoint, out string) Config {
	cfg, err := Preset("quick")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Checkpoint, cfg.Out, cfg.Workers = ck, out, 1
	return cfg
}

// comparable strips what legitimately differs between two runs of the
// same study (timings, job counts).
func comparable(r *Results) *Results {
	c := *r
	c.Started, c.Finished, c.Seconds, c.Computed, c.Cached = time.Time{}, time.Time{}, 0, 0, 0
	return &c
}

func asJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestQuickResume runs the quick preset end to end, checks its outputs,
// interrupts a second run after a few jobs and resumes it (same results as
// the uninterrupted run), and reruns the first (nothing recomputed).
func TestQuickResume(t *testing.T) {
	ck := tinyVoices(t)
	dirA := t.TempDir()
	t0 := time.Now()
	var last Progress
	cfg := quick(t, ck, dirA)
	cfg.Progress = func(p Progress) { last = p }
	a, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("quick preset: %.1f s, %d jobs", time.Since(t0).Seconds(), a.Computed)
	if last.Done != last.Total || last.Total != a.Computed || a.Cached != 0 {
		t.Fatalf("progress %+v, computed %d cached %d", last, a.Computed, a.Cached)
	}
	// dense (2 evaluations + ppl), 2 wanda masks, 1 contrastive pair (2 masks).
	if want := 3 + 2*4 + 1 + 2*3; a.Computed != want {
		t.Fatalf("%d jobs computed, want %d", a.Computed, want)
	}
	if len(a.Subjects) != 4 || a.Dense == nil {
		t.Fatalf("%d subjects", len(a.Subjects))
	}
	for _, s := range append([]*Subject{a.Dense}, a.Subjects...) {
		for _, v := range []string{"kjv", "web"} {
			if s.Voice != "" && s.Voice != v {
				continue
			}
			for _, f := range []Figures{s.Empty[v], s.Prompted[v]} {
				if math.IsNaN(float64(f.Fidelity)) || f.Run == "" {
					t.Fatalf("%s on %s: figures %+v", s.ID, v, f)
				}
				if _, err := os.Stat(filepath.Join(dirA, f.Run, "run.json")); err != nil {
					t.Fatalf("%s: no run.json for eval compare: %v", s.ID, err)
				}
			}
		}
		if len(s.HeldOut) != 9 || math.IsNaN(float64(s.CostOthers)) {
			t.Fatalf("%s: held-out perplexities %v, cost %v", s.ID, s.HeldOut, s.CostOthers)
		}
		if s.Kind != KindDense && math.Abs(s.Density-0.5) > 0.01 {
			t.Fatalf("%s: kept share %g at sparsity 0.5", s.ID, s.Density)
		}
	}
	if a.Dense.CostOthers != 1 {
		t.Fatalf("dense model's perplexity cost %v, want 1", a.Dense.CostOthers)
	}
	// The empty-prompt run really had no system prompt.
	rep, err := voices.ReadReport(filepath.Join(dirA, a.Dense.Empty["kjv"].Run))
	if err != nil {
		t.Fatal(err)
	}
	if rep.SystemOverride == nil || *rep.SystemOverride != "" {
		t.Fatalf("empty run's system override %v", rep.SystemOverride)
	}
	// Overlaps agree with mask.Diff of the mask files.
	if len(a.Overlaps) != 1 || len(a.Pairs) != 1 {
		t.Fatalf("overlaps %+v, pairs %+v", a.Overlaps, a.Pairs)
	}
	var kjv, web, pos, neg *Subject
	for _, s := range a.Subjects {
		switch {
		case s.Kind == KindSingle && s.Voice == "kjv":
			kjv = s
		case s.Kind == KindSingle && s.Voice == "web":
			web = s
		case s.Side == "pos":
			pos = s
		case s.Side == "neg":
			neg = s
		}
	}
	diff := func(x, y *Subject) float64 {
		mx, err := mask.Load(x.File)
		if err != nil {
			t.Fatal(err)
		}
		my, err := mask.Load(y.File)
		if err != nil {
			t.Fatal(err)
		}
		d, err := mask.Diff(mx, my)
		if err != nil {
			t.Fatal(err)
		}
		return d.Total.Share
	}
	if got, want := a.Overlaps[0].Differ[0][1], diff(kjv, web); got != want || got == 0 {
		t.Fatalf("kjv/web wanda masks differ in %g, mask.Diff says %g", got, want)
	}
	if got, want := float64(a.Pairs[0].Contrast), diff(pos, neg); got != want || got == 0 {
		t.Fatalf("contrastive masks differ in %g, mask.Diff says %g", got, want)
	}
	if float64(a.Pairs[0].Single) != a.Overlaps[0].Differ[0][1] {
		t.Fatalf("pair's single-mask share %v, overlap %v", a.Pairs[0].Single, a.Overlaps[0].Differ[0][1])
	}
	// The registry loads, with the masks it names.
	specs, err := persona.LoadRegistry(filepath.Join(dirA, RegistryFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 6 || specs[0].Name != "kjv-prompted" || specs[0].SystemPrompt == "" || specs[1].Name != "kjv-masked" || specs[1].Prompt() != "" {
		t.Fatalf("registry %+v", specs)
	}
	if _, err := mask.Load(specs[1].Mask); err != nil {
		t.Fatalf("registry mask: %v", err)
	}
	read, err := ReadResults(dirA)
	if err != nil {
		t.Fatal(err)
	}
	if read.Computed != a.Computed || len(read.Subjects) != len(a.Subjects) {
		t.Fatalf("results.json read back: %+v", read)
	}

	// Interrupt after a few jobs, then resume.
	dirB := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cfg = quick(t, ck, dirB)
	stopAt := 6
	cfg.Progress = func(p Progress) {
		if p.Done >= stopAt {
			cancel()
		}
	}
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	cfg.Progress = nil
	b, err := Run(context.Background(), quick(t, ck, dirB))
	if err != nil {
		t.Fatal(err)
	}
	if b.Cached < stopAt || b.Computed+b.Cached != a.Computed {
		t.Fatalf("resumed: %d computed, %d cached (interrupted after %d of %d)", b.Computed, b.Cached, stopAt, a.Computed)
	}
	rel := func(r *Results, dir string) string { // paths differ by folder only
		return strings.ReplaceAll(asJSON(t, comparable(r)), dir, "OUT")
	}
	if ra, rb := rel(a, dirA), rel(b, dirB); ra != rb {
		t.Fatalf("resumed results differ from the uninterrupted run:\n%s\n%s", ra, rb)
	}
	// A finished study reruns from the cache only.
	c, err := Run(context.Background(), quick(t, ck, dirA))
	if err != nil {
		t.Fatal(err)
	}
	if c.Computed != 0 || c.Cached != a.Computed {
		t.Fatalf("rerun computed %d jobs (cached %d)", c.Computed, c.Cached)
	}
	if !reflect.DeepEqual(comparable(c), comparable(a)) && asJSON(t, comparable(c)) != asJSON(t, comparable(a)) {
		t.Fatal("rerun results differ")
	}

	if browsertest.Find() != "" {
		screenshot(t, filepath.Join(dirA, ReportFile))
	} else {
		t.Log("chromium not found: the report was not rendered")
	}
}

// TestOverlapByHand checks the overlap figures on tiny masks against a hand
// computation.
func TestOverlapByHand(t *testing.T) {
	c := model.Config{Arch: "LlamaForCausalLM", ModelType: "llama", Hidden: 8, Intermediate: 16, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4,
		Vocab: 16, MaxSeq: 16, NormEps: 1e-5, RopeTheta: 10000, BOS: -1, EOS: []int{1}}
	m, err := randmodel.New(c, 1, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	// Entries: q 8·8, k 4·8, v 4·8, o 8·8, gate 16·8, up 16·8, down 8·16 = 576.
	a, b, d := mask.New(m), mask.New(m), mask.New(m)
	set := func(mk *mask.Mask, p model.Proj, cells ...[2]int) {
		r, cols := c.ProjShape(p)
		bits := mask.NewBits(r, cols)
		for _, x := range cells {
			bits.Set(x[0], x[1], false)
		}
		if err := mk.Set(mask.Key{Layer: 0, Proj: p}, bits); err != nil {
			t.Fatal(err)
		}
	}
	set(a, model.ProjQ, [2]int{0, 0}, [2]int{1, 1}, [2]int{2, 2})
	set(b, model.ProjQ, [2]int{0, 0}, [2]int{3, 3})                 // differs from a in (1,1), (2,2), (3,3)
	set(b, model.ProjDown, [2]int{7, 15})                           // and here
	set(d, model.ProjUp, [2]int{0, 0}, [2]int{0, 1}, [2]int{15, 7}) // differs from a in 6, from b in 3+... below
	got, err := DifferMatrix([]*mask.Mask{a, b, d})
	if err != nil {
		t.Fatal(err)
	}
	// a vs b: 4 of 576; a vs d: 3 (q) + 3 (up) = 6; b vs d: 2 (q) + 1 (down) + 3 (up) = 6.
	want := [][]float64{{0, 4.0 / 576, 6.0 / 576}, {4.0 / 576, 0, 6.0 / 576}, {6.0 / 576, 6.0 / 576, 0}}
	for i := range want {
		for j := range want {
			if math.Abs(got[i][j]-want[i][j]) > 1e-15 {
				t.Fatalf("differ[%d][%d] = %g, want %g", i, j, got[i][j], want[i][j])
			}
		}
	}
	// Agreement 1−4/576, 1−6/576, 1−6/576 against similarities 0.9, 0.2, 0.5.
	sim := [][]float64{{1, 0.9, 0.2}, {0.9, 1, 0.5}, {0.2, 0.5, 1}}
	x := []float64{1 - 4.0/576, 1 - 6.0/576, 1 - 6.0/576}
	y := []float64{0.9, 0.2, 0.5}
	// By hand: mean x = 1 − 16/1728, deviations (+4/1728, −2/1728, −2/1728);
	// mean y = 0.5333…, deviations (0.3667, −0.3333, −0.0333).
	dx := []float64{4.0 / 1728, -2.0 / 1728, -2.0 / 1728}
	dy := []float64{0.9 - 1.6/3, 0.2 - 1.6/3, 0.5 - 1.6/3}
	var sxy, sxx, syy float64
	for i := range dx {
		sxy += dx[i] * dy[i]
		sxx += dx[i] * dx[i]
		syy += dy[i] * dy[i]
	}
	if r, want := AgreementPearson(got, sim), sxy/math.Sqrt(sxx*syy); math.Abs(r-want) > 1e-9 || math.Abs(r-Pearson(x, y)) > 1e-9 {
		t.Fatalf("Pearson %g, want %g", r, want)
	}
	if !math.IsNaN(Pearson([]float64{1, 1}, []float64{2, 3})) {
		t.Fatal("Pearson of a constant is not NaN")
	}
	// Text similarity: "a a b" vs "a b b": (2·1 + 1·2)/(√5·√5) = 0.8.
	s := TextSimilarity([][]string{{"A a, b!"}, {"a b", "B"}, {""}})
	if math.Abs(s[0][1]-0.8) > 1e-12 || math.Abs(s[0][0]-1) > 1e-12 || !math.IsNaN(s[0][2]) {
		t.Fatalf("text similarity %v", s)
	}
}

// TestBadInput checks that bad settings fail early with clear errors.
func TestBadInput(t *testing.T) {
	ck := tinyVoices(t)
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"unknown voice", func(c *Config) { c.Voices = []string{"kjv", "shakespeare"} }, `unknown voice "shakespeare"`},
		{"sparsity 0", func(c *Config) { c.Sparsities = []float64{0} }, "sparsity 0 is outside (0, 1)"},
		{"sparsity 1.2", func(c *Config) { c.Sparsities = []float64{0.5, 1.2} }, "sparsity 1.2 is outside (0, 1)"},
		{"granularity", func(c *Config) { c.Granularities = []string{"blocks"} }, `unknown granularity "blocks"`},
		{"N:M", func(c *Config) { c.Granularities = []string{"5:4"} }, "5:4"},
		{"pair outside", func(c *Config) { c.Pairs = [][2]string{{"kjv", "devil"}} }, `voice "devil" is not among the studied voices`},
		{"pair same", func(c *Config) { c.Pairs = [][2]string{{"kjv", "kjv"}} }, "two different voices"},
		{"method", func(c *Config) { c.Methods = []subnet.Method{"obs"} }, `unknown`},
		{"split", func(c *Config) { c.CalibSplit = "test" }, "test is for evaluation"},
		{"no out", func(c *Config) { c.Out = "" }, "no output folder"},
	}
	for _, tc := range cases {
		cfg := quick(t, ck, t.TempDir())
		tc.edit(&cfg)
		_, err := Run(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := Preset("huge"); err == nil || !strings.Contains(err.Error(), "quick") {
		t.Errorf("unknown preset: %v", err)
	}
	if _, err := ParsePair("kjv"); err == nil {
		t.Error("pair without a second voice accepted")
	}
}

// screenshot renders the report with headless Chromium (as eval/voices'
// render test does) and checks that the plots were drawn: enough pixels of
// the first plot colour (#2166ac, also the heat maps' full shade).
func screenshot(t *testing.T, htmlPath string) {
	t.Helper()
	img := browsertest.Screenshot(t, "the subnet study report", htmlPath, 1200, 2600)
	blue := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			if r < 70 && g > 80 && g < 130 && b > 150 && b < 200 {
				blue++
			}
		}
	}
	if blue < 300 {
		t.Fatalf("the rendered report lacks its plots: %d blue pixels", blue)
	}
}

// TestEveryMethodAndSFT runs every scorer and granularity and the LoRA
// comparison on one voice, interrupting the run while a SparseGPT mask is
// being evaluated (its updated weights are not on disk): the resumed run
// recomputes them and ends with the results of an uninterrupted run.
func TestEveryMethodAndSFT(t *testing.T) {
	ck := tinyVoices(t)
	mk := func(out string) Config {
		cfg := quick(t, ck, out)
		cfg.Voices, cfg.Pairs = []string{"kjv"}, [][2]string{}
		cfg.Methods = []subnet.Method{subnet.Magnitude, subnet.Wanda, subnet.SparseGPT}
		cfg.Granularities = []string{Unstructured, "2:4", FFN}
		cfg.EvalLimit, cfg.EvalMaxTokens, cfg.PPLRows, cfg.CalibSamples = 1, 4, 1, 4
		cfg.SFT, cfg.SFTSteps, cfg.SFTRank = true, 3, 2
		return cfg
	}
	dirA := t.TempDir()
	a, err := Run(context.Background(), mk(dirA))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, s := range a.Subjects {
		kinds[s.Kind+"/"+s.Method]++
		want := 0.5
		switch {
		case s.Kind == KindSFT:
			want = 1
		case s.Pattern.Granularity == FFN: // attention stays dense: 12288 of 46080 entries per layer
			want = (12288 + 0.5*33792) / 46080.0
		}
		if math.Abs(s.Density-want) > 0.01 {
			t.Errorf("%s: kept share %g, want %g", s.ID, s.Density, want)
		}
	}
	// magnitude and wanda: unstructured, 2:4, ffn; sparsegpt: no ffn.
	if kinds["magnitude/magnitude"] != 3 || kinds["single/wanda"] != 3 || kinds["single/sparsegpt"] != 2 || kinds["sft/lora-sft"] != 1 {
		t.Fatalf("subjects by kind %v", kinds)
	}
	var sft *Subject
	for _, s := range a.Subjects {
		if s.Kind == KindSFT {
			sft = s
		}
	}
	if _, err := os.Stat(filepath.Join(sft.File, "adapter_config.json")); err != nil {
		t.Fatalf("adapter not saved: %v", err)
	}
	if len(a.Overlaps) != 0 || len(a.Pairs) != 0 {
		t.Fatalf("one voice, no pairs: overlaps %v pairs %v", a.Overlaps, a.Pairs)
	}

	dirB := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := mk(dirB)
	var notes []string
	cfg.Progress = func(p Progress) {
		if p.Job == "eval" && strings.Contains(p.Item, "sparsegpt") {
			cancel()
		}
	}
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	cfg = mk(dirB)
	cfg.Logf = func(f string, args ...any) { notes = append(notes, f) }
	b, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, "recomputing SparseGPT") }) {
		t.Fatalf("the resumed run did not recompute SparseGPT's weights: %v", notes)
	}
	rel := func(r *Results, dir string) string { return strings.ReplaceAll(asJSON(t, comparable(r)), dir, "OUT") }
	if ra, rb := rel(a, dirA), rel(b, dirB); ra != rb {
		t.Fatalf("resumed results differ from the uninterrupted run:\n%s\n%s", ra, rb)
	}
}

// TestBest checks the choice of a voice's best mask: the highest
// empty-prompt fidelity among masks that cost at most MaxBestCost on the
// other voices, else among all.
func TestBest(t *testing.T) {
	sub := func(id, kind, voice string, fid, cost float64) *Subject {
		return &Subject{ID: id, Kind: kind, Voice: voice, Empty: map[string]Figures{voice: {Fidelity: Num(fid)}}, CostOthers: Num(cost)}
	}
	res := &Results{Subjects: []*Subject{
		sub("wrecked", KindContrast, "kjv", 1, 30),
		sub("good", KindSingle, "kjv", 0.5, 1.1),
		sub("cheaper", KindSingle, "kjv", 0.5, 1.01),
		sub("other voice", KindSingle, "web", 0.9, 1),
		sub("magnitude", KindMagnitude, "", 1, 1),
		sub("only wrecked", KindSingle, "devil", 0.2, 9),
	}}
	for v, want := range map[string]string{"kjv": "cheaper", "web": "other voice", "devil": "only wrecked"} {
		if b := res.Best(v); b == nil || b.ID != want {
			t.Errorf("best of %s: %v, want %s", v, b, want)
		}
	}
	if res.Best("sotu") != nil {
		t.Error("a voice without masks has a best mask")
	}
}

func TestParseLists(t *testing.T) {
	if got := SplitList(" a, ,b ,"); strings.Join(got, "|") != "a|b" {
		t.Errorf("SplitList: %q", got)
	}
	pairs, err := ParsePairs("kjv:web, devil+wordnet")
	if err != nil || len(pairs) != 2 || pairs[1] != [2]string{"devil", "wordnet"} {
		t.Errorf("ParsePairs: %v %v", pairs, err)
	}
	if p, err := ParsePairs("none"); err != nil || p == nil || len(p) != 0 {
		t.Errorf("none: %v %v", p, err)
	}
	if _, err := ParsePairs("kjv:web,kjv"); err == nil || !strings.Contains(err.Error(), `"kjv"`) {
		t.Errorf("bad pair: %v", err)
	}
}

// TestSculpt learns Persona-Pruner masks for two voices next to Wanda's
// ffn masks at the same sparsity, interrupting the run in the middle of
// a mask's learning: the resumed run continues from sculpt's checkpoint and
// ends with the results of an uninterrupted run; the masks keep whole FFN
// channels at the ffn masks' size and are overlapped like them.
func TestSculpt(t *testing.T) {
	ck := tinyVoices(t)
	mk := func(out string) Config {
		cfg := quick(t, ck, out)
		cfg.Pairs = [][2]string{}
		cfg.Granularities, cfg.Sparsities = []string{FFN}, []float64{0.5}
		cfg.EvalLimit, cfg.EvalMaxTokens, cfg.PPLRows, cfg.CalibSamples = 1, 4, 1, 4
		cfg.Sculpt, cfg.SculptSteps = true, 6
		return cfg
	}
	dirA := t.TempDir()
	a, err := Run(context.Background(), mk(dirA))
	if err != nil {
		t.Fatal(err)
	}
	if a.Settings.SculptSteps != 6 || !slices.Equal(a.Settings.SculptPatterns, []string{"ffn-0.50"}) {
		t.Errorf("settings %+v", a.Settings)
	}
	var sculpted, wanda []*Subject
	for _, s := range a.Subjects {
		switch s.Kind {
		case KindSculpt:
			sculpted = append(sculpted, s)
		case KindSingle:
			wanda = append(wanda, s)
		}
	}
	if len(sculpted) != 2 || len(wanda) != 2 {
		t.Fatalf("%d Persona-Pruner and %d wanda subjects, want 2 and 2", len(sculpted), len(wanda))
	}
	for i, s := range sculpted {
		if s.Method != MethodPersonaPruner || s.Pattern.String() != "ffn-0.50" || s.Voice != wanda[i].Voice {
			t.Errorf("subject %+v", s)
		}
		if s.Density != wanda[i].Density {
			t.Errorf("%s keeps %g of the weights, %s %g", s.ID, s.Density, wanda[i].ID, wanda[i].Density)
		}
		m, err := mask.Load(s.File)
		if err != nil {
			t.Fatal(err)
		}
		if m.Info.Method != MethodPersonaPruner || m.Info.Granularity != "ffn-channels" {
			t.Errorf("%s: mask info %+v", s.ID, m.Info)
		}
		if _, ok := s.Empty[s.Voice]; !ok {
			t.Errorf("%s was not evaluated", s.ID)
		}
	}
	found := false
	for _, o := range a.Overlaps {
		if o.Method == MethodPersonaPruner {
			found = len(o.Voices) == 2 && o.Differ[0][1] > 0
		}
	}
	if !found {
		t.Errorf("no overlap of the two voices' Persona-Pruner masks: %+v", a.Overlaps)
	}
	page, err := os.ReadFile(filepath.Join(dirA, ReportFile))
	if err != nil || !strings.Contains(string(page), "Persona-Pruner, empty") {
		t.Errorf("report.html lacks the Persona-Pruner column (%v)", err)
	}

	dirB := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := mk(dirB)
	interrupted := false
	cfg.Progress = func(p Progress) {
		if p.Job == "sculpt" && p.StepDone > 0 && p.StepDone < p.StepTotal && !interrupted {
			interrupted = true
			cancel()
		}
	}
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) || !interrupted {
		t.Fatalf("interrupted run: %v (interrupted during learning: %v)", err, interrupted)
	}
	b, err := Run(context.Background(), mk(dirB))
	if err != nil {
		t.Fatal(err)
	}
	rel := func(r *Results, dir string) string { return strings.ReplaceAll(asJSON(t, comparable(r)), dir, "OUT") }
	if ra, rb := rel(a, dirA), rel(b, dirB); ra != rb {
		t.Fatalf("resumed results differ from the uninterrupted run:\n%s\n%s", ra, rb)
	}
}
