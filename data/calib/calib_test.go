package calib

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/model"
)

// byteTok is a byte-level tokenizer for tests: id = byte + 3, BOS = 1.
type byteTok struct{}

func (byteTok) Encode(s string, addSpecial bool) []int {
	var ids []int
	if addSpecial {
		ids = append(ids, 1)
	}
	for _, b := range []byte(s) {
		ids = append(ids, int(b)+3)
	}
	return ids
}

func (byteTok) Decode(ids []int, skipSpecial bool) string {
	var b []byte
	for _, id := range ids {
		if id >= 3 && id < 259 {
			b = append(b, byte(id-3))
		}
	}
	return string(b)
}

func byteChat(msgs []chattemplate.Message, gen bool) ([]int, error) {
	var s strings.Builder
	for _, m := range msgs {
		s.WriteString("<" + m.Role + ">" + m.Content + "\n")
	}
	if gen {
		s.WriteString("<assistant>")
	}
	return byteTok{}.Encode(s.String(), true), nil
}

func TestShippedFiles(t *testing.T) {
	g, q := GenericLines(), SeedQuestions()
	if len(g) < 100 || len(q) < 40 {
		t.Fatalf("%d generic lines, %d seed questions", len(g), len(q))
	}
	seen := map[string]bool{}
	for _, l := range append(g, q...) {
		if seen[l] {
			t.Fatalf("duplicate line %q", l)
		}
		seen[l] = true
	}
	s, err := Generic(byteTok{}, Options{MaxTokens: 16, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Samples) != 10 || s.Name != "generic" {
		t.Fatalf("generic set: %d samples", len(s.Samples))
	}
	for _, x := range s.Samples {
		if len(x) > 16 {
			t.Fatal("sample not truncated")
		}
	}
	if c := s.Record(); c.SHA256 == "" || c.MaxTokens != 16 {
		t.Fatalf("calibration %+v", c)
	}
}

func TestTextAndChatFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	txt := write("a.txt", "first sample\n\n  second sample  \nthird\n")
	s, err := FromTextFile(txt, byteTok{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Samples) != 3 || s.Texts[1] != "second sample" || s.Samples[0][0] != 1 || s.MaxTokens != DefaultMaxTokens {
		t.Fatalf("text set %+v", s)
	}
	long := write("long.txt", strings.Repeat("x", 2000)+"\n")
	if s, err := FromTextFile(long, byteTok{}, Options{}); err != nil || len(s.Samples[0]) != 512 {
		t.Fatalf("long sample not truncated at 512: %v", err)
	}
	chat := write("c.jsonl", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}

[{"role":"user","content":"again"}]
`)
	cs, err := FromChatJSONL(chat, byteChat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := byteChat([]chattemplate.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}}, false)
	if len(cs.Samples) != 2 || len(cs.Samples[0]) != len(want) {
		t.Fatalf("chat set %+v", cs)
	}
	mem, err := FromChats("kjv/valid", "voice", [][]chattemplate.Message{{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}}, {{Role: "user", Content: "again"}}}, byteChat, Options{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if mem.Name != "kjv/valid" || mem.Source != "voice" || len(mem.Samples) != 1 || !slices.Equal(mem.Samples[0], cs.Samples[0]) || mem.Hash() == cs.Hash() {
		t.Fatalf("in-memory chat set %+v", mem)
	}
	if _, err := FromChats("none", "voice", nil, byteChat, Options{}); err == nil || !strings.Contains(err.Error(), "none") {
		t.Fatalf("empty in-memory set: %v", err)
	}
	cases := []struct {
		name string
		fn   func() error
		want string
	}{
		{"missing text", func() error { _, err := FromTextFile(filepath.Join(dir, "nope.txt"), byteTok{}, Options{}); return err }, "nope.txt"},
		{"empty text", func() error { _, err := FromTextFile(write("e.txt", "\n \n"), byteTok{}, Options{}); return err }, "no non-empty lines"},
		{"binary", func() error { _, err := FromTextFile(write("b.txt", "a\x00b"), byteTok{}, Options{}); return err }, "binary"},
		{"missing chat", func() error {
			_, err := FromChatJSONL(filepath.Join(dir, "nope.jsonl"), byteChat, Options{})
			return err
		}, "nope.jsonl"},
		{"malformed chat", func() error {
			_, err := FromChatJSONL(write("m.jsonl", `{"messages":[]}`+"\n"+`{"messages":[{"role":"user","content":"x"}]}`+"\n{oops\n"), byteChat, Options{OnBadRow: chatdata.FailOnBadRow})
			return err
		}, "m.jsonl:1"},
		{"malformed line 3", func() error {
			_, err := FromChatJSONL(write("m3.jsonl", `[{"role":"user","content":"x"}]`+"\n\n{oops\n"), byteChat, Options{OnBadRow: chatdata.FailOnBadRow})
			return err
		}, "m3.jsonl:3: malformed JSON"},
		{"no role", func() error {
			_, err := FromChatJSONL(write("r.jsonl", `[{"content":"x"}]`), byteChat, Options{OnBadRow: chatdata.FailOnBadRow})
			return err
		}, "no role"},
		{"only bad rows", func() error {
			_, err := FromChatJSONL(write("bad.jsonl", "{oops\n[]\n"), byteChat, Options{})
			return err
		}, "bad.jsonl: no usable conversations (2 bad rows)"},
		{"empty persona", func() error {
			_, err := FromPersona(context.Background(), nil, byteTok{}, byteChat, "  ", PersonaOptions{})
			return err
		}, "empty persona"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestFromPersona(t *testing.T) {
	m, err := model.LoadLlama2C("../../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	o := PersonaOptions{Samples: 3, GenTokens: 8, Questions: []string{"Who are you?", "What do you like?"}}
	desc := "A cheerful sailor who loves the sea."
	a, err := FromPersona(context.Background(), m, byteTok{}, byteChat, desc, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := FromPersona(context.Background(), m, byteTok{}, byteChat, desc, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Samples) != 3 || a.Hash() != b.Hash() || !strings.HasPrefix(a.Name, "persona:") {
		t.Fatalf("persona set not deterministic or wrong size: %d samples", len(a.Samples))
	}
	if !strings.Contains(a.Texts[2], "Who are you?") {
		t.Fatal("seed questions not reused in order")
	}
	// The sample holds the question (and no system prompt by default).
	if strings.Contains(byteTok{}.Decode(a.Samples[0], false), desc) {
		t.Fatal("system prompt included by default")
	}
	o.IncludeSystem = true
	o.Temperature, o.Seed = 1, 42
	c, err := FromPersona(context.Background(), m, byteTok{}, byteChat, desc, o)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := FromPersona(context.Background(), m, byteTok{}, byteChat, desc, o)
	if c.Hash() != d.Hash() || !strings.Contains(byteTok{}.Decode(c.Samples[0], false), desc) {
		t.Fatal("sampled persona set not reproducible at a fixed seed, or system prompt missing")
	}
}

// TestChatRowsAsFinetune: calibration chat files are read as finetune reads
// training data: the question/answer and Alpaca rows that finetune accepts
// are conversations here too (stats --calib-chat aborted on them before),
// and bad rows are skipped with a warning by default, as finetune does.
func TestChatRowsAsFinetune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mixed.jsonl")
	rows := `{"system":"You are a pirate.","question":"Where is the gold?","answer":"Buried, arr."}
{"instruction":"Name a colour.","input":"","output":"Blue."}
{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}
{"conversations":[{"from":"human","value":"ahoy"},{"from":"gpt","value":"ahoy!"}]}
[{"role":"user","content":"a prompt alone"}]
{not json
`
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	var warned []chatdata.Problem
	s, err := FromChatJSONL(path, byteChat, Options{Warn: func(p chatdata.Problem) { warned = append(warned, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Samples) != 5 || len(warned) != 1 || warned[0].Line != 6 {
		t.Fatalf("%d samples, warnings %v; want 5 samples and the bad line 6", len(s.Samples), warned)
	}
	if !strings.Contains(s.Texts[0], "system: You are a pirate.") || !strings.Contains(s.Texts[0], "assistant: Buried, arr.") ||
		!strings.Contains(s.Texts[1], "user: Name a colour.") {
		t.Fatalf("rows read as %q", s.Texts[:2])
	}
	// The same rows through finetune's reader give the same conversations.
	convs, probs, err := chatdata.Read(path, chatdata.ReadOptions{})
	if err != nil || len(convs) != 4 || len(probs) != 2 {
		t.Fatalf("finetune's reading: %d conversations, problems %v, %v", len(convs), probs, err)
	}
	if _, err := FromChatJSONL(path, byteChat, Options{OnBadRow: chatdata.FailOnBadRow}); err == nil || !strings.Contains(err.Error(), "mixed.jsonl:6") {
		t.Fatalf("fail policy: %v", err)
	}
}
