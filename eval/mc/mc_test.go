package mc

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/internal/builtin"
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

func (byteTok) Decode(ids []int, _ bool) string {
	var b []byte
	for _, id := range ids {
		b = append(b, byte(id-3))
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

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	items, err := Load("../../testdata/persona-evals/extraversion.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 40 || !strings.HasPrefix(items[0].Question, "Is the following statement something you would say?") ||
		items[0].Matching != " Yes" || items[0].NotMatching != " No" {
		t.Fatalf("persona rows: %d items, first %+v", len(items), items[0])
	}
	csvItems, err := Load(write("t.csv", "question,A,B,matching\n\"Do you like parties, really?\",Yes,No,A\nQuiet evenings?,Yes,No,B\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(csvItems) != 2 || csvItems[0].Question != "Do you like parties, really?" || csvItems[1].Matching != "No" {
		t.Fatalf("csv items %+v", csvItems)
	}
	jl, err := Load(write("t.jsonl", `{"question":"q","A":"x","B":"y","matching":"B"}`+"\n"+`{"statement":"I love crowds","answer_matching_behavior":" Yes","answer_not_matching_behavior":" No"}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if jl[0].Matching != "y" || jl[1].Question != statementPrefix+`"I love crowds"` {
		t.Fatalf("jsonl items %+v", jl)
	}
	cases := []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope.csv"), "nope.csv"},
		{"extension", write("t.xml", "x"), "unknown test format"},
		{"empty", write("e.jsonl", "\n"), "no test items"},
		{"csv header", write("h.csv", "q,A,B,matching\nx,y,z,A\n"), `lacks a "question" column`},
		{"csv matching", write("m.csv", "question,A,B,matching\nx,y,z,C\n"), "m.csv:2: matching is \"C\""},
		{"csv short", write("s.csv", "question,A,B,matching\nx,y\n"), "s.csv:2"},
		{"csv open quote", write("q.csv", "question,A,B,matching\n\"0"), "q.csv: parse error on line 2"},
		{"json malformed", write("j.jsonl", `{"question":"q","A":"x","B":"y","matching":"A"}`+"\n{bad\n"), "j.jsonl:2: malformed JSON"},
		{"json keys", write("k.jsonl", `{"q":"x"}`), "k.jsonl:1: want keys"},
		{"json not matching", write("n.jsonl", `{"question":"x","answer_matching_behavior":" Yes"}`), "answer_not_matching_behavior is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func loadStories(t *testing.T) *model.Model {
	m, err := model.LoadLlama2C("../../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestScoreAnswers compares the cached scoring with one full forward pass
// over prompt+answer.
func TestScoreAnswers(t *testing.T) {
	m := loadStories(t)
	prompt := []int{1, 40, 41, 42, 100}
	answers := [][]int{{7}, {8, 9, 10}, {300, 2}}
	got, err := ScoreAnswers(m, prompt, answers)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.Vocab
	for i, a := range answers {
		all := append(append([]int{}, prompt...), a...)
		lg, err := m.Forward(m.NewCache(len(all)), all, true)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for j := range a {
			pos := len(prompt) - 1 + j
			want += generate.LogProb(lg[pos*V:(pos+1)*V], a[j])
		}
		if math.Abs(got[i]-want) > 1e-4 {
			t.Fatalf("answer %d: %g, want %g", i, got[i], want)
		}
	}
	if _, err := ScoreAnswers(m, prompt, [][]int{{}}); err == nil {
		t.Fatal("empty answer accepted")
	}
}

func TestEvaluateOpposing(t *testing.T) {
	m := loadStories(t)
	items, err := Load("../../testdata/persona-evals/desire-for-acquiring-wealth.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Prompter{ChatPrompter{Chat: byteChat, Tok: byteTok{}}, PlainPrompter{Tok: byteTok{}}} {
		calls := 0
		o := Options{Name: "wealth", System: "You love money.", Limit: 12, Progress: func(d, n int) { calls++ }}
		a, err := Evaluate(context.Background(), m, p, items, o)
		if err != nil {
			t.Fatal(err)
		}
		o.Opposing = true
		b, err := Evaluate(context.Background(), m, p, items, o)
		if err != nil {
			t.Fatal(err)
		}
		if a.Items != 12 || calls != 24 || a.Correct+b.Correct+a.Ties != 12 || math.Abs(a.MeanMargin+b.MeanMargin) > 1e-9 ||
			a.MatchingRate != b.MatchingRate || math.Abs(a.Accuracy-float64(a.Correct)/12) > 1e-12 {
			t.Fatalf("matching %+v\nopposing %+v", a, b)
		}
		for i := range a.Results {
			if a.Results[i].Correct != (a.Results[i].Matching > a.Results[i].NotMatching) {
				t.Fatal("correctness does not follow the scores")
			}
		}
		var sb strings.Builder
		if err := WriteTable(&sb, a, b); err != nil || !strings.Contains(sb.String(), "opposing") {
			t.Fatalf("table %q %v", sb.String(), err)
		}
	}
}

// TestPrompterFor: the default format follows the chat template (the
// stories model has none), and an unknown format wraps ErrFormat.
func TestPrompterFor(t *testing.T) {
	ck, err := checkpoint.Open(builtin.Stories, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if p, err := PrompterFor(ck, ""); err != nil {
		t.Error(err)
	} else if _, ok := p.(PlainPrompter); !ok {
		t.Errorf("default without a template: %T", p)
	}
	if p, err := PrompterFor(ck, "chat"); err != nil {
		t.Error(err)
	} else if _, ok := p.(ChatPrompter); !ok {
		t.Errorf("chat: %T", p)
	}
	if _, err := PrompterFor(ck, "xml"); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("xml: %v", err)
	}
}

// TestEvaluateFiles: one report per file, named by its base name, with a
// progress per file, the same as Evaluate on each.
func TestEvaluateFiles(t *testing.T) {
	m := loadStories(t)
	files := []string{"../../testdata/persona-evals/desire-for-acquiring-wealth.jsonl", "../../testdata/persona-evals/extraversion.jsonl"}
	p := PlainPrompter{Tok: byteTok{}}
	var names []string
	reports, err := EvaluateFiles(context.Background(), m, p, files, Options{Limit: 3, Name: "ignored"}, func(name string) func(int, int) {
		names = append(names, name)
		return nil
	})
	if err != nil || len(reports) != 2 {
		t.Fatalf("%d reports, %v", len(reports), err)
	}
	items, err := Load(files[1])
	if err != nil {
		t.Fatal(err)
	}
	want, err := Evaluate(context.Background(), m, p, items, Options{Name: "extraversion.jsonl", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r := reports[1]; r.Name != want.Name || r.Items != 3 || r.Accuracy != want.Accuracy || r.MeanMargin != want.MeanMargin {
		t.Errorf("report %+v, want %+v", r, want)
	}
	if strings.Join(names, ",") != "desire-for-acquiring-wealth.jsonl,extraversion.jsonl" {
		t.Errorf("progress names %q", names)
	}
	if _, err := EvaluateFiles(context.Background(), m, p, []string{"missing.jsonl"}, Options{}, nil); err == nil {
		t.Error("missing file: no error")
	}
}
