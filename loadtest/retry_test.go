package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryAfterHonoured: a server that answers 429 with Retry-After is
// not retried in a tight loop (35,250 rejections in 20 s before): each
// client waits as told, the rejections are reported apart from errors,
// and a request the server later takes counts as served.
func TestRetryAfterHonoured(t *testing.T) {
	var calls atomic.Int64
	busy := atomic.Bool{}
	busy.Store(true)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if busy.Load() {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"message":"the queue is full","type":"rate_limit_error","code":"rate_limit_exceeded"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
	}))
	defer ts.Close()
	time.AfterFunc(1500*time.Millisecond, func() { busy.Store(false) })
	rep, err := Run(context.Background(), Config{URL: ts.URL, Personas: []string{"a"}, Concurrency: 2, Duration: 2500 * time.Millisecond, MaxRequests: 4, Grace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Each client is refused at 0 s and 1 s (Retry-After: 1), then served.
	if rep.Rejected < 2 || rep.Rejected > 6 || calls.Load() > 12 {
		t.Fatalf("%d rejections, %d calls: Retry-After was not honoured\n%s", rep.Rejected, calls.Load(), rep)
	}
	if rep.Errors != 0 || rep.Requests != 4 {
		t.Fatalf("%d errors, %d requests; want 0 and 4 (rejections are retried, not errors)\n%s", rep.Errors, rep.Requests, rep)
	}
	if !strings.Contains(rep.String(), "rejected") {
		t.Errorf("the report does not show the rejections:\n%s", rep)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"3", 3 * time.Second},
		{"0", 0},
		{"", -1},
		{"soon", -1},
		{"-4", -1},
		{"Mon, 07 Dec 2026 12:00:05 GMT", 5 * time.Second},
		{"Mon, 07 Dec 2026 11:00:00 GMT", 0},
		{"999999999", MaxRetryAfter},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
