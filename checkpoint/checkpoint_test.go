package checkpoint

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/quant"
)

func TestOpenKinds(t *testing.T) {
	ck, err := Open(builtin.Stories, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Path != builtin.Stories || ck.Model.Config.Vocab != 512 || ck.Tokenizer == nil || ck.HasTemplate {
		t.Fatalf("builtin: %+v", ck)
	}
	if got := ck.StopTokens(); len(got) != 1 || got[0] != 2 {
		t.Errorf("builtin stop tokens %v, want [2]", got)
	}
	// A weights-only folder: logits work, text does not.
	w, err := Open("../testdata/hf-tiny/qwen2", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.NeedTokenizer(); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Errorf("weights-only folder: %v", err)
	}
	if _, err := w.EncodeChat([]chattemplate.Message{{Role: "user", Content: "hi"}}, true, nil); err == nil {
		t.Error("EncodeChat without a tokenizer succeeded")
	}
	// A tokenizer-only folder through OpenText renders and encodes chats.
	txt, err := OpenText("../testdata/tokenizers/qwen2.5", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := txt.EncodeChat([]chattemplate.Message{{Role: "user", Content: "Hello!"}}, true, nil)
	if err != nil || len(ids) == 0 || !txt.HasTemplate {
		t.Fatalf("qwen2.5 chat: %v %v", ids, err)
	}
	if _, err := Open("../testdata/stories260K/golden.json", Options{}); err == nil {
		t.Error("a JSON file opened as a model")
	}
	if _, err := Open("../testdata/stories260K/stories260K.bin", Options{}); err == nil || !strings.Contains(err.Error(), "--tokenizer") {
		t.Errorf("llama2.c without tokenizer: %v", err)
	}
	l2c, err := Open("../testdata/stories260K/stories260K.bin", Options{Tokenizer: "../testdata/stories260K/tok512.bin"})
	if err != nil {
		t.Fatal(err)
	}
	l2c.Close()
}

// TestGGUFCarriesTemplate: a GGUF export keeps the tokenizer and template.
func TestGGUFCarriesTemplate(t *testing.T) {
	src, err := Open(builtin.Stories, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.templateSource = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
	src.Template, _ = chattemplate.New(src.templateSource)
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := src.SaveGGUF(p, quant.Q8_0); err != nil {
		t.Fatal(err)
	}
	g, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !g.HasTemplate {
		t.Fatal("template lost")
	}
	s, err := g.RenderChat([]chattemplate.Message{{Role: "user", Content: "hi"}}, false, nil)
	if err != nil || s != "[user] hi\n" {
		t.Fatalf("rendered %q, %v", s, err)
	}
	text := "Once upon a time, Lily saw a big red ball."
	if a, b := src.Tokenizer.Encode(text, true), g.Tokenizer.Encode(text, true); !slices.Equal(a, b) {
		t.Fatalf("tokenizer changed through GGUF: %v vs %v", a, b)
	}
}

// TestChatEncoderAndExtraFiles: ChatEncoder is EncodeChat without template
// variables; ExtraFiles ships the built-in stories model's tokenizer and
// the one beside a llama2.c file, and nothing for a folder.
func TestChatEncoderAndExtraFiles(t *testing.T) {
	ck, err := Open(builtin.Stories, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	msgs := []chattemplate.Message{{Role: "user", Content: "Once upon a time"}}
	want, werr := ck.EncodeChat(msgs, true, nil)
	got, gerr := ck.ChatEncoder()(msgs, true)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) || !slices.Equal(got, want) {
		t.Errorf("ChatEncoder: %v %v, EncodeChat: %v %v", got, gerr, want, werr)
	}
	if f := ck.ExtraFiles(""); len(f) != 1 || !bytes.Equal(f["tokenizer.bin"], builtin.Tokenizer) {
		t.Errorf("builtin stories: %d files", len(f))
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "model.bin")
	for name, b := range map[string][]byte{bin: {0}, filepath.Join(dir, "tokenizer.bin"): []byte("tok"), filepath.Join(dir, "other.bin"): []byte("other")} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l2c := &Checkpoint{Path: bin}
	if f := l2c.ExtraFiles(""); string(f["tokenizer.bin"]) != "tok" || len(f) != 1 {
		t.Errorf("beside the file: %q", f)
	}
	if f := l2c.ExtraFiles(filepath.Join(dir, "other.bin")); string(f["other.bin"]) != "other" || len(f) != 1 {
		t.Errorf("--tokenizer: %q", f)
	}
	if f := (&Checkpoint{Path: dir}).ExtraFiles(""); f != nil {
		t.Errorf("folder: %q", f)
	}
	if name, b, err := ck.Llama2CTokenizer(""); err != nil || name != "tokenizer.bin" || !bytes.Equal(b, builtin.Tokenizer) {
		t.Errorf("builtin stories tokenizer: %s %d bytes %v", name, len(b), err)
	}
	if _, _, err := (&Checkpoint{Path: filepath.Join(t.TempDir(), "m.bin")}).Llama2CTokenizer(""); err == nil {
		t.Error("no tokenizer beside the file: no error")
	}
}
