package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/persona"
)

func chatBody(model string, extra map[string]any) map[string]any {
	b := map[string]any{"model": model, "messages": []map[string]any{{"role": "user", "content": "Hello there"}}, "max_tokens": 8}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func jsonBytes(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestErrors sends malformed and refused requests: each gets the right
// status and an OpenAI error object, and the server keeps serving.
func TestErrors(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.MaxBodyBytes = 4096
		o.MaxMessageBytes = 1000
		o.MaxTokens = 100
	})
	big := strings.Repeat("word ", 300)
	tests := []struct {
		name        string
		method      string
		path        string
		key         string
		contentType string
		body        []byte
		status      int
		code        string
		param       string
	}{
		{"malformed json", "POST", "/v1/chat/completions", testAPIKey, "application/json", []byte(`{"model": "pirate", "messages": [`), 400, "invalid_json", ""},
		{"trailing garbage", "POST", "/v1/chat/completions", testAPIKey, "application/json", []byte(`{"model":"pirate"} x`), 400, "invalid_json", ""},
		{"wrong type", "POST", "/v1/chat/completions", testAPIKey, "application/json", []byte(`{"model":"pirate","max_tokens":"many"}`), 400, "invalid_type", "max_tokens"},
		{"unknown persona", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("nobody", nil)), 404, "model_not_found", "model"},
		{"missing model", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("", nil)), 400, "missing_model", "model"},
		{"oversize body", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"user": strings.Repeat("x", 5000)})), 413, "request_too_large", ""},
		{"oversize message", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"messages": []map[string]any{{"role": "user", "content": strings.Repeat("x", 1001)}}})), 400, "string_above_max_length", "messages[0].content"},
		{"no key", "POST", "/v1/chat/completions", "", "", jsonBytes(chatBody("pirate", nil)), 401, "invalid_api_key", ""},
		{"bad key", "POST", "/v1/chat/completions", "sk-wrong", "", jsonBytes(chatBody("pirate", nil)), 401, "invalid_api_key", ""},
		{"bad key on models", "GET", "/v1/models", "sk-wrong", "", nil, 401, "invalid_api_key", ""},
		{"bad key on metrics", "GET", "/metrics", "", "", nil, 401, "invalid_api_key", ""},
		{"max_tokens over the limit", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"max_tokens": 101})), 400, "invalid_value", "max_tokens"},
		{"max_completion_tokens zero", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"max_completion_tokens": 0})), 400, "invalid_value", "max_completion_tokens"},
		{"max_tokens and max_completion_tokens disagree", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"max_completion_tokens": 5, "max_tokens": 6})), 400, "invalid_value", "max_completion_tokens"},
		{"prompt over the context", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"messages": []map[string]any{{"role": "user", "content": big[:999]}, {"role": "user", "content": big[:999]}}})), 400, "context_length_exceeded", "messages"},
		{"prompt and max_tokens over the context", "POST", "/v1/completions", testAPIKey, "", jsonBytes(map[string]any{"model": "pirate", "prompt": big[:750], "max_tokens": 100}), 400, "context_length_exceeded", "max_tokens"},
		{"completion prompt over the context", "POST", "/v1/completions", testAPIKey, "", jsonBytes(map[string]any{"model": "pirate", "prompt": big[:999]}), 400, "context_length_exceeded", "prompt"},
		{"n=9", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"n": 9})), 400, "invalid_value", "n"},
		{"unknown fields", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"typical_p": 0.9, "mirostat": 2, "user": "u1", "metadata": map[string]string{"a": "b"}})), 400, "unsupported_parameter", "mirostat"},
		{"unknown completions field", "POST", "/v1/completions", testAPIKey, "", jsonBytes(map[string]any{"model": "pirate", "prompt": "a", "best_of": 1, "tfs_z": 1}), 400, "unsupported_parameter", "tfs_z"},
		{"top_k -2", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"top_k": -2})), 400, "invalid_value", "top_k"},
		{"min_p 1.5", "POST", "/v1/completions", testAPIKey, "", jsonBytes(map[string]any{"model": "pirate", "prompt": "a", "min_p": 1.5}), 400, "invalid_value", "min_p"},
		{"repetition_penalty 0", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"repetition_penalty": 0})), 400, "invalid_value", "repetition_penalty"},
		{"frequency_penalty 3", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"frequency_penalty": 3})), 400, "invalid_value", "frequency_penalty"},
		{"presence_penalty -2.5", "POST", "/v1/completions", testAPIKey, "", jsonBytes(map[string]any{"model": "pirate", "prompt": "a", "presence_penalty": -2.5}), 400, "invalid_value", "presence_penalty"},
		{"logit_bias 101", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"logit_bias": map[string]float64{"5": 101}})), 400, "invalid_value", "logit_bias"},
		{"logit_bias not an id", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"logit_bias": map[string]float64{"hello": 1}})), 400, "invalid_value", "logit_bias"},
		{"logit_bias outside the vocabulary", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"logit_bias": map[string]float64{"99999": 1}})), 400, "invalid_value", "logit_bias"},
		{"tool_choice auto", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"tool_choice": "auto"})), 400, "invalid_value", "tool_choice"},
		{"n=0", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"n": 0})), 400, "invalid_value", "n"},
		{"top_logprobs 21", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"logprobs": true, "top_logprobs": 21})), 400, "invalid_value", "top_logprobs"},
		{"top_logprobs without logprobs", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"top_logprobs": 2})), 400, "invalid_value", "top_logprobs"},
		{"temperature 3", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"temperature": 3})), 400, "invalid_value", "temperature"},
		{"top_p 2", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"top_p": 2})), 400, "invalid_value", "top_p"},
		{"stop of numbers", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"stop": []int{1}})), 400, "invalid_json", ""},
		{"too many stops", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"stop": strings.Split(strings.Repeat("a,", 17), ",")})), 400, "invalid_value", "stop"},
		{"no messages", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"messages": []any{}})), 400, "invalid_value", "messages"},
		{"bad role", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"messages": []map[string]any{{"role": "wizard", "content": "x"}}})), 400, "invalid_value", "messages[0].role"},
		{"image part", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"messages": []map[string]any{{"role": "user", "content": []map[string]any{{"type": "image_url"}}}}})), 400, "unsupported_value", "messages[0].content[0].type"},
		{"tools", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", map[string]any{"tools": []map[string]any{{"type": "function", "function": map[string]any{"name": "f"}}}})), 400, "unsupported_value", "tools"},
		{"two prompts", "POST", "/v1/completions", testAPIKey, "", jsonBytes(map[string]any{"model": "pirate", "prompt": []string{"a", "b"}}), 400, "unsupported_value", "prompt"},
		{"token out of vocabulary", "POST", "/v1/completions", testAPIKey, "", jsonBytes(map[string]any{"model": "pirate", "prompt": []int{1, 99999}}), 400, "invalid_value", "prompt"},
		{"suffix", "POST", "/v1/completions", testAPIKey, "", jsonBytes(map[string]any{"model": "pirate", "prompt": "a", "suffix": "b"}), 400, "unsupported_value", "suffix"},
		{"wrong method", "GET", "/v1/chat/completions", testAPIKey, "", nil, 405, "method_not_allowed", ""},
		{"unknown path", "GET", "/v2/nothing", testAPIKey, "", nil, 404, "not_found", ""},
		{"unknown model id", "GET", "/v1/models/nobody", testAPIKey, "", nil, 404, "model_not_found", "model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := f.do(t, tc.method, tc.path, tc.key, tc.contentType, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("not an OpenAI error object: %s", body)
			}
			if e.Error.Code == nil || *e.Error.Code != tc.code {
				t.Errorf("code %v, want %q (%s)", e.Error.Code, tc.code, body)
			}
			if got := ""; e.Error.Param != nil {
				got = *e.Error.Param
				if got != tc.param {
					t.Errorf("param %q, want %q", got, tc.param)
				}
			} else if tc.param != "" {
				t.Errorf("param null, want %q", tc.param)
			}
			// The server keeps serving.
			if code, body := f.postJSON(t, "/v1/chat/completions", chatBody("pirate", nil)); code != 200 {
				t.Fatalf("after the error: %d %s", code, body)
			}
		})
	}
}

