package tokenizer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/gguf"
)

// TestGGUFRoundTrip stores every real tokenizer as GGUF metadata, reads it
// back with FromGGUF, and checks the result against the transformers goldens
// (ids and decoding; the Tokens strings are not compared because GGUF keeps
// only the ids' pieces).
func TestGGUFRoundTrip(t *testing.T) {
	lines := readJSONL[goldenLine](t, filepath.Join(testdata, "tokenizers", "golden_tokens.jsonl"))
	lines = append(lines, readJSONL[goldenLine](t, filepath.Join(testdata, "tokenizers", "golden_sp.jsonl"))...)
	byTok := map[string][]goldenLine{}
	for _, l := range lines {
		byTok[l.Tokenizer] = append(byTok[l.Tokenizer], l)
	}
	for _, name := range []string{"llama3", "qwen2.5", "qwen3", "smollm2", "mistral"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(testdata, "tokenizers", name)
			tj := readGz(t, filepath.Join(dir, "tokenizer.json.gz"))
			cj, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
			kv, err := GGUFMetadata(tj, cj, name)
			if err != nil {
				t.Fatal(err)
			}
			kv = append([]gguf.KV{{Key: "general.architecture", Value: "llama"}}, kv...)
			path := filepath.Join(t.TempDir(), "tok.gguf")
			if err := gguf.Write(path, kv, nil); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tk, err := FromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			orig := loadTok(t, name)
			noCleanup, _ := FromJSON(tj, cj)
			noCleanup.cleanup = false
			if len(byTok[name]) == 0 {
				t.Fatal("no goldens")
			}
			bad := 0
			for _, g := range byTok[name] {
				if got := tk.Encode(g.Text, g.AddSpecialTokens); !equalIDs(got, g.IDs) {
					bad++
					if bad < 5 {
						t.Errorf("%q: ids %v, want %v", g.Text, got, g.IDs)
					}
				}
				want := g.DecodedSkipSpecial
				if orig.cleanup {
					// GGUF has no clean_up_tokenization_spaces (a transformers-level
					// setting; llama.cpp never applies it).
					want = noCleanup.Decode(g.IDs, true)
				}
				if got := tk.Decode(g.IDs, true); got != want {
					bad++
					if bad < 5 {
						t.Errorf("%q: decoded %q, want %q", g.Text, got, want)
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%d mismatches of %d lines", bad, len(byTok[name]))
			}
		})
	}
}
