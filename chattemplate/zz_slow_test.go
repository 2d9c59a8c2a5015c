package chattemplate

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestZZSlowCorpus(t *testing.T) {
	dir := os.Getenv("FUZZDIR")
	if dir == "" {
		t.Skip()
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	msgs := []Message{{Role: "system", Content: "s"}, {Role: "user", Content: "u"}, {Role: "assistant", Content: "<think>r</think>a"}}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.Split(string(b), "\n")
		src, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			continue
		}
		start := time.Now()
		tpl, err := New(src)
		if err == nil {
			_, err = tpl.Render(msgs, Options{AddGenerationPrompt: true, BOSToken: "<s>", Vars: map[string]any{"tools": []any{map[string]any{"name": "t"}}}})
		}
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Logf("%v %q -> %.200v", d, src, err)
		}
	}
}

func BenchmarkQwen3Long(b *testing.B) {
	tpl, cfg := goldenTemplate(b, "qwen3")
	var msgs []Message
	for i := 0; i < 500; i++ {
		msgs = append(msgs, Message{Role: "user", Content: strings.Repeat("question ", 50)}, Message{Role: "assistant", Content: "<think>hmm</think>" + strings.Repeat("answer ", 80)})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := tpl.RenderSpans(msgs, cfg.Options(false)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestZZErrMsg(t *testing.T) {
	for _, src := range []string{"{% for m in messages %}\n{{ m.content + 1 }}{% endfor %}", "{{ x.y.z }}", "{% if x %}\n{{ 1|nosuch }}{% endif %}", "a\n{% for x in %}"} {
		tpl, err := New(src)
		if err == nil {
			_, err = tpl.Render([]Message{{Role: "user", Content: "c"}}, Options{Vars: map[string]any{"x": 1}})
		}
		t.Log(err)
	}
}

func BenchmarkQwen3LongRender(b *testing.B) {
	tpl, cfg := goldenTemplate(b, "qwen3")
	var msgs []Message
	for i := 0; i < 500; i++ {
		msgs = append(msgs, Message{Role: "user", Content: strings.Repeat("question ", 50)}, Message{Role: "assistant", Content: "<think>hmm</think>" + strings.Repeat("answer ", 80)})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tpl.Render(msgs, cfg.Options(false)); err != nil {
			b.Fatal(err)
		}
	}
}
