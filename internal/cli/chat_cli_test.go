package cli

import (
	"strings"
	"testing"
)

// TestChatTurns chats two turns with the built-in model (the second reuses
// the cached first turn), resets and exits.
func TestChatTurns(t *testing.T) {
	code, out, errs := run(t, "Hello there.\nTell me a story.\n/reset\nHi.\n/exit\n", "chat", "--system", "You are kind.", "-n", "6", "--temperature", "0")
	if code != 0 {
		t.Fatalf("chat: exit %d: %s", code, errs)
	}
	if n := strings.Count(out, "> "); n < 4 {
		t.Errorf("%d prompts in %q, want 4", n, out)
	}
	if !strings.Contains(errs, "masque chat with") {
		t.Errorf("no banner: %q", errs)
	}
	// The same first turn after /reset gives the same greedy reply.
	code, again, _ := run(t, "Hello there.\n/exit\n", "chat", "--system", "You are kind.", "-n", "6", "--temperature", "0")
	first := strings.SplitN(out, "> ", 3)
	if code != 0 || len(first) < 3 || !strings.HasPrefix(again, "> "+first[1]) {
		t.Errorf("first turn not reproducible: %q vs %q", again, out)
	}
}
