package ppl

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/sft"
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

func TestPerplexity(t *testing.T) {
	m, err := model.LoadLlama2C("../../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	txt := filepath.Join(dir, "a.txt")
	os.WriteFile(txt, []byte("Once upon a time\nthe cat sat\n"), 0o644)
	samples, err := Load(txt, byteTok{}, nil, 0)
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
	if _, err := Load(filepath.Join(dir, "nope.txt"), byteTok{}, nil, 0); err == nil || !strings.Contains(err.Error(), "nope.txt") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestChatScoresWhatFinetuneTrains checks that chat perplexity scores the
// tokens finetune trains on, with the same loss: on builtin:voices (ChatML
// with special <|im_start|>/<|im_end|>), the assistant contents and each
// <|im_end|> are scored, not the newline after it, and eval ppl's mean NLL
// over the rows equals the training engine's loss on the same rows as
// finetune encodes them.
func TestChatScoresWhatFinetuneTrains(t *testing.T) {
	ck, err := checkpoint.Open("builtin:voices", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	enc := sft.NewEncoder(ck.Template, ck.Tokenizer, ck.TemplateConfig, ck.HasTemplate)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.jsonl")
	os.WriteFile(path, []byte(`{"messages":[{"role":"system","content":"You speak plainly."},{"role":"user","content":"Who made the world?"},{"role":"assistant","content":"God made the heaven and the earth."},{"role":"user","content":"And then?"},{"role":"assistant","content":"Light."}]}
{"messages":[{"role":"user","content":"Say something."},{"role":"assistant","content":"It was the best of times, it was the worst of times."}]}
{"messages":[{"role":"user","content":"no answer here"}]}
`), 0o644)
	samples, err := Load(path, ck.Tokenizer, enc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 2 {
		t.Fatalf("%d samples, want 2 (the row without an assistant message skipped)", len(samples))
	}
	end := ck.Tokenizer.Encode("<|im_end|>", false)
	if len(end) != 1 || !ck.Tokenizer.IsSpecial(end[0]) {
		t.Fatalf("<|im_end|> is %v, not one special token", end)
	}
	convs, err := calib.ReadChatJSONL(path, calib.Options{OnBadRow: chatdata.FailOnBadRow})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []train.Sequence
	for i, s := range samples {
		ends := 0
		for j, id := range s.IDs {
			if id == end[0] && s.Score[j] {
				ends++
				if j+1 < len(s.IDs) && s.Score[j+1] {
					t.Errorf("sample %d: the token after <|im_end|> (%q) is scored", i, ck.Tokenizer.Decode(s.IDs[j+1:j+2], false))
				}
			}
		}
		if want := []int{2, 1}[i]; ends != want {
			t.Errorf("sample %d: %d scored <|im_end|>, want %d (one per assistant turn)", i, ends, want)
		}
		cm := make([]chattemplate.Message, len(convs[i]))
		for k, m := range convs[i] {
			cm[k] = chattemplate.Message{Role: m.Role, Content: m.Content}
		}
		e, err := enc.Encode(cm)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.Seq)
	}
	r, err := Evaluate(context.Background(), ck.Model, "c", samples, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := train.New(ck.Model, train.Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	loss, err := n.Loss(seqs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("eval ppl: NLL %.6f over %d tokens; finetune loss %.6f over %d", r.NLL, r.Tokens, loss.Mean(), loss.Count)
	if r.Tokens != loss.Count || math.Abs(r.NLL-loss.Mean()) > 1e-4*loss.Mean() {
		t.Fatalf("eval ppl NLL %.6f over %d tokens, finetune loss %.6f over %d: not one quantity", r.NLL, r.Tokens, loss.Mean(), loss.Count)
	}
	noAsst := filepath.Join(dir, "u.jsonl")
	os.WriteFile(noAsst, []byte(`[{"role":"user","content":"hi"}]`), 0o644)
	if _, err := Load(noAsst, ck.Tokenizer, enc, 0); err == nil || !strings.Contains(err.Error(), "no assistant") {
		t.Fatalf("no assistant messages: %v", err)
	}
	if _, err := Load(path, ck.Tokenizer, nil, 0); err == nil || !strings.Contains(err.Error(), "chat template") {
		t.Fatalf("chat data without an encoder: %v", err)
	}
}

// TestEvaluateFiles: each file is loaded with the checkpoint's tokenizer,
// measured and named by its base name, as Load and Evaluate do.
func TestEvaluateFiles(t *testing.T) {
	ck, err := checkpoint.Open("builtin:stories260K", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	f := filepath.Join(t.TempDir(), "stories.txt")
	if err := os.WriteFile(f, []byte("Once upon a time there was a cat.\nThe dog ran to the park.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	res, err := EvaluateFiles(context.Background(), ck, ck.Model, []string{f}, 16, func(name string) func(int, int) {
		names = append(names, name)
		return nil
	})
	if err != nil || len(res) != 1 {
		t.Fatalf("%d results, %v", len(res), err)
	}
	samples, err := Load(f, ck.Tokenizer, sft.NewEncoder(ck.Template, ck.Tokenizer, ck.TemplateConfig, ck.HasTemplate), 16)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Evaluate(context.Background(), ck.Model, "stories.txt", samples, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0]; r.Name != want.Name || r.PPL != want.PPL || len(names) != 1 || names[0] != "stories.txt" {
		t.Errorf("result %+v (progress %q), want %+v", r, names, want)
	}
	if r, err := EvaluateFiles(context.Background(), ck, ck.Model, nil, 16, nil); r != nil || err != nil {
		t.Errorf("no files: %v %v", r, err)
	}
}
