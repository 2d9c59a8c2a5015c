package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type l2cGolden struct {
	Cases []struct {
		Name             string `json:"name"`
		Prompt           string `json:"prompt"`
		PromptIDs        []int  `json:"prompt_ids"`
		GeneratedIDs     []int  `json:"generated_ids"`
		FullTextRaw      string `json:"full_text_raw"`
		GeneratedTextRaw string `json:"generated_text_raw"`
	} `json:"cases"`
}

func loadStories(t *testing.T) (*Tokenizer, *l2cGolden) {
	t.Helper()
	dir := filepath.Join(testdata, "stories260K")
	tk, err := LoadLlama2C(filepath.Join(dir, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g l2cGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("no cases")
	}
	return tk, &g
}

func TestLlama2CGolden(t *testing.T) {
	tk, g := loadStories(t)
	if tk.VocabSize() != 512 {
		t.Fatalf("VocabSize = %d, want 512", tk.VocabSize())
	}
	if id, ok := tk.BOS(); !ok || id != 1 {
		t.Fatalf("BOS = %d %v", id, ok)
	}
	if id, ok := tk.EOS(); !ok || id != 2 {
		t.Fatalf("EOS = %d %v", id, ok)
	}
	for _, c := range g.Cases {
		if got := tk.Encode(c.Prompt, true); !equalIDs(got, c.PromptIDs) {
			t.Errorf("%s: Encode(prompt, true)\n got  %v\n want %v", c.Name, got, c.PromptIDs)
		}
		if got := tk.Encode(c.Prompt, false); !equalIDs(got, c.PromptIDs[1:]) {
			t.Errorf("%s: Encode(prompt, false)\n got  %v\n want %v", c.Name, got, c.PromptIDs[1:])
		}
		all := append(append([]int{}, c.PromptIDs...), c.GeneratedIDs...)
		// BOS is not printed, but (as in run.c) it drops the leading space of the next piece.
		if got := tk.Decode(all, true); got != c.FullTextRaw {
			t.Errorf("%s: Decode(prompt+generated, skip)\n got  %q\n want %q", c.Name, got, c.FullTextRaw)
		}
		if got := streamDecode(tk, all, true); got != c.FullTextRaw {
			t.Errorf("%s: stream decode\n got  %q\n want %q", c.Name, got, c.FullTextRaw)
		}
		if got := tk.Decode(all, false); got != tk.Token(1)+c.FullTextRaw {
			t.Errorf("%s: Decode(prompt+generated, noskip)\n got  %q", c.Name, got)
		}
		// Generated text only: a stream decoder primed with the prompt ids.
		d := tk.NewStreamDecoder(true)
		for _, id := range c.PromptIDs {
			d.Add(id)
		}
		gen := ""
		for _, id := range c.GeneratedIDs {
			gen += d.Add(id)
		}
		gen += d.Flush()
		if gen != c.GeneratedTextRaw {
			t.Errorf("%s: generated text\n got  %q\n want %q", c.Name, gen, c.GeneratedTextRaw)
		}
		if len(c.PromptIDs) > 1 {
			if got := tk.Decode(c.GeneratedIDs, true); got != c.GeneratedTextRaw {
				t.Errorf("%s: Decode(generated)\n got  %q\n want %q", c.Name, got, c.GeneratedTextRaw)
			}
		}
	}
}

func TestLlama2CDetails(t *testing.T) {
	tk, _ := loadStories(t)
	if got := tk.Encode("", true); !equalIDs(got, []int{1}) {
		t.Errorf("Encode(\"\") = %v", got)
	}
	if got := tk.Encode("", false); len(got) != 0 {
		t.Errorf("Encode(\"\", false) = %v", got)
	}
	// Byte fallback ids and pieces.
	if tk.Token(3) != "<0x00>" || tk.Token(258) != "<0xFF>" {
		t.Errorf("byte pieces: %q %q", tk.Token(3), tk.Token(258))
	}
	// A partial UTF-8 sequence is held back by the stream decoder.
	cat := "🐱"
	d := tk.NewStreamDecoder(false)
	var out []string
	for i := 0; i < len(cat); i++ {
		out = append(out, d.Add(int(cat[i])+3))
	}
	if strings.Join(out[:3], "") != "" || out[3] != cat || d.Flush() != "" {
		t.Errorf("stream out %q", out)
	}
	// Incomplete sequence at the end becomes U+FFFD.
	if got := tk.Decode([]int{int(cat[0]) + 3, int(cat[1]) + 3}, false); got != "\uFFFD" {
		t.Errorf("incomplete = %q", got)
	}
	// Round trip of ASCII text.
	for _, s := range []string{"Once upon a time", "a b  c\n", "x"} {
		if got := tk.Decode(tk.Encode(s, true), true); got != s {
			t.Errorf("round trip %q -> %q", s, got)
		}
	}
	// Long inputs are fast (heap-based merging).
	long := strings.Repeat("Once upon a time there was a dog. ", 300)
	if got := tk.Decode(tk.Encode(long, true), true); got != long {
		t.Errorf("long round trip mismatch")
	}
}

func TestLlama2CErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.bin")
	if err := os.WriteFile(bad, []byte{7, 0, 0, 0, 1, 2}, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadLlama2C(bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("err = %v", err)
	}
	_, err = LoadLlama2C(filepath.Join(dir, "missing.bin"))
	if err == nil || !strings.Contains(err.Error(), "missing.bin") {
		t.Errorf("err = %v", err)
	}
}
