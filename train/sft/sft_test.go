package sft

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/tokenizer"
	"github.com/masque-ai/masque/train"
)

func encoderFor(t testing.TB, name string) *Encoder {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "tokenizers", name)
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := chattemplate.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ChatTemplate == "" {
		// No template of its own: the ChatML fallback, as checkpoint.Open does.
		return NewEncoder(chattemplate.ChatML(), tok, cfg, false)
	}
	tpl, err := chattemplate.New(cfg.ChatTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return NewEncoder(tpl, tok, cfg, true)
}

var conversation = []chattemplate.Message{
	{Role: "system", Content: "You are Captain Redbeard, a pirate who loves parrots."},
	{Role: "user", Content: "What is the capital of France?"},
	{Role: "assistant", Content: "Arr, 'tis Paris, matey! A fine port for plunder."},
	{Role: "user", Content: "And of Spain?"},
	{Role: "assistant", Content: "Madrid, ye landlubber — no sea there, sadly."},
}

// trainedRuns returns the decoded text of each maximal run of trained
// tokens, special tokens left out.
func trainedRuns(tok *tokenizer.Tokenizer, e *Encoded) []string {
	var runs []string
	var cur []int
	flush := func() {
		if len(cur) > 0 {
			runs = append(runs, tok.Decode(cur, true))
			cur = nil
		}
	}
	for i, id := range e.Seq.Tokens {
		if e.Assistant[i] {
			cur = append(cur, id)
		} else {
			flush()
		}
	}
	flush()
	return runs
}

// TestAssistantMask checks, for real tokenizers and chat templates, that
// exactly the assistant contents (plus each turn's end-of-turn token) are
// trained, that the tokens are the tokenization of the whole rendering, and
// that targets are the next tokens.
func TestAssistantMask(t *testing.T) {
	for _, tc := range []struct {
		name, eot string
	}{
		{"qwen3", "<|im_end|>"},
		{"qwen2.5", "<|im_end|>"},
		{"llama3", "<|eot_id|>"},
		{"smollm2", "<|im_end|>"},
		{"mistral", ""}, // SentencePiece, no template: ChatML fallback, whose <|im_end|> is plain text here
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := encoderFor(t, tc.name)
			e, err := enc.Encode(conversation)
			if err != nil {
				t.Fatal(err)
			}
			if !e.Aligned {
				t.Errorf("tokens could not be aligned with the rendered text")
			}
			want := enc.Tokenizer.Encode(e.Text, false)
			if enc.BOS >= 0 {
				want = append([]int{enc.BOS}, want...)
			}
			if !slices.Equal(e.Seq.Tokens, want) {
				t.Errorf("tokens differ from encoding the rendered conversation")
			}
			runs := trainedRuns(enc.Tokenizer, e)
			if len(runs) != 2 {
				t.Fatalf("%d trained runs %q, want the 2 assistant turns", len(runs), runs)
			}
			for i, want := range []string{conversation[2].Content, conversation[4].Content} {
				got := strings.TrimSpace(runs[i])
				// Where the template's markers are plain text (mistral here), the
				// tokenizer may merge the content's last character with the
				// next one (".<"): that token is trained too.
				if got != want && !(tc.eot == "" && strings.HasPrefix(got, want) && len(got)-len(want) <= 2) {
					t.Errorf("trained run %d = %q, want %q", i, runs[i], want)
				}
			}
			if tc.eot != "" {
				eot, ok := enc.Tokenizer.TokenID(tc.eot)
				if !ok {
					t.Fatalf("no %s token", tc.eot)
				}
				n := 0
				for i, id := range e.Seq.Tokens {
					if id == eot && e.Assistant[i] {
						n++
					}
				}
				if n != 2 {
					t.Errorf("%d trained %s tokens, want 2 (one per assistant turn)", n, tc.eot)
				}
			}
			for i, tg := range e.Seq.Targets {
				switch {
				case i+1 < len(e.Seq.Tokens) && e.Assistant[i+1]:
					if tg != e.Seq.Tokens[i+1] {
						t.Fatalf("target %d = %d, want next token %d", i, tg, e.Seq.Tokens[i+1])
					}
				case tg != train.IgnoreIndex:
					t.Fatalf("target %d = %d, want ignored", i, tg)
				}
			}
			enc.LastTurnOnly = true
			e2, err := enc.Encode(conversation)
			if err != nil {
				t.Fatal(err)
			}
			if runs := trainedRuns(enc.Tokenizer, e2); len(runs) != 1 || !strings.HasPrefix(strings.TrimSpace(runs[0]), conversation[4].Content) {
				t.Errorf("last turn only: trained %q", runs)
			}
		})
	}
}

