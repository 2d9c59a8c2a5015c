package openaiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/chattemplate"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		h    map[string]string
		want time.Duration
	}{
		{nil, 0},
		{map[string]string{"Retry-After": "2"}, 2 * time.Second},
		{map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{map[string]string{"Retry-After": now.Add(3 * time.Second).Format(http.TimeFormat)}, 3 * time.Second},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{"Retry-After-Ms": "250", "Retry-After": "9"}, 250 * time.Millisecond},
	}
	for _, tc := range tests {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := RetryAfter(h, now); got != tc.want {
			t.Errorf("%v: got %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestLimiterWaits(t *testing.T) {
	tests := []struct {
		name     string
		rps, tpm float64
		n, toks  int
		min      time.Duration
	}{
		{"rps", 20, 0, 5, 10, 190 * time.Millisecond},
		{"tpm", 0, 60000, 3, 60, 150 * time.Millisecond}, // 1000 tokens/s from an empty bucket
		{"off", 0, 0, 50, 10, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimiter(tc.rps, tc.tpm)
			if tc.tpm > 0 {
				l.tokens = 0 // start empty: each request of 60 tokens waits 60 ms
			}
			start := time.Now()
			for range tc.n {
				if err := l.Wait(context.Background(), tc.toks); err != nil {
					t.Fatal(err)
				}
			}
			if el := time.Since(start); el < tc.min || (tc.min == 0 && el > 100*time.Millisecond) {
				t.Errorf("took %v, want ≥ %v", el, tc.min)
			}
		})
	}
}

// TestRetryAfterHonoured: a 429 with Retry-After: 1 makes the client wait
// a second (not its 1 ms backoff) before trying again, and no longer than
// MaxRetryAfter allows.
func TestRetryAfterHonoured(t *testing.T) {
	var times []time.Time
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"message":"slow down"}}`)
			return
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL, MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, MaxRetryAfter: 5 * time.Second}
	if _, err := c.Chat(context.Background(), Request{Model: "m"}); err != nil {
		t.Fatal(err)
	}
	if len(times) != 2 {
		t.Fatalf("%d attempts", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second || gap > 3*time.Second {
		t.Fatalf("waited %v after Retry-After: 1", gap)
	}
	// Capped: MaxRetryAfter 20ms turns a Retry-After of an hour into ~20ms.
	p := Retry{MaxRetryAfter: 20 * time.Millisecond}
	if d := p.Delay(0, &Error{Kind: KindRateLimited, RetryAfter: time.Hour}); d < 20*time.Millisecond || d > 23*time.Millisecond {
		t.Fatalf("capped delay %v", d)
	}
}

// TestBackoffGrows: without Retry-After the waits grow exponentially from
// BaseBackoff, with jitter in [d/2, d], capped at MaxBackoff.
func TestBackoffGrows(t *testing.T) {
	p := Retry{BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for k, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			if d := p.Delay(k, &Error{Kind: KindServer}); d < want/2 || d > want {
				t.Fatalf("retry %d: delay %v, want in [%v, %v]", k+1, d, want/2, want)
			}
		}
	}
	var waits []time.Duration
	var tries atomic.Int32
	n, err := Retry{MaxAttempts: 4, BaseBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}.Do(context.Background(),
		func(context.Context) error { tries.Add(1); return &Error{Kind: KindNetwork, Msg: "refused"} },
		func(k int, err error, d time.Duration) { waits = append(waits, d) })
	if n != 4 || tries.Load() != 4 || len(waits) != 3 || ErrorKind(err) != KindNetwork {
		t.Fatalf("n %d tries %d waits %v err %v", n, tries.Load(), waits, err)
	}
	// A final error is not retried; a cancelled context stops at once.
	n, err = Retry{}.Do(context.Background(), func(context.Context) error { return &Error{Kind: KindAuth} }, nil)
	if n != 1 || ErrorKind(err) != KindAuth {
		t.Fatalf("auth: n %d err %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	n, err = Retry{BaseBackoff: time.Hour, MaxBackoff: time.Hour}.Do(ctx, func(context.Context) error { return &Error{Kind: KindServer} },
		func(int, error, time.Duration) { cancel() })
	if n != 1 || err != context.Canceled || time.Since(start) > time.Second {
		t.Fatalf("cancel: n %d err %v after %v", n, err, time.Since(start))
	}
}

// TestClientRateLimits: the request rate and the token budget space the
// attempts sent to a server, and the concurrency bound holds.
func TestClientRateLimits(t *testing.T) {
	var inFlight, most atomic.Int32
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		// Reports 100 tokens used, whatever was asked.
		io.WriteString(w, `{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":60,"completion_tokens":40}}`)
	}))
	defer srv.Close()
	run := func(c *Client, n int) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if _, err := c.Chat(context.Background(), Request{Model: "m", MaxTokens: 100}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	// 20 requests a second: 6 requests take at least 5 gaps of 50 ms.
	if el := run(&Client{URL: srv.URL, Limiter: NewLimiter(20, 0)}, 6); el < 240*time.Millisecond {
		t.Errorf("rps: 6 requests in %v", el)
	}
	// 6000 tokens a minute is 100 a second; a bucket emptied first makes
	// each request of ~104 estimated tokens wait about a second's refill.
	lim := NewLimiter(0, 6000)
	lim.tokens = 0
	if el := run(&Client{URL: srv.URL, Limiter: lim}, 3); el < 2500*time.Millisecond {
		t.Errorf("tpm: 3 requests in %v", el)
	}
	// Used corrects the estimate: 100 used of 104 estimated gives 4 back.
	lim = NewLimiter(0, 6000)
	before := lim.tokens
	lim.Used(104, 100)
	if d := lim.tokens - before; d != 0 { // capped at the bucket's size
		t.Errorf("refund beyond a full bucket: %v", d)
	}
	lim.tokens = 1000
	lim.Used(104, 300)
	if lim.tokens != 804 {
		t.Errorf("after a 196-token underestimate: %v tokens, want 804", lim.tokens)
	}
	most.Store(0)
	run(&Client{URL: srv.URL, Concurrency: 2}, 8)
	if m := most.Load(); m > 2 {
		t.Errorf("%d requests in flight with Concurrency 2", m)
	}
}

