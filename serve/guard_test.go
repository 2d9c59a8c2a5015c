package serve

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// guardReq sends a request with the given headers ("Host" sets the Host
// header) and returns the status, headers and body.
func guardReq(t *testing.T, f *fixture, method, path string, hdr map[string]string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestBrowserGuards: the keyless loopback server cannot be driven by a
// web page. A POST whose Content-Type is another type than JSON, a request from a
// foreign Origin, and one whose Host is not a loopback name (DNS
// rebinding) are refused with OpenAI-shaped errors; same-origin requests
// (the playground), --cors-origin origins and their preflights are served.
func TestBrowserGuards(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.APIKey = ""
		o.CORSOrigins = []string{"https://app.example"}
	})
	self := strings.TrimPrefix(f.ts.URL, "http://")
	port := self[strings.LastIndex(self, ":")+1:]
	chat := jsonBytes(chatBody("pirate", map[string]any{"max_tokens": 1}))
	jsonCT := map[string]string{"Content-Type": "application/json"}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   []byte
		status int
		want   string // in the body
	}{
		{"text/plain POST", "POST", "/v1/chat/completions", map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, chat, 415, "unsupported_media_type"},
		{"form POST", "POST", "/v1/completions", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, chat, 415, "application/json"},
		{"multipart POST", "POST", "/v1/chat/completions", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, chat, 415, "unsupported_media_type"},
		{"bad Content-Type", "POST", "/v1/chat/completions", map[string]string{"Content-Type": ";;"}, chat, 415, "unsupported_media_type"},
		{"no Content-Type, no Origin (curl, SDKs)", "POST", "/v1/chat/completions", nil, chat, 200, "chat.completion"},
		{"no Content-Type, foreign Origin", "POST", "/v1/chat/completions", map[string]string{"Origin": "https://evil.example"}, chat, 403, "cross_origin"},
		{"foreign Origin", "POST", "/v1/chat/completions", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, chat, 403, "cross_origin"},
		{"foreign Origin GET", "GET", "/v1/personas", map[string]string{"Origin": "http://evil.example"}, nil, 403, "cross_origin"},
		{"null Origin", "GET", "/v1/personas", map[string]string{"Origin": "null"}, nil, 403, "cross_origin"},
		{"rebinding Host", "GET", "/v1/personas", map[string]string{"Host": "evil.example:" + port}, nil, 403, "host_not_allowed"},
		{"rebinding Host, same-origin", "GET", "/v1/models", map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port}, nil, 403, "host_not_allowed"},
		{"rebinding Host, playground", "GET", "/", map[string]string{"Host": "attacker.test"}, nil, 403, "host_not_allowed"},
		{"JSON", "POST", "/v1/chat/completions", jsonCT, chat, 200, "chat.completion"},
		{"JSON with charset", "POST", "/v1/chat/completions", map[string]string{"Content-Type": "application/json; charset=utf-8"}, chat, 200, "chat.completion"},
		{"same origin", "POST", "/v1/chat/completions", map[string]string{"Content-Type": "application/json", "Origin": f.ts.URL}, chat, 200, "chat.completion"},
		{"localhost", "GET", "/v1/personas", map[string]string{"Host": "localhost:" + port, "Origin": "http://localhost:" + port}, nil, 200, "pirate"},
		{"ipv6 loopback", "GET", "/v1/models", map[string]string{"Host": "[::1]:" + port}, nil, 200, "pirate"},
		{"allowed origin", "GET", "/v1/models", map[string]string{"Origin": "https://app.example"}, nil, 200, "pirate"},
		{"playground", "GET", "/", nil, nil, 200, "<html"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := guardReq(t, f, tc.method, tc.path, tc.hdr, tc.body)
			if code != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d, body %.300s; want %d with %q", code, body, tc.status, tc.want)
			}
			if code >= 400 && !strings.Contains(body, `"error"`) {
				t.Errorf("not an OpenAI error: %s", body)
			}
			if tc.name == "allowed origin" && (hdr.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(hdr.Get("Vary"), "Origin")) {
				t.Errorf("CORS headers %v", hdr)
			}
			if tc.name == "foreign Origin" && hdr.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("a refused origin got Access-Control-Allow-Origin %q", hdr.Get("Access-Control-Allow-Origin"))
			}
		})
	}
	// Preflights: the allowed origin gets the methods and headers, others 403.
	code, hdr, _ := guardReq(t, f, "OPTIONS", "/v1/chat/completions", map[string]string{"Origin": "https://app.example",
		"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}, nil)
	if code != 204 || hdr.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(hdr.Get("Access-Control-Allow-Headers")), "authorization") ||
		!strings.Contains(strings.ToLower(hdr.Get("Access-Control-Allow-Headers")), "x-session-id") { // the balancer's affinity key (deploy/)
		t.Errorf("preflight of the allowed origin: %d %v", code, hdr)
	}
	if code, hdr, body := guardReq(t, f, "OPTIONS", "/v1/chat/completions", map[string]string{"Origin": "https://evil.example",
		"Access-Control-Request-Method": "POST"}, nil); code != 403 || hdr.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(body, "cross_origin") {
		t.Errorf("preflight of a foreign origin: %d %v %s", code, hdr, body)
	}
}

// TestHostGuardNeedsNoKey: with an API key, the Host header is not
// restricted (the key authenticates; a reverse proxy may use any name),
// but Content-Type and Origin still are.
func TestHostGuardNeedsNoKey(t *testing.T) {
	f := newFixture(t, nil)
	auth := "Bearer " + testAPIKey
	if code, _, body := guardReq(t, f, "GET", "/v1/models", map[string]string{"Host": "masque.internal.example", "Authorization": auth}, nil); code != 200 {
		t.Fatalf("keyed server with a proxy Host: %d %s", code, body)
	}
	if code, _, body := guardReq(t, f, "POST", "/v1/chat/completions", map[string]string{"Content-Type": "text/plain", "Authorization": auth},
		jsonBytes(chatBody("pirate", map[string]any{"max_tokens": 1}))); code != 415 {
		t.Fatalf("text/plain on a keyed server: %d %s", code, body)
	}
}
