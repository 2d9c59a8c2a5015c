package voices

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/internal/browsertest"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/ppl"
	"github.com/masque-ai/masque/eval/report"
	"github.com/masque-ai/masque/eval/roleplay"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/jsonlstore"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train/sft"
)

func openBuiltin(t *testing.T) *checkpoint.Checkpoint {
	t.Helper()
	ck, err := checkpoint.Open(builtin.Stories, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

// halfFFNMask prunes every other input column of every FFN down projection.
func halfFFNMask(t *testing.T, m *model.Model) *mask.Mask {
	mk := mask.New(m)
	for l := 0; l < m.Config.Layers; l++ {
		w := m.Layers[l].Weight(model.ProjDown)
		b := mask.NewBits(w.Rows, w.Cols)
		for r := 0; r < w.Rows; r++ {
			for c := 0; c < w.Cols; c += 2 {
				b.Set(r, c, false)
			}
		}
		if err := mk.Set(mask.Key{Layer: l, Proj: model.ProjDown}, b); err != nil {
			t.Fatal(err)
		}
	}
	return mk
}

// TestBenchmarkEndToEnd runs the whole benchmark on the built-in model and
// the test corpus, and checks its numbers against independent
// computations.
func TestBenchmarkEndToEnd(t *testing.T) {
	ck := openBuiltin(t)
	corpus := copyCorpus(t)
	out := filepath.Join(t.TempDir(), "dense")
	ctx := context.Background()
	var stages []string
	var sampledDone []int
	cfg := Config{Corpus: corpus, Checkpoint: ck, Limit: 4, MaxTokens: 24, Seed: 7, Out: out,
		Progress: func(stage string, done, total int) {
			if !slices.Contains(stages, stage) {
				stages = append(stages, stage)
			}
			if stage == "sampled" {
				sampledDone = append(sampledDone, done)
			}
		}}
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Progress is reported per item, although the items are answered in
	// batches.
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; !slices.Equal(sampledDone, want) {
		t.Errorf("sampled progress %v, want %v", sampledDone, want)
	}
	// The classifier was trained and saved beside the corpus.
	if _, err := os.Stat(filepath.Join(corpus, ClassifierFile)); err != nil || rep.Classifier.Bytes == 0 {
		t.Fatalf("classifier file: %v (%d bytes)", err, rep.Classifier.Bytes)
	}
	if want := []string{"classifier test", "greedy", "sampled", "perplexity"}; !slices.Equal(stages, want) {
		t.Errorf("stages %v, want %v", stages, want)
	}
	if len(rep.Items) != 12 || len(rep.VoiceOrder) != 3 {
		t.Fatalf("%d items, voices %v", len(rep.Items), rep.VoiceOrder)
	}

	// Fidelity and the confusion matrix agree with a fresh classification
	// of the stored answers.
	cl, err := LoadClassifier(filepath.Join(corpus, ClassifierFile))
	if err != nil {
		t.Fatal(err)
	}
	for vi, v := range rep.VoiceOrder {
		hits, hits08 := 0, 0
		row := make([]int, len(rep.Confusion.Cols))
		for _, it := range rep.Items {
			if it.Voice != v {
				continue
			}
			if it.Greedy.Tokens == 0 || it.T08.Tokens == 0 {
				t.Errorf("%s: an empty answer", it.ID)
			}
			name := cl.Predict(it.Greedy.Text).Name(cl.Voices)
			if name != it.Greedy.Voice {
				t.Errorf("%s: classified %q, report says %q", it.ID, name, it.Greedy.Voice)
			}
			if name == v {
				hits++
			}
			if it.T08.Voice == v {
				hits08++
			}
			row[colOf(rep.Confusion.Cols, name)]++
		}
		vr := rep.Voices[v]
		if float64(vr.Fidelity) != float64(hits)/4 || float64(vr.FidelityT08) != float64(hits08)/4 || !slices.Equal(row, rep.Confusion.Greedy[vi]) {
			t.Errorf("%s: fidelity %v/%v, confusion %v; recomputed %d/4, %d/4, %v", v, vr.Fidelity, vr.FidelityT08, rep.Confusion.Greedy[vi], hits, hits08, row)
		}
		// The own-persona perplexity equals eval/ppl's on the test file
		// (the test answers are short: nothing is truncated).
		samples, err := ppl.Load(filepath.Join(corpus, v, "test.jsonl"), ck.Tokenizer, sft.NewEncoder(ck.Template, ck.Tokenizer, ck.TemplateConfig, ck.HasTemplate), 512)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := ppl.Evaluate(ctx, ck.Model, v, samples, nil)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(vr.PPLOwn)-pr.PPL) > 1e-9*pr.PPL || vr.ScoredTokens != pr.Tokens {
			t.Errorf("%s: ppl_own %v over %d tokens, eval/ppl %v over %d", v, vr.PPLOwn, vr.ScoredTokens, pr.PPL, pr.Tokens)
		}
		var others float64
		for _, o := range rep.VoiceOrder {
			if o != v {
				others += float64(vr.PPLUnder[o]) / 2
			}
		}
		if math.Abs(float64(vr.PPLOtherPersonas)-others) > 1e-12*others || math.Abs(float64(vr.ConditioningRatio)-float64(vr.PPLOwn)/others) > 1e-12 {
			t.Errorf("%s: other personas %v ratio %v, recomputed %v", v, vr.PPLOtherPersonas, vr.ConditioningRatio, others)
		}
		if vr.PPL != vr.PPLOwn || !vr.Distinct1.Valid() || !(vr.Distinct2 >= 0 && vr.Distinct2 <= 1) {
			t.Errorf("%s: %+v", v, vr)
		}
	}

	// The JSON has the documented shape.
	data, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var shape struct {
		ClassifierAccuracy *float64 `json:"classifier_accuracy"`
		MeanFidelity       *float64 `json:"mean_fidelity"`
		Voices             map[string]map[string]any
		Confusion          map[string]any
	}
	if err := json.Unmarshal(data, &shape); err != nil {
		t.Fatal(err)
	}
	if shape.ClassifierAccuracy == nil || shape.MeanFidelity == nil || len(shape.Voices) != 3 || shape.Confusion["greedy"] == nil {
		t.Fatalf("report.json lacks keys: %s", data[:min(len(data), 400)])
	}
	for _, k := range []string{"fidelity", "fidelity_t08", "ppl", "ppl_other_personas", "conditioning_ratio", "distinct2", "repetition"} {
		if _, ok := shape.Voices["gloss"][k]; !ok {
			t.Errorf("voices.gloss lacks %q", k)
		}
	}
	back, err := ReadReport(out)
	if err != nil || back.MeanFidelity != rep.MeanFidelity {
		t.Fatalf("ReadReport: %v", err)
	}

	// A rerun resumes from the caches and gives the same report; a run
	// without caches gives the same answers (deterministic, seeded).
	rep2, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A run interrupted in the middle of a chunk (every other answer
	// missing from the cache) regenerates the whole chunk and gives the
	// same answers; the answers it finds in the cache are kept as they are
	// (here one edited by hand).
	resumed := filepath.Join(filepath.Dir(out), "resumed")
	cacheData, err := os.ReadFile(filepath.Join(out, GenerationsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(cacheData), "\n"), "\n")
	if len(lines) != 2*len(rep.Items) {
		t.Fatalf("%d cached answers for %d items", len(lines), len(rep.Items))
	}
	var kept []string
	for i, l := range lines {
		if i%2 == 0 {
			kept = append(kept, l)
		}
	}
	edited := strings.Replace(kept[0], `"text":"`, `"text":"EDITED `, 1)
	if edited == kept[0] {
		t.Fatalf("no text in the cache line %s", kept[0])
	}
	kept[0] = edited
	if err := os.MkdirAll(resumed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(resumed, GenerationsFile), []byte(strings.Join(kept, "")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgR := cfg
	cfgR.Out = resumed
	repR, err := Run(ctx, cfgR)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range repR.Items {
		want := rep.Items[i]
		if i == 0 {
			if it.Greedy.Text != "EDITED "+want.Greedy.Text {
				t.Errorf("item 0: cached answer %q not kept (original %q)", it.Greedy.Text, want.Greedy.Text)
			}
			continue
		}
		if it.Greedy.Text != want.Greedy.Text || it.T08.Text != want.T08.Text || it.Greedy.Tokens != want.Greedy.Tokens || it.T08.Finish != want.T08.Finish {
			t.Errorf("item %d: resumed answers %q / %q, want %q / %q", i, it.Greedy.Text, it.T08.Text, want.Greedy.Text, want.T08.Text)
		}
	}

	cfg3 := cfg
	cfg3.Out = ""
	rep3, err := Run(ctx, cfg3)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Report{rep2, rep3} {
		if !reflect.DeepEqual(r.Items, rep.Items) || !reflect.DeepEqual(r.Voices, rep.Voices) || !reflect.DeepEqual(r.Confusion, rep.Confusion) {
			t.Fatal("a rerun gave other results")
		}
	}
	cfg4 := cfg3
	cfg4.Seed = 8
	rep4, err := Run(ctx, cfg4)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := range rep.Items {
		if rep4.Items[i].Greedy != rep.Items[i].Greedy {
			t.Fatal("the seed changed a greedy answer")
		}
		if rep4.Items[i].T08.Text == rep.Items[i].T08.Text {
			same++
		}
	}
	if same == len(rep.Items) {
		t.Error("another seed gave the same sampled answers")
	}

	// The library takes a model prepared by the caller (here masked), and
	// an override system prompt.
	masked, err := mask.Masked(ck.Model, halfFFNMask(t, ck.Model), nil)
	if err != nil {
		t.Fatal(err)
	}
	empty := ""
	mout := filepath.Join(filepath.Dir(out), "masked")
	mrep, err := Run(ctx, Config{Corpus: corpus, Checkpoint: ck, Model: masked, ModelExtra: "half-ffn", Method: "checker", Limit: 4, MaxTokens: 24, Seed: 7,
		System: &empty, Out: mout})
	if err != nil {
		t.Fatal(err)
	}
	differs := false
	for i, it := range mrep.Items {
		differs = differs || it.Greedy.Text != rep.Items[i].Greedy.Text
		if _, ok := it.NLL[systemKey]; !ok {
			t.Fatalf("%s: no NLL under the override", it.ID)
		}
	}
	if !differs || mrep.Fingerprint == rep.Fingerprint && mrep.Voices["gloss"].PPLOwn == rep.Voices["gloss"].PPLOwn {
		t.Error("the masked model gave the dense model's results")
	}
	if mrep.Voices["gloss"].PPL == mrep.Voices["gloss"].PPLOwn {
		t.Error("ppl under an empty system prompt equals ppl under the persona")
	}

	// eval compare reads both runs.
	var runs []*roleplay.Run
	for _, dir := range []string{out, mout} {
		r, err := roleplay.ReadRun(dir)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	if got := float64(runs[0].Summary[MetricFidelity].Mean); math.Abs(got-float64(rep.MeanFidelity)) > 1e-12 {
		t.Errorf("run.json fidelity %v, report %v", got, rep.MeanFidelity)
	}
	c, err := report.Compare(runs, report.Options{Metric: MetricFidelity, Seed: 1, Resamples: 200})
	if err != nil {
		t.Fatal(err)
	}
	if c.Reference != "dense" || len(c.Diffs) != len(RunMetrics) || c.Diffs[0].Pairs != 12 {
		t.Fatalf("compare: reference %s, %d diffs %+v", c.Reference, len(c.Diffs), c.Diffs)
	}
	if len(c.Warnings) > 0 || len(rep.Classifier.SHA256) != 64 || mrep.Classifier.SHA256 != rep.Classifier.SHA256 {
		t.Fatalf("compare warns %v (classifiers %s, %s)", c.Warnings, rep.Classifier.SHA256, mrep.Classifier.SHA256)
	}
	cdir := filepath.Join(filepath.Dir(out), "compare")
	os.MkdirAll(cdir, 0o755)
	if err := c.Save(filepath.Join(cdir, "compare.json"), filepath.Join(cdir, "report.html")); err != nil {
		t.Fatal(err)
	}

	// The HTML report.
	page, err := os.ReadFile(filepath.Join(out, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "Confusion, greedy answers", "scripture", "Persona fidelity", "ppl other personas"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if strings.Contains(string(page), "http://") && !strings.Contains(string(page), `xmlns="http://www.w3.org/2000/svg"`) || strings.Contains(string(page), "<script src") || strings.Contains(string(page), "<link") {
		t.Error("report.html refers to external assets")
	}
	if keep := os.Getenv("MASQUE_VOICES_E2E_OUT"); keep != "" {
		os.MkdirAll(keep, 0o755)
		os.WriteFile(filepath.Join(keep, "report.html"), page, 0o644)
	}
	if browsertest.Find() == "" {
		t.Log("chromium is not installed: skipping the rendering check")
	} else {
		screenshot(t, filepath.Join(out, HTMLFile))
	}
}

func TestBenchmarkBadInput(t *testing.T) {
	ck := openBuiltin(t)
	ctx := context.Background()

	// A corpus missing a split.
	dir := copyCorpus(t)
	os.Remove(filepath.Join(dir, "slang", "test.jsonl"))
	out := filepath.Join(t.TempDir(), "out")
	_, err := Run(ctx, Config{Corpus: dir, Checkpoint: ck, Limit: 1, MaxTokens: 4, Out: out})
	if err == nil || !strings.Contains(err.Error(), filepath.Join("slang", "test.jsonl")) {
		t.Errorf("missing test split: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(out, ReportFile)); serr == nil {
		t.Error("a report was written for a failed run")
	}

	// A classifier trained for another voice set.
	dir = copyCorpus(t)
	other, _ := Train([]string{"scripture", "gloss"}, [][]string{{"thou art"}, {"a word"}}, TrainOptions{})
	other.Save(filepath.Join(dir, ClassifierFile))
	_, err = Run(ctx, Config{Corpus: dir, Checkpoint: ck, Limit: 1, MaxTokens: 4})
	if err == nil || !strings.Contains(err.Error(), "knows the voices") {
		t.Errorf("classifier for another voice set: %v", err)
	}

	// A classifier file that is not one.
	os.WriteFile(filepath.Join(dir, ClassifierFile), []byte("junk"), 0o644)
	_, err = Run(ctx, Config{Corpus: dir, Checkpoint: ck, Limit: 1, MaxTokens: 4})
	if err == nil || !strings.Contains(err.Error(), ClassifierFile) {
		t.Errorf("junk classifier: %v", err)
	}

	// Missing train split when the classifier must be trained.
	dir = copyCorpus(t)
	os.Remove(filepath.Join(dir, "gloss", "train.jsonl"))
	_, err = Run(ctx, Config{Corpus: dir, Checkpoint: ck, Limit: 1, MaxTokens: 4})
	if err == nil || !strings.Contains(err.Error(), "no train split") {
		t.Errorf("missing train split: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, ClassifierFile)); serr == nil {
		t.Error("a classifier was written from an incomplete corpus")
	}

	// Unknown voice, in a given corpus and in the default one (the
	// evaluation kit built into builtin:voices).
	_, err = Run(ctx, Config{Corpus: copyCorpus(t), Checkpoint: ck, Voices: []string{"pirate"}})
	if err == nil || !strings.Contains(err.Error(), `no voice "pirate"`) {
		t.Errorf("unknown voice: %v", err)
	}
	t.Setenv("MASQUE_CACHE", t.TempDir())
	_, err = Run(ctx, Config{Checkpoint: ck, Voices: []string{"pirate"}})
	if err == nil || !strings.Contains(err.Error(), `no voice "pirate"`) || !strings.Contains(err.Error(), "voices-kit") {
		t.Errorf("unknown voice in the built-in kit: %v", err)
	}

	// A cancelled run stops with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = Run(cctx, Config{Corpus: copyCorpus(t), Checkpoint: ck, Limit: 1, MaxTokens: 4})
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled: %v", err)
	}
}

// TestAnswersDuplicates checks that items of one chunk with the same prompts
// and options get one answer, stored once, as they would from the cache.
func TestAnswersDuplicates(t *testing.T) {
	ck := openBuiltin(t)
	tok, err := ck.NeedTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), GenerationsFile)
	gens, err := jsonlstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer gens.Close()
	g := &runner{ck: ck, m: ck.Model, tok: generate.FromTokenizer(tok), stops: ck.StopTokens(), maxSeq: ck.Model.Config.MaxSeq, key: "test", gens: gens}
	q := question{voice: "v", row: "1", user: "Once upon a time", o: generate.Options{MaxTokens: 8, Temperature: 1, Seed: 3}}
	other := q
	other.row, other.user = "2", "A cat"
	got, err := g.answers(context.Background(), []question{q, other, q})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != got[2] || got[0].Tokens == 0 || got[1].Tokens == 0 {
		t.Fatalf("answers %+v", got)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Fatalf("%d cached answers for 2 distinct questions:\n%s", n, data)
	}
}
