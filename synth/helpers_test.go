package synth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/serve"
	"github.com/masque-ai/masque/synth/teacher"
)

var (
	builtinOnce sync.Once
	builtinCK   *checkpoint.Checkpoint
	builtinErr  error
)

// builtin opens the built-in stories260K model once per test binary.
func builtin(t testing.TB) *checkpoint.Checkpoint {
	t.Helper()
	builtinOnce.Do(func() { builtinCK, builtinErr = checkpoint.Open("", checkpoint.Options{}) })
	if builtinErr != nil {
		t.Fatal(builtinErr)
	}
	return builtinCK
}

// wireReq is the part of a chat completions body the test servers read.
type wireReq struct {
	openaiclient.Body
	Stream bool `json:"stream"`
}

// engineHandler is a minimal OpenAI-compatible chat completions endpoint
// over masque's engine (generate.Generate through teacher.Engine), with
// real server-sent-event streaming. masque serve did not exist yet when
// these tests were written, so they use this. Prompts longer than the
// tiny model's 512-token context are cut from the left (TruncateLeft).
type engineHandler struct {
	gen   func(ctx context.Context, req teacher.Request, onText func(string) error) (*teacher.Response, error)
	delay time.Duration // added before each response
	calls atomic.Int32
	// fault, when set, may answer a request instead (returns true).
	fault func(w http.ResponseWriter, r *http.Request, body []byte) bool
}

func newEngineHandler(t testing.TB) *engineHandler {
	eng := teacher.NewEngine(builtin(t))
	eng.TruncateLeft = true
	return &engineHandler{gen: eng.Stream}
}

// newFakeHandler is the same server with a fast deterministic fake model
// (fakeGen) instead of stories260K.
func newFakeHandler() *engineHandler { return &engineHandler{gen: fakeGen} }

var fakeWords = strings.Fields(`the and a of to in is it that was for on with as at by this from or
but not all so we they she he you i my your our ship sea harbour lamp light storm night morning bread
oven flour garden rose soil seed star rocket moon orbit school lesson book chalk sword castle horse
clue case street rain field cow barn wheat river stone road market song fire winter summer friend
child story old new quiet bright slow quick warm cold green blue golden small great long short happy
brave careful strange gentle walked sang counted baked planted flew taught rode found carried watched`)

// fakeGen writes a deterministic reply from the request: a well-formed
// profile when asked for one, a near-duplicate stock answer for a quarter
// of the requests, otherwise 24 words picked by a PRNG seeded from the
// request key.
func fakeGen(ctx context.Context, req teacher.Request, onText func(string) error) (*teacher.Response, error) {
	h := keyHash([]byte(teacher.Key(req)))
	var text string
	last := req.Messages[len(req.Messages)-1].Content
	if strings.Contains(last, "Invent a character") {
		names := []string{"Ada", "Bram", "Cleo", "Dov", "Esme", "Finn", "Gus", "Hana"}
		text = fmt.Sprintf("Name: %s %d\nAge: %d\nGender: %s\nRace: Human\nBirthplace: %s\nAppearance: Tall and weathered.\nGeneral experience: Worked the docks for years.\nPersonality: Patient and dry.",
			names[h%8], h%1000, 20+h%50, []string{"Female", "Male"}[h%2], []string{"Leeds", "Oslo", "Lima"}[h%3])
	} else if h%4 == 0 {
		// A stock answer with one word changed: near duplicates.
		text = "the old keeper walked to the harbour in the quiet morning and counted the ships and the boats and the " + fakeWords[(h>>8)%uint64(len(fakeWords))] + " before the storm came."
	} else {
		var ws []string
		x := h
		for range 24 {
			x = x*6364136223846793005 + 1442695040888963407
			ws = append(ws, fakeWords[(x>>33)%uint64(len(fakeWords))])
		}
		text = strings.Join(ws, " ") + "."
	}
	for _, piece := range strings.SplitAfter(text, " ") {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if onText != nil {
			if err := onText(piece); err != nil {
				return nil, err
			}
		}
	}
	return &teacher.Response{Text: text, FinishReason: "stop", PromptTokens: 10, CompletionTokens: 25}, nil
}

