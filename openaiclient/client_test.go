package openaiclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/chattemplate"
)

const okBody = `{"id":"x","object":"chat.completion","model":"judge","choices":[{"index":0,"message":{"role":"assistant","content":"85"},"logprobs":{"content":[{"token":"85","logprob":-0.1,"bytes":[56,53],"top_logprobs":[{"token":"85","logprob":-0.1,"bytes":[56,53]},{"token":"90","logprob":-2.5,"bytes":[57,48]}]}]},"finish_reason":"stop"}]}`

func fastClient(url string) *Client {
	return &Client{URL: url, MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 5 * time.Second}
}

func TestClientRetriesAndErrors(t *testing.T) {
	tests := []struct {
		name     string
		handler  func(n int32, w http.ResponseWriter)
		attempts int32
		wantErr  string // "" for success
		malform  bool
	}{
		{"ok", func(n int32, w http.ResponseWriter) { io.WriteString(w, okBody) }, 1, "", false},
		{"429 then ok", func(n int32, w http.ResponseWriter) {
			if n < 3 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(429)
				io.WriteString(w, `{"error":{"message":"slow down"}}`)
				return
			}
			io.WriteString(w, okBody)
		}, 3, "", false},
		{"503 always", func(n int32, w http.ResponseWriter) {
			w.WriteHeader(503)
			io.WriteString(w, "overloaded")
		}, 3, "HTTP 503: overloaded", false},
		{"400 not retried", func(n int32, w http.ResponseWriter) {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"message":"bad model"}}`)
		}, 1, "HTTP 400: bad model", false},
		{"garbage body", func(n int32, w http.ResponseWriter) { io.WriteString(w, "<html>hello</html>") }, 1, "malformed response", true},
		{"no choices", func(n int32, w http.ResponseWriter) { io.WriteString(w, `{"choices":[]}`) }, 1, "no choices", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/chat/completions" {
					t.Errorf("path %s", r.URL.Path)
				}
				tc.handler(n.Add(1), w)
			}))
			defer srv.Close()
			r, err := fastClient(srv.URL).Chat(context.Background(), Request{Model: "judge", Messages: []chattemplate.Message{{Role: "user", Content: "hi"}}})
			if got := n.Load(); got != tc.attempts {
				t.Errorf("%d attempts, want %d", got, tc.attempts)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Text != "85" || len(r.Logprobs) != 1 || len(r.Logprobs[0].Top) != 2 {
					t.Fatalf("response %+v", r)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), srv.URL) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, srv.URL, tc.wantErr)
			}
			if errors.Is(err, ErrMalformed) != tc.malform {
				t.Fatalf("errors.Is(ErrMalformed) = %v", !tc.malform)
			}
		})
	}
}

func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = fastClient("http://"+addr+"/v1").Chat(context.Background(), Request{Model: "m"})
	if err == nil || !strings.Contains(err.Error(), "unreachable after 3 attempts") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %v", err)
	}
}

func TestClientRequestBody(t *testing.T) {
	var got map[string]any
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		json.NewDecoder(r.Body).Decode(&got)
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	c := fastClient(srv.URL + "/v1/chat/completions")
	c.APIKey = "sekret"
	if _, err := c.Chat(context.Background(), Request{Model: "j", MaxTokens: 8, TopLogprobs: 20, Messages: []chattemplate.Message{{Role: "user", Content: "q"}}}); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer sekret" || got["logprobs"] != true || got["top_logprobs"] != 20.0 || got["max_tokens"] != 8.0 || got["temperature"] != 0.0 || got["stream"] != false {
		t.Fatalf("auth %q body %v", auth, got)
	}
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:1":                       "http://h:1/v1/chat/completions",
		"http://h:1/":                      "http://h:1/v1/chat/completions",
		"http://h:1/v1":                    "http://h:1/v1/chat/completions",
		"http://h:1/api/v1/":               "http://h:1/api/v1/chat/completions",
		"http://h:1/x/v1/chat/completions": "http://h:1/x/v1/chat/completions",
	} {
		if got := (&Client{URL: in}).Endpoint(); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

func TestParseResponseLegacyAndBytes(t *testing.T) {
	tests := []struct {
		name, body string
		text       string
		top0       string
	}{
		{"legacy completions", `{"choices":[{"text":"42","logprobs":{"tokens":["42"],"token_logprobs":[-0.5],"top_logprobs":[{"7":-3,"42":-0.5}]}}]}`, "42", "42"},
		// A byte token whose string form is an escape: bytes decide.
		{"bytes win", `{"choices":[{"message":{"content":"\n"},"logprobs":{"content":[{"token":"<0x0A>","logprob":0,"bytes":[10],"top_logprobs":[{"token":"<0x0A>","logprob":0,"bytes":[10]}]}]}}]}`, "\n", "\n"},
		// Invalid UTF-8 bytes (half a character): the string form stays.
		{"partial utf8", `{"choices":[{"message":{"content":""},"logprobs":{"content":[{"token":"\\xe6","logprob":0,"bytes":[230],"top_logprobs":[{"token":"\\xe6","logprob":0,"bytes":[230]}]}]}}]}`, "", `\xe6`},
		{"null content", `{"choices":[{"message":{"content":null},"finish_reason":"length"}]}`, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseResponse([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.Text != tc.text {
				t.Fatalf("text %q", r.Text)
			}
			if tc.top0 != "" && r.Logprobs[0].Top[0].Token != tc.top0 {
				t.Fatalf("top %q", r.Logprobs[0].Top[0].Token)
			}
		})
	}
}
