package serve

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestPersonaReplace: POST /v1/personas?replace=true edits a persona: the
// new prompt and sampling settings take effect, its mask is kept, a spec
// that does not load leaves the old persona in place, and an unknown name
// is a 404.
func TestPersonaReplace(t *testing.T) {
	f := newFixture(t, nil)
	before := getObject(t, f, "ranger")
	code, _, body := f.do(t, "POST", "/v1/personas?replace=true", testAdminKey, "application/json",
		[]byte(`{"name": "ranger", "description": "A tired ranger.", "temperature": 0.3, "max_tokens": 9}`))
	if code != 200 {
		t.Fatalf("replace: %d %s", code, body)
	}
	after := getObject(t, f, "ranger")
	if after["kind"] != "mask" || after["memory_bytes"] != before["memory_bytes"] || after["description"] != "A tired ranger." ||
		after["temperature"] != 0.3 || after["max_tokens"] != 9.0 {
		t.Errorf("after the edit: %v (before: %v)", after, before)
	}
	spec, _ := after["spec"].(map[string]any)
	if spec["description"] != "A tired ranger." || spec["name"] != "ranger" {
		t.Errorf("editable spec %v", spec)
	}
	// max_tokens from the persona applies.
	code, body2 := f.postJSON(t, "/v1/chat/completions", map[string]any{"model": "ranger", "messages": []map[string]string{{"role": "user", "content": "Hi"}}})
	var res struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	json.Unmarshal(body2, &res)
	if code != 200 || res.Usage.CompletionTokens > 9 {
		t.Errorf("chat after the edit: %d, %d tokens (persona max 9)", code, res.Usage.CompletionTokens)
	}
	// A spec that fails to load: the old persona stays.
	code, _, body = f.do(t, "POST", "/v1/personas?replace=true", testAdminKey, "application/json",
		[]byte(`{"name": "ranger", "description": "x", "lora": "no-such-adapter"}`))
	if code != 400 || !strings.Contains(string(body), "not replaced") {
		t.Errorf("bad replacement: %d %s", code, body)
	}
	if o := getObject(t, f, "ranger"); o["description"] != "A tired ranger." || o["kind"] != "mask" {
		t.Errorf("after a failed replacement: %v", o)
	}
	code, _, body = f.do(t, "POST", "/v1/personas?replace=true", testAdminKey, "application/json", []byte(`{"name": "nobody", "description": "x"}`))
	if code != http.StatusNotFound {
		t.Errorf("replacing an unknown persona: %d %s", code, body)
	}
	// The user key cannot replace.
	code, _, _ = f.do(t, "POST", "/v1/personas?replace=true", testAPIKey, "application/json", []byte(`{"name": "ranger", "description": "y"}`))
	if code != http.StatusUnauthorized {
		t.Errorf("replace with the user key: %d", code)
	}
}

func getObject(t *testing.T, f *fixture, name string) map[string]any {
	t.Helper()
	code, _, body := f.do(t, "GET", "/v1/personas/"+name, testAPIKey, "", nil)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", name, code, body)
	}
	var o map[string]any
	json.Unmarshal(body, &o)
	return o
}

// TestLocalAdmin: LocalAdmin lets a keyless server manage personas from
// loopback without a key; with keys configured it changes nothing.
func TestLocalAdmin(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.APIKey, o.AdminKey, o.LocalAdmin = "", "", true })
	code, _, body := f.do(t, "POST", "/v1/personas", "", "application/json", []byte(`{"name": "local", "description": "x"}`))
	if code != 201 {
		t.Errorf("keyless loopback with LocalAdmin: %d %s", code, body)
	}
	f = newFixture(t, func(o *Options) { o.LocalAdmin = true }) // keys set
	code, _, _ = f.do(t, "POST", "/v1/personas", testAPIKey, "application/json", []byte(`{"name": "local", "description": "x"}`))
	if code != http.StatusUnauthorized {
		t.Errorf("LocalAdmin with keys set, user key: %d", code)
	}
	f = newFixture(t, func(o *Options) { o.APIKey, o.AdminKey = "", "" }) // no LocalAdmin
	code, _, _ = f.do(t, "POST", "/v1/personas", "", "application/json", []byte(`{"name": "local", "description": "x"}`))
	if code != http.StatusForbidden {
		t.Errorf("keyless without LocalAdmin: %d", code)
	}
}
