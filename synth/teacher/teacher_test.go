package teacher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/openaiclient"
)

// sse writes one streamed completion: the text in pieces, a final chunk,
// the usage chunk when the request asked for it (include_usage, as OpenAI
// does), and [DONE].
func sse(w http.ResponseWriter, text string, cut, usage bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	words := strings.SplitAfter(text, " ")
	for i, p := range words {
		if cut && i == len(words)/2 {
			// Cut the stream off mid-chunk: hijack and close.
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":")
			fl.Flush()
			if hj, ok := w.(http.Hijacker); ok {
				c, _, _ := hj.Hijack()
				c.Close()
			}
			return
		}
		b, _ := json.Marshal(p)
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%s},\"finish_reason\":null}]}\n\n", b)
		fl.Flush()
	}
	fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
	if usage {
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n")
	}
	fmt.Fprintf(w, "data: [DONE]\n\n")
	fl.Flush()
}

func completion(w http.ResponseWriter, text, finish string) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"model":   "m",
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text}, "finish_reason": finish}},
		"usage":   map[string]any{"prompt_tokens": 7, "completion_tokens": 3},
	})
}

// echo answers "reply to: <last user message>".
func echoText(r *http.Request) (string, bool) {
	text, stream, _ := echo(r)
	return text, stream
}

// echo is echoText that also says whether a stream asked for its usage.
func echo(r *http.Request) (text string, stream, usage bool) {
	var body struct {
		openaiclient.Body
		Stream        bool `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	last := ""
	if n := len(body.Messages); n > 0 {
		last = body.Messages[n-1].Content
	}
	return "reply to: " + last, body.Stream, body.StreamOptions != nil && body.StreamOptions.IncludeUsage
}

func TestOpenAIFormats(t *testing.T) {
	var gotAuth, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		text, stream, usage := echo(r)
		if stream {
			sse(w, text, false, usage)
		} else {
			completion(w, text, "stop")
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		stream bool
	}{{"plain", false}, {"stream", true}} {
		t.Run(tc.name, func(t *testing.T) {
			o := &OpenAI{BaseURL: srv.URL + "/v1/", Model: "m", APIKey: "sk-test", Stream: tc.stream}
			resp, err := o.Complete(context.Background(), Request{Messages: []chattemplate.Message{{Role: "user", Content: "hello there friend"}}})
			if err != nil {
				t.Fatal(err)
			}
			// A stream counts its tokens too (stream_options.include_usage):
			// synth's cost report and --tpm limit depend on it.
			if resp.Text != "reply to: hello there friend" || resp.FinishReason != "stop" || resp.PromptTokens != 7 || resp.CompletionTokens != 3 {
				t.Fatalf("got %+v", resp)
			}
			if gotAuth != "Bearer sk-test" || gotPath != "/v1/chat/completions" {
				t.Fatalf("auth %q path %q", gotAuth, gotPath)
			}
		})
	}
}

func TestResolveOpenAI(t *testing.T) {
	env := map[string]string{EnvURL: "http://env", EnvModel: "env-model", EnvOpenAIKey: "openai-key"}
	get := func(k string) string { return env[k] }
	tests := []struct {
		url, model, key         string
		wantURL, wantM, wantKey string
	}{
		{"", "", "", "http://env", "env-model", "openai-key"},
		{"http://flag", "m", "k", "http://flag", "m", "k"},
	}
	for _, tc := range tests {
		o := ResolveOpenAI(tc.url, tc.model, tc.key, get)
		if o.BaseURL != tc.wantURL || o.Model != tc.wantM || o.APIKey != tc.wantKey {
			t.Errorf("got %+v", o)
		}
	}
	env[EnvKey] = "masque-key"
	if o := ResolveOpenAI("", "", "", get); o.APIKey != "masque-key" {
		t.Errorf("MASQUE_TEACHER_KEY should win over OPENAI_API_KEY, got %q", o.APIKey)
	}
}

func TestKey(t *testing.T) {
	seed := int64(3)
	base := Request{Model: "m", Messages: []chattemplate.Message{{Role: "user", Content: "hi"}}, MaxTokens: 10, Temperature: 0.7}
	variants := []func(r *Request){
		func(r *Request) { r.Model = "n" },
		func(r *Request) { r.Messages = []chattemplate.Message{{Role: "user", Content: "hi!"}} },
		func(r *Request) { r.Messages = []chattemplate.Message{{Role: "system", Content: "hi"}} },
		func(r *Request) { r.MaxTokens = 11 },
		func(r *Request) { r.Temperature = 0 },
		func(r *Request) { r.TopP = 0.9 },
		func(r *Request) { r.Seed = &seed },
		func(r *Request) { r.Stop = []string{"\n"} },
		func(r *Request) { r.TopLogprobs = 5 },
	}
	k0 := Key(base)
	if Key(base) != k0 || len(k0) != 32 {
		t.Fatalf("key %q not stable", k0)
	}
	for i, v := range variants {
		r := base
		v(&r)
		if Key(r) == k0 {
			t.Errorf("variant %d has the same key", i)
		}
	}
}

// faultServer replays a script of behaviours, one per request, then
// succeeds.
type faultServer struct {
	script []string
	n      atomic.Int32
	stream bool
}

func (f *faultServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(f.n.Add(1)) - 1
	text, stream := echoText(r)
	step := "ok"
	if i < len(f.script) {
		step = f.script[i]
	}
	switch step {
	case "429":
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":{"message":"slow down"}}`, http.StatusTooManyRequests)
	case "500":
		http.Error(w, "boom", http.StatusInternalServerError)
	case "400":
		http.Error(w, `{"error":{"message":"bad"}}`, http.StatusBadRequest)
	case "401":
		http.Error(w, "no", http.StatusUnauthorized)
	case "stall":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	case "cut":
		sse(w, text, true, true)
	case "nodone":
		// A stream that ends cleanly but without finish_reason or [DONE].
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"partial\"}}]}\n\n")
	default:
		if stream {
			sse(w, text, false, true)
		} else {
			completion(w, text, "stop")
		}
	}
}

