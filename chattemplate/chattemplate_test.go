package chattemplate

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const tokenizersDir = "../testdata/tokenizers"

type goldenChat struct {
	Tokenizer           string         `json:"tokenizer"`
	ID                  string         `json:"id"`
	Messages            []Message      `json:"-"`
	RawMessages         []goldenMsg    `json:"messages"`
	AddGenerationPrompt bool           `json:"add_generation_prompt"`
	TemplateKwargs      map[string]any `json:"template_kwargs"`
	Rendered            string         `json:"rendered"`
}

type goldenMsg struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func loadGolden(t testing.TB) []goldenChat {
	t.Helper()
	f, err := os.Open(filepath.Join(tokenizersDir, "golden_chat.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenChat
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var g goldenChat
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		for _, m := range g.RawMessages {
			g.Messages = append(g.Messages, Message{Role: m.Role, Content: m.Content})
		}
		out = append(out, g)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	tplCacheMu sync.Mutex
	tplCache   = map[string]*Template{}
	cfgCache   = map[string]*Config{}
)

func goldenTemplate(t testing.TB, tokenizer string) (*Template, *Config) {
	t.Helper()
	tplCacheMu.Lock()
	defer tplCacheMu.Unlock()
	if tpl, ok := tplCache[tokenizer]; ok {
		return tpl, cfgCache[tokenizer]
	}
	cfg, err := LoadConfig(filepath.Join(tokenizersDir, tokenizer))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := cfg.Template()
	if err != nil {
		t.Fatal(err)
	}
	tplCache[tokenizer], cfgCache[tokenizer] = tpl, cfg
	return tpl, cfg
}

func goldenOptions(cfg *Config, g goldenChat) Options {
	opt := cfg.Options(g.AddGenerationPrompt)
	for k, v := range g.TemplateKwargs {
		opt.Vars[k] = v
	}
	return opt
}

func TestGoldenChat(t *testing.T) {
	goldens := loadGolden(t)
	if len(goldens) != 30 {
		t.Fatalf("want 30 golden renderings, got %d", len(goldens))
	}
	for _, g := range goldens {
		t.Run(g.Tokenizer+"/"+g.ID, func(t *testing.T) {
			tpl, cfg := goldenTemplate(t, g.Tokenizer)
			got, err := tpl.Render(g.Messages, goldenOptions(cfg, g))
			if err != nil {
				t.Fatal(err)
			}
			if got != g.Rendered {
				t.Fatalf("rendering differs\n got %q\nwant %q", got, g.Rendered)
			}
		})
	}
}

// expectedSpanText is what each golden template makes of an assistant
// content: llama3 trims it, qwen3 drops a <think> block before the last
// user turn.
func expectedSpanText(tokenizer, content string) string {
	switch tokenizer {
	case "llama3":
		return strings.TrimSpace(content)
	case "qwen3":
		if i := strings.LastIndex(content, "</think>"); i >= 0 {
			return strings.TrimLeft(content[i+len("</think>"):], "\n")
		}
	}
	return content
}

func TestRenderSpansGolden(t *testing.T) {
	checked := 0
	for _, g := range loadGolden(t) {
		var assistants []int
		for i, m := range g.Messages {
			if m.Role == "assistant" {
				assistants = append(assistants, i)
			}
		}
		if len(assistants) == 0 {
			continue
		}
		t.Run(g.Tokenizer+"/"+g.ID, func(t *testing.T) {
			tpl, cfg := goldenTemplate(t, g.Tokenizer)
			out, spans, err := tpl.RenderSpans(g.Messages, goldenOptions(cfg, g))
			if err != nil {
				t.Fatal(err)
			}
			if out != g.Rendered {
				t.Fatalf("RenderSpans output differs from golden")
			}
			if len(spans) != len(assistants) {
				t.Fatalf("got %d spans %v, want one per assistant message %v", len(spans), spans, assistants)
			}
			prevEnd := 0
			for k, s := range spans {
				if s.Message != assistants[k] {
					t.Errorf("span %d is for message %d, want %d", k, s.Message, assistants[k])
				}
				if s.Start < prevEnd || s.End < s.Start || s.End > len(out) {
					t.Fatalf("bad span %+v (output length %d)", s, len(out))
				}
				prevEnd = s.End
				want := expectedSpanText(g.Tokenizer, g.Messages[s.Message].Content)
				if got := out[s.Start:s.End]; got != want {
					t.Errorf("span %+v covers %q, want %q", s, got, want)
				}
			}
		})
		checked++
	}
	if checked == 0 {
		t.Fatal("no golden conversation with assistant turns")
	}
}

func TestRenderSpansCases(t *testing.T) {
	msgs := []Message{
		{Role: "user", Content: "Q1"},
		{Role: "assistant", Content: "  A1  "},
		{Role: "user", Content: "Q2"},
		{Role: "assistant", Content: "A2"},
	}
	tests := []struct {
		name  string
		src   string
		want  []string // text of each span, in order
		error string
	}{
		{"plain", "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}", []string{"  A1  ", "A2"}, ""},
		{"trimmed", "{% for m in messages %}<{{ m.role }}>{{ m.content|trim }}</s>{% endfor %}", []string{"A1", "A2"}, ""},
		{"rendered twice", "{% for m in messages %}{{ m.content }}|{{ m.content }}{% endfor %}", []string{"  A1  ", "  A1  ", "A2", "A2"}, ""},
		{"dropped", "{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}", nil, ""},
		{"transformed", "{% for m in messages %}{{ m.content|tojson(ensure_ascii=true) }}{% endfor %}", nil, "message 1"},
		{"uppercased", "{% for m in messages %}[{{ m.content|upper }}]{% endfor %}", []string{"  A1  ", "A2"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := New(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			out, spans, err := tpl.RenderSpans(msgs, Options{})
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("want error containing %q, got %v", tc.error, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range spans {
				got = append(got, out[s.Start:s.End])
			}
			if strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
				t.Fatalf("spans cover %q, want %q (output %q)", got, tc.want, out)
			}
		})
	}
}

const mistralStyle = `{{ bos_token }}{% for message in messages %}` +
	`{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}` +
	`{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}` +
	`{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}` +
	`{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}` +
	`{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}`

func TestRaiseException(t *testing.T) {
	tpl, err := New(mistralStyle)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{BOSToken: "<s>", EOSToken: "</s>"}
	tests := []struct {
		name string
		msgs []Message
		want string // output, or the raised message if raised
		fail bool
	}{
		{"ok", []Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "yo"}}, "<s>[INST] hi [/INST]yo</s>", false},
		{"not alternating", []Message{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}}, "Conversation roles must alternate user/assistant/user/assistant/...", true},
		{"system role", []Message{{Role: "system", Content: "s"}}, "Conversation roles must alternate", true},
		{"tool role", []Message{{Role: "user", Content: "a"}, {Role: "tool", Content: "b"}}, "Only user and assistant roles are supported!", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tpl.Render(tc.msgs, opt)
			if !tc.fail {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !e.Raised || !strings.Contains(e.Msg, tc.want) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want raised error containing %q, got %v", tc.want, err)
			}
			if e.Source != "chat_template" {
				t.Errorf("error source %q", e.Source)
			}
		})
	}
}

