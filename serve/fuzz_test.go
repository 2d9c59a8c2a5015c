package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzHandlers drives the HTTP API (chat and text completions, the persona
// admin endpoints) with arbitrary bodies and headers, through a real
// listener, on a server with keys and on a keyless loopback one (where the
// Host and Origin guards apply). It fails on any 5xx, on an error answer
// that is not OpenAI's error object ({"error": {"message", "type", "param",
// "code"}} with a non-empty message and type, sent as JSON), and on a
// success that is not JSON or a well-formed event stream.
func FuzzHandlers(f *testing.F) {
	chat := `{"model":"pirate","messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0}`
	seeds := []struct {
		target, method uint8
		auth           uint8
		path, ct, hdr  string
		body           string
	}{
		{0, 0, 0, "", "application/json", "", chat},
		{0, 0, 0, "", "application/json", "", `{"model":"ranger","messages":[{"role":"system","content":"x"},{"role":"user","content":"Tell"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":6,"n":2,"seed":3,"temperature":1}`},
		{0, 0, 0, "", "application/json", "", `{"model":"bard","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]},{"role":"assistant","content":"Once"}],"max_completion_tokens":5,"logprobs":true,"top_logprobs":3,"stop":["."],"logit_bias":{"5":-100},"response_format":{"type":"json_object"}}`},
		{0, 0, 0, "", "application/json", "", `{"model":"oracle","messages":[],"max_tokens":-1}`},
		{0, 0, 0, "", "application/json", "", `{"model":"pirate","messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}}},"max_tokens":30}`},
		{0, 0, 0, "", "text/plain", "", chat},
		{0, 0, 1, "", "", "", chat},
		{0, 0, 3, "", "application/json", "", `{"model":"pirate","messages":[{"role":"tool","content":null}],"top_k":1e309,"min_p":-2}`},
		{1, 0, 0, "", "application/json", "", `{"model":"pruned","prompt":"Once upon a time","max_tokens":8,"n":2,"logprobs":2,"echo":true}`},
		{1, 0, 0, "", "application/json", "", `{"model":"pirate","prompt":["a",[1,2,3]],"stream":true,"max_tokens":4}`},
		{1, 0, 0, "", "application/json", "", `{"model":"pirate","prompt":[[99999999]],"max_tokens":4}`},
		{2, 0, 2, "", "application/json", "", `{"name":"fuzzy","system_prompt":"You are {{char}}, {{original}}.","mask":"ranger.mask.safetensors"}`},
		{2, 0, 2, "name=cardy&mask=ranger.mask.safetensors", "application/json", "", `{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Cardy","description":"{{char}} {{user}} {{original}}","first_mes":"Hi {{user}}","system_prompt":"{{original}} as {{char}}"}}`},
		{2, 0, 2, "", "application/json", "", `{"name":"lora2","lora":"bard","temperature":0.5}`},
		{2, 0, 2, "", "application/json", "", `{"name":"../x","model":"/etc/passwd"}`},
		{2, 0, 2, "", "image/png", "", "\x89PNG\r\n\x1a\n"},
		{2, 1, 0, "", "", "", ""},
		{3, 1, 0, "pirate", "", "", ""},
		{3, 2, 2, "fuzzy", "", "", ""},
		{3, 2, 2, "%2e%2e", "", "", ""},
		{0, 0, 0, "", "application/json; charset=utf-8", "Origin: http://evil.example", chat},
		{0, 0, 4, "", "application/json", "Host: evil.example", chat},
		{0, 3, 0, "", "application/json", "Access-Control-Request-Method: POST", ""},
	}
	for _, s := range seeds {
		f.Add(s.target, s.method, s.auth, s.path, s.ct, s.hdr, []byte(s.body))
	}
	// Short answers and contexts keep every input fast (the fuzzing build
	// instruments the model's kernels too); longer ones answer a 400.
	small := func(o *Options) { o.MaxTokens, o.Ctx = 8, 192 }
	keyed := newFixture(f, small)
	keyless := newFixture(f, func(o *Options) { small(o); o.APIKey = "" })
	f.Fuzz(func(t *testing.T, target, method, auth uint8, sub, ct, hdr string, body []byte) {
		fx := keyed
		if auth >= 4 {
			fx = keyless
		}
		path := [...]string{"/v1/chat/completions", "/v1/completions", "/v1/personas", "/v1/personas/"}[target%4]
		switch {
		case target%4 == 3:
			path += sub
		case target%4 == 2 && sub != "":
			path += "?" + sub
		}
		m := [...]string{"POST", "GET", "DELETE", "OPTIONS"}[method%4]
		req, err := http.NewRequest(m, fx.ts.URL+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		switch auth % 4 {
		case 0:
			req.Header.Set("Authorization", "Bearer "+testAPIKey)
		case 2:
			req.Header.Set("Authorization", "bearer "+testAdminKey)
		case 3:
			req.Header.Set("Authorization", sub)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if k, v, ok := strings.Cut(hdr, ":"); ok {
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if strings.EqualFold(k, "Host") {
				req.Host = v
			} else if k != "" {
				req.Header.Set(k, v)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := fx.ts.Client().Do(req.WithContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s %s: no answer within 20 s", m, path)
			}
			return // the client refused to send it (invalid header or host)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading the answer: %v", m, path, err)
		}
		if err := checkAnswer(resp, data); err != nil {
			t.Fatalf("%s %s (content-type %q, %q) body %q: %v\nanswer %d: %s", m, path, ct, hdr, body, err, resp.StatusCode, data)
		}
	})
}

// checkAnswer checks one answer of the API (see FuzzHandlers).
func checkAnswer(resp *http.Response, data []byte) error {
	code := resp.StatusCode
	if code >= 500 {
		return fmt.Errorf("server error %d", code)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if code >= 400 {
		if mt != "application/json" {
			return fmt.Errorf("error answer sent as %q, not JSON", resp.Header.Get("Content-Type"))
		}
		return checkErrorObject(data)
	}
	switch {
	case len(data) == 0:
		return nil // a CORS preflight, a 204
	case mt == "application/json":
		if !json.Valid(data) {
			return fmt.Errorf("invalid JSON")
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) == nil {
			if _, ok := top["error"]; ok {
				return fmt.Errorf("an error object with status %d", code)
			}
		}
	case mt == "text/event-stream":
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		done := false
		for sc.Scan() {
			d, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if done {
				return fmt.Errorf("an event after [DONE]")
			}
			if d == "[DONE]" {
				done = true
				continue
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal([]byte(d), &top); err != nil {
				return fmt.Errorf("event %q is not a JSON object", d)
			}
			if _, ok := top["error"]; ok {
				if err := checkErrorObject([]byte(d)); err != nil {
					return fmt.Errorf("stream error event: %v", err)
				}
			}
		}
		if !done {
			return fmt.Errorf("the stream does not end with [DONE]")
		}
	default:
		return fmt.Errorf("success sent as %q", resp.Header.Get("Content-Type"))
	}
	return nil
}

// checkErrorObject checks OpenAI's error shape: {"error": {"message":
// string, "type": string, "param": string|null, "code": string|null}}.
func checkErrorObject(data []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("error body is not a JSON object: %v", err)
	}
	raw, ok := top["error"]
	if !ok || len(top) != 1 {
		return fmt.Errorf("error body's keys are not exactly \"error\"")
	}
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil || e == nil {
		return fmt.Errorf("\"error\" is not an object")
	}
	for _, k := range []string{"message", "type"} {
		if s, ok := e[k].(string); !ok || s == "" {
			return fmt.Errorf("error.%s is not a non-empty string", k)
		}
	}
	for _, k := range []string{"param", "code"} {
		v, ok := e[k]
		if !ok {
			return fmt.Errorf("error.%s is missing", k)
		}
		if _, isStr := v.(string); v != nil && !isStr {
			return fmt.Errorf("error.%s is neither a string nor null", k)
		}
	}
	if strings.Contains(e["message"].(string), "serve.") {
		return fmt.Errorf("error message names a Go type: %q", e["message"])
	}
	return nil
}