func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t, nil)
	if code, body := f.postJSON(t, "/v1/chat/completions", chatBody("ranger", map[string]any{"stream": false})); code != 200 {
		t.Fatalf("chat: %d %s", code, body)
	}
	code, _, body := f.do(t, "GET", "/health", testAPIKey, "", nil)
	if code != 200 || !bytes.Contains(body, []byte(`"status":"ok"`)) {
		t.Fatalf("health: %d %s", code, body)
	}
	code, _, body = f.do(t, "GET", "/metrics", testAPIKey, "", nil)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`masque_http_requests_total{code="200",endpoint="chat"} 1`,
		`masque_generations_total{finish_reason=`,
		`masque_tokens_total{kind="completion",persona="ranger"}`,
		`masque_queue_depth 0`,
		`masque_active_sequences 0`,
		`masque_time_to_first_token_seconds_bucket`,
		`masque_inter_token_latency_seconds_bucket`,
		`masque_batch_sequences_bucket{base="base"`,
		`masque_step_duration_seconds_bucket`,
		`masque_persona_memory_bytes{kind="mask",persona="ranger"}`,
		`masque_persona_memory_bytes{kind="base",persona="pirate"} 0`,
		`masque_base_memory_bytes{base="base"}`,
		`masque_kv_cache_budget_bytes`,
		`masque_personas 5`,
		`go_goroutines`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestQueueFull: with every slot taken and the queue full, a request gets