// TestStreamUsage: a streamed request asks for include_usage and reads the
// usage chunk that follows the finish_reason chunk, so streamed replies
// count their tokens.
func TestStreamUsage(t *testing.T) {
	var body map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, c := range []string{
			`{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}`,
			`{"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`,
			`{"model":"m","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", c)
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL, Stream: true}
	r, err := c.Chat(context.Background(), Request{Model: "m", Messages: []chattemplate.Message{{Role: "user", Content: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "Hello" || r.FinishReason != "stop" || r.PromptTokens != 11 || r.CompletionTokens != 2 {
		t.Fatalf("got %+v", r)
	}
	so, _ := body["stream_options"].(map[string]any)
	if body["stream"] != true || so["include_usage"] != true {
		t.Fatalf("request body %v", body)
	}
	// A stream cut before its final event is truncated, and retried.
	var n atomic.Int32
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			io.WriteString(w, `data: {"choices":[{"delta":{"content":"Hel"}}]}`+"\n\n")
			return
		}
		io.WriteString(w, `data: {"choices":[{"delta":{"content":"ok"},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	}))
	defer cut.Close()
	c = &Client{URL: cut.URL, Stream: true, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	if _, err := c.Attempt(context.Background(), Request{Model: "m"}); ErrorKind(err) != KindTruncated {
		t.Fatalf("cut stream: %v", err)
	}
	n.Store(0)
	if r, err := c.Chat(context.Background(), Request{Model: "m"}); err != nil || r.Text != "ok" || n.Load() != 2 {
		t.Fatalf("retry of a cut stream: %+v %v after %d requests", r, err, n.Load())
	}
	if !strings.Contains(fmt.Sprint(&Error{Kind: KindBadResponse, Msg: "x"}), "bad_response") {
		t.Fatal("error format")
	}
}

// TestEmbedRetriesAndOrder: embeddings go through the same retries, and
// come back in the order of the texts whatever the order of the data.
func TestEmbedRetriesAndOrder(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/embeddings" {
			t.Errorf("path %s", r.URL.Path)
		}
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"object":"list","data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[1,0]}],"usage":{"prompt_tokens":2,"total_tokens":2}}`)
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL + "/v1", BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	vs, err := c.Embed(context.Background(), "m", []string{"a", "b"})
	if err != nil || n.Load() != 2 || len(vs) != 2 || vs[0][0] != 1 || vs[1][1] != 2 {
		t.Fatalf("%v %v after %d requests", vs, err, n.Load())
	}
	if _, err := c.Embed(context.Background(), "m", []string{"a"}); !strings.Contains(fmt.Sprint(err), "2 embeddings for 1 texts") {
		t.Fatalf("count mismatch: %v", err)
	}
}
