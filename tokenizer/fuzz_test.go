package tokenizer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// exercise runs every public operation on tk; it must not panic.
func exercise(t *testing.T, tk *Tokenizer, text string) {
	for _, add := range []bool{false, true} {
		ids := tk.Encode(text, add)
		for _, id := range ids {
			if id < 0 || id >= tk.VocabSize() {
				t.Fatalf("id %d out of range [0,%d)", id, tk.VocabSize())
			}
		}
		tk.Tokens(text)
		for _, skip := range []bool{false, true} {
			dec := tk.Decode(ids, skip)
			if !utf8.ValidString(dec) {
				t.Fatalf("Decode gave invalid UTF-8 %q", dec)
			}
			if s := streamDecode(tk, ids, skip); s != dec {
				t.Fatalf("stream %q != decode %q", s, dec)
			}
		}
	}
	tk.Decode([]int{-1, 0, 1, 2, 3, 1 << 20}, false)
	tk.BOS()
	tk.EOS()
}

// FuzzFromJSON: parsing arbitrary tokenizer.json (and tokenizer_config.json) bytes
// must not panic, and a tokenizer that loads must encode and decode without panicking.
func FuzzFromJSON(f *testing.F) {
	f.Add([]byte(tinyJSON), []byte(nil))
	f.Add([]byte(tinyJSON), []byte(`{"add_bos_token": false, "add_eos_token": true, "eos_token": {"content": "</s>"}, "clean_up_tokenization_spaces": true}`))
	f.Add([]byte(`{}`), []byte(`{}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}}`), []byte(nil))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}}`), []byte(nil))
	f.Add([]byte(`{"model": {"vocab": {"a": 99999999}, "merges": []}}`), []byte(nil))
	f.Add([]byte(`{"added_tokens": [{"id": 3, "content": "<x>", "special": true}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
		"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s+(?!\\S)|a"}, "behavior": "MergedWithNext", "invert": true}, {"type": "ByteLevel"}]},
		"decoder": {"type": "Sequence", "decoders": [{"type": "ByteLevel"}, {"type": "Strip", "content": "a", "start": 3, "stop": 2}]},
		"post_processor": {"type": "RobertaProcessing", "sep": ["a", 0], "cls": ["<x>", 3]}}`), []byte(nil))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"▁": 0}, "merges": []}, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}, "decoder": {"type": "Metaspace"}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"Regex": "[0-9]"}, "content": "#"}]}}`), []byte(nil))
	f.Add([]byte(`{"model": null}`), []byte(`{"bos_token": 1}`))
	f.Add([]byte("\x1f\x8b\x08\x00"), []byte(nil))
	if b, err := os.ReadFile(filepath.Join(testdata, "tokenizers", "golden_components.jsonl")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, `"config":`); i >= 0 && strings.Contains(line, `"kind":"tokenizer"`) {
				cfg := strings.TrimSuffix(line[i+len(`"config":`):], "}")
				f.Add([]byte(cfg), []byte(nil))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data, cfg []byte) {
		tk, err := FromJSON(data, cfg)
		if err != nil {
			if tk != nil {
				t.Fatal("tokenizer and error")
			}
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("recovered panic: %v", err)
			}
			return
		}
		exercise(t, tk, "Hello wörld <s> </s> <x> ab  a\n😀 123 ▁")
		exercise(t, tk, "")
	})
}

// FuzzEncodeDecode encodes arbitrary text with real tokenizers and checks the round
// trip where it is lossless (SmolLM2: byte-level, no normalizer; Mistral when the text
// has no "▁" or added-token strings; llama2.c for valid UTF-8), and that the stream
// decoder always matches Decode.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", "Hello world", "  leading and trailing  ", "line1\nline2\r\n\tx", "I'm DON'T you'll",
		"中文 日本語 한국어 😀👨‍👩‍👧 🇫🇷", "e\u0301 ﬁ ＦＵＬＬ", "<|im_start|>user\nhi<|im_end|>", "<s> </s> <unk>", "▁x", "\xff\xfe invalid",
		strings.Repeat("a", 300), "1234567890 3.14", " Hello , world . I 'm"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		sm := loadTok(t, "smollm2")
		exercise(t, sm, text)
		if utf8.ValidString(text) && !hasByteOutsideVocab(sm, text) {
			if got := sm.Decode(sm.Encode(text, false), false); got != text {
				t.Fatalf("smollm2 round trip %q -> %q", text, got)
			}
		}
		mi := loadTok(t, "mistral")
		exercise(t, mi, text)
		if utf8.ValidString(text) && !strings.ContainsAny(text, "▁") && !strings.Contains(text, "<s>") &&
			!strings.Contains(text, "</s>") && !strings.Contains(text, "<unk>") {
			if got := mi.Decode(mi.Encode(text, true), true); got != text {
				t.Fatalf("mistral round trip %q -> %q", text, got)
			}
		}
		l3 := loadTok(t, "llama3")
		exercise(t, l3, text)
		l2c := loadTok2C(t)
		exercise(t, l2c, text)
		if utf8.ValidString(text) {
			if got := l2c.Decode(l2c.Encode(text, true), true); got != text {
				t.Fatalf("llama2.c round trip %q -> %q", text, got)
			}
		}
		// The fast split matchers agree with regexp2.
		for _, re := range fuzzRegexes(t) {
			if a, b := re.find(validUTF8(text)), re.findSlow(validUTF8(text)); !(len(a) == 0 && len(b) == 0) && !reflect.DeepEqual(a, b) {
				t.Fatalf("fast regex %v != regexp2 %v", a, b)
			}
		}
	})
}

// hasByteOutsideVocab reports whether text has a byte whose byte-level character is
// not in the vocabulary (SmolLM2 lacks 21 of them; such bytes are dropped, as in
// Hugging Face).
func hasByteOutsideVocab(tk *Tokenizer, text string) bool {
	for i := 0; i < len(text); i++ {
		if _, ok := tk.bpe.vocab[byteToStr[text[i]]]; !ok {
			return true
		}
	}
	return false
}

var (
	l2cTok  *Tokenizer
	regexes []*regex
)

func loadTok2C(t *testing.T) *Tokenizer {
	tokMu.Lock()
	defer tokMu.Unlock()
	if l2cTok == nil {
		tk, err := LoadLlama2C(filepath.Join(testdata, "stories260K", "tok512.bin"))
		if err != nil {
			t.Fatal(err)
		}
		l2cTok = tk
	}
	return l2cTok
}

func fuzzRegexes(t *testing.T) []*regex {
	tokMu.Lock()
	defer tokMu.Unlock()
	if regexes == nil {
		for _, p := range []string{cl100kPattern, qwenPattern, gpt2Pattern} {
			re, err := compileRegex(p)
			if err != nil {
				t.Fatal(err)
			}
			regexes = append(regexes, re)
		}
	}
	return regexes
}

// FuzzLlama2C: parsing arbitrary tokenizer.bin bytes must not panic.
func FuzzLlama2C(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join(testdata, "stories260K", "tok512.bin")); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 127})
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := parseLlama2C(data)
		if err != nil {
			return
		}
		exercise(t, tk, "Once upon a time 😀")
	})
}