// 429 with Retry-After, and is served once there is room again.
func TestQueueFull(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.MaxSeqs = 1
		o.MaxQueue = 1
		o.stepDelay = 2 * time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	long := jsonBytes(chatBody("pirate", map[string]any{"max_tokens": 400, "stream": true, "temperature": 1}))
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", f.ts.URL+"/v1/chat/completions", bytes.NewReader(long))
			req.Header.Set("Authorization", "Bearer "+testAPIKey)
			resp, err := f.ts.Client().Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	waitFor(t, func() bool { st := f.srv.Engine().Stats(); return st.Active == 1 && st.Queued == 1 })
	code, hdr, body := f.do(t, "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("pirate", nil)))
	if code != 429 || hdr.Get("Retry-After") == "" || !bytes.Contains(body, []byte("rate_limit_exceeded")) {
		t.Fatalf("full queue: %d %q %s", code, hdr.Get("Retry-After"), body)
	}
	cancel()
	wg.Wait()
	waitFor(t, func() bool { st := f.srv.Engine().Stats(); return st.Active == 0 && st.Queued == 0 })
	if code, body := f.postJSON(t, "/v1/chat/completions", chatBody("pirate", nil)); code != 200 {
		t.Fatalf("after the queue drained: %d %s", code, body)
	}
}

func TestTimeout(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Timeout = 30 * time.Millisecond
		o.stepDelay = 2 * time.Millisecond
	})
	body := chatBody("pirate", map[string]any{"max_tokens": 400, "temperature": 1, "stop": []string{"never-generated-xyz"}})
	code, data := f.postJSON(t, "/v1/chat/completions", body)
	if code != 504 || !bytes.Contains(data, []byte(`"timeout"`)) {
		t.Fatalf("timeout: %d %s", code, data)
	}
	waitFor(t, func() bool { return f.srv.Engine().Stats().Active == 0 })
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 20s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestDisconnectFreesSlot: a client that reads two tokens and hangs up
// frees its slot and KV cache at once.
func TestDisconnectFreesSlot(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.stepDelay = 2 * time.Millisecond })
	for round := 0; round < 3; round++ {
		conn, err := net.Dial("tcp", f.ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		body := jsonBytes(chatBody("ranger", map[string]any{"max_tokens": 400, "stream": true, "temperature": 1}))
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", testAPIKey, len(body), body)
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		// The role chunk, then two content chunks.
		for bytes.Count(buf, []byte(`"content"`)) < 3 {
			n, err := conn.Read(tmp)
			if err != nil {
				t.Fatalf("reading the stream: %v (%s)", err, buf)
			}
			buf = append(buf, tmp[:n]...)
		}
		if st := f.srv.Engine().Stats(); st.Active != 1 {
			t.Fatalf("while streaming: %d active", st.Active)
		}
		conn.Close()
		t0 := time.Now()
		waitFor(t, func() bool { return f.srv.Engine().Stats().Active == 0 })
		t.Logf("slot freed %v after the disconnect", time.Since(t0))
	}
	st := f.srv.Engine().Stats()
	if st.KVReserved != f.srv.base.eb.SlotBytes() || st.KVUsed < 0 {
		t.Errorf("KV reserved %d after three sequential requests, want one pooled cache (%d)", st.KVReserved, f.srv.base.eb.SlotBytes())
	}
}

