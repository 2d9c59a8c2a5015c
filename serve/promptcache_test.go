package serve

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/masque-ai/masque/persona"
)

// usageOf is a response's usage with the prompt cache's part.
type usageOf struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// generateOnce posts a chat (or, with prompt set, a completions) request,
// streaming or not, and returns the text and usage.
func generateOnce(t *testing.T, f *fixture, model, prompt string, stream bool) (string, usageOf) {
	t.Helper()
	body := map[string]any{"model": model, "max_tokens": 6, "temperature": 0, "stream": stream}
	path := "/v1/completions"
	if prompt == "" {
		path = "/v1/chat/completions"
		body["messages"] = []map[string]any{{"role": "user", "content": "Where did the little dog go?"}}
	} else {
		body["prompt"] = prompt
	}
	if stream {
		body["stream_options"] = map[string]any{"include_usage": true}
	}
	code, _, data := f.do(t, "POST", path, testAPIKey, "application/json", jsonBytes(body))
	if code != http.StatusOK {
		t.Fatalf("%s: %d %s", path, code, data)
	}
	type choice struct {
		Text    string `json:"text"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	}
	var resp struct {
		Choices []choice `json:"choices"`
		Usage   *usageOf `json:"usage"`
	}
	if !stream {
		if err := json.Unmarshal(data, &resp); err != nil || resp.Usage == nil || len(resp.Choices) != 1 {
			t.Fatalf("response %s: %v", data, err)
		}
		return resp.Choices[0].Text + resp.Choices[0].Message.Content, *resp.Usage
	}
	var text string
	var u *usageOf
	for _, ev := range sseEvents(t, bytes.NewReader(data)) {
		if ev == "[DONE]" {
			break
		}
		resp.Usage = nil
		if err := json.Unmarshal([]byte(ev), &resp); err != nil {
			t.Fatalf("event %s: %v", ev, err)
		}
		for _, c := range resp.Choices {
			text += c.Text + c.Delta.Content
		}
		if resp.Usage != nil {
			u = resp.Usage
		}
		resp.Choices = nil
	}
	if u == nil {
		t.Fatalf("no usage in the stream %s", data)
	}
	return text, *u
}

// cached returns the usage's cached tokens, failing when the field is absent.
func cached(t *testing.T, u usageOf) int {
	t.Helper()
	if u.PromptTokensDetails == nil {
		t.Fatal("usage without prompt_tokens_details")
	}
	return u.PromptTokensDetails.CachedTokens
}

// TestPromptCacheUsage: a second identical request runs only its last
// prompt token and says so in usage.prompt_tokens_details.cached_tokens,
// for chat and completions, plain and streamed, with the same answer.
func TestPromptCacheUsage(t *testing.T) {
	for _, tc := range []struct {
		name, model, prompt string
		stream              bool
	}{
		{"chat", "pirate", "", false},
		{"chat streamed", "ranger", "", true},
		{"completions", "bard", "Once upon a time, a little cat", false},
		{"completions streamed", "oracle", "Once upon a time, a little cat", true},
		{"base model", "base", "", false},
		{"own model", "pruned", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			text1, u1 := generateOnce(t, f, tc.model, tc.prompt, tc.stream)
			text2, u2 := generateOnce(t, f, tc.model, tc.prompt, tc.stream)
			if c := cached(t, u1); c != 0 {
				t.Errorf("first request: %d cached tokens", c)
			}
			if c := cached(t, u2); c != u2.PromptTokens-1 || u2.PromptTokens != u1.PromptTokens {
				t.Errorf("second request: %d of %d prompt tokens cached, want %d", c, u2.PromptTokens, u2.PromptTokens-1)
			}
			if text1 != text2 || text1 == "" || u1.CompletionTokens != u2.CompletionTokens {
				t.Errorf("answers differ: %q (%d tokens), then %q (%d tokens)", text1, u1.CompletionTokens, text2, u2.CompletionTokens)
			}
		})
	}
}

// TestPromptCacheKeys: personas never share cached prompts, not even with
// the same system prompt, and a persona removed and added again with other
// weights starts afresh. The metrics count the hits.
func TestPromptCacheKeys(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Personas = nil })
	add := func(name, mk string) {
		t.Helper()
		spec := persona.Spec{Name: name, Description: "A twin who likes dogs.", Mask: mk}
		if code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(spec)); code != http.StatusCreated {
			t.Fatalf("adding %s: %d %s", name, code, body)
		}
	}
	del := func(name string) {
		t.Helper()
		if code, _, body := f.do(t, "DELETE", "/v1/personas/"+name, testAdminKey, "", nil); code != http.StatusOK {
			t.Fatalf("removing %s: %d %s", name, code, body)
		}
	}
	add("twin-a", "ranger.mask.safetensors")
	add("twin-b", "oracle.mask.safetensors")
	add("knight", "ranger.mask.safetensors")
	// The same prompt tokens over different masks: each persona's first
	// request runs the whole prompt.
	steps := []struct {
		do     func()
		model  string
		cached bool
	}{
		{nil, "twin-a", false},
		{nil, "twin-b", false},
		{nil, "twin-a", true},
		{nil, "twin-b", true},
		{nil, "knight", false},
		{nil, "knight", true},
		{func() { del("knight"); add("knight", "oracle.mask.safetensors") }, "knight", false},
		{nil, "knight", true},
		{func() { del("knight"); add("knight", "ranger.mask.safetensors") }, "knight", false},
	}
	var texts []string
	hits := 0
	for i, st := range steps {
		if st.do != nil {
			st.do()
		}
		text, u := generateOnce(t, f, st.model, "", false)
		texts = append(texts, text)
		if c := cached(t, u); (c > 0) != st.cached {
			t.Errorf("step %d (%s): %d cached tokens, want cached %v", i, st.model, c, st.cached)
		}
		if st.cached {
			hits++
		}
	}
	if texts[0] == texts[1] || texts[0] != texts[4] || texts[1] != texts[6] || texts[4] != texts[8] {
		t.Errorf("answers do not follow the masks: %q", texts)
	}
	_, _, metrics := f.do(t, "GET", "/metrics", testAPIKey, "", nil)
	m := regexp.MustCompile(`(?m)^masque_prompt_cache_hits_total (\d+)$`).FindSubmatch(metrics)
	if m == nil {
		t.Fatalf("/metrics lacks masque_prompt_cache_hits_total")
	}
	if n, _ := strconv.Atoi(string(m[1])); n != hits {
		t.Errorf("masque_prompt_cache_hits_total %d, want %d", n, hits)
	}
	for _, want := range []string{"masque_prompt_cache_tokens_total ", "masque_prompt_cache_bytes ", "masque_prompt_cache_entries ",
		"masque_prompt_cache_budget_bytes 2.68435456e+08"} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if st := f.srv.Engine().Stats(); st.PrefixBytes <= 0 || st.PrefixBytes > st.PrefixBudget {
		t.Errorf("prompt cache of %d bytes, budget %d", st.PrefixBytes, st.PrefixBudget)
	}
}

// TestPromptCacheOff: NoPromptCache turns the cache off (whatever
// PromptCacheBytes says); a negative size is an error, not a second way to
// say off.
func TestPromptCacheOff(t *testing.T) {
	openBase(t)
	if _, err := New(Options{Base: baseCk, PromptCacheBytes: -1}); err == nil || !strings.Contains(err.Error(), "NoPromptCache") {
		t.Fatalf("negative PromptCacheBytes: %v", err)
	}
	f := newFixture(t, func(o *Options) { o.NoPromptCache, o.PromptCacheBytes = true, 64<<20 })
	for range 2 {
		if _, u := generateOnce(t, f, "pirate", "", false); cached(t, u) != 0 {
			t.Errorf("%d cached tokens with the cache off", cached(t, u))
		}
	}
	if st := f.srv.Engine().Stats(); st.PrefixBudget != 0 || st.PrefixBytes != 0 {
		t.Errorf("stats with the cache off: %+v", st)
	}
}
