package report

import (
	"bytes"
	"context"
	"image"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/internal/browsertest"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/roleplay"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/serve"
)

// checkerMask prunes the FFN entries (gate, up and down) at (r, c) with
// (r+c) mod every < prune: a fixed, model-independent pattern at sparsity
// prune/every.
func checkerMask(t *testing.T, m *model.Model, prune, every int) *mask.Mask {
	mk := mask.New(m)
	for l := 0; l < m.Config.Layers; l++ {
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			w := m.Layers[l].Weight(p)
			b := mask.NewBits(w.Rows, w.Cols)
			for r := 0; r < w.Rows; r++ {
				for c := 0; c < w.Cols; c++ {
					if (r+c)%every < prune {
						b.Set(r, c, false)
					}
				}
			}
			if err := mk.Set(mask.Key{Layer: l, Proj: p}, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	return mk
}

// judgeService starts `masque serve` (package serve over stories260K) on a
// loopback port and counts the chat requests it gets.
func judgeService(t *testing.T) (string, *atomic.Int32) {
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	srv, err := serve.New(serve.Options{Base: ck})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	var n atomic.Int32
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chat/completions") {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL + "/v1", &n
}

// e2eSet is a small set whose prompts fit stories260K's 512 positions with
// the compact judge prompts.
func e2eSet() *roleplay.Set {
	mk := func(id, desc string, qs ...string) roleplay.Persona {
		p := roleplay.Persona{ID: id, Description: desc, System: "You are " + desc}
		for i, q := range qs {
			kind := roleplay.KindSpecific
			if i >= 2 {
				kind = roleplay.KindGeneral
			}
			p.Questions = append(p.Questions, roleplay.Question{Kind: kind, Index: i % 2, Text: q})
		}
		return p
	}
	return &roleplay.Set{Name: "e2e", Source: "test", Kind: "personas", Personas: []roleplay.Persona{
		mk("dragon", "a sleepy old dragon.", "Where is your gold?", "Why are you sleepy?", "What is a friend?", "Why is the sky blue?"),
		mk("baker", "a happy baker.", "What do you bake?", "When do you wake up?", "What is a friend?", "Why is the sky blue?"),
	}}
}

func TestEndToEndAgainstMasqueServe(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	judgeURL, calls := judgeService(t)
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	root := t.TempDir()
	ctx := context.Background()
	metrics := append([]judge.Metric{judge.Compact.Consistency, judge.Compact.Coherence}, judge.Compact.Gym[0])
	newJudge := func() *judge.Judge {
		return &judge.Judge{Client: &openaiclient.Client{URL: judgeURL, MaxAttempts: 2, BaseBackoff: time.Millisecond}, Model: "base", Prompts: judge.Compact}
	}
	rb, err := roleplay.LoadRoleBench(filepath.Join("..", "roleplay", "testdata", "rolebench", "test.jsonl"), filepath.Join("..", "roleplay", "testdata", "rolebench", "desc.json"))
	if err != nil {
		t.Fatal(err)
	}
	type variant struct {
		label, method string
		sparsity      float64
		prune, every  int
	}
	variants := []variant{{"dense", "dense", 0, 0, 1}, {"checker-25", "checker", 0.25, 1, 4}, {"checker-50", "checker", 0.5, 1, 2}}
	var personaRuns, rbRuns []*roleplay.Run
	for _, v := range variants {
		m := ck.Model
		if v.prune > 0 {
			if m, err = mask.Masked(ck.Model, checkerMask(t, ck.Model, v.prune, v.every), nil); err != nil {
				t.Fatal(err)
			}
		}
		gen, err := roleplay.NewLocal(ck, m, generate.Options{MaxTokens: 24}, v.label)
		if err != nil {
			t.Fatal(err)
		}
		sp := v.sparsity
		for _, kind := range []string{"personas", "rolebench"} {
			set := e2eSet()
			if kind == "rolebench" {
				set = rb
			}
			before := calls.Load()
			cfg := roleplay.Config{Out: filepath.Join(root, kind, v.label), Label: v.label, Method: v.method, Sparsity: &sp, Model: "stories260K",
				Set: set, Gen: gen, GenConcurrency: 2, Judge: newJudge(), JudgeURL: judgeURL, Metrics: metrics, JudgeConcurrency: 4}
			r, err := roleplay.Evaluate(ctx, cfg)
			if err != nil {
				t.Fatalf("%s %s: %v", kind, v.label, err)
			}
			if got, want := int(calls.Load()-before), len(r.Items)*len(metrics); got != want {
				t.Fatalf("%s %s: %d judge requests, want %d", kind, v.label, got, want)
			}
			if r.Counts.Judgements != len(r.Items)*len(metrics) || r.Counts.Answered != len(r.Items) {
				t.Fatalf("counts %+v", r.Counts)
			}
			// Resume: nothing is asked again.
			before = calls.Load()
			r2, err := roleplay.Evaluate(ctx, cfg)
			if err != nil || calls.Load() != before || r2.Counts.GenCached != len(r.Items) || r2.Counts.JudgeCached != len(r.Items)*len(metrics) {
				t.Fatalf("rerun: %v, %d new judge requests, counts %+v", err, calls.Load()-before, r2.Counts)
			}
			if kind == "personas" {
				personaRuns = append(personaRuns, r2)
			} else {
				rbRuns = append(rbRuns, r2)
			}
		}
	}
	if personaRuns[0].Items[0].Answer == personaRuns[2].Items[0].Answer {
		t.Logf("note: the masked model gave the same first answer as the dense one")
	}

	// Pairwise over real HTTP, cached.
	j := newJudge()
	cache, err := roleplay.OpenCache(filepath.Join(root, "pairwise.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	j.Cache = cache
	pw, err := Pairwise(ctx, j, personaRuns[0], personaRuns[2], 3, nil)
	if err != nil || pw.Items != 8 || pw.PromptVersion != judge.CompactPromptVersion {
		t.Fatalf("pairwise %+v %v", pw, err)
	}
	// AddPairwise judges every run against the comparison's reference run.
	all, err := Compare(personaRuns, Options{Metric: "consistency", Seed: 3, Resamples: 100})
	if err != nil {
		t.Fatal(err)
	}
	followed := map[string]bool{}
	err = all.AddPairwise(ctx, newJudge(), personaRuns, filepath.Join(root, "pairwise-all.jsonl"), 2, func(label string, d, n int) { followed[label] = true })
	if err != nil || len(all.Pairwise) != len(personaRuns)-1 || len(followed) != len(personaRuns)-1 {
		t.Fatalf("AddPairwise: %v, %d results, progress of %v", err, len(all.Pairwise), followed)
	}
	for _, p := range all.Pairwise {
		if p.A != all.Reference || p.B == all.Reference || p.Items == 0 {
			t.Errorf("AddPairwise result %s vs %s, %d items", p.B, p.A, p.Items)
		}
	}

	var pages []string
	for _, tc := range []struct {
		name   string
		runs   []*roleplay.Run
		metric string
	}{{"personas", personaRuns, "consistency"}, {"rolebench", rbRuns, roleplay.MetricRougeL}} {
		c, err := Compare(tc.runs, Options{Metric: tc.metric, Baseline: "checker-50", Seed: 3, Resamples: 500})
		if err != nil {
			t.Fatal(err)
		}
		if tc.name == "personas" {
			c.Pairwise = append(c.Pairwise, *pw)
		}
		out := filepath.Join(root, "compare-"+tc.name)
		os.MkdirAll(out, 0o755)
		jsonPath, htmlPath := filepath.Join(out, "compare.json"), filepath.Join(out, "report.html")
		if err := c.Save(jsonPath, htmlPath); err != nil {
			t.Fatal(err)
		}
		page, _ := os.ReadFile(htmlPath)
		for _, want := range []string{"<svg", "checker-50", judge.CompactPromptVersion, "style scores: none"} {
			if !bytes.Contains(page, []byte(want)) {
				t.Errorf("%s report lacks %q", tc.name, want)
			}
		}
		if tc.name == "rolebench" {
			if len(c.Recovered) == 0 || len(c.Diffs) == 0 || !c.Runs[0].Summary[roleplay.MetricRougeL].Mean.Valid() {
				t.Errorf("rolebench comparison lacks numbers: %+v", c)
			}
		}
		pages = append(pages, htmlPath)
		if keep := os.Getenv("MASQUE_EVAL_E2E_OUT"); keep != "" {
			// For a human look: MASQUE_EVAL_E2E_OUT=DIR keeps the reports.
			os.MkdirAll(keep, 0o755)
			os.WriteFile(filepath.Join(keep, tc.name+".html"), page, 0o644)
		}
	}
	// Last, so that a missing Chromium skips only the rendering check.
	if browsertest.Find() == "" {
		t.Skip("chromium is not installed: skipping the rendering check (apt-get update && apt-get install -y chromium)")
	}
	for _, p := range pages {
		screenshot(t, p)
	}
}

// screenshot renders the page with Chromium (bin) headless and checks that
// the picture exists, is not tiny and is not blank.
func screenshot(t *testing.T, htmlPath string) {
	t.Helper()
	img := browsertest.Screenshot(t, "the eval reports", htmlPath, 1200, 900)
	checkNotBlank(t, img)
}

func checkNotBlank(t *testing.T, img image.Image) {
	b := img.Bounds()
	colors := map[uint32]bool{}
	dark, plotBlue := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			colors[r<<16|g<<8|bl] = true
			if r+g+bl < 300 {
				dark++
			}
			// #0072B2, the first run's colour, within antialiasing slack.
			if r < 40 && g > 90 && g < 140 && bl > 150 && bl < 210 {
				plotBlue++
			}
		}
	}
	if len(colors) < 20 || dark < 500 || plotBlue < 30 {
		t.Fatalf("the screenshot looks blank: %d colours, %d dark pixels, %d plot-blue pixels", len(colors), dark, plotBlue)
	}
}
