package roleplay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/openaiclient"
)

// fakeGen answers with a fixed pattern and counts its calls.
type fakeGen struct {
	calls atomic.Int32
	fail  bool
}

func (g *fakeGen) Fingerprint() string { return "fake-v1" }
func (g *fakeGen) Generate(ctx context.Context, system, q string) (Generation, error) {
	g.calls.Add(1)
	if g.fail {
		return Generation{}, fmt.Errorf("engine on fire")
	}
	return Generation{Text: "Arr, " + strings.ToLower(q), FinishReason: "stop"}, nil
}

// judgeServer answers every prompt: 0–100 prompts with logprobs around
// value, rubric prompts with a final score of 4. mode "garbage" sends HTML,
// "nonsense" a well-formed reply nobody can read.
func judgeServer(t *testing.T, mode string, value int) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req struct {
			Messages []chattemplate.Message `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("bad request: %v", err)
		}
		user := req.Messages[len(req.Messages)-1].Content
		switch mode {
		case "garbage":
			io.WriteString(w, "<html>upstream exploded</html>")
			return
		case "nonsense":
			json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": "banana"}}}})
			return
		}
		if strings.Contains(user, "final score") {
			json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": "Decent.\nTherefore, the final score is 4"}}}})
			return
		}
		v := value
		if strings.Contains(user, "Ignore the persona") {
			v = value - 10 // coherence
		}
		top := []map[string]any{
			{"token": fmt.Sprint(v), "logprob": math.Log(0.5)},
			{"token": fmt.Sprint(v + 10), "logprob": math.Log(0.5)},
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{
			"message":  map[string]any{"content": fmt.Sprint(v)},
			"logprobs": map[string]any{"content": []any{map[string]any{"token": fmt.Sprint(v), "logprob": math.Log(0.5), "top_logprobs": top}}},
		}}})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func testJudge(url string) *judge.Judge {
	return &judge.Judge{Client: &openaiclient.Client{URL: url, MaxAttempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, Model: "fake-judge"}
}

func tinySet(t *testing.T) *Set {
	s := &Set{Name: "tiny", Source: "test", Kind: "personas", Personas: []Persona{
		{ID: "pirate", Description: "A pirate.", System: "Be a pirate.", Questions: []Question{
			{Kind: KindSpecific, Index: 0, Text: "Where is the gold?"}, {Kind: KindGeneral, Index: 0, Text: "Why is the sky blue?"}}},
		{ID: "robot", Description: "A robot.", System: "Be a robot.", Questions: []Question{
			{Kind: KindSpecific, Index: 0, Text: "Do you dream?"}, {Kind: KindGeneral, Index: 0, Text: "Why is the sky blue?"}}},
	}}
	return s
}

func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestEvaluateResumesAfterFailures(t *testing.T) {
	out := t.TempDir()
	gen := &fakeGen{}
	metrics := []judge.Metric{judge.Consistency, judge.Coherence}
	cfg := Config{Out: out, Set: tinySet(t), Gen: gen, Metrics: metrics, GenConcurrency: 2, JudgeConcurrency: 3, Label: "dense", Method: "dense"}

	// 1. The judge is unreachable: answers are kept, the run is partial.
	cfg.Judge, cfg.JudgeURL = testJudge(closedURL(t)), "closed"
	r, err := Evaluate(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "unreachable after 2 attempts") || !strings.Contains(err.Error(), "rerun the same command to resume") {
		t.Fatalf("unreachable judge: %v", err)
	}
	saved, rerr := ReadRun(out)
	if rerr != nil || saved.Complete || saved.Error == "" || saved.Counts.Answered != 4 || r.Counts.Answered != 4 {
		t.Fatalf("partial run.json: %v %+v", rerr, saved)
	}
	if gen.calls.Load() != 4 {
		t.Fatalf("%d generations", gen.calls.Load())
	}

	// 2. A judge that returns garbage: a clear error, nothing lost.
	garbage, _ := judgeServer(t, "garbage", 0)
	cfg.Judge = testJudge(garbage.URL)
	if _, err := Evaluate(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "malformed response") || !strings.Contains(err.Error(), garbage.URL) {
		t.Fatalf("garbage judge: %v", err)
	}

	// A torn last line (a crash mid-write) is tolerated.
	f, _ := os.OpenFile(filepath.Join(out, GenerationsFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"key":"torn","val`)
	f.Close()

	// 3. A working judge: generations come from the cache.
	srv, calls := judgeServer(t, "", 70)
	cfg.Judge = testJudge(srv.URL)
	r, err = Evaluate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if gen.calls.Load() != 4 || r.Counts.GenCached != 4 || calls.Load() != 8 || !r.Complete {
		t.Fatalf("gen calls %d cached %d judge calls %d complete %v", gen.calls.Load(), r.Counts.GenCached, calls.Load(), r.Complete)
	}
	// Every item: consistency = (0.5·70 + 0.5·80) = 75, coherence 65.
	if s := r.Summary["consistency"]; float64(s.Mean) != 75 || s.N != 2 || s.Items != 4 || float64(s.SD) != 0 {
		t.Fatalf("consistency summary %+v", s)
	}
	if s := r.Summary["coherence"]; float64(s.Mean) != 65 {
		t.Fatalf("coherence summary %+v", s)
	}
	if s := r.Items[0].Scores["consistency"]; s.Method != judge.MethodLogprobs || s.PromptVersion != judge.PromptVersion {
		t.Fatalf("item %+v", r.Items[0])
	}

	// 4. Rerun: everything cached.
	r, err = Evaluate(context.Background(), cfg)
	if err != nil || calls.Load() != 8 || r.Counts.JudgeCached != 8 {
		t.Fatalf("rerun: %v, %d judge calls, %d cached", err, calls.Load(), r.Counts.JudgeCached)
	}
	saved, _ = ReadRun(filepath.Join(out, RunFile))
	if !saved.Complete || saved.Error != "" || len(saved.Prompts) != 2 || saved.Judge.PromptVersion != judge.PromptVersion {
		t.Fatalf("saved %+v", saved)
	}
}

