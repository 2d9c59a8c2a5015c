package tokenizer

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// tinyJSON is a small hand-written SentencePiece-style tokenizer.
const tinyJSON = `{
  "version": "1.0",
  "added_tokens": [
    {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
    "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "<0xC3>": 4, "<0xA9>": 5, "▁": 6, "h": 7, "i": 8, "hi": 9, "▁hi": 10},
    "merges": ["h i", "▁ hi"]}
}`

func TestTinySentencePiece(t *testing.T) {
	tk, err := FromJSON([]byte(tinyJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text string
		ids  []int
	}{
		{"hi", []int{1, 10}},
		{"hi hi", []int{1, 10, 10}},
		{"", []int{1}},
		{"é", []int{1, 6, 4, 5}},
		{"A", []int{1, 6, 3}},
		{"zz", []int{1, 6, 0}}, // fused unknown characters
		{"hi<s>hi", []int{1, 10, 1, 10}},
	}
	for _, c := range cases {
		if got := tk.Encode(c.text, true); !equalIDs(got, c.ids) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.ids)
		}
	}
	if got := tk.Decode([]int{1, 10, 10}, true); got != "hi hi" {
		t.Errorf("decode = %q", got)
	}
	if got := tk.Decode([]int{1, 10, 10}, false); got != "<s> hi hi" {
		t.Errorf("decode = %q", got)
	}
	if got := tk.Decode([]int{6, 4, 5, 3}, false); got != "éA" {
		t.Errorf("decode = %q", got)
	}
	// An invalid byte run gives one U+FFFD per byte (as Hugging Face does).
	if got := tk.Decode([]int{4, 3, 7}, false); got != "\uFFFD\uFFFDh" {
		t.Errorf("decode = %q", got)
	}
	if got := tk.Decode([]int{4, 4, 7}, false); got != "\uFFFD\uFFFDh" {
		t.Errorf("decode = %q", got)
	}
	if id, ok := tk.BOS(); !ok || id != 1 || tk.BOSToken() != "<s>" {
		t.Errorf("BOS = %d %v %q", id, ok, tk.BOSToken())
	}
	if _, ok := tk.EOS(); ok {
		t.Errorf("unexpected EOS")
	}
	// add_bos_token false / add_eos_token true in tokenizer_config.json.
	tk2, err := FromJSON([]byte(tinyJSON), []byte(`{"add_bos_token": false, "add_eos_token": true, "bos_token": {"content": "<s>"}, "eos_token": "</s>"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := tk2.Encode("hi", true); !equalIDs(got, []int{10, 2}) {
		t.Errorf("config override: %v", got)
	}
	if tk2.EOSToken() != "</s>" || tk2.BOSToken() != "<s>" {
		t.Errorf("tokens %q %q", tk2.BOSToken(), tk2.EOSToken())
	}
}

func TestFixtureMetadata(t *testing.T) {
	cases := []struct {
		name           string
		vocab          int
		bos, eos       int
		bosTok, eosTok string
	}{
		{"llama3", 128256, 128000, 128001, "<|begin_of_text|>", "<|end_of_text|>"},
		{"qwen3", 151669, -1, 151645, "", "<|im_end|>"},
		{"qwen2.5", 151665, -1, 151645, "", "<|im_end|>"},
		{"smollm2", 49152, 1, 2, "<|im_start|>", "<|im_end|>"},
		{"mistral", 32000, 1, 2, "<s>", "</s>"},
	}
	for _, c := range cases {
		tk := loadTok(t, c.name)
		if tk.VocabSize() != c.vocab {
			t.Errorf("%s: VocabSize %d, want %d", c.name, tk.VocabSize(), c.vocab)
		}
		bos, okB := tk.BOS()
		eos, okE := tk.EOS()
		if (c.bos >= 0) != okB || (okB && bos != c.bos) || !okE || eos != c.eos {
			t.Errorf("%s: BOS %d %v EOS %d %v", c.name, bos, okB, eos, okE)
		}
		if tk.BOSToken() != c.bosTok || tk.EOSToken() != c.eosTok {
			t.Errorf("%s: tokens %q %q", c.name, tk.BOSToken(), tk.EOSToken())
		}
		if !tk.IsSpecial(c.eos) || tk.IsSpecial(100) {
			t.Errorf("%s: IsSpecial", c.name)
		}
		if id, ok := tk.TokenID(c.eosTok); !ok || id != c.eos || tk.Token(c.eos) != c.eosTok {
			t.Errorf("%s: TokenID/Token", c.name)
		}
		if tk.Token(-1) != "" || tk.Token(1<<30) != "" {
			t.Errorf("%s: out of range Token", c.name)
		}
	}
	// Qwen3's non-special added tokens are not skipped.
	q := loadTok(t, "qwen3")
	id, _ := q.TokenID("<think>")
	if q.IsSpecial(id) || q.Decode([]int{id}, true) != "<think>" {
		t.Errorf("<think> should not be special")
	}
	// Llama 3 encodes no BOS; Mistral does.
	if got := loadTok(t, "llama3").Encode("hi", true); len(got) != 1 {
		t.Errorf("llama3 added special tokens: %v", got)
	}
	if got := loadTok(t, "mistral").Encode("hi", true); got[0] != 1 {
		t.Errorf("mistral: no BOS: %v", got)
	}
}

// TestStreamDecoder checks that partial UTF-8 is held back and that the stream
// output always concatenates to Decode.
func TestStreamDecoder(t *testing.T) {
	l3 := loadTok(t, "llama3")
	ids := l3.Encode("🐱 ok", false)
	d := l3.NewStreamDecoder(false)
	var parts []string
	for _, id := range ids {
		s := d.Add(id)
		if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) {
			t.Errorf("partial output %q", s)
		}
		parts = append(parts, s)
	}
	parts = append(parts, d.Flush())
	if strings.Join(parts, "") != "🐱 ok" || len(ids) < 2 || parts[0] != "" {
		t.Errorf("parts %q ids %v", parts, ids)
	}
	// clean_up_tokenization_spaces: " ." is cleaned across token boundaries.
	ids = l3.Encode(" Hello , world . I 'm here", false)
	want := " Hello, world. I'm here"
	if got := l3.Decode(ids, false); got != want {
		t.Errorf("cleanup decode %q", got)
	}
	if got := streamDecode(l3, ids, false); got != want {
		t.Errorf("cleanup stream %q", got)
	}
	// Random id sequences on every tokenizer.
	r := rand.New(rand.NewSource(3))
	for _, name := range []string{"llama3", "qwen3", "smollm2", "mistral", "mistral-metaspace"} {
		tk := loadTok(t, name)
		for i := 0; i < 300; i++ {
			n := r.Intn(12)
			ids := make([]int, n)
			for j := range ids {
				switch r.Intn(4) {
				case 0:
					ids[j] = r.Intn(300) // byte tokens, specials
				case 1:
					ids[j] = tk.VocabSize() - 1 - r.Intn(40) // added tokens
				default:
					ids[j] = r.Intn(tk.VocabSize() + 5)
				}
			}
			for _, skip := range []bool{false, true} {
				if a, b := streamDecode(tk, ids, skip), tk.Decode(ids, skip); a != b {
					t.Fatalf("%s %v skip=%v: stream %q != decode %q", name, ids, skip, a, b)
				}
			}
		}
	}
	// A decoder can be reused after Flush.
	d = l3.NewStreamDecoder(true)
	for round := 0; round < 2; round++ {
		s := ""
		for _, id := range l3.Encode("again and again", false) {
			s += d.Add(id)
		}
		if s += d.Flush(); s != "again and again" {
			t.Errorf("round %d: %q", round, s)
		}
	}
}

func TestCleanupCut(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	alpha := []string{" ", ".", "'", "n", "t", "s", "m", "v", "e", "r", "?", "!", ",", "a", "b", "\n"}
	for i := 0; i < 20000; i++ {
		var parts []string
		for j := r.Intn(8); j >= 0; j-- {
			var b strings.Builder
			for k := r.Intn(4); k >= 0; k-- {
				b.WriteString(alpha[r.Intn(len(alpha))])
			}
			parts = append(parts, b.String())
		}
		whole := cleanupSpaces(strings.Join(parts, ""))
		tk := &Tokenizer{noDecoder: false, cleanup: true}
		d := tk.NewStreamDecoder(false)
		got := ""
		for _, p := range parts {
			got += d.addToken(p)
		}
		got += d.Flush()
		if got != whole {
			t.Fatalf("parts %q: stream %q, want %q", parts, got, whole)
		}
	}
}

func TestLongWordsAreFast(t *testing.T) {
	start := time.Now()
	for _, name := range []string{"llama3", "qwen3", "smollm2", "mistral"} {
		tk := loadTok(t, name)
		for _, s := range []string{strings.Repeat("a", 20000), strings.Repeat("abcdefghij", 2000), strings.Repeat("😀", 3000), strings.Repeat(" ", 5000)} {
			ids := tk.Encode(s, false)
			if got := tk.Decode(ids, false); got != s {
				t.Errorf("%s: round trip of %d bytes failed", name, len(s))
			}
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("long words took %v", el)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tk := loadTok(t, "qwen3")
	texts := []string{"Hello world", "The quick brown fox", "中文 text 😀", "a b c d e f g"}
	var want [][]int
	for _, s := range texts {
		want = append(want, tk.Encode(s, true))
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				k := (i + g) % len(texts)
				if got := tk.Encode(texts[k], true); !equalIDs(got, want[k]) {
					t.Errorf("concurrent mismatch")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestCacheBounded(t *testing.T) {
	tk := loadTok(t, "smollm2")
	var b strings.Builder
	for i := 0; i < cacheLimit+500; i++ {
		fmt.Fprintf(&b, " w%dq", i)
	}
	tk.Encode(b.String(), false)
	tk.cacheMu.Lock()
	n := len(tk.cache)
	tk.cacheMu.Unlock()
	if n > cacheLimit {
		t.Errorf("cache has %d entries", n)
	}
}

func TestLoadForms(t *testing.T) {
	dir := t.TempDir()
	raw := readGz(t, filepath.Join(testdata, "tokenizers", "smollm2", "tokenizer.json.gz"))
	cfg, err := os.ReadFile(filepath.Join(testdata, "tokenizers", "smollm2", "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(plain, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	want := loadTok(t, "smollm2").Encode("Hello <|im_start|> world", true)
	for _, p := range []string{dir, plain, filepath.Join(testdata, "tokenizers", "smollm2", "tokenizer.json.gz")} {
		tk, err := Load(p)
		if err != nil {
			t.Fatalf("Load(%s): %v", p, err)
		}
		if got := tk.Encode("Hello <|im_start|> world", true); !equalIDs(got, want) {
			t.Errorf("Load(%s): %v", p, got)
		}
		if tk.BOSToken() != "<|im_start|>" {
			t.Errorf("Load(%s): config not applied", p)
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	tk, err := FromJSON(gz.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("Hello <|im_start|> world", true); !equalIDs(got, want) {
		t.Errorf("FromJSON(gzip): %v", got)
	}
}

func TestErrorsNameFileAndProblem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	model := func(m string) string {
		return `{"added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": ` + m + `}`
	}
	okModel := `{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}`
	cases := []struct {
		file, content, want string
	}{
		{"badjson.json", `{"model": `, "bad JSON"},
		{"nomodel.json", `{}`, "no \"model\""},
		{"unigram.json", model(`{"type": "Unigram", "vocab": [["a", 0.0]]}`), "unsupported model type \"Unigram\""},
		{"badmerge.json", model(`{"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}`), "merges[0]"},
		{"oovmerge.json", model(`{"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}`), "not in the vocab"},
		{"badmergetype.json", model(`{"type": "BPE", "vocab": {"a": 0}, "merges": [1]}`), "merges[0]"},
		{"badvocab.json", model(`{"type": "BPE", "vocab": [1, 2], "merges": []}`), "vocab"},
		{"badid.json", model(`{"type": "BPE", "vocab": {"a": -5}, "merges": []}`), "out-of-range id"},
		{"badregex.json", strings.Replace(model(okModel), `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}`, 1), "bad regex"},
		{"badpre.json", strings.Replace(model(okModel), `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Nope"}`, 1), "unsupported pre_tokenizer type \"Nope\""},
		{"badnorm.json", strings.Replace(model(okModel), `"normalizer": null`, `"normalizer": {"type": "Precompiled"}`, 1), "unsupported normalizer type"},
		{"baddec.json", strings.Replace(model(okModel), `"decoder": null`, `"decoder": {"type": "CTC"}`, 1), "unsupported decoder type"},
		{"badpost.json", strings.Replace(model(okModel), `"post_processor": null`, `"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}}], "special_tokens": {}}`, 1), "special token \"<x>\""},
		{"badadded.json", strings.Replace(model(okModel), `"added_tokens": []`, `"added_tokens": [{"content": "x"}]`, 1), "added_tokens[0]"},
		{"badbehavior.json", strings.Replace(model(okModel), `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"String": "x"}, "behavior": "Sideways"}`, 1), "unknown behavior"},
		{"badgzip.json.gz", "\x1f\x8b\x08garbage", "gzip"},
	}
	for _, c := range cases {
		p := write(c.file, c.content)
		_, err := Load(p)
		if err == nil {
			t.Errorf("%s: no error", c.file)
			continue
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q should name the file and contain %q", c.file, err, c.want)
		}
		// FromJSON reports the same problem.
		if _, err := FromJSON([]byte(c.content), nil); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
			t.Errorf("%s: FromJSON error %v", c.file, err)
		}
	}
	// Bad tokenizer_config.json names that file.
	sub := filepath.Join(dir, "model")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "tokenizer.json"), []byte(model(okModel)), 0o644)
	os.WriteFile(filepath.Join(sub, "tokenizer_config.json"), []byte(`{"bos_token": 5}`), 0o644)
	if _, err := Load(sub); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") || !strings.Contains(err.Error(), "bos_token") {
		t.Errorf("config error: %v", err)
	}
	os.WriteFile(filepath.Join(sub, "tokenizer_config.json"), []byte(`{`), 0o644)
	if _, err := Load(sub); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("config error: %v", err)
	}
	// Missing paths.
	if _, err := Load(filepath.Join(dir, "nope.json")); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("missing file error: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty dir error: %v", err)
	}
}
