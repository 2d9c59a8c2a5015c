package ppl

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/model"
)

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

func (byteTok) Decode(ids []int, _ bool) string { return "" }

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

// brokenChat renders differently depending on the number of messages, so
// it is not incremental.
func brokenChat(msgs []chattemplate.Message, gen bool) ([]int, error) {
	ids, _ := byteChat(msgs, gen)
	return append([]int{len(msgs) + 2}, ids...), nil
}

func TestPerplexity(t *testing.T) {
	m, err := model.LoadLlama2C("../../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	txt := filepath.Join(dir, "a.txt")
	os.WriteFile(txt, []byte("Once upon a time\nthe cat sat\n"), 0o644)
	samples, err := Load(txt, byteTok{}, byteChat, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(context.Background(), m, "a.txt", samples, nil)
	if err != nil {
		t.Fatal(err)
	}
	// hand computation
	var nll float64
	var n int
	V := m.Config.Vocab
	for _, s := range samples {
		lg, _ := m.Forward(m.NewCache(len(s.IDs)), s.IDs, true)
		for j := 1; j < len(s.IDs); j++ {
			nll -= generate.LogProb(lg[(j-1)*V:j*V], s.IDs[j])
			n++
		}
	}
	if r.Tokens != n || math.Abs(r.NLL-nll/float64(n)) > 1e-6 || math.Abs(r.PPL/math.Exp(nll/float64(n))-1) > 1e-5 {
		t.Fatalf("result %+v, want nll %g over %d", r, nll/float64(n), n)
	}
	chat := filepath.Join(dir, "c.jsonl")
	os.WriteFile(chat, []byte(`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"more"},{"role":"assistant","content":"ok"}]}`+"\n"), 0o644)
	cs, err := Load(chat, byteTok{}, byteChat, 0)
	if err != nil {
		t.Fatal(err)
	}
	scored := 0
	for _, f := range cs[0].Score {
		if f {
			scored++
		}
	}
	if want := len("hello\n") + len("ok\n"); scored != want {
		t.Fatalf("%d assistant tokens scored, want %d", scored, want)
	}
	if _, err := Evaluate(context.Background(), m, "c", cs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ChatSamples(chat, brokenChat, 0); err == nil || !strings.Contains(err.Error(), "incrementally") {
		t.Fatalf("non-incremental template: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "nope.txt"), byteTok{}, byteChat, 0); err == nil || !strings.Contains(err.Error(), "nope.txt") {
		t.Fatalf("missing file: %v", err)
	}
	noAsst := filepath.Join(dir, "u.jsonl")
	os.WriteFile(noAsst, []byte(`[{"role":"user","content":"hi"}]`), 0o644)
	if _, err := Load(noAsst, byteTok{}, byteChat, 0); err == nil || !strings.Contains(err.Error(), "no assistant") {
		t.Fatalf("no assistant messages: %v", err)
	}
}
