package cli

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/masque-ai/masque/tokenizer"
)

// TestTokenizerTrain trains a tokenizer from the command line and uses it with
// `masque tokenize` and `masque template`.
func TestTokenizerTrain(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tok")
	data := "../../tokenizer/bpetrain/testdata"
	code, stdout, stderr := run(t, "", "tokenizer", "train", "--data", data+"/kjv-genesis-1-3.txt,"+data+"/corpus",
		"--vocab-size", "600", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"read 3 files", "vocabulary 600 (256 bytes, 341 merged, 3 special)", "tokenizer_config.json"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = run(t, "", "tokenize", "--model", out, "--json", "In the beginning<|im_end|>")
	if code != 0 {
		t.Fatalf("tokenize: exit %d: %s", code, stderr)
	}
	var r struct{ IDs []int }
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("tokenize: %s (%v)", stdout, err)
	}
	tok, err := tokenizer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := tok.Encode("In the beginning<|im_end|>", false); !reflect.DeepEqual(r.IDs, want) || want[len(want)-1] != 599 {
		t.Fatalf("tokenize: %v, want %v ending in 599", r.IDs, want)
	}

	code, _, stderr = run(t, "", "tokenizer", "train", "--data", data+"/kjv-genesis-1-3.txt", "--vocab-size", "100", "--out", out)
	if code == 0 || !strings.Contains(stderr, "smaller than the 256 byte tokens") {
		t.Fatalf("vocab 100: exit %d: %s", code, stderr)
	}
	code, _, stderr = run(t, "", "tokenizer", "train", "--out", out)
	if code != 2 || !strings.Contains(stderr, "--data") {
		t.Fatalf("no --data: exit %d: %s", code, stderr)
	}
}
