package tokenizer

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

var regexAlphabet = []string{
	"a", "b", "Z", "s", "S", "t", "T", "r", "e", "E", "v", "m", "M", "l", "L", "d", "D", "n",
	"'", "\"", " ", " ", " ", "\t", "\n", "\r", "\v", "\f", "\u0085", "\u00a0", "\u2028", "\u3000", "\u200b",
	"0", "7", "٣", "²", "Ⅻ", ".", ",", "!", "?", "-", "_", "(", ")", "<", "|", ">", "$", "+",
	"é", "e\u0301", "ß", "ſ", "K", "İ", "Ω", "中", "文", "😀", "👍🏽", "\u200d", "\ufeff", "\u0000",
}

func randText(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(regexAlphabet[r.Intn(len(regexAlphabet))])
	}
	return b.String()
}

// TestFastRegexMatchesRegexp2 checks the hand-written split matchers against the
// regexp2 engine on random text.
func TestFastRegexMatchesRegexp2(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, pat := range []string{cl100kPattern, qwenPattern, gpt2Pattern} {
		re, err := compileRegex(pat)
		if err != nil {
			t.Fatal(err)
		}
		if re.fast == nil {
			t.Fatalf("no fast path for %q", pat)
		}
		texts := []string{"", "Hello world", "  Hello  world  ", "I'M here, you'LL see 12345!\n\n\nok\r\n  \n x"}
		for i := 0; i < 3000; i++ {
			texts = append(texts, randText(r, r.Intn(24)))
		}
		for _, s := range texts {
			fast, slow := re.find(s), re.findSlow(s)
			if len(fast) == 0 && len(slow) == 0 {
				continue
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("pattern %q text %q:\n fast %v\n slow %v", pat, s, fast, slow)
			}
		}
	}
}

func TestUnknownRegexUsesRegexp2(t *testing.T) {
	re, err := compileRegex(`\d+|[a-z]+(?=!)`)
	if err != nil {
		t.Fatal(err)
	}
	if re.fast != nil {
		t.Fatal("unexpected fast path")
	}
	got := re.find("ab12 cd! é3")
	want := [][2]int{{2, 4}, {5, 7}, {11, 12}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func BenchmarkSplitCL100k(b *testing.B) {
	re, _ := compileRegex(cl100kPattern)
	s := strings.Repeat("The quick brown fox, it's 2024! Über café 中文 😀\n", 50)
	b.SetBytes(int64(len(s)))
	for i := 0; i < b.N; i++ {
		re.find(s)
	}
}

func BenchmarkSplitCL100kRegexp2(b *testing.B) {
	re, _ := compileRegex(cl100kPattern)
	s := strings.Repeat("The quick brown fox, it's 2024! Über café 中文 😀\n", 50)
	b.SetBytes(int64(len(s)))
	for i := 0; i < b.N; i++ {
		re.findSlow(s)
	}
}

// TestFastJSONMatchesEncodingJSON checks the vocab and merges scanners.
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	vocabs := []string{
		`{}`, ` { "a" : 1 , "b":2 }`, `{"\u00e9\ud83d\ude00\"\\\/\n": 3, "Ġ": 0, "x": -1}`, `{"a": 1, "a": 2}`,
	}
	for _, v := range vocabs {
		got, ok := fastVocab([]byte(v))
		var want map[string]int
		if err := json.Unmarshal([]byte(v), &want); err != nil {
			t.Fatal(err)
		}
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("fastVocab(%s) = %v %v, want %v", v, got, ok, want)
		}
	}
	for _, bad := range []string{`{"a": 1.5}`, `{"a": 1,}`, `{"a" 1}`, `[1]`, `{"a": 1} x`, `{"a\x01": 1}`, `{"a": "1"}`} {
		if _, ok := fastVocab([]byte(bad)); ok {
			t.Errorf("fastVocab(%q) accepted", bad)
		}
	}
	merges := []string{`[]`, `["a b", "\u0120 \u0120"]`, ` [ ["a","b"] , ["\"", "\\"] ]`}
	for _, m := range merges {
		list, pairs, ok := fastMerges([]byte(m))
		if !ok {
			t.Errorf("fastMerges(%s) failed", m)
			continue
		}
		var want []any
		json.Unmarshal([]byte(m), &want)
		var flat []string
		for _, w := range want {
			switch w := w.(type) {
			case string:
				flat = append(flat, w)
			case []any:
				flat = append(flat, w[0].(string), w[1].(string))
			}
		}
		if len(flat) != len(list) || (len(flat) > 0 && !reflect.DeepEqual(flat, list)) || (pairs != strings.Contains(m, "[[") && pairs != strings.Contains(m, "[ [")) {
			t.Errorf("fastMerges(%s) = %q %v, want %q", m, list, pairs, flat)
		}
	}
	for _, bad := range []string{`["a b",]`, `[["a"]]`, `[["a","b","c"]]`, `["a", ["b", "c"]]`, `{}`} {
		if _, _, ok := fastMerges([]byte(bad)); ok {
			t.Errorf("fastMerges(%q) accepted", bad)
		}
	}
}