func TestChatML(t *testing.T) {
	msgs := []Message{{Role: "system", Content: "Be nice."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello"}}
	tests := []struct {
		gen  bool
		want string
	}{
		{false, "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"},
		{true, "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>assistant\n"},
	}
	for _, tc := range tests {
		got, err := ChatML().Render(msgs, Options{AddGenerationPrompt: tc.gen})
		if err != nil || got != tc.want {
			t.Errorf("gen=%v: got %q, %v; want %q", tc.gen, got, err, tc.want)
		}
	}
	_, spans, err := ChatML().RenderSpans(msgs, Options{})
	if err != nil || len(spans) != 1 || spans[0].Message != 2 {
		t.Fatalf("ChatML spans %v, %v", spans, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
	}{
		{"unclosed if", "line one\n{% if x %}\nno end", 0},
		{"bad expression", "ok\n\n{{ 1 + }}", 3},
		{"unknown tag", "{% frobnicate %}", 1},
		{"unclosed output", "{{ x ", 0},
		{"unclosed comment", "{# x", 0},
		{"bad set", "{% set = 3 %}", 1},
		{"do is not enabled", "{% do x %}", 1},
		{"endfor without for", "{% endfor %}", 1},
		{"deep nesting", "x\n{{ " + strings.Repeat("(", 500) + "1" + strings.Repeat(")", 500) + " }}", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := NewNamed("models/x/tokenizer_config.json", tc.src)
			if err == nil {
				t.Fatalf("no error, template %v", tpl)
			}
			var e *Error
			if !errors.As(err, &e) || e.Source != "models/x/tokenizer_config.json" || !strings.Contains(err.Error(), "models/x/tokenizer_config.json") {
				t.Fatalf("error does not name the source: %v", err)
			}
			if tc.line > 0 && e.Line != tc.line {
				t.Errorf("line %d, want %d (%v)", e.Line, tc.line, err)
			}
		})
	}
}

func TestRuntimeErrorsAndLimits(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown filter", "{{ 1|nosuch }}", "nosuch"},
		{"type error", "{{ 'a' + 1 }}", "concatenate"},
		{"division by zero", "{{ 1 // 0 }}", "division"},
		{"infinite recursion", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nested"},
		{"recursive loop", "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "nested"},
		{"huge range", "{% for i in range(1000000) %}{% endfor %}", "range"},
		{"many iterations", "{% for i in range(100000) %}{% set r = range(100000) %}{% endfor %}", "limit"},
		{"string bomb", "{{ 'x' * 10000000000 }}", "too large"},
		{"doubling", "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "too large"},
		{"list doubling", "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", "too large"},
		{"wide indent", "{{ 'a\nb'|indent(100000000) }}", "too large"},
		{"self include", "{% include 'x' %}", "cannot load"},
		{"mutating method", "{% set l = [1] %}{{ l.append(2) }}", "unsafe"},
		{"namespace cycle printing", "{% set ns = namespace() %}{% set ns.a = ns %}{{ ns }}{{ ns|tojson }}", "not JSON serializable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := New(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			out, err := tpl.Execute(nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v (output %.40q)", tc.want, err, out)
			}
		})
	}
}

func TestLoadConfigLayouts(t *testing.T) {
	write := func(t *testing.T, dir, name, data string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	msgs := []Message{{Role: "user", Content: "hi"}}
	tests := []struct {
		name  string
		files map[string]string
		want  string // rendering of msgs with cfg.Options(true)
		err   string
	}{
		{"string template", map[string]string{tokenizerConfigName: `{"chat_template": "{{ bos_token }}{{ messages[0].content }}", "bos_token": "<s>"}`}, "<s>hi", ""},
		{"token objects", map[string]string{tokenizerConfigName: `{"chat_template": "{{ bos_token }}|{{ eos_token }}|{{ pad_token }}", "bos_token": {"__type": "AddedToken", "content": "<B>"}, "eos_token": {"content": "<E>"}, "pad_token": "<P>"}`}, "<B>|<E>|<P>", ""},
		{"named templates", map[string]string{tokenizerConfigName: `{"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "default {{ add_generation_prompt }}"}]}`}, "default True", ""},
		{"jinja file wins", map[string]string{tokenizerConfigName: `{"chat_template": "old", "eos_token": "</s>"}`, jinjaTemplateName: "new{{ eos_token }}\n"}, "new</s>", ""},
		{"json file", map[string]string{tokenizerConfigName: `{"eos_token": "</s>"}`, jsonTemplateName: `{"chat_template": "from json"}`}, "from json", ""},
		{"only jinja", map[string]string{jinjaTemplateName: "only"}, "only", ""},
		{"no template gives ChatML", map[string]string{tokenizerConfigName: `{}`}, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", ""},
		{"bad json", map[string]string{tokenizerConfigName: `{`}, "", "invalid JSON"},
		{"bad template type", map[string]string{tokenizerConfigName: `{"chat_template": 3}`}, "", "chat_template"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, d := range tc.files {
				write(t, dir, n, d)
			}
			cfg, err := LoadConfig(dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("want error naming %s and %q, got %v", dir, tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tpl, err := cfg.Template()
			if err != nil {
				t.Fatal(err)
			}
			got, err := tpl.Render(msgs, cfg.Options(true))
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	// A tokenizer_config.json path works like its folder, and a broken
	// template is reported with its file.
	dir := t.TempDir()
	write(t, dir, tokenizerConfigName, `{"chat_template": "{% if %}"}`)
	cfg, err := LoadConfig(filepath.Join(dir, tokenizerConfigName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Template(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, tokenizerConfigName)) {
		t.Fatalf("template error should name the file: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing path: no error")
	}
}

func TestGoldenConfigs(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join(tokenizersDir, "llama3", tokenizerConfigName))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BOSToken != "<|begin_of_text|>" || cfg.EOSToken != "<|end_of_text|>" || cfg.ChatTemplate == "" {
		t.Fatalf("llama3 config: %+v", cfg)
	}
	cfg, err = LoadConfig(filepath.Join(tokenizersDir, "qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BOSToken != "" || cfg.EOSToken != "<|im_end|>" || cfg.PadToken != "<|endoftext|>" || cfg.AddBOSToken == nil || *cfg.AddBOSToken {
		t.Fatalf("qwen3 config: bos %q eos %q pad %q add_bos %v", cfg.BOSToken, cfg.EOSToken, cfg.PadToken, cfg.AddBOSToken)
	}
}

func TestFieldsAndValues(t *testing.T) {
	tpl, err := New(`{% for m in messages %}{{ m.role }}:{{ m.content }}` +
		`{% if m.reasoning_content is defined %}[r={{ m.reasoning_content }}]{% endif %}` +
		`{% if m.tool_calls %}{% for tc in m.tool_calls %}{{ tc.function.name }}{{ tc.function.arguments|tojson }}{% endfor %}{% endif %}` +
		`{% if m.content is none %}(none){% endif %};{% endfor %}{{ tools|tojson }}`)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{Role: "assistant", Content: "x", Fields: map[string]any{"reasoning_content": "think"}},
		{Role: "assistant", Fields: map[string]any{"content": nil, "tool_calls": []any{
			map[string]any{"function": map[string]any{"name": "f", "arguments": json.RawMessage(`{"z": 1, "a": 2.0, "m": [true, null]}`)}},
		}}},
	}
	type tool struct {
		Name  string  `json:"name"`
		Score float64 `json:"score"`
	}
	got, err := tpl.Render(msgs, Options{Vars: map[string]any{"tools": []tool{{"t", 1.5}}}})
	want := `assistant:x[r=think];assistant:f{"z": 1, "a": 2.0, "m": [true, null]}(none);[{"name": "t", "score": 1.5}]`
	if err != nil || got != want {
		t.Fatalf("got %q, %v\nwant %q", got, err, want)
	}
	if _, err := tpl.Render(nil, Options{Vars: map[string]any{"tools": make(chan int)}}); err == nil {
		t.Fatal("a channel variable should be rejected")
	}
}

func TestConcurrentRender(t *testing.T) {
	tpl, cfg := goldenTemplate(t, "qwen3")
	g := loadGolden(t)[0]
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				got, err := tpl.Render(g.Messages, goldenOptions(cfg, g))
				if err != nil || got != g.Rendered {
					t.Errorf("concurrent render: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRenderSpansQwen3(b *testing.B) {
	tpl, cfg := goldenTemplate(b, "qwen3")
	var msgs []Message
	for range 50 {
		msgs = append(msgs,
			Message{Role: "user", Content: strings.Repeat("question ", 50)},
			Message{Role: "assistant", Content: "<think>hmm</think>" + strings.Repeat("answer ", 80)})
	}
	b.ResetTimer()
	for range b.N {
		if _, _, err := tpl.RenderSpans(msgs, cfg.Options(false)); err != nil {
			b.Fatal(err)
		}
	}
}
