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

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url    string
		remote bool
		ok     bool
	}{
		{"http://127.0.0.1:8080", false, true},
		{"http://127.8.9.10", false, true},
		{"http://localhost:1234/", false, true},
		{"https://[::1]:8443", false, true},
		{"http://10.0.0.1:8080", false, false},
		{"http://example.com", false, false},
		{"http://example.com", true, true},
		{"http://localhost.example.com", false, false},
		{"ftp://127.0.0.1", false, false},
		{"127.0.0.1:8080", false, false},
		{"http://", false, false},
		{"http://0.0.0.0:8080", false, false},
	} {
		if err := CheckURL(tc.url, tc.remote); (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, %v) = %v, want ok %v", tc.url, tc.remote, err, tc.ok)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	good := Config{URL: "http://127.0.0.1:1", Personas: []string{"a"}, Concurrency: 1, Duration: time.Second}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"remote", func(c *Config) { c.URL = "http://192.168.1.1" }, "allow-remote"},
		{"no concurrency", func(c *Config) { c.Concurrency = 0 }, "concurrency"},
		{"too much concurrency", func(c *Config) { c.Concurrency = MaxConcurrency + 1 }, "concurrency"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "duration"},
		{"too long", func(c *Config) { c.Duration = 2 * MaxDuration }, "duration"},
		{"no personas", func(c *Config) { c.Personas = nil }, "personas"},
		{"empty persona", func(c *Config) { c.Personas = []string{""} }, "empty"},
		{"negative tokens", func(c *Config) { c.MaxTokens = -1 }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			_, err := Run(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// fakeServer answers with a canned stream, or a failure every nth request.
func fakeServer(t *testing.T, mode string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, `{"error":{"message":"bad key"}}`, 401)
			return
		}
		if mode == "busy" && i%2 == 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"message":"busy"}}`, 429)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for k := 0; k < 3; k++ {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}]}\n\n", k)
			fl.Flush()
			time.Sleep(time.Millisecond)
		}
		switch mode {
		case "error-event":
			fmt.Fprint(w, "data: {\"error\":{\"message\":\"boom\"}}\n\n")
			return
		case "no-done":
			return
		}
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

func TestRunCounts(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		ok, errs bool
		contains string
	}{
		{"ok", true, false, ""},
		{"busy", true, false, "HTTP 429"}, // rejections are counted apart, not as errors
		{"error-event", false, true, "boom"},
		{"no-done", false, true, "[DONE]"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ts, n := fakeServer(t, tc.mode)
			r, err := Run(context.Background(), Config{URL: ts.URL, APIKey: "k", Personas: []string{"a", "b"}, Concurrency: 4, Duration: 300 * time.Millisecond, MaxRequests: 40})
			if err != nil {
				t.Fatal(err)
			}
			if n.Load() > 40 {
				t.Errorf("%d requests sent, the cap is 40", n.Load())
			}
			if (r.Requests > 0) != tc.ok || (r.Errors > 0) != tc.errs {
				t.Fatalf("report %+v", r)
			}
			if tc.ok && (r.Tokens != 3*r.Requests || r.TTFTP50 <= 0 || r.TPOTP99 <= 0 || r.TokensPerSec <= 0) {
				t.Errorf("report %+v", r)
			}
			if tc.mode == "busy" && r.Rejected == 0 {
				t.Errorf("no rejections counted: %+v", r)
			}
			if tc.contains != "" && !strings.Contains(r.String(), tc.contains) {
				t.Errorf("report lacks %q:\n%s", tc.contains, r)
			}
		})
	}
}

// TestAgainstServer runs the load test against masque serve on the
// built-in model: 32 streaming clients, no errors.
func TestAgainstServer(t *testing.T) {
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	srv, err := serve.New(serve.Options{Base: ck, Personas: []persona.Spec{{Name: "a", Description: "A."}, {Name: "b", Description: "B."}},
		APIKey: "k", Ctx: 256, MaxSeqs: 32, MaxQueue: 64, KVBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	r, err := Run(context.Background(), Config{URL: ts.URL, APIKey: "k", Personas: []string{"a", "b", "base"}, Concurrency: 32, Duration: 1500 * time.Millisecond, MaxTokens: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r)
	if r.Errors != 0 || r.Requests < 32 || r.Tokens == 0 {
		t.Fatalf("report: %+v", r)
	}
	if st := srv.Engine().Stats(); st.Active != 0 || st.Queued != 0 {
		t.Errorf("server after the run: %+v", st)
	}
}
