package chattemplate

import (
	"testing"
	"time"
)

// FuzzNew parses and renders arbitrary template text: it must return, with
// an output or an error, without panicking or hanging.
func FuzzNew(f *testing.F) {
	for _, c := range loadCompatSeeds(f) {
		f.Add(c)
	}
	for _, s := range []string{
		"", "{{", "{%", "{#", "}}", "{% if %}", "{% for %}", "{% endfor %}", "{{ (((( }}",
		"{% set ns = namespace(a=1) %}{% set ns.a = ns %}{{ ns }}",
		"{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
		"{% for x in range(999) recursive %}{{ loop(range(999)) }}{% endfor %}",
		"{{ 'a' * 99999999999 }}", "{{ 1 % 0 }}{{ 1 // 0 }}", "{{ [1][99] }}{{ 'x'[-9] }}",
		"{{ a if b }}", "{{ if }}", "{{ x if else y }}", "{% set a, b = 1 %}",
		"{{ messages[0]['content'].split('</think>')[-1].lstrip('\\n') }}",
		"{% raw %}{{ x }}", "{% include 'self' %}", "{{ self.x() }}{% block x %}{{ self.x() }}{% endblock %}",
		"{% call(x) f() %}{% endcall %}", "{% filter upper %}x{% endfilter %}{% with %}{% endwith %}",
		mistralStyle, chatMLSource,
	} {
		f.Add(s)
	}
	msgs := []Message{{Role: "system", Content: "s"}, {Role: "user", Content: "u"}, {Role: "assistant", Content: "<think>r</think>a"}}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := New(src)
		if err != nil {
			return
		}
		start := time.Now()
		_, _ = tpl.Render(msgs, Options{AddGenerationPrompt: true, BOSToken: "<s>", Vars: map[string]any{"tools": []any{map[string]any{"name": "t"}}}})
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("render took %v", d)
		}
	})
}

func loadCompatSeeds(f *testing.F) []string {
	var out []string
	for _, c := range loadCompat(f) {
		out = append(out, c.Template)
	}
	return out
}
