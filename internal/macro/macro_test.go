package macro

import (
	"errors"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	pairs := []string{"{{char}}", "Mira", "{{user}}", "User", "{{original}}", strings.Repeat("o", 100)}
	got, err := Expand("x", "Hi {{user}}, I am {{char}}.", 100, pairs...)
	if err != nil || got != "Hi User, I am Mira." {
		t.Fatalf("got %q, %v", got, err)
	}
	// exactly at the limit is allowed, one byte over is not
	s := strings.Repeat("{{original}}", 3)
	if _, err := Expand("x", s, 300, pairs...); err != nil {
		t.Fatal(err)
	}
	_, err = Expand("the system prompt", s, 299, pairs...)
	var tl *TooLongError
	if !errors.As(err, &tl) || tl.Size != 300 || tl.Limit != 299 || !strings.Contains(err.Error(), "the system prompt") {
		t.Fatalf("error %v", err)
	}
	// a huge expansion is refused without overflow
	big := strings.Repeat("o", 1<<20)
	_, err = Expand("x", strings.Repeat("{{original}}", 1<<18), 1<<16, "{{original}}", big)
	if !errors.As(err, &tl) || tl.Size < 1<<38 {
		t.Fatalf("error %v", err)
	}
	// the input itself over the limit
	if _, err := Expand("x", strings.Repeat("a", 11), 10); err == nil {
		t.Fatal("no error for an input over the limit")
	}
}

func TestBoundIsAnUpperBound(t *testing.T) {
	pairs := []string{"aa", "bbb", "a", "cccc", "ab", ""}
	for _, s := range []string{"", "a", "aa", "aaa", "aba", "abab", "aaaaab", "baaab"} {
		got := strings.NewReplacer(pairs...).Replace(s)
		if b := Bound(s, 1000, pairs...); b < len(got) {
			t.Errorf("Bound(%q) = %d < %d", s, b, len(got))
		}
	}
}
