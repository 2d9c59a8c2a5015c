package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/serve"
	"github.com/masque-ai/masque/style"
)

// styleMini is the four-voice slice of the voices corpus in style's testdata.
const styleMini = "../../style/testdata/voices-mini"

func styleRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestStyleProfileReportClassify runs profile (lexical and syntactic parts),
// report and classify on the voices-mini corpus.
func TestStyleProfileReportClassify(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "voices.json")
	code, out, errs := styleRun(t, "style", "profile", "--data", styleMini, "--out", prof)
	if code != 0 || !strings.Contains(out, "wrote "+prof) || !strings.Contains(out, "unto") {
		t.Fatalf("profile: %d\n%s\n%s", code, out, errs)
	}
	set, err := style.Load(prof)
	if err != nil || len(set.Characters) != 4 || set.Pragmatic != nil {
		t.Fatalf("profile file: %v %+v", err, set)
	}
	html := filepath.Join(dir, "report.html")
	if code, out, errs := styleRun(t, "style", "report", "--profile", prof, "--out", html); code != 0 {
		t.Fatalf("report: %d %s %s", code, out, errs)
	}
	if b, _ := os.ReadFile(html); !bytes.Contains(b, []byte(`id="radar"`)) {
		t.Fatal("report has no radar chart")
	}
	code, out, errs = styleRun(t, "style", "classify", "--profile", prof, "--corpus", styleMini, "--json")
	if code != 0 {
		t.Fatalf("classify: %d %s %s", code, out, errs)
	}
	var res style.ClassifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Chunks == 0 {
		t.Fatalf("classify output %q: %v", out, err)
	}
	if _, ok := res.Accuracy["pragmatic"]; ok || res.Accuracy["all"] < 0.5 {
		t.Errorf("accuracies %v (4 voices, lexical and syntactic parts)", res.Accuracy)
	}
	// Errors: scoring needs an embedder; one plain-text character needs a name and a background.
	if code, _, errs := styleRun(t, "style", "score", "--profile", prof, "--character", "kjv", "--input", "a", "--output", "b"); code != 2 || !strings.Contains(errs, "embedder") {
		t.Errorf("score without embedder: %d %s", code, errs)
	}
	lines := filepath.Join(dir, "lines.txt")
	os.WriteFile(lines, []byte("Hello there, my friend.\nWhat a day it was.\n"), 0o644)
	if code, _, errs := styleRun(t, "style", "profile", "--data", lines, "--out", filepath.Join(dir, "x.json")); code == 0 || !strings.Contains(errs, "name the character") {
		t.Errorf("plain text without --name: %d %s", code, errs)
	}
	if code, _, errs := styleRun(t, "style", "profile", "--data", lines, "--name", "x", "--out", filepath.Join(dir, "x.json")); code == 0 || !strings.Contains(errs, "background") {
		t.Errorf("one character without background: %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.json")); !os.IsNotExist(err) {
		t.Error("a failed profile left a file")
	}
}