// TestLoad runs 32 concurrent streaming clients for a bounded time: no
// errors, and the heap after warm-up stays flat.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	f := newFixture(t, func(o *Options) {
		o.MaxSeqs = 32
		o.MaxQueue = 64
	})
	personas := []string{"base", "pirate", "ranger", "oracle", "bard", "pruned"}
	var errs, done atomic.Int64
	var firstErr atomic.Value
	run := func(d time.Duration) {
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for c := 0; c < 32; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; i < 200 && time.Now().Before(deadline); i++ {
					body := jsonBytes(chatBody(personas[(c+i)%len(personas)], map[string]any{"stream": true, "max_tokens": 24, "temperature": 0.8, "seed": c*1000 + i}))
					req, _ := http.NewRequest("POST", f.ts.URL+"/v1/chat/completions", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+testAPIKey)
					resp, err := f.ts.Client().Do(req)
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					events := sseEvents(t, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || len(events) < 2 || events[len(events)-1] != "[DONE]" {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d, %d events", resp.StatusCode, len(events)))
						continue
					}
					done.Add(1)
				}
			}(c)
		}
		wg.Wait()
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	run(1500 * time.Millisecond) // warm-up
	h0 := heap()
	n0 := done.Load()
	run(3 * time.Second)
	h1 := heap()
	if errs.Load() != 0 {
		t.Fatalf("%d errors (first: %v) in %d requests", errs.Load(), firstErr.Load(), done.Load())
	}
	t.Logf("%d requests after warm-up; heap %d KiB → %d KiB", done.Load()-n0, h0>>10, h1>>10)
	if done.Load()-n0 < 32 {
		t.Errorf("only %d requests completed", done.Load()-n0)
	}
	if h1 > h0+h0/4+(4<<20) {
		t.Errorf("heap grew from %d to %d bytes after warm-up", h0, h1)
	}
	if st := f.srv.Engine().Stats(); st.Active != 0 || st.Queued != 0 || st.KVReserved > st.KVBudget {
		t.Errorf("after the load: %+v", st)
	}
}

// TestMaskPersonasShareTheBase: N mask personas cost their masks, not N
// copies of the model, in the heap and in /metrics.
func TestMaskPersonasShareTheBase(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Personas = nil })
	baseBytes := f.srv.base.bytes
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	const n = 12
	h0 := heap()
	for i := 0; i < n; i++ {
		mk := "oracle.mask.safetensors"
		if i%2 == 0 {
			mk = "ranger.mask.safetensors"
		}
		spec := persona.Spec{Name: fmt.Sprintf("npc-%d", i), Description: "An NPC.", Mask: mk}
		code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(spec))
		if code != 201 {
			t.Fatalf("adding persona %d: %d %s", i, code, body)
		}
	}
	grew := heap() - h0
	var perPersona int64
	f.srv.mu.RLock()
	for _, p := range f.srv.personas {
		perPersona += p.bytes
		if p.base != f.srv.base {
			t.Errorf("persona %s has its own base", p.spec.Name)
		}
	}
	f.srv.mu.RUnlock()
	t.Logf("base %d bytes; %d mask personas report %d bytes; heap grew %d bytes", baseBytes, n, perPersona, grew)
	if perPersona > baseBytes {
		t.Errorf("%d mask personas report %d bytes, more than one base model (%d)", n, perPersona, baseBytes)
	}
	// Bits, row counts, channel vectors and the loader's bookkeeping; far
	// below n copies of the model.
	if grew > 3*perPersona+(2<<20) || grew > int64(n)*baseBytes/4 {
		t.Errorf("the heap grew by %d bytes for %d mask personas (masks %d bytes, model %d bytes)", grew, n, perPersona, baseBytes)
	}
	_, _, metrics := f.do(t, "GET", "/metrics", testAPIKey, "", nil)
	if !bytes.Contains(metrics, []byte(`masque_persona_memory_bytes{kind="mask",persona="npc-3"}`)) {
		t.Error("/metrics lacks the memory of npc-3")
	}
}