func TestEvaluateUnreadableVerdictsAndRubrics(t *testing.T) {
	srv, _ := judgeServer(t, "nonsense", 0)
	metrics := append([]judge.Metric{judge.Consistency}, judge.Gym...)
	out := t.TempDir()
	r, err := Evaluate(context.Background(), Config{Out: out, Set: tinySet(t), Gen: &fakeGen{}, Judge: testJudge(srv.URL), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.Failures != 4*6 || r.Counts.Scored != 0 {
		t.Fatalf("counts %+v", r.Counts)
	}
	s := r.Summary["consistency"]
	if s.Mean.Valid() || s.Failures != 4 || s.N != 0 {
		t.Fatalf("summary %+v", s)
	}
	if r.Items[0].Scores["gym_toxicity_control"].Reply != "banana" {
		t.Fatal("the unreadable reply is not kept")
	}
	data, _ := os.ReadFile(filepath.Join(out, RunFile))
	if !strings.Contains(string(data), `"mean": null`) {
		t.Fatal("a mean over nothing is not written as null")
	}

	good, _ := judgeServer(t, "", 50)
	r, err = Evaluate(context.Background(), Config{Out: t.TempDir(), Set: tinySet(t), Gen: &fakeGen{}, Judge: testJudge(good.URL), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Summary[MetricPScore]; float64(s.Mean) != 4 || s.N != 2 {
		t.Fatalf("pscore %+v", s)
	}
	if len(r.Notes) < 2 || !strings.Contains(strings.Join(r.Notes, " "), "style scores: none") {
		t.Fatalf("notes %q", r.Notes)
	}
}

func TestEvaluateGeneratorFailure(t *testing.T) {
	out := t.TempDir()
	_, err := Evaluate(context.Background(), Config{Out: out, Set: tinySet(t), Gen: &fakeGen{fail: true}})
	if err == nil || !strings.Contains(err.Error(), "engine on fire") {
		t.Fatalf("%v", err)
	}
	saved, rerr := ReadRun(out)
	if rerr != nil || saved.Complete || saved.Counts.Answered != 0 {
		t.Fatalf("%v %+v", rerr, saved)
	}
}

func TestEvaluateRoleBenchRouge(t *testing.T) {
	s, err := LoadRoleBench(filepath.Join("testdata", "rolebench", "test.jsonl"), filepath.Join("testdata", "rolebench", "desc.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(context.Background(), Config{Out: t.TempDir(), Set: s, Gen: &fakeGen{}})
	if err != nil {
		t.Fatal(err)
	}
	// "Arr, what do you fear most at sea?" (8 tokens) against "Calm water,
	// lad. A storm you can fight; a dead calm starves you slowly." (14):
	// LCS "you" = 1, F = 2/(8+14) = 1/11.
	// "Arr, where are we sailing next?" vs "South, past the reef, where the
	// charts go blank and the pay goes up." (14 tokens): LCS "where" = 1;
	// P = 1/6, R = 1/14, F = (2/84)/(20/84) = 0.1.
	if v := r.Items[1].Scores[MetricRougeL].Value; math.Abs(v-0.1) > 1e-12 {
		t.Fatalf("rouge %v", v)
	}
	if v := r.Items[0].Scores[MetricRougeL].Value; math.Abs(v-1.0/11) > 1e-12 || r.Summary[MetricRougeL].N != 2 {
		t.Fatalf("%+v", r.Summary)
	}
}

// TestRoleBenchEmptyReference: a row with an empty generated[0] (or none)
// is skipped and counted; the other rows are evaluated as usual.
func TestRoleBenchEmptyReference(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "rolebench", "test.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lines := strings.SplitAfter(strings.TrimSpace(string(src)), "\n")
	bad := `{"role": "Captain Wren", "question": "Any rum left?", "generated": [""]}` + "\n" +
		`{"role": "Professor Quill", "question": "Tea?", "generated": []}` + "\n"
	data := filepath.Join(dir, "test.jsonl")
	if err := os.WriteFile(data, []byte(lines[0]+bad+strings.Join(lines[1:], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadRoleBench(data, filepath.Join("testdata", "rolebench", "desc.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Count() != 4 || len(s.Skipped) != 2 || s.Skipped[0].Line != 2 || s.Skipped[1].Line != 3 {
		t.Fatalf("%d questions, skipped %+v", s.Count(), s.Skipped)
	}
	if sum := s.SkippedSummary(); !strings.Contains(sum, "2 source rows skipped (2 no reference answer (generated[0])): "+data+":2, "+data+":3") {
		t.Fatalf("summary %q", sum)
	}
	out := t.TempDir()
	r, err := Evaluate(context.Background(), Config{Out: out, Set: s, Gen: &fakeGen{}})
	if err != nil || !r.Complete || r.Summary[MetricRougeL].Items != 4 {
		t.Fatalf("%v %+v", err, r.Summary)
	}
	saved, err := ReadRun(out)
	if err != nil || saved.Set.Skipped != 2 || !slices.ContainsFunc(saved.Notes, func(n string) bool { return strings.Contains(n, "2 source rows skipped") }) {
		t.Fatalf("%v: set %+v, notes %q", err, saved.Set, saved.Notes)
	}
}

func TestAggregateOverPersonas(t *testing.T) {
	sc := func(v float64) map[string]ItemScore {
		return map[string]ItemScore{"consistency": {Score: judge.Score{Value: v, OK: true}}}
	}
	r := &Run{Metrics: []string{"consistency"}, Personas: []PersonaResult{{ID: "a"}, {ID: "b"}, {ID: "c"}},
		Items: []Item{
			{Persona: "a", Kind: KindSpecific, Scores: sc(80)}, {Persona: "a", Kind: KindGeneral, Scores: sc(60)},
			{Persona: "b", Kind: KindSpecific, Scores: sc(40)},
			{Persona: "b", Kind: KindGeneral, Scores: map[string]ItemScore{"consistency": {Score: judge.Score{Refusal: true}}}},
			{Persona: "c", Kind: KindSpecific, Scores: map[string]ItemScore{"consistency": {Score: judge.Score{}}}},
		}}
	r.Aggregate()
	s := r.Summary["consistency"]
	// Persona means 70 and 40 (c has none): mean 55, SD sqrt(((15)²+(15)²)/1).
	if float64(s.Mean) != 55 || math.Abs(float64(s.SD)-math.Sqrt(450)) > 1e-12 || s.N != 2 || s.Items != 3 || s.Refusals != 1 || s.Failures != 1 {
		t.Fatalf("%+v", s)
	}
	if k := r.SummaryByKind[KindGeneral]["consistency"]; float64(k.Mean) != 60 || k.N != 1 {
		t.Fatalf("by kind %+v", k)
	}
}

func TestEvaluateInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 2 {
			cancel() // the user presses Ctrl-C while the judge works
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": "50"}}}})
	}))
	defer srv.Close()
	out := t.TempDir()
	_, err := Evaluate(ctx, Config{Out: out, Set: tinySet(t), Gen: &fakeGen{}, Judge: testJudge(srv.URL), Metrics: []judge.Metric{judge.Consistency}})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("%v", err)
	}
	saved, rerr := ReadRun(out)
	if rerr != nil || saved.Complete || !strings.HasPrefix(saved.Error, "interrupted") {
		t.Fatalf("%v %+v", rerr, saved)
	}
	// Resume with a fresh context: only the missing verdicts are asked.
	before := n.Load()
	r, err := Evaluate(context.Background(), Config{Out: out, Set: tinySet(t), Gen: &fakeGen{}, Judge: testJudge(srv.URL), Metrics: []judge.Metric{judge.Consistency}})
	if err != nil || !r.Complete || int(n.Load()-before)+r.Counts.JudgeCached != 4 || r.Counts.JudgeCached == 0 {
		t.Fatalf("%v: %d new requests, %d cached", err, n.Load()-before, r.Counts.JudgeCached)
	}
}

func TestReadRunErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, errHas string
	}{
		{"missing", "", "no such file"},
		{"malformed", "{\"format\":", "malformed JSON"},
		{"wrong format", `{"format":"something-else"}`, `format "something-else"`},
	}
	for _, tc := range tests {
		p := filepath.Join(dir, tc.name+".json")
		if tc.content != "" {
			os.WriteFile(p, []byte(tc.content), 0o644)
		}
		if _, err := ReadRun(p); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
