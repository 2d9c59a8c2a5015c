package chatdata

import (
	"strings"
	"testing"
)

// FuzzReadFrom: no input makes the JSONL reader panic; every row either
// parses into a conversation with an assistant turn or becomes a problem
// with its line number.
func FuzzReadFrom(f *testing.F) {
	f.Add(`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`)
	f.Add(`{"system":"s","question":"q","answer":"a"}` + "\n\n" + `{"instruction":"i","output":"o"}`)
	f.Add(`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]},{"role":"assistant","content":null}]}`)
	f.Add(`{"conversations":[{"from":"human","value":"h"},{"from":"gpt","value":"g"}]}` + "\n{")
	f.Fuzz(func(t *testing.T, data string) {
		convs, probs, err := ReadFrom(strings.NewReader(data), "f.jsonl", ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Count(data, "\n") + 1
		for _, c := range convs {
			ok := false
			for _, m := range c.Messages {
				ok = ok || m.Role == "assistant"
			}
			if !ok || c.Line < 1 || c.Line > lines {
				t.Fatalf("conversation at line %d without an assistant turn or out of range", c.Line)
			}
		}
		for _, p := range probs {
			if p.Line < 1 || p.Line > lines || p.File != "f.jsonl" {
				t.Fatalf("problem %v out of range", p)
			}
		}
	})
}
