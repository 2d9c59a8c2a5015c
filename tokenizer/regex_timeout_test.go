package tokenizer

import (
	"errors"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRegexTimeout: a pre-tokenizer pattern with catastrophic
// backtracking ((a+)+$ took over a minute on 31 characters) ends with a
// clear error after the match timeout instead of hanging the process.
func TestRegexTimeout(t *testing.T) {
	defer func(d time.Duration) { RegexTimeout = d }(RegexTimeout)
	RegexTimeout = 300 * time.Millisecond
	const js = `{"model":{"type":"BPE","vocab":{"a":0,"b":1,"aa":2},"merges":["a a"]},
		"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(a+)+$"},"behavior":"Isolated","invert":false}}`
	tk, err := FromJSON([]byte(js), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := tk.EncodeChecked("aaab", false); err != nil || len(ids) == 0 {
		t.Fatalf("short text: %v %v", ids, err)
	}
	start := time.Now()
	ids, err := tk.EncodeChecked(strings.Repeat("a", 31)+"b", false)
	took := time.Since(start)
	var te *RegexTimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "(a+)+$") || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("ids %v, error %v; want a regex timeout error naming the pattern", ids, err)
	}
	if took > 5*time.Second {
		t.Fatalf("took %v with a %v timeout", took, RegexTimeout)
	}
	// Encode, which has no error, returns no ids rather than hanging.
	if ids := tk.Encode(strings.Repeat("a", 31)+"b", false); len(ids) != 0 {
		t.Fatalf("Encode gave %v", ids)
	}
}

// TestRegexTimeoutAtLoad: a normalizer pattern that times out on an added
// token while the tokenizer is loaded is an error of FromJSON, not a
// crash.
func TestRegexTimeoutAtLoad(t *testing.T) {
	defer func(d time.Duration) { RegexTimeout = d }(RegexTimeout)
	RegexTimeout = 300 * time.Millisecond
	js := `{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]},
		"normalizer":{"type":"Replace","pattern":{"Regex":"(a+)+$"},"content":"x"},
		"added_tokens":[{"id":2,"content":"` + strings.Repeat("a", 31) + `b","special":false,"normalized":true}]}`
	_, err := FromJSON([]byte(js), nil)
	var te *RegexTimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("error %v, want a regex timeout", err)
	}
}

// TestLinearRegex: patterns without lookarounds, backreferences or
// constructs whose meaning differs between .NET and Go run on Go's
// linear-time regexp (no backtracking at all) and give the same matches
// as regexp2; the others stay on regexp2.
func TestLinearRegex(t *testing.T) {
	linear := []string{`(a+)+b`, `[\p{L}]+|[\p{N}]{1,3}| ?[^\p{L}\p{N}\n]+`, `\p{Lu}?\p{Ll}+|[0-9]+|.`, `(x|xy)+z?`, `[^a-c]*?c`, `\n+|[ \t]+`, `(?:ab|a)(?:bc|c)?`}
	backtracking := []string{`(a+)+$`, `\d+`, `\w+`, `\s+(?!\S)`, `(a)\1`, `(?i)ß`, `[a-z-[aeiou]]+`, `\bx`, `(?<n>a)`, `a$`}
	for _, p := range linear {
		re, err := compileRegex(p)
		if err != nil {
			t.Fatal(err)
		}
		if re.lin == nil {
			t.Errorf("%s: not run in linear time", p)
			continue
		}
		rng := rand.New(rand.NewSource(1))
		alphabet := []rune("aabbcxyz AZ09\n\t.-é漢ß!")
		for i := 0; i < 300; i++ {
			rs := make([]rune, rng.Intn(24))
			for j := range rs {
				rs[j] = alphabet[rng.Intn(len(alphabet))]
			}
			s := string(rs)
			lin := re.find(s)
			slow, err := re.findSlowErr(s)
			if err != nil {
				t.Fatal(err)
			}
			if !(len(lin) == 0 && len(slow) == 0) && !reflect.DeepEqual(lin, slow) {
				t.Fatalf("%s on %q: Go regexp %v, regexp2 %v", p, s, lin, slow)
			}
		}
	}
	for _, p := range backtracking {
		re, err := compileRegex(p)
		if err != nil {
			continue // not a valid .NET pattern either
		}
		if re.lin != nil {
			t.Errorf("%s runs on Go's regexp although its meaning differs there", p)
		}
	}
	// (a+)+b, the catastrophic case without $, is instant.
	re, _ := compileRegex(`(a+)+b`)
	start := time.Now()
	if got := re.find(strings.Repeat("a", 5000) + "c"); len(got) != 0 || time.Since(start) > time.Second {
		t.Fatalf("(a+)+b: %v in %v", got, time.Since(start))
	}
}