// TestChatMLFallbackLlama2C covers a llama2.c tokenizer (which adds a dummy
// leading space) with the ChatML fallback template and a prepended BOS.
func TestChatMLFallbackLlama2C(t *testing.T) {
	tok, err := tokenizer.LoadLlama2C(filepath.Join("..", "..", "testdata", "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	enc := NewEncoder(chattemplate.ChatML(), tok, nil, false)
	msgs := []chattemplate.Message{{Role: "user", Content: "Tell me a story."}, {Role: "assistant", Content: "Once upon a time, Tim had a red ball."}}
	e, err := enc.Encode(msgs)
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq.Tokens[0] != 1 {
		t.Errorf("first token %d, want BOS 1", e.Seq.Tokens[0])
	}
	runs := trainedRuns(tok, e)
	if len(runs) != 1 || !strings.Contains(runs[0], "Once upon a time, Tim had a red ball.") || len(runs[0]) > len(msgs[1].Content)+8 {
		t.Errorf("trained runs %q", runs)
	}
}

var badData = `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hello there, friend."}]}
{"messages": [ this is not json
{"messages":[{"role":"user","content":"only a question"}]}

{"system":"You are a cat.","question":"Who are you?","answer":"Meow. I am the cat of the house, obviously."}
{"messages":[{"role":"user","content":"long"},{"role":"assistant","content":"` + strings.Repeat("word ", 100) + `"}]}
{"instruction":"Add 2 and 2.","input":"","output":"Four, of course."}
`

func writeData(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.jsonl")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadRows: malformed JSON, a conversation without an assistant turn and
// an over-long sequence are reported with file and line; skip leaves them
// out, fail stops at the first; --truncate keeps the long row.
func TestBadRows(t *testing.T) {
	enc := encoderFor(t, "qwen3")
	path := writeData(t, badData)
	var warned []chatdata.Problem
	ds, err := Load(path, enc, Options{MaxLen: 60, OnBadRow: chatdata.SkipBadRows, Warn: func(p chatdata.Problem) { warned = append(warned, p) }})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line int
		msg  string
	}{{2, "malformed JSON"}, {3, "no assistant turn"}, {6, "longer than the context of 60"}}
	if len(ds.Skipped) != len(want) || len(warned) != len(want) {
		t.Fatalf("skipped %v, want lines 2, 3, 6", ds.Skipped)
	}
	for i, w := range want {
		p := ds.Skipped[i]
		if p.Line != w.line || p.File != path || !strings.Contains(p.Msg, w.msg) {
			t.Errorf("problem %d = %v, want line %d: %s", i, p, w.line, w.msg)
		}
		if !strings.HasPrefix(p.Error(), path+":"+string(rune('0'+w.line))+": ") {
			t.Errorf("problem %q does not start with file:line", p.Error())
		}
	}
	if ds.Rows != 3 || len(ds.Train) != 3 {
		t.Errorf("%d rows kept, want 3", ds.Rows)
	}

	_, err = Load(path, enc, Options{MaxLen: 60, OnBadRow: chatdata.FailOnBadRow})
	if err == nil || !strings.Contains(err.Error(), path+":2: malformed JSON") {
		t.Errorf("fail policy: error %v, want one naming %s:2", err, path)
	}

	// MaxRows: the first two readable rows (lines 1 and 5), and only the
	// problems before line 5.
	ds, err = Load(path, enc, Options{MaxLen: 60, MaxRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Rows != 2 || len(ds.Skipped) != 2 || ds.Skipped[1].Line != 3 {
		t.Errorf("MaxRows 2: %d rows, skipped %v; want 2 rows and lines 2, 3 skipped", ds.Rows, ds.Skipped)
	}

	ds, err = Load(path, enc, Options{MaxLen: 60, Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Rows != 4 || ds.Truncated != 1 {
		t.Errorf("with truncation: %d rows, %d truncated; want 4 and 1", ds.Rows, ds.Truncated)
	}
	for _, s := range ds.Train {
		if len(s.Tokens) > 60 {
			t.Errorf("sequence of %d tokens after truncation to 60", len(s.Tokens))
		}
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		name, row, format string
		want              []chattemplate.Message
	}{
		{"qa", `{"system":"S","question":"Q","answer":"A"}`, chatdata.FormatQA,
			[]chattemplate.Message{{Role: "system", Content: "S"}, {Role: "user", Content: "Q"}, {Role: "assistant", Content: "A"}}},
		{"opencharacter", `{"character":"C","question":"Q","character_answer":"A"}`, chatdata.FormatAuto,
			[]chattemplate.Message{{Role: "system", Content: "C"}, {Role: "user", Content: "Q"}, {Role: "assistant", Content: "A"}}},
		{"alpaca", `{"instruction":"I","input":"X","output":"O"}`, chatdata.FormatAuto,
			[]chattemplate.Message{{Role: "system", Content: "SYS"}, {Role: "user", Content: "I\n\nX"}, {Role: "assistant", Content: "O"}}},
		{"parts", `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":"c"}]}`, chatdata.FormatMessages,
			[]chattemplate.Message{{Role: "system", Content: "SYS"}, {Role: "user", Content: "ab"}, {Role: "assistant", Content: "c"}}},
		{"sharegpt", `{"conversations":[{"from":"human","value":"h"},{"from":"gpt","value":"g"}]}`, chatdata.FormatAuto,
			[]chattemplate.Message{{Role: "system", Content: "SYS"}, {Role: "user", Content: "h"}, {Role: "assistant", Content: "g"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := "SYS"
			if tc.format == chatdata.FormatQA || tc.name == "opencharacter" {
				sys = "unused"
			}
			convs, probs, err := chatdata.ReadFrom(strings.NewReader(tc.row), "x.jsonl", chatdata.ReadOptions{Format: tc.format, System: sys})
			if err != nil || len(probs) > 0 {
				t.Fatalf("err %v, problems %v", err, probs)
			}
			got := convs[0].Messages
			if len(got) != len(tc.want) {
				t.Fatalf("messages %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].Role != tc.want[i].Role || got[i].Content != tc.want[i].Content {
					t.Errorf("message %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestSplit(t *testing.T) {
	var seqs []train.Sequence
	for i := 0; i < 40; i++ {
		seqs = append(seqs, train.Sequence{Tokens: []int{i}, Targets: []int{i}})
	}
	a1, e1 := Split(seqs, 0.1, 3)
	a2, e2 := Split(seqs, 0.1, 3)
	if len(e1) != 4 || len(a1) != 36 {
		t.Fatalf("split %d/%d, want 36/4", len(a1), len(e1))
	}
	for i := range e1 {
		if e1[i].Tokens[0] != e2[i].Tokens[0] {
			t.Fatalf("split is not deterministic")
		}
	}
	_ = a2
	if _, e := Split(seqs, 0, 3); e != nil {
		t.Errorf("fraction 0 held rows out")
	}
}
