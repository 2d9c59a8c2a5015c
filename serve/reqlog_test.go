package serve

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// requestLines waits (the line is written as the handler returns, which
// may be after the client has its answer) for n "request" lines.
func requestLines(t *testing.T, b *syncBuffer, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
				out = append(out, m)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRequestLog: at Info (serve --verbose), every request is logged once,
// with method, path, persona, status, tokens and latency; at Warn (the
// default) none is.
func TestRequestLog(t *testing.T) {
	var buf syncBuffer
	f := newFixture(t, func(o *Options) {
		o.Log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	code, body := f.postJSON(t, "/v1/chat/completions", map[string]any{"model": "pirate", "max_tokens": 7, "temperature": 0, "n": 2,
		"messages": []map[string]string{{"role": "user", "content": "Hello"}}})
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var res struct {
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	json.Unmarshal(body, &res)
	code, body = f.postJSON(t, "/v1/completions", map[string]any{"model": "ranger", "prompt": "Once", "max_tokens": 3, "stream": true})
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	f.do(t, "DELETE", "/v1/personas/bard", testAdminKey, "", nil)
	f.do(t, "GET", "/v1/nowhere", testAPIKey, "", nil)
	lines := requestLines(t, &buf, 4)
	if len(lines) != 4 {
		t.Fatalf("%d request lines:\n%s", len(lines), buf.String())
	}
	want := []struct {
		method, path, persona string
		status                float64
	}{
		{"POST", "/v1/chat/completions", "pirate", 200},
		{"POST", "/v1/completions", "ranger", 200},
		{"DELETE", "/v1/personas/bard", "bard", 200},
		{"GET", "/v1/nowhere", "", 404},
	}
	for i, w := range want {
		l := lines[i]
		if l["level"] != "INFO" || l["method"] != w.method || l["path"] != w.path || l["persona"] != w.persona || l["status"] != w.status {
			t.Errorf("line %d: %v, want %+v", i, l, w)
		}
		if lat, ok := l["latency"].(float64); !ok || lat <= 0 {
			t.Errorf("line %d: latency %v", i, l["latency"])
		}
		if _, ok := l["remote"].(string); !ok {
			t.Errorf("line %d: no remote address", i)
		}
	}
	if lines[0]["prompt_tokens"] != float64(res.Usage.PromptTokens) || lines[0]["completion_tokens"] != float64(res.Usage.CompletionTokens) || res.Usage.CompletionTokens < 2 {
		t.Errorf("chat tokens %v/%v, usage %+v", lines[0]["prompt_tokens"], lines[0]["completion_tokens"], res.Usage)
	}
	if lines[1]["completion_tokens"].(float64) < 1 || lines[1]["prompt_tokens"].(float64) < 1 {
		t.Errorf("streamed completion tokens %v", lines[1])
	}

	var quiet syncBuffer
	g := newFixture(t, func(o *Options) {
		o.Log = slog.New(slog.NewJSONHandler(&quiet, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	if code, body := g.postJSON(t, "/v1/chat/completions", map[string]any{"model": "pirate", "max_tokens": 2,
		"messages": []map[string]string{{"role": "user", "content": "Hello"}}}); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	time.Sleep(50 * time.Millisecond)
	if strings.Contains(quiet.String(), `"request"`) {
		t.Fatalf("request logged at Warn: %s", quiet.String())
	}
}