func TestClientRetries(t *testing.T) {
	tests := []struct {
		name      string
		script    []string
		stream    bool
		wantErr   string // error kind, "" for success
		wantReqs  int
		minWait   time.Duration
		wantFatal bool
	}{
		{"ok", nil, true, "", 1, 0, false},
		{"429 honours Retry-After", []string{"429"}, false, "", 2, time.Second, false},
		{"500s", []string{"500", "500"}, false, "", 3, 0, false},
		{"stall then ok", []string{"stall"}, true, "", 2, 0, false},
		{"cut stream", []string{"cut", "cut"}, true, "", 3, 0, false},
		{"stream without end", []string{"nodone"}, true, "", 2, 0, false},
		{"all kinds", []string{"500", "stall", "cut"}, true, "", 4, 0, false},
		{"gives up", []string{"500", "500", "500", "500"}, false, openaiclient.KindServer, 4, 0, false},
		{"bad request not retried", []string{"400"}, false, openaiclient.KindRejected, 1, 0, false},
		{"auth is fatal", []string{"401"}, false, openaiclient.KindAuth, 1, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &faultServer{script: tc.script}
			srv := httptest.NewServer(fs)
			defer srv.Close()
			o := &OpenAI{BaseURL: srv.URL + "/v1", Model: "m", Stream: tc.stream}
			c := NewClient(o, Options{MaxAttempts: 4, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Timeout: 300 * time.Millisecond})
			start := time.Now()
			resp, err := c.Complete(context.Background(), Request{Messages: []chattemplate.Message{{Role: "user", Content: "one two three four"}}})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if resp.Text != "reply to: one two three four" {
					t.Fatalf("text %q", resp.Text)
				}
			} else {
				if openaiclient.ErrorKind(err) != tc.wantErr {
					t.Fatalf("error %v, want kind %s", err, tc.wantErr)
				}
				var te *openaiclient.Error
				if ok := asError(err, &te); !ok || te.Fatal() != tc.wantFatal {
					t.Fatalf("fatal: %v", err)
				}
			}
			if got := int(fs.n.Load()); got != tc.wantReqs {
				t.Errorf("%d requests, want %d", got, tc.wantReqs)
			}
			if el := time.Since(start); el < tc.minWait {
				t.Errorf("took %v, want at least %v", el, tc.minWait)
			}
			if st := c.Stats(); st.Requests != tc.wantReqs {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func asError(err error, te **openaiclient.Error) bool {
	for err != nil {
		if e, ok := err.(*openaiclient.Error); ok {
			*te = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestClientCacheAndSingleflight(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(50 * time.Millisecond)
		text, _ := echoText(r)
		completion(w, text, "stop")
	}))
	defer srv.Close()
	dir := t.TempDir()
	cache, err := OpenCache(filepath.Join(dir, "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(&OpenAI{BaseURL: srv.URL, Model: "m"}, Options{Cache: cache, Concurrency: 8})
	req := Request{Messages: []chattemplate.Message{{Role: "user", Content: "same"}}}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Complete(context.Background(), req); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d calls for identical concurrent requests", calls.Load())
	}
	cache.Close()
	// A rerun with a fresh client pays nothing.
	cache2, err := OpenCache(filepath.Join(dir, "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache2.Close()
	c2 := NewClient(&OpenAI{BaseURL: srv.URL, Model: "m"}, Options{Cache: cache2})
	resp, err := c2.Complete(context.Background(), req)
	if err != nil || !resp.Cached || resp.Text != "reply to: same" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if calls.Load() != 1 || c2.Stats().CacheHits != 1 {
		t.Fatalf("calls %d stats %+v", calls.Load(), c2.Stats())
	}
}

func TestCacheTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.jsonl")
	c, err := OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Put(fmt.Sprint("k", i), &Response{Text: fmt.Sprint("t", i), FinishReason: "stop"}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	// Simulate a crash mid-write.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"key":"k9","response":{"te`)
	f.Close()
	c, err = OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 3 || c.Skipped != 1 {
		t.Fatalf("len %d skipped %d", c.Len(), c.Skipped)
	}
	if err := c.Put("k3", &Response{Text: "t3"}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c, _ = OpenCache(path)
	defer c.Close()
	for i := range 4 {
		r, ok := c.Get(fmt.Sprint("k", i))
		if !ok || r.Text != fmt.Sprint("t", i) {
			t.Fatalf("k%d: %+v %v", i, r, ok)
		}
	}
}

func TestBatchRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cache, err := OpenCache(filepath.Join(dir, "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	var buf bytes.Buffer
	rec := NewRecorder(&buf, cache)
	reqs := []Request{
		{Model: "gpt", Messages: []chattemplate.Message{{Role: "user", Content: "a"}}},
		{Model: "gpt", Messages: []chattemplate.Message{{Role: "user", Content: "b"}}},
		{Model: "gpt", Messages: []chattemplate.Message{{Role: "user", Content: "a"}}}, // same as the first
	}
	for _, r := range reqs {
		if _, err := rec.Complete(context.Background(), r); !IsDeferred(err) {
			t.Fatalf("want deferred, got %v", err)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || rec.Recorded() != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	var results strings.Builder
	for i, l := range lines {
		var br struct {
			CustomID string `json:"custom_id"`
			Method   string `json:"method"`
			URL      string `json:"url"`
			Body     struct {
				Model    string                 `json:"model"`
				Messages []chattemplate.Message `json:"messages"`
			} `json:"body"`
		}
		if err := json.Unmarshal([]byte(l), &br); err != nil {
			t.Fatal(err)
		}
		if br.Method != "POST" || br.URL != "/v1/chat/completions" || br.Body.Model != "gpt" || br.CustomID != Key(reqs[i]) {
			t.Fatalf("line %s", l)
		}
		status, body := 200, fmt.Sprintf(`{"choices":[{"message":{"role":"assistant","content":"answer %s"},"finish_reason":"stop"}]}`, br.Body.Messages[0].Content)
		if i == 1 {
			status, body = 500, `{"error":{"message":"server exploded"}}`
		}
		fmt.Fprintf(&results, `{"id":"r%d","custom_id":%q,"response":{"status_code":%d,"body":%s},"error":null}`+"\n", i, br.CustomID, status, body)
	}
	results.WriteString("not json\n")
	st, err := ImportBatchResults(strings.NewReader(results.String()), "results.jsonl", cache)
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 1 || len(st.Failed) != 1 || len(st.Problems) != 1 || !strings.HasPrefix(st.Problems[0], "results.jsonl:3:") {
		t.Fatalf("stats %+v", st)
	}
	co := &CacheOnly{Cache: cache, Failed: st.Failed}
	if r, err := co.Complete(context.Background(), reqs[0]); err != nil || r.Text != "answer a" {
		t.Fatalf("%v %v", r, err)
	}
	if _, err := co.Complete(context.Background(), reqs[1]); openaiclient.ErrorKind(err) != KindBatchFailed {
		t.Fatalf("%v", err)
	}
	if _, err := co.Complete(context.Background(), Request{Model: "gpt"}); !IsDeferred(err) {
		t.Fatalf("%v", err)
	}
}
