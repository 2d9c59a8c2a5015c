package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	datavoices "github.com/masque-ai/masque/data/voices"
	"github.com/masque-ai/masque/hub/hubtest"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/randmodel"
	"github.com/masque-ai/masque/serve"
)

// exampleEnv is where the documentation's examples run: one work folder
// (the current directory while they run, so that one example's output is
// the next one's input, as for a reader who types them in order), a local
// Hugging Face hub and two OpenAI-compatible servers, in-process.
//
// The work folder holds small real inputs under the names the examples
// use: corpus/voices (a three-voice corpus, kjv, web and jargon, built by
// data/voices from its test sources), personas.yaml (pirate, bard and
// ranger), personas.txt, alpaca.json, eval_questions.txt, lines.txt,
// neutral.txt, lines.jsonl, npc.schema.json, rolebench-eng/test.jsonl and
// profiles-eng/desc.json (eval/roleplay's test files), kjv.mask.safetensors
// (a mask of builtin:voices), and links to
// the repository's testdata/ and data/.
//
// The hub serves, under the ids the examples name, small real models:
// testdata/hf-tiny/llama (with a byte-level BPE tokenizer.json of its
// 512 tokens, randmodel's) as
// Qwen/Qwen2.5-0.5B-Instruct and HuggingFaceTB/SmolLM2-135M-Instruct, and
// testdata/gguf's tiny Llama as the GGUF files; HF_ENDPOINT points at it.
//
// Substitutions in every example (substitute):
//   - --model: a model that is neither built in nor on the test hub
//     (./Qwen2.5-0.5B-Instruct, ~/models/..., runs/voices-base) is
//     builtin:stories260K; --teacher-engine PATH is "builtin" (the same);
//   - http://127.0.0.1:8080 (a local masque serve) is the "local" server:
//     builtin:voices as "base", with the personas of personas.yaml;
//     https://api.openai.com is the "openai" server: builtin:voices
//     answering as gpt-4o-mini;
//   - an --out under /tmp is the same path inside the work folder;
//   - a server's --addr is a free loopback port (added when not given);
//   - unquoted wildcards are expanded, as the shell would.
//
// The package's tests pin the default model to builtin:stories260K
// (default_model_test.go), so examples that name none use it.
type exampleEnv struct {
	dir, repo     string
	local, openai string // base URLs of the servers
	hubRepos      map[string]bool
}

func newExampleEnv(t *testing.T) *exampleEnv {
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	e := &exampleEnv{dir: t.TempDir(), repo: repo, hubRepos: map[string]bool{}}
	t.Setenv("MASQUE_CACHE", filepath.Join(e.dir, ".cache", "masque"))
	e.startHub(t)
	e.fixtures(t)
	e.startServers(t)
	t.Chdir(e.dir)
	return e
}

