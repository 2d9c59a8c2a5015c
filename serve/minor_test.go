package serve

import (
	"net/http"
	"strings"
	"testing"

	"github.com/masque-ai/masque/persona"
)

// TestBearerSchemeCaseInsensitive: the auth scheme is case-insensitive
// (RFC 6750, RFC 7235), the key is not.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		auth string
		code int
	}{
		{"Bearer " + testAPIKey, 200},
		{"bearer " + testAPIKey, 200},
		{"BEARER " + testAPIKey, 200},
		{"bEaReR   " + testAPIKey, 200},
		{"Bearer " + strings.ToUpper(testAPIKey), 401},
		{"Basic " + testAPIKey, 401},
		{testAPIKey, 401},
		{"Bearer", 401},
	} {
		code, _, body := guardReq(t, f, "GET", "/v1/models", map[string]string{"Authorization": tc.auth}, nil)
		if code != tc.code {
			t.Errorf("Authorization %q: %d %s, want %d", tc.auth, code, body, tc.code)
		}
	}
	// the admin key too
	code, _, body := guardReq(t, f, "POST", "/v1/personas", map[string]string{"Authorization": "bearer " + testAdminKey, "Content-Type": "application/json"},
		jsonBytes(persona.Spec{Name: "casey", Description: "x"}))
	if code != 201 {
		t.Errorf("admin key with a lower-case scheme: %d %s", code, body)
	}
}

// TestErrorsNameNoGoTypes: a body of the wrong shape gets an error in
// JSON's terms, never Go's ("expected serve.chatRequest", "float64").
func TestErrorsNameNoGoTypes(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		path, body, want string
	}{
		{"/v1/chat/completions", `[1, 2]`, "JSON object"},
		{"/v1/chat/completions", `"hello"`, "JSON object"},
		{"/v1/chat/completions", `{"model":"pirate","messages":"hi"}`, "list"},
		{"/v1/chat/completions", `{"model":"pirate","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}`, "number"},
		{"/v1/chat/completions", `{"model":"pirate","messages":[{"role":"user","content":"hi"}],"max_tokens":1.5}`, "integer"},
		{"/v1/chat/completions", `{"model":"pirate","messages":[{"role":7,"content":"hi"}]}`, "string"},
		{"/v1/completions", `{"model":"pirate","prompt":"hi","logprobs":"x"}`, "'logprobs'"},
		{"/v1/personas", `{"name":"x","temperature":"hot"}`, "number"},
		{"/v1/personas", `{"name":"x","tags":"a"}`, "list"},
	} {
		key := testAPIKey
		if tc.path == "/v1/personas" {
			key = testAdminKey
		}
		code, _, body := f.do(t, "POST", tc.path, key, "application/json", []byte(tc.body))
		msg := string(body)
		if code != 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s: %d %s; want 400 with %q", tc.path, tc.body, code, msg, tc.want)
		}
		for _, goism := range []string{"serve.", "persona.", "float64", "int64", "[]", "Go struct", "Go value", "map[", "*"} {
			if strings.Contains(msg, goism) {
				t.Errorf("%s %s: the error names a Go type (%q): %s", tc.path, tc.body, goism, msg)
			}
		}
	}
}

// TestEmptyTokenList: an empty prompt given as a list gets an accurate
// message (not "exactly one prompt per request").
func TestEmptyTokenList(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{`[]`, `[[]]`} {
		code, _, body := f.do(t, "POST", "/v1/completions", testAPIKey, "application/json", []byte(`{"model":"pirate","max_tokens":2,"prompt":`+p+`}`))
		if code != 400 || !strings.Contains(string(body), "empty") || strings.Contains(string(body), "exactly one") {
			t.Errorf("prompt %s: %d %s", p, code, body)
		}
	}
}

// TestDeletedPersonaMetricsDropped: the metric series of a removed
// persona go with it (personas added and removed at run time would
// otherwise grow /metrics for ever).
func TestDeletedPersonaMetricsDropped(t *testing.T) {
	f := newFixture(t, nil)
	if code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "ephemeral", Description: "Here and gone."})); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	if code, body := f.postJSON(t, "/v1/chat/completions", chatBody("ephemeral", map[string]any{"max_tokens": 2})); code != 200 {
		t.Fatalf("chat: %d %s", code, body)
	}
	metrics := func() string {
		_, _, b := f.do(t, "GET", "/metrics", testAPIKey, "", nil)
		return string(b)
	}
	if m := metrics(); !strings.Contains(m, `persona="ephemeral"`) {
		t.Fatalf("no series for the persona:\n%s", grepLines(m, "persona="))
	}
	if code, _, body := f.do(t, http.MethodDelete, "/v1/personas/ephemeral", testAdminKey, "", nil); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if m := metrics(); strings.Contains(m, `persona="ephemeral"`) {
		t.Fatalf("the removed persona's series remain:\n%s", grepLines(m, `persona="ephemeral"`))
	}
}

// TestChoicesOverCapacity: n larger than the slots and queue places of the
// server is a 400 about n, not a 429 that no retry could cure.
func TestChoicesOverCapacity(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxSeqs, o.MaxQueue = 2, 1 })
	code, body := f.postJSON(t, "/v1/chat/completions", chatBody("pirate", map[string]any{"n": 4}))
	if code != 400 || !strings.Contains(string(body), `"param":"n"`) {
		t.Errorf("n=4 over 2 slots and 1 queue place: %d %s", code, body)
	}
	if code, body := f.postJSON(t, "/v1/chat/completions", chatBody("pirate", map[string]any{"n": 3, "max_tokens": 4})); code != 200 {
		t.Errorf("n=3: %d %s", code, body)
	}
}
