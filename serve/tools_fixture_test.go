package serve

import (
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/randmodel"
)

var qwenOnce struct {
	sync.Once
	dir string
	err error
}

// tinyQwen writes, once, a random model of Qwen2's architecture with
// Qwen2.5's real tokenizer and chat template (testdata/tokenizers/qwen2.5),
// small enough to sample from in tests.
func tinyQwen(t *testing.T) string {
	t.Helper()
	qwenOnce.Do(func() {
		dir, err := os.MkdirTemp("", "masque-tiny-qwen-")
		if err != nil {
			qwenOnce.err = err
			return
		}
		cfg := randmodel.Presets["qwen2.5-0.5b"]
		cfg.Hidden, cfg.Intermediate, cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.HeadDim, cfg.MaxSeq = 32, 64, 1, 2, 1, 16, 2048
		m, err := randmodel.New(cfg, 1, 0.05)
		if err != nil {
			qwenOnce.err = err
			return
		}
		if err := model.SaveHF(dir, m, model.SaveOptions{DType: quant.F16}); err != nil {
			qwenOnce.err = err
			return
		}
		src := filepath.Join("..", "testdata", "tokenizers", "qwen2.5")
		zr, err := os.Open(filepath.Join(src, "tokenizer.json.gz"))
		if err != nil {
			qwenOnce.err = err
			return
		}
		defer zr.Close()
		gz, err := gzip.NewReader(zr)
		if err != nil {
			qwenOnce.err = err
			return
		}
		tj, err := io.ReadAll(gz)
		if err != nil {
			qwenOnce.err = err
			return
		}
		tc, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
		if err != nil {
			qwenOnce.err = err
			return
		}
		if err := errors.Join(os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644),
			os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), tc, 0o644)); err != nil {
			qwenOnce.err = err
			return
		}
		qwenOnce.dir = dir
	})
	if qwenOnce.err != nil {
		t.Fatal(qwenOnce.err)
	}
	return qwenOnce.dir
}

// TestToolsRefused: tools on a model whose template cannot render them,
// and malformed tool requests, are 400s naming the problem.
func TestToolsRefused(t *testing.T) {
	f := newFixture(t, nil) // stories260K: no chat template of its own
	tool := map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "parameters": map[string]any{"type": "object"}}}
	msgs := []map[string]any{{"role": "user", "content": "hi"}}
	for _, c := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"model": "pirate", "messages": msgs, "tools": []any{tool}}, "chat template"},
		{map[string]any{"model": "pirate", "messages": msgs, "tool_choice": "required"}, "needs tools"},
		{map[string]any{"model": "pirate", "messages": msgs, "tools": []any{tool}, "tool_choice": map[string]any{"type": "function", "function": map[string]any{"name": "other"}}}, "not among the tools"},
		{map[string]any{"model": "pirate", "messages": msgs, "tools": []any{map[string]any{"type": "code_interpreter"}}}, "tools are supported"},
		{map[string]any{"model": "pirate", "messages": msgs, "tools": []any{tool}, "tool_choice": "sometimes"}, "not one of"},
		{map[string]any{"model": "pirate", "messages": []map[string]any{{"role": "tool", "content": "x"}}}, "tool_call_id"},
		{map[string]any{"model": "pirate", "messages": []map[string]any{{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": "c", "type": "function", "function": map[string]any{"name": "f", "arguments": "{bad"}}}}}}, "not valid JSON"},
	} {
		code, body := f.postJSON(t, "/v1/chat/completions", c.body)
		if code != 400 || !strings.Contains(string(body), c.want) {
			t.Errorf("%v: %d %s, want 400 with %q", c.body, code, body, c.want)
		}
	}
	// tool_choice "none" with tools needs no template support.
	code, body := f.postJSON(t, "/v1/chat/completions", map[string]any{"model": "pirate", "messages": msgs, "tools": []any{tool}, "tool_choice": "none", "max_tokens": 2})
	if code != 200 {
		t.Errorf("tool_choice none: %d %s", code, body)
	}
}
