package generate

import (
	"strings"
	"testing"
)

func TestReasoningFilter(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<think>sad and proud</think>And he wept.", "And he wept."},
		{"\n <think>a\nb</think>\n\nAnd he wept.", "And he wept."},
		{"And he wept.", "And he wept."},
		{"  And he <think>x</think> wept.", "  And he <think>x</think> wept."},
		{"<think>never closed", ""},
		{"<thi", "<thi"},
		{"<thinker>", "<thinker>"},
		{"", ""},
		{"<think></think>", ""},
		{"<think>a</think>b</think>c", "b</think>c"},
	} {
		if got := StripReasoning(c.in); got != c.want {
			t.Errorf("StripReasoning(%q) = %q, want %q", c.in, got, c.want)
		}
		// Every way of cutting the text into two or three pieces gives the
		// same result as a stream.
		for i := 0; i <= len(c.in); i++ {
			for j := i; j <= len(c.in); j++ {
				var f ReasoningFilter
				got := f.Feed(c.in[:i]) + f.Feed(c.in[i:j]) + f.Feed(c.in[j:]) + f.Flush()
				if got != c.want {
					t.Fatalf("stream %q|%q|%q = %q, want %q", c.in[:i], c.in[i:j], c.in[j:], got, c.want)
				}
			}
		}
	}
	// Text after the block streams as it comes, not at the end.
	var f ReasoningFilter
	if f.Feed("<think>long "+strings.Repeat("x", 1000)) != "" || f.Feed("</think>And") != "And" || f.Feed(" he") != " he" {
		t.Fatal("not streamed")
	}
	if len(f.buf) > len(ThinkClose) {
		t.Fatalf("held %d bytes", len(f.buf))
	}
}
