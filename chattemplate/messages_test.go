package chattemplate

import (
	"strings"
	"testing"
)

func TestParseMessages(t *testing.T) {
	for _, in := range []string{
		`[{"role":"system","content":"Be brief."},{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]}]`,
		`{"messages":[{"role":"system","content":"Be brief."},{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]}]}`,
	} {
		msgs, err := ParseMessages([]byte(in))
		if err != nil || len(msgs) != 2 || msgs[0].Role != "system" || msgs[0].Content != "Be brief." || msgs[0].Fields != nil {
			t.Fatalf("%s: %+v %v", in, msgs, err)
		}
		if tc, ok := msgs[1].Fields["tool_calls"].([]any); !ok || len(tc) != 1 || msgs[1].Content != "" {
			t.Errorf("%s: extra keys not kept: %+v", in, msgs[1])
		}
	}
	for in, want := range map[string]string{
		`{"x":1}`:                       "want a JSON list",
		`[{"role":1}]`:                  `message 0 needs string "role"`,
		`[{"role":"user","content":2}]`: `message 0 needs string "role" and "content"`,
	} {
		if _, err := ParseMessages([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}