func (h *engineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.calls.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	if h.fault != nil && h.fault(w, r, raw) {
		return
	}
	var body wireReq
	json.Unmarshal(raw, &body)
	if h.delay > 0 {
		select {
		case <-time.After(h.delay):
		case <-r.Context().Done():
			return
		}
	}
	req := teacher.Request{Model: body.Model, Messages: body.Messages, MaxTokens: body.MaxTokens,
		Temperature: body.Temperature, TopP: body.TopP, Seed: body.Seed, Stop: body.Stop}
	if !body.Stream {
		resp, err := h.gen(r.Context(), req, nil)
		if err != nil {
			http.Error(w, fmt.Sprintf(`{"error":{"message":%q}}`, err.Error()), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": "x", "object": "chat.completion", "model": body.Model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": resp.Text}, "finish_reason": resp.FinishReason}},
			"usage":   map[string]any{"prompt_tokens": resp.PromptTokens, "completion_tokens": resp.CompletionTokens},
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	chunk := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": "x", "object": "chat.completion.chunk", "model": body.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	chunk(map[string]any{"role": "assistant"}, nil)
	resp, err := h.gen(r.Context(), req, func(s string) error {
		chunk(map[string]any{"content": s}, nil)
		return nil
	})
	if err != nil {
		fmt.Fprintf(w, "data: {\"error\":{\"message\":%q}}\n\n", err.Error())
		return
	}
	chunk(map[string]any{}, resp.FinishReason)
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

// newServer starts h on loopback.
func newServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// httpTeacher is a streaming OpenAI client for srv with fast retries,
// asking for stories260K.
func httpTeacher(srv *httptest.Server, cache *teacher.Cache, o teacher.Options) *teacher.Client {
	return modelTeacher(srv, "stories260K", cache, o)
}

// modelTeacher is httpTeacher asking for the model named model.
func modelTeacher(srv *httptest.Server, model string, cache *teacher.Cache, o teacher.Options) *teacher.Client {
	if o.BaseBackoff == 0 {
		o.BaseBackoff = 10 * time.Millisecond
		o.MaxBackoff = 50 * time.Millisecond
	}
	o.Cache = cache
	return teacher.NewClient(&teacher.OpenAI{BaseURL: srv.URL + "/v1", Model: model, Stream: true}, o)
}

// masqueServe starts `masque serve` (package serve) on loopback over its
// own copy of the built-in stories260K model, as the teacher named "base",
// with max_position_embeddings raised to 2048: synth's prompts are longer
// than its 512-token context, RoPE runs at any position, and the text is
// nonsense either way. Everything is closed when the test ends.
func masqueServe(t testing.TB) *httptest.Server {
	t.Helper()
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	ck.Model.Config.MaxSeq = 2048
	s, err := serve.New(serve.Options{Base: ck})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return newServer(t, s.Handler())
}

func openCache(t testing.TB, path string) *teacher.Cache {
	c, err := teacher.OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readJSONL reads a JSONL file into generic rows.
func readJSONL(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v: %s", path, err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func keysOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// logIDs returns the ids in a log file (duplicates included).
func logIDs(t testing.TB, path string) []string {
	t.Helper()
	var ids []string
	if _, err := ReadLog(path, func(id string, _ []byte) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// teacherFunc adapts a function to teacher.Teacher.
type teacherFunc func(ctx context.Context, req teacher.Request) (*teacher.Response, error)

func (f teacherFunc) Complete(ctx context.Context, req teacher.Request) (*teacher.Response, error) {
	return f(ctx, req)
}

// keyHash is a small stable number from a request body.
func keyHash(b []byte) uint64 {
	s := sha256.Sum256(b)
	return binary.LittleEndian.Uint64(s[:8])
}

// testInputs writes personas and instructions for the pipeline tests.
func testInputs(t *testing.T, dir string, nPersonas, nInstructions int) (personas, instructions string) {
	var pb, ib strings.Builder
	kinds := []string{"baker", "pirate", "gardener", "astronaut", "teacher", "knight", "detective", "farmer"}
	for i := range nPersonas {
		fmt.Fprintf(&pb, `{"persona": "A cheerful %s who loves stories, number %d."}`+"\n", kinds[i%len(kinds)], i)
		if i == 1 {
			pb.WriteString("{this line is broken\n")
		}
	}
	ib.WriteString("[\n")
	for i := range nInstructions {
		if i > 0 {
			ib.WriteString(",\n")
		}
		fmt.Fprintf(&ib, `{"instruction": "Tell me about the %s number %d.", "input": "", "output": "The %s number %d is a fine thing to see."}`, kinds[(i+3)%len(kinds)], i, kinds[(i+3)%len(kinds)], i)
	}
	ib.WriteString(",\n{\"instruction\": 5}\n]\n")
	personas = writeFile(t, dir, "personas.jsonl", pb.String())
	instructions = writeFile(t, dir, "alpaca.json", ib.String())
	return personas, instructions
}
