package report

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/serve"
)

// recordCases are the judge requests recorded into testdata/eval.
func recordCases() map[string]openaiclient.Request {
	c := judge.Case{
		Persona:  "Name: Maren Solberg\nA retired lighthouse keeper on a North Sea island: gruff, terse, full of weather lore.",
		Question: "How can you tell that bad weather is coming without a forecast?",
		Response: "Gulls fly low and come inland. The air smells of iron. Swell before wind. Then you close the shutters.",
	}
	req := func(m judge.Metric, top int) openaiclient.Request {
		return openaiclient.Request{Model: "base", Messages: m.Messages(c), MaxTokens: m.MaxTokens, TopLogprobs: top}
	}
	// A prompt that ends the way a number would begin, to get digits among
	// the candidates of a tiny model.
	digits := openaiclient.Request{Model: "base", MaxTokens: 8, TopLogprobs: 20, Messages: []chattemplate.Message{
		{Role: "user", Content: "Count: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42"}}}
	cp := judge.Compact
	return map[string]openaiclient.Request{
		"compact-consistency":    req(cp.Consistency, 20),
		"compact-coherence":      req(cp.Coherence, 20),
		"compact-consistency-t5": req(cp.Consistency, 5),
		"compact-rubric":         req(cp.Gym[2], 0),
		"digits":                 digits,
		// The standard prompt does not fit stories260K's 512 positions:
		// a real error reply.
		"standard-consistency-too-long": req(judge.Consistency, 20),
	}
}

// TestRecordJudgeResponses records real replies of `masque serve` (package
// serve over the built-in stories260K model) to judge requests. It runs
// only when MASQUE_RECORD_JUDGE names the output folder; testdata/eval was
// made with
//
//	MASQUE_RECORD_JUDGE=$PWD/testdata/eval go test ./eval/report -run TestRecordJudgeResponses -count=1
func TestRecordJudgeResponses(t *testing.T) {
	out := os.Getenv("MASQUE_RECORD_JUDGE")
	if out == "" {
		t.Skip("set MASQUE_RECORD_JUDGE=DIR to record judge replies from masque serve")
	}
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	srv, err := serve.New(serve.Options{Base: ck})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	type rec struct {
		path string
		body map[string]any
	}
	cases := map[string]rec{
		// The legacy completions endpoint continues raw text: the only way
		// found to get a digit among this model's top candidates.
		"legacy-completion-digit": {"/v1/completions", map[string]any{"model": "base", "prompt": "1 2 3 4 5 6 7 8", "max_tokens": 4, "temperature": 0, "logprobs": 5}},
	}
	for name, r := range recordCases() {
		body := map[string]any{"model": r.Model, "messages": r.Messages, "max_tokens": r.MaxTokens, "temperature": 0}
		if r.TopLogprobs > 0 {
			body["logprobs"], body["top_logprobs"] = true, r.TopLogprobs
		}
		cases[name] = rec{"/v1/chat/completions", body}
	}
	for name, c := range cases {
		body := c.body
		data, _ := json.Marshal(body)
		res, err := http.Post(hs.URL+c.path, "application/json", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !json.Valid(raw) {
			t.Fatalf("%s: not JSON: %s", name, raw)
		}
		resp := json.RawMessage(raw) // kept as sent (re-indented only)
		rec, _ := json.MarshalIndent(map[string]any{"endpoint": c.path, "request": body, "status": res.StatusCode, "response": resp}, "", " ")
		if err := os.WriteFile(filepath.Join(out, "serve-stories260K-"+name+".json"), append(rec, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
