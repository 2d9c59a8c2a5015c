package sculpt

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
)

const corpusDir = "testdata/corpus"

func openBuiltin(t testing.TB) *checkpoint.Checkpoint {
	t.Helper()
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func personaData(t testing.TB, ck *checkpoint.Checkpoint, persona string) *Data {
	t.Helper()
	d, err := LoadPersona(ck, corpusDir, persona, DataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestKeepCountAndTopK(t *testing.T) {
	if k, err := KeepCount(172, 0.25); err != nil || k != 129 {
		t.Fatalf("KeepCount(172, 0.25) = %d, %v; want 129", k, err)
	}
	for _, r := range []float64{0, 1, -0.1, 1.5, math.NaN()} {
		if _, err := KeepCount(100, r); err == nil || !strings.Contains(err.Error(), "outside (0, 1)") {
			t.Errorf("ratio %v: err = %v", r, err)
		}
	}
	if _, err := KeepCount(4, 0.9); err == nil || !strings.Contains(err.Error(), "k = 0") {
		t.Errorf("k = 0: err = %v", err)
	}
	// Ties go to the smaller index, NaN ranks last, the result is ascending.
	s := []float64{1, 3, 3, math.NaN(), 3, 0, 2}
	if got := TopK(s, 3); !slices.Equal(got, []int{1, 2, 4}) {
		t.Errorf("TopK = %v", got)
	}
	if got := TopK(s, 2); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("TopK k=2 = %v", got)
	}
	if got := TopK([]float64{5, 5, 5, 5}, 2); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("all ties: %v", got)
	}
	if got := TopK(s, 6); !slices.Equal(got, []int{0, 1, 2, 4, 5, 6}) {
		t.Errorf("NaN last: %v", got)
	}
}

func smallConfig(ck *checkpoint.Checkpoint, d *Data, out string) Config {
	return Config{Checkpoint: ck, Data: d, Persona: "slang", Ratio: 0.25, Steps: 4, LR: 0.05, BatchTokens: 512, Seed: 3,
		CalibSamples: 4, EvalEvery: 2, CheckpointEvery: 2, Out: out, Threads: 2}
}

func TestRunResumeEqualsUninterrupted(t *testing.T) {
	ck := openBuiltin(t)
	d := personaData(t, ck, "slang")
	dirA := t.TempDir()
	cfg := smallConfig(ck, d, dirA)
	cfg.NoExport = true
	a, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Interrupt after 4 steps (context cancelled from the progress hook),
	// then resume.
	dirB := t.TempDir()
	cfgB := smallConfig(ck, d, dirB)
	cfgB.NoExport = true
	ctx, cancel := context.WithCancel(context.Background())
	cfgB.Progress = func(p Progress) {
		if p.Step == 2 {
			cancel()
		}
	}
	if _, err := Run(ctx, cfgB); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: err = %v", err)
	}
	if !hasCheckpoint(filepath.Join(dirB, CkptDir)) {
		t.Fatal("no checkpoint after the interruption")
	}
	// Without --resume the checkpoint is not overwritten.
	cfgB.Progress = nil
	if _, err := Run(context.Background(), cfgB); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Fatalf("second run without resume: %v", err)
	}
	cfgB.Resume = true
	b, err := Run(context.Background(), cfgB)
	if err != nil {
		t.Fatal(err)
	}
	for l := range a.Scores {
		if !slices.Equal(a.Scores[l], b.Scores[l]) {
			t.Fatalf("layer %d: resumed scores differ from the uninterrupted run", l)
		}
	}
	if len(a.History) != len(b.History) {
		t.Fatalf("history %d vs %d points", len(a.History), len(b.History))
	}
	for i := range a.History {
		if a.History[i].Loss != b.History[i].Loss || a.History[i].Churn != b.History[i].Churn {
			t.Fatalf("step %d: loss %v/%v churn %d/%d", i+1, a.History[i].Loss, b.History[i].Loss, a.History[i].Churn, b.History[i].Churn)
		}
	}
	if a.ValidLoss != b.ValidLoss {
		t.Fatalf("valid loss %v vs %v", a.ValidLoss, b.ValidLoss)
	}
	// A changed setting refuses the checkpoint.
	dirC := t.TempDir()
	cfgC := smallConfig(ck, d, dirC)
	cfgC.NoExport = true
	ctx2, cancel2 := context.WithCancel(context.Background())
	cfgC.Progress = func(p Progress) { cancel2() }
	if _, err := Run(ctx2, cfgC); !errors.Is(err, ErrInterrupted) {
		t.Fatal(err)
	}
	cfgC.Progress, cfgC.Resume, cfgC.Ratio = nil, true, 0.5
	if _, err := Run(context.Background(), cfgC); err == nil || !strings.Contains(err.Error(), "another model, data or settings") {
		t.Fatalf("resume with another ratio: %v", err)
	}
}

func TestRunWritesRunFolder(t *testing.T) {
	ck := openBuiltin(t)
	d := personaData(t, ck, "slang")
	dir := t.TempDir()
	res, err := Run(context.Background(), smallConfig(ck, d, dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{RunFile, ReportFile, KeepFile, ScoresFile, ModelDir + "/config.json", ModelDir + "/model.safetensors", ModelDir + "/tokenizer.bin", GGUFFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, CkptDir)); err == nil {
		t.Error("the checkpoint is left behind after a finished run")
	}
	html, _ := os.ReadFile(filepath.Join(dir, ReportFile))
	for _, want := range []string{"<svg", "mask churn", "polyline"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if strings.Contains(string(html), "http://") && strings.Contains(string(html), "src=\"http") {
		t.Error("report.html loads external assets")
	}
	if res.K != 129 || len(res.Keep) != 5 {
		t.Fatalf("k %d, %d layers", res.K, len(res.Keep))
	}
	if !(res.ValidLoss > 0) || !(res.DenseValidLoss > 0) {
		t.Fatalf("losses %v %v", res.ValidLoss, res.DenseValidLoss)
	}
	// keep indices round trip
	keep, fp, err := LoadKeep(filepath.Join(dir, KeepFile))
	if err != nil {
		t.Fatal(err)
	}
	if fp != res.Fingerprint {
		t.Errorf("fingerprint %q, want %q", fp, res.Fingerprint)
	}
	for l := range keep {
		if !slices.Equal(keep[l], res.Keep[l]) {
			t.Fatalf("layer %d: keep indices do not round-trip", l)
		}
	}
	// The exported model (Hugging Face folder and GGUF) computes the
	// masked model's logits.
	toks := d.Valid[0].Tokens
	net, err := train.New(ck.Model, train.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for l := range keep {
		net.FFNMask[l] = make([]float32, res.DFF)
		maskOf(net.FFNMask[l], keep[l])
	}
	want, err := net.Logits(toks)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, ModelDir), filepath.Join(dir, GGUFFile)} {
		ek, err := checkpoint.Open(path, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ek.Model.Config.Intermediate != res.K || ek.Tokenizer == nil {
			t.Fatalf("%s: intermediate_size %d, tokenizer %v", path, ek.Model.Config.Intermediate, ek.Tokenizer != nil)
		}
		got, err := ek.Model.Forward(ek.Model.NewCache(len(toks)), toks, true)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(got, want); d > 1e-4 {
			t.Errorf("%s: logits differ from the masked model's by %g", path, d)
		}
		ek.Close()
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

var _ = model.ProjGate
