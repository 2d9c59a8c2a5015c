package serve

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestMaxTokensDefault checks that an endpoint's default max_tokens is a
// default, capped by the server's limit, where a value the client sends
// over that limit is an error: with MaxTokens 8, a completion without
// max_tokens (default 16) runs and stops at 8 tokens, while max_tokens 16
// sent by the client is refused naming the field.
func TestMaxTokensDefault(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxTokens = 8 })
	type usage struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Error struct {
			Param string `json:"param"`
		} `json:"error"`
	}
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/completions", map[string]any{"model": "base", "prompt": "Once upon a time", "temperature": 0}},
		{"/v1/chat/completions", map[string]any{"model": "base", "messages": []map[string]string{{"role": "user", "content": "Tell me a story."}}, "temperature": 0}},
	} {
		code, body := f.postJSON(t, c.path, c.body)
		var u usage
		if err := json.Unmarshal(body, &u); err != nil || code != http.StatusOK {
			t.Fatalf("%s without max_tokens: %d %s", c.path, code, body)
		}
		if n := u.Usage.CompletionTokens; n < 1 || n > 8 || (u.Choices[0].FinishReason == "length" && n != 8) {
			t.Fatalf("%s without max_tokens: %d tokens (%s), want at most the server's 8", c.path, n, u.Choices[0].FinishReason)
		}
		c.body["max_tokens"] = 16
		code, body = f.postJSON(t, c.path, c.body)
		if err := json.Unmarshal(body, &u); err != nil || code != http.StatusBadRequest || u.Error.Param != "max_tokens" {
			t.Fatalf("%s with max_tokens 16 over the server's 8: %d %s", c.path, code, body)
		}
	}
}