// TestPersonaManagement adds and removes personas at run time.
func TestPersonaManagement(t *testing.T) {
	f := newFixture(t, nil)
	card := `{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Old Sailor","description":"An old sailor.","first_mes":"Ahoy.","personality":"salty"}}`
	cardPNG, err := persona.EmbedCardPNG(tinyPNG(), []byte(card))
	if err != nil {
		t.Fatal(err)
	}
	os.Symlink("/etc", filepath.Join(f.dir, "escape"))
	tests := []struct {
		name        string
		method      string
		path        string
		key         string
		contentType string
		body        []byte
		status      int
		contains    string
	}{
		{"list", "GET", "/v1/personas", testAPIKey, "", nil, 200, `"id":"bard"`},
		{"get", "GET", "/v1/personas/pirate", testAPIKey, "", nil, 200, `"greeting":"Arr!"`},
		{"get unknown", "GET", "/v1/personas/nobody", testAPIKey, "", nil, 404, "persona_not_found"},
		{"get bad name", "GET", "/v1/personas/..%2Fetc", testAPIKey, "", nil, 400, "invalid_name"},
		{"add without key", "POST", "/v1/personas", "", "application/json", jsonBytes(persona.Spec{Name: "x"}), 401, "invalid_admin_key"},
		{"add with the user key", "POST", "/v1/personas", testAPIKey, "application/json", jsonBytes(persona.Spec{Name: "x"}), 401, "invalid_admin_key"},
		{"add spec", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "knight", Description: "A knight.", Mask: "ranger.mask.safetensors"}), 201, `"kind":"mask"`},
		{"add lora", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "minstrel", LoRA: "bard"}), 201, `"kind":"lora"`},
		{"add duplicate", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "knight"}), 409, "persona_exists"},
		{"add the base id", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "base"}), 409, "persona_exists"},
		{"add bad name", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "../../x"}), 400, "invalid_persona"},
		{"add path escape", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "y", Mask: "../../etc/passwd"}), 400, "persona folder"},
		{"add absolute path", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "y", Mask: "/etc/passwd"}), 400, "persona folder"},
		{"add symlink escape", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "y", Mask: "escape/passwd"}), 400, "leaves the persona folder"},
		{"add missing file", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "y", Mask: "nope.safetensors"}), 400, "no such file"},
		{"add not a mask", "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "y", Mask: "pruned.gguf"}), 400, "invalid_persona"},
		{"add card path", "POST", "/v1/personas", testAdminKey, "application/json", []byte(`{"name":"y","card":"x.png"}`), 400, "card"},
		{"add unknown field", "POST", "/v1/personas", testAdminKey, "application/json", []byte(`{"name":"y","colour":"red"}`), 400, "colour"},
		{"add malformed", "POST", "/v1/personas", testAdminKey, "application/json", []byte(`{"name":`), 400, "invalid_json"},
		{"add card json", "POST", "/v1/personas", testAdminKey, "application/json", []byte(card), 201, `"id":"old-sailor"`},
		{"add card png with mask", "POST", "/v1/personas?name=sailor2&mask=oracle.mask.safetensors", testAdminKey, "image/png", cardPNG, 201, `"greeting":"Ahoy."`},
		{"add bad card", "POST", "/v1/personas", testAdminKey, "image/png", []byte("\x89PNG\r\n\x1a\nxxxx"), 400, "invalid_card"},
		{"chat with the new persona", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("sailor2", nil)), 200, `"model":"sailor2"`},
		{"delete without key", "DELETE", "/v1/personas/knight", testAPIKey, "", nil, 401, "invalid_admin_key"},
		{"delete", "DELETE", "/v1/personas/knight", testAdminKey, "", nil, 200, `"deleted":true`},
		{"delete again", "DELETE", "/v1/personas/knight", testAdminKey, "", nil, 404, "persona_not_found"},
		{"delete the base", "DELETE", "/v1/personas/base", testAdminKey, "", nil, 400, "base_model"},
		{"delete own model", "DELETE", "/v1/personas/pruned", testAdminKey, "", nil, 200, `"deleted":true`},
		{"chat with a removed persona", "POST", "/v1/chat/completions", testAPIKey, "", jsonBytes(chatBody("knight", nil)), 404, "model_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := f.do(t, tc.method, tc.path, tc.key, tc.contentType, tc.body)
			if code != tc.status || !bytes.Contains(body, []byte(tc.contains)) {
				t.Fatalf("%d %s\nwant %d containing %q", code, body, tc.status, tc.contains)
			}
		})
	}
	_, _, body := f.do(t, "GET", "/v1/models", testAPIKey, "", nil)
	var list struct {
		Data []struct{ ID string } `json:"data"`
	}
	json.Unmarshal(body, &list)
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "base,bard,minstrel,old-sailor,oracle,pirate,ranger,sailor2" {
		t.Errorf("models after the changes: %s", got)
	}
}