// TestStyleScore builds profiles with the built-in model as embedder and
// scores a pair and a batch; another tag set is refused.
func TestStyleScore(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "voices.json")
	if code, out, errs := styleRun(t, "style", "profile", "--data", styleMini, "--model", "builtin", "--embed-lines", "2", "--out", prof); code != 0 {
		t.Fatalf("profile: %d %s %s", code, out, errs)
	}
	code, out, errs := styleRun(t, "style", "score", "--profile", prof, "--model", "builtin", "--character", "kjv",
		"--input", "God made the light.", "--output", "And God said, Let there be light: and there was light.", "--json")
	if code != 0 {
		t.Fatalf("score: %d %s %s", code, out, errs)
	}
	var s map[string]float64
	if err := json.Unmarshal([]byte(out), &s); err != nil || len(s) != 4 {
		t.Fatalf("score output %q: %v", out, err)
	}
	if s["vss"] != 0 && s["vss"] != s["style"] || s["semantic"] <= 0.75 && s["vss"] != 0 {
		t.Errorf("VSS gate: %v", s)
	}
	if h := 2 * s["semantic"] * s["style"] / (s["semantic"] + s["style"]); math.Abs(h-s["h"]) > 1e-9 {
		t.Errorf("h %v, want %v", s["h"], h)
	}
	batch := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(batch, []byte(`{"character":"kjv","input":"Go away.","output":"Depart from me."}`+"\n"+`{"character":"sotu","input":"Taxes went up.","output":"The revenue of the Government has increased."}`+"\n"), 0o644)
	code, out, errs = styleRun(t, "style", "score", "--profile", prof, "--model", "builtin", "--batch", batch, "--json")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"vss"`) {
		t.Fatalf("batch: %d %q %s", code, out, errs)
	}
	tags := filepath.Join(dir, "tags.yaml")
	os.WriteFile(tags, []byte("name: mine\ntags:\n  - name: a\n    prototypes: [\"Hello.\"]\n  - name: b\n    prototypes: [\"Goodbye.\"]\n"), 0o644)
	code, _, errs = styleRun(t, "style", "score", "--profile", prof, "--model", "builtin", "--tags", tags, "--character", "kjv", "--input", "a b", "--output", "c d")
	if code == 0 || !strings.Contains(errs, "tag set") {
		t.Errorf("another tag set: %d %s", code, errs)
	}
	code, _, errs = styleRun(t, "style", "score", "--profile", prof, "--model", "builtin", "--character", "kjv", "--input", "Hello.", "--output", "这是一个中文句子，不是英文。")
	if code == 0 || !strings.Contains(errs, "cannot tag") {
		t.Errorf("non-English output: %d %s", code, errs)
	}
}

// TestEmbedMatchesServe: POST /v1/embeddings answers the same numbers as
// masque embed, as floats and as base64.
func TestEmbedMatchesServe(t *testing.T) {
	texts := []string{"Once upon a time there was a little cat.", "The sun is hot."}
	code, out, errs := styleRun(t, "embed", "--text", texts[0], "--text", texts[1])
	if code != 0 {
		t.Fatalf("embed: %d %s", code, errs)
	}
	var cli openaiclient.EmbeddingResponse
	if err := json.Unmarshal([]byte(out), &cli); err != nil || len(cli.Data) != 2 || cli.Object != "list" || cli.Usage.PromptTokens == 0 {
		t.Fatalf("embed output: %v %+v", err, cli)
	}
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	srv, err := serve.New(serve.Options{Base: ck, Ctx: 256, MaxSeqs: 2, KVBytes: 8 << 20, NoPlayground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	post := func(body any) (int, []byte) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(ts.URL+"/v1/embeddings", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	st, body := post(map[string]any{"model": "base", "input": texts})
	var api openaiclient.EmbeddingResponse
	if err := json.Unmarshal(body, &api); st != 200 || err != nil {
		t.Fatalf("POST /v1/embeddings: %d %s", st, body)
	}
	if api.Usage != cli.Usage || api.Model != "base" || len(api.Data) != 2 {
		t.Fatalf("response %+v vs embed %+v", api.Usage, cli.Usage)
	}
	for i := range texts {
		if api.Data[i].Index != i || len(api.Data[i].Embedding) != ck.Model.Config.Hidden {
			t.Fatalf("data %d: index %d, %d values", i, api.Data[i].Index, len(api.Data[i].Embedding))
		}
		for j, v := range api.Data[i].Embedding {
			if v != cli.Data[i].Embedding[j] {
				t.Fatalf("text %d value %d: server %v, masque embed %v", i, j, v, cli.Data[i].Embedding[j])
			}
		}
	}
	// base64: little-endian float32s, the same values; a single string input.
	st, body = post(map[string]any{"model": "base", "input": texts[1], "encoding_format": "base64"})
	var b64 struct {
		Data []struct{ Embedding string }
	}
	if err := json.Unmarshal(body, &b64); st != 200 || err != nil || len(b64.Data) != 1 {
		t.Fatalf("base64: %d %s", st, body)
	}
	raw, err := base64.StdEncoding.DecodeString(b64.Data[0].Embedding)
	if err != nil || len(raw) != 4*len(cli.Data[1].Embedding) {
		t.Fatalf("base64 payload: %v (%d bytes)", err, len(raw))
	}
	for j, v := range cli.Data[1].Embedding {
		if math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:])) != v {
			t.Fatalf("base64 value %d differs", j)
		}
	}
	for _, bad := range []map[string]any{
		{"model": "base", "input": []string{}},
		{"model": "base", "input": []int{1, 2}},
		{"model": "base", "input": "   "},
		{"model": "base", "input": "x", "encoding_format": "int8"},
		{"input": "x"},
	} {
		if st, body := post(bad); st != 400 || !bytes.Contains(body, []byte(`"invalid_request_error"`)) {
			t.Errorf("%v: %d %s", bad, st, body)
		}
	}
	if st, _ := post(map[string]any{"model": "nobody", "input": "x"}); st != 404 {
		t.Errorf("unknown model: %d", st)
	}
}

// TestEvalRunStyle: eval run --style-profile scores every answer's style
// against its persona's profile; a profile without one of the personas is
// refused.
func TestEvalRunStyle(t *testing.T) {
	dir := t.TempDir()
	rows := filepath.Join(dir, "lines.jsonl")
	os.WriteFile(rows, []byte(`{"character":"pirate-captain","text":"Arr, hoist the sails, ye scurvy dogs! The gold is ours."}
{"character":"pirate-captain","text":"The sea is wide and the rum is gone, matey."}
{"character":"victorian-detective","text":"The soufflé was underseasoned, the sauce a tepid disappointment."}
{"character":"victorian-detective","text":"A bold menu, though the dessert course lacked conviction."}
`), 0o644)
	prof := filepath.Join(dir, "p.json")
	if code, out, errs := styleRun(t, "style", "profile", "--data", rows, "--min-count", "1", "--out", prof); code != 0 {
		t.Fatalf("profile: %d %s %s", code, out, errs)
	}
	// A set small enough for the built-in models' context.
	setDir := filepath.Join(dir, "set")
	for id, q := range map[string]string{"pirate-captain": "Where is the gold?", "victorian-detective": "Who did it?", "jazz-pianist": "What do you play?"} {
		os.MkdirAll(filepath.Join(setDir, id), 0o755)
		os.WriteFile(filepath.Join(setDir, id, "description.txt"), []byte("A "+id+"."), 0o644)
		os.WriteFile(filepath.Join(setDir, id, "specific.txt"), []byte(q+"\n"), 0o644)
	}
	os.WriteFile(filepath.Join(setDir, "general.txt"), []byte("Why is the sky blue?\n"), 0o644)
	os.WriteFile(filepath.Join(setDir, "set.json"), []byte(`{"name":"style-test","version":"1"}`), 0o644)
	out := filepath.Join(dir, "run")
	code, stdout, errs := styleRun(t, "eval", "run", "--set", setDir, "--personas", "pirate-captain,victorian-detective", "--judges", "none",
		"--max-tokens", "8", "--out", out, "--no-report", "--style-profile", prof, "--json")
	if code != 0 {
		t.Fatalf("eval run: %d %s %s", code, stdout, errs)
	}
	var res struct {
		Summary map[string]struct {
			Mean  *float64
			N     int
			Items int
		}
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if s, ok := res.Summary["style"]; !ok || s.N != 2 || s.Items != 4 || s.Mean == nil || *s.Mean < 0 || *s.Mean > 1 {
		t.Fatalf("style summary %+v (%s)", res.Summary, stdout)
	}
	code, _, errs = styleRun(t, "eval", "run", "--set", setDir, "--personas", "pirate-captain,jazz-pianist", "--judges", "none",
		"--max-tokens", "8", "--out", filepath.Join(dir, "run2"), "--no-report", "--style-profile", prof)
	if code == 0 || !strings.Contains(errs, "jazz-pianist") {
		t.Fatalf("profile without a persona: %d %s", code, errs)
	}
}
