package serve

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/masque-ai/masque/generate"
)

// TestHideReasoning sends the same greedy chat request plain, with
// "hide_reasoning" and streamed with it: the hidden replies are the plain
// reply with a leading <think>…</think> block removed (the filter itself is
// tested in package generate), and a request may turn the server's
// setting off.
func TestHideReasoning(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.HideReasoning = true })
	reply := func(extra map[string]any) string {
		t.Helper()
		b := chatBody("pirate", map[string]any{"temperature": 0, "max_tokens": 24})
		for k, v := range extra {
			b[k] = v
		}
		code, data := f.postJSON(t, "/v1/chat/completions", b)
		if code != 200 {
			t.Fatalf("status %d: %s", code, data)
		}
		if s, _ := b["stream"].(bool); s {
			var out strings.Builder
			for _, ev := range sseEvents(t, bytes.NewReader(data)) {
				if ev == "[DONE]" {
					continue
				}
				var c chatChunk
				if err := json.Unmarshal([]byte(ev), &c); err != nil {
					t.Fatal(err)
				}
				for _, ch := range c.Choices {
					if ch.Delta.Content != nil {
						out.WriteString(*ch.Delta.Content)
					}
				}
			}
			return out.String()
		}
		var cc chatCompletion
		if err := json.Unmarshal(data, &cc); err != nil {
			t.Fatal(err)
		}
		return *cc.Choices[0].Message.Content
	}
	plain := reply(map[string]any{"hide_reasoning": false})
	if plain == "" {
		t.Fatal("empty reply")
	}
	want := generate.StripReasoning(plain)
	if got := reply(nil); got != want {
		t.Fatalf("hidden (server default) %q, want %q", got, want)
	}
	if got := reply(map[string]any{"stream": true}); got != want {
		t.Fatalf("hidden stream %q, want %q", got, want)
	}
	if got := reply(map[string]any{"stream": true, "hide_reasoning": false}); got != plain {
		t.Fatalf("plain stream %q, want %q", got, plain)
	}
	code, data := f.postJSON(t, "/v1/chat/completions", chatBody("pirate", map[string]any{"hide_reasoning": "yes"}))
	if code != 400 {
		t.Fatalf("hide_reasoning \"yes\": status %d %s", code, data)
	}
}