func TestPersonaManagementDisabled(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.AdminKey = "" })
	code, _, body := f.do(t, "POST", "/v1/personas", testAPIKey, "application/json", jsonBytes(persona.Spec{Name: "x"}))
	if code != 403 || !bytes.Contains(body, []byte("admin_disabled")) {
		t.Fatalf("%d %s", code, body)
	}
}

func TestNoAPIKey(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.APIKey = "" })
	if code, _, body := f.do(t, "GET", "/v1/models", "", "", nil); code != 200 {
		t.Fatalf("without a configured key: %d %s", code, body)
	}
}

func TestPlaygroundServed(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		path, contains, ctype string
	}{
		{"/", "<title>masque playground</title>", "text/html"},
		{"/playground/app.js", "chat/completions", "text/javascript"},
		{"/playground/style.css", ".msg", "text/css"},
	} {
		// The static page needs no key: it asks for one.
		code, hdr, body := f.do(t, "GET", tc.path, "", "", nil)
		if code != 200 || !bytes.Contains(body, []byte(tc.contains)) || !strings.HasPrefix(hdr.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s: %d %s", tc.path, code, hdr.Get("Content-Type"))
		}
		if !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: no CSP", tc.path)
		}
	}
	g := newFixture(t, func(o *Options) { o.NoPlayground = true })
	if code, _, _ := g.do(t, "GET", "/", "", "", nil); code != 404 {
		t.Errorf("playground off: %d", code)
	}
}

// TestPersonaPersist: with Options.Registry, personas added and removed at
// run time are written back to the registry, which then loads as the
// served personas; an add whose registry cannot be written is undone.
func TestPersonaPersist(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "personas.yaml")
	f := newFixture(t, func(o *Options) { o.Registry = reg })
	names := func() []string {
		specs, err := persona.LoadRegistry(reg)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range specs {
			out = append(out, s.Name)
			if s.Name == "knight" && s.Mask != filepath.Join(f.dir, "ranger.mask.safetensors") {
				t.Errorf("knight's mask is %q in the registry", s.Mask)
			}
		}
		return out
	}
	if code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json",
		jsonBytes(persona.Spec{Name: "knight", Description: "A knight.", Mask: "ranger.mask.safetensors"})); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	if got, want := names(), []string{"bard", "knight", "oracle", "pirate", "pruned", "ranger"}; !slices.Equal(got, want) {
		t.Errorf("after the add the registry lists %v, want %v", got, want)
	}
	if code, _, body := f.do(t, "DELETE", "/v1/personas/pirate", testAdminKey, "", nil); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if got, want := names(), []string{"bard", "knight", "oracle", "pruned", "ranger"}; !slices.Equal(got, want) {
		t.Errorf("after the delete the registry lists %v, want %v", got, want)
	}

	// A registry that cannot be written: the add is refused and undone.
	g := newFixture(t, func(o *Options) { o.Registry = filepath.Join(t.TempDir(), "missing", "personas.yaml") })
	code, _, body := g.do(t, "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "scribe", Description: "A scribe."}))
	if code != 500 || !strings.Contains(string(body), "registry_not_written") {
		t.Errorf("add with an unwritable registry: %d %s", code, body)
	}
	if code, _, _ := g.do(t, "GET", "/v1/personas/scribe", testAPIKey, "", nil); code != 404 {
		t.Errorf("the failed add left the persona in place (%d)", code)
	}
}
