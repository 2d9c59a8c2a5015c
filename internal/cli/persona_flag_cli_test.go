package cli

import (
	"strings"
	"testing"

	datavoices "github.com/masque-ai/masque/data/voices"
)

// TestPersonaFlag: generate --persona VOICE is --system with that voice's
// prompt; an unknown voice and --persona with --system are usage errors.
func TestPersonaFlag(t *testing.T) {
	sys, err := datavoices.SystemPrompt("devil")
	if err != nil || !strings.Contains(sys, "Devil's Dictionary") {
		t.Fatalf("devil's prompt: %q %v", sys, err)
	}
	code, a, errs := run(t, "", "generate", "--persona", "devil", "--prompt", "Define: PEACE.", "--max-tokens", "3", "--temperature", "0", "--json")
	if code != 0 {
		t.Fatalf("--persona: %d %s", code, errs)
	}
	code, b, errs := run(t, "", "generate", "--system", sys, "--prompt", "Define: PEACE.", "--max-tokens", "3", "--temperature", "0", "--json")
	if code != 0 || a != b {
		t.Fatalf("--persona devil and --system differ: %q vs %q (%s)", a, b, errs)
	}
	if code, _, errs := run(t, "", "generate", "--persona", "pirate", "--prompt", "x"); code != 2 || !strings.Contains(errs, "kjv, web, spurgeon") {
		t.Errorf("unknown voice: %d %s", code, errs)
	}
	if code, _, errs := run(t, "", "generate", "--persona", "kjv", "--system", "x", "--prompt", "x"); code != 2 || !strings.Contains(errs, "not both") {
		t.Errorf("--persona with --system: %d %s", code, errs)
	}
}