func (e *exampleEnv) read(t *testing.T, rel string) []byte {
	b, err := os.ReadFile(filepath.Join(e.repo, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *exampleEnv) startHub(t *testing.T) {
	h := hubtest.New(t)
	t.Setenv("HF_ENDPOINT", h.URL)
	t.Setenv("HF_HUB_CACHE", filepath.Join(e.dir, ".cache", "hub"))
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HUGGING_FACE_HUB_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", filepath.Join(e.dir, ".cache", "no-token"))
	tok, err := randmodel.TokenizerJSON(512)
	if err != nil {
		t.Fatal(err)
	}
	hf := map[string][]byte{
		"config.json":       e.read(t, "testdata/hf-tiny/llama/config.json"),
		"model.safetensors": e.read(t, "testdata/hf-tiny/llama/model.safetensors"),
		"tokenizer.json":    tok,
		"README.md":         []byte("# a small Llama standing in for the real model\n"),
	}
	q4, q8 := e.read(t, "testdata/gguf/tiny-llama-q4_0.gguf"), e.read(t, "testdata/gguf/crosscheck.gguf")
	for id, files := range map[string]map[string][]byte{
		"Qwen/Qwen2.5-0.5B-Instruct":          hf,
		"HuggingFaceTB/SmolLM2-135M-Instruct": hf,
		"bartowski/SmolLM2-135M-Instruct-GGUF": {"SmolLM2-135M-Instruct-Q4_K_M.gguf": q4, "SmolLM2-135M-Instruct-Q8_0.gguf": q8,
			"README.md": []byte("# GGUF\n")},
		"Qwen/Qwen2.5-0.5B-Instruct-GGUF": {"qwen2.5-0.5b-instruct-q5_k_m.gguf": q4, "qwen2.5-0.5b-instruct-q8_0.gguf": q8},
	} {
		h.Commit(id, "main", files)
		e.hubRepos[id] = true
	}
}

func (e *exampleEnv) fixtures(t *testing.T) {
	put := func(name, content string) {
		p := filepath.Join(e.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"testdata", "data"} {
		if err := os.Symlink(filepath.Join(e.repo, d), filepath.Join(e.dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := datavoices.Run(context.Background(), datavoices.Config{Out: filepath.Join(e.dir, "corpus", "voices"),
		Sources: filepath.Join(e.repo, "data", "voices", "testdata", "sources"), System: t.TempDir(),
		Seed: 7, MaxWords: 60, Valid: 0.25, Test: 0.25, Voices: []string{"kjv", "web", "jargon"}}); err != nil {
		t.Fatal(err)
	}
	put("personas.yaml", "personas:\n  - name: pirate\n    description: A pirate captain who speaks in sea slang.\n"+
		"  - name: bard\n    description: A wandering bard who answers in rhyme.\n"+
		"  - name: ranger\n    description: A park ranger who knows every trail.\n")
	put("personas.txt", "A retired sailor who tells tall tales.\nA shy librarian.\n")
	put("alpaca.json", `[{"instruction":"Where do you live?","input":"","output":"In a small house by the sea."},`+
		`{"instruction":"What do you eat?","input":"","output":"Bread and fish."},`+
		`{"instruction":"What is your name?","input":"","output":"They call me Tom."}]`)
	put("eval_questions.txt", "What is your name?\n")
	put("lines.txt", "The lantern swung in the wind.\nA quiet girl read old maps by the fire.\nThe sea was calm and grey.\n")
	put("neutral.txt", "The meeting is at noon.\nPlease close the door.\nThe report is due on Friday.\n")
	var jl strings.Builder
	for _, l := range []struct{ c, s string }{
		{"pirate", "Arr, the sea be calm tonight, matey."}, {"pirate", "Hoist the sails and mind the rigging, ye dogs."},
		{"pirate", "Me treasure be buried where the gulls cry."}, {"bard", "Sing with me of rivers wide and mountains high."},
		{"bard", "A song for the road, a coin for the tale."}, {"bard", "The lute is tuned and the night is young."},
	} {
		fmt.Fprintf(&jl, "{\"character\":%q,\"text\":%q}\n", l.c, l.s)
	}
	put("lines.jsonl", jl.String())
	put("npc.schema.json", `{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer"}},"required":["name","age"]}`)
	put("rolebench-eng/test.jsonl", string(e.read(t, "eval/roleplay/testdata/rolebench/test.jsonl")))
	put("profiles-eng/desc.json", string(e.read(t, "eval/roleplay/testdata/rolebench/desc.json")))
	// The npc64 scenario (loadtest/scenarios/npc64.yaml) with the registry
	// scripts/npc64-setup.sh writes, over the masks and adapters that the
	// example's prep steps make at a small scale from the built-in kit.
	put("loadtest/scenarios/npc64.yaml", string(e.read(t, "loadtest/scenarios/npc64.yaml")))
	if err := os.Symlink(filepath.Join(e.repo, "internal", "builtin", "voiceskit"), filepath.Join(e.dir, "voiceskit")); err != nil {
		t.Fatal(err)
	}
	put("loadtest/scenarios/npc64/personas.json", npc64Registry(t, e.read(t, "internal/builtin/voiceskit/personas.json")))
	// eval voices --mask uses builtin:voices, eval voices's default.
	ck, err := checkpoint.Open("builtin:voices", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if err := mask.New(ck.Model).Save(filepath.Join(e.dir, "kjv.mask.safetensors")); err != nil {
		t.Fatal(err)
	}
}

// startServers starts the stand-ins for a local masque serve and for
// OpenAI: builtin:voices (its context of 512 tokens holds the judge's
// compact prompts) behind masque's own HTTP handler.
func (e *exampleEnv) startServers(t *testing.T) {
	ck, err := checkpoint.Open("builtin:voices", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	specs, err := persona.LoadRegistry(filepath.Join(e.dir, "personas.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		id       string
		personas []persona.Spec
		url      *string
	}{{"base", specs, &e.local}, {"gpt-4o-mini", nil, &e.openai}} {
		srv, err := serve.New(serve.Options{Base: ck, BaseID: s.id, Personas: s.personas, MaxSeqs: 4, KVBytes: 32 << 20,
			NoPromptCache: true, NoPlayground: true})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(func() { ts.Close(); srv.Close() })
		*s.url = ts.URL
	}
}

// expandAdd puts the local server's API root for "{local}".
func expandAdd(add []string, local string) []string {
	out := slices.Clone(add)
	for i, a := range out {
		out[i] = strings.ReplaceAll(a, "{local}", local+"/v1")
	}
	return out
}

// substitute applies the substitutions of exampleEnv's comment.
func (e *exampleEnv) substitute(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		a = strings.ReplaceAll(a, "http://127.0.0.1:8080", e.local)
		out[i] = strings.ReplaceAll(a, "https://api.openai.com", e.openai)
	}
	for i := 0; i+1 < len(out); i++ {
		v := out[i+1]
		switch out[i] {
		case "--model", "-m":
			if !strings.HasPrefix(v, "builtin") && !e.hubRepos[strings.SplitN(v, ":", 2)[0]] {
				out[i+1] = "builtin:stories260K"
			}
		case "--teacher-engine":
			out[i+1] = "builtin"
		case "--out":
			if strings.HasPrefix(v, "/tmp/") {
				out[i+1] = strings.TrimPrefix(v, "/")
			}
		}
	}
	return out
}

// run runs one example (see exampleRun).
func (e *exampleEnv) run(t *testing.T, where, key string, words []string, glob []bool, r *exampleRun) {
	for _, p := range r.clear {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range r.files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range r.prep {
		p = expandAdd(p, e.local)
		if i := slices.Index(p, "--out"); i >= 0 {
			if _, err := os.Stat(p[i+1]); err == nil {
				continue // made for an earlier example
			}
		}
		if code, _, errs := run(t, "", p...); code != 0 {
			t.Fatalf("%s: %q: making its input with %q: exit %d\n%s", where, key, p, code, errs)
		}
	}
	args := exampleArgs(words)
	glob = glob[len(words)-len(args):]
	var expanded []string
	for i, a := range args {
		if m, _ := filepath.Glob(a); glob[i] && len(m) > 0 {
			expanded = append(expanded, m...)
		} else {
			expanded = append(expanded, a)
		}
	}
	args = append(e.substitute(expanded), expandAdd(r.add, e.local)...)
	if r.server {
		e.runServer(t, where, key, args)
		return
	}
	code, out, errs := run(t, r.stdin, args...)
	if code != 0 {
		t.Fatalf("%s: %q as %q: exit %d\n%s", where, key, args, code, errs)
	}
	if r.check != nil {
		if err := r.check(out, e.dir); err != nil {
			t.Fatalf("%s: %q as %q: %v\nstdout: %.500s\nstderr: %.500s", where, key, args, err, out, errs)
		}
	}
}

// runServer starts a serve example on a free port, waits for /health,
// asks for one chat completion and stops it (as Ctrl-C would): it must
// answer and exit 0.
func (e *exampleEnv) runServer(t *testing.T, where, key string, args []string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if i := slices.Index(args, "--addr"); i >= 0 {
		args[i+1] = addr
	} else {
		args = append(args, "--addr", addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() { done <- mainContext(ctx, args, strings.NewReader(""), &out, &errb) }()
	fail := func(format string, a ...any) {
		cancel()
		<-done
		t.Fatalf("%s: %q as %q: %s\n%s", where, key, args, fmt.Sprintf(format, a...), errb.String())
	}
	base := "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case code := <-done:
			done <- code
			fail("exited (%d) before serving", code)
		default:
		}
		if time.Now().After(deadline) {
			fail("no /health after 60 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions",
		strings.NewReader(`{"model":"base","messages":[{"role":"user","content":"Hello"}],"max_tokens":4}`))
	req.Header.Set("Content-Type", "application/json")
	if i := slices.Index(args, "--api-key"); i >= 0 {
		req.Header.Set("Authorization", "Bearer "+args[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail("chat completion: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var v struct{ Choices []any }
	if json.Unmarshal(body, &v); resp.StatusCode != 200 || len(v.Choices) != 1 {
		fail("chat completion: HTTP %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("%s: %q: exit %d after stopping\n%s", where, key, code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: %q: still running 30 s after stopping", where, key)
	}
}

// npc64Registry is the registry scripts/npc64-setup.sh writes (its jq
// program, in Go): the kit's nine voices as prompt-only personas, then the
// seven derived personas with their voice's prompt and a mask or adapter.
func npc64Registry(t *testing.T, kitPersonas []byte) string {
	var kit struct {
		Voices []struct{ Name, Title, Persona string }
	}
	if err := json.Unmarshal(kitPersonas, &kit); err != nil {
		t.Fatal(err)
	}
	type spec struct {
		Name         string `json:"name"`
		Description  string `json:"description"`
		SystemPrompt string `json:"system_prompt"`
		Mask         string `json:"mask,omitempty"`
		LoRA         string `json:"lora,omitempty"`
	}
	var specs []spec
	by := map[string]spec{}
	for _, v := range kit.Voices {
		s := spec{Name: v.Name, Description: v.Title, SystemPrompt: v.Persona}
		specs = append(specs, s)
		by[v.Name] = s
	}
	for _, d := range npc64Derived {
		v := by[d.voice]
		s := spec{Name: d.name, Description: v.Description + " (" + d.name + ")", SystemPrompt: v.SystemPrompt}
		if d.lora {
			s.LoRA = d.name
		} else {
			s.Mask = d.name + ".mask.safetensors"
		}
		specs = append(specs, s)
	}
	b, err := json.Marshal(map[string]any{"personas": specs})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// npc64Derived are the masked and adapted personas of the npc64 scenario
// (scripts/npc64-setup.sh) with the flags that make them.
var npc64Derived = []struct {
	name, voice string
	lora        bool
	flags       string
}{
	{"devil-ffn", "devil", false, "--structured --sparsity 0.25"}, {"jargon-ffn", "jargon", false, "--structured --sparsity 0.25"},
	{"webster-ffn", "webster", false, "--structured --sparsity 0.25"}, {"kjv-wanda", "kjv", false, "--sparsity 0.5"},
	{"sotu-24", "sotu", false, "--nm 2:4"}, {"wesnoth-lora", "wesnoth", true, ""}, {"spurgeon-lora", "spurgeon", true, ""},
}

// npc64Prep makes npc64Derived's masks and adapters at a small scale: masks
// calibrated on 4 of the voice's conversations, adapters of rank 2 trained
// for 2 steps.
func npc64Prep() [][]string {
	var out [][]string
	for _, d := range npc64Derived {
		dst := "loadtest/scenarios/npc64/" + d.name
		if d.lora {
			out = append(out, words("finetune --model builtin:voices --data voiceskit/"+d.voice+"/valid.jsonl --out "+dst+
				" --steps 2 --batch-tokens 256 --lr 1e-3 --lora-rank 2 --eval-fraction 0 --checkpoint-every 0 --threads 2 --seed 1"))
			continue
		}
		out = append(out, words("subnet --model builtin:voices --method wanda "+d.flags+" --calib-chat voiceskit/"+d.voice+
			"/valid.jsonl --calib-limit 4 --workers 2 --out "+dst+".mask.safetensors"))
	}
	return out
}
