package cli

import (
	"strings"
	"testing"
)

// TestSubnetStudyBadInput checks that the study's bad flags fail at once
// with a usage error or a clear message (the study itself is tested in
// subnet/study).
func TestSubnetStudyBadInput(t *testing.T) {
	out := t.TempDir()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--preset", "quick"}, 2, "--out is required"},
		{[]string{"--out", out, "--preset", "huge"}, 2, `unknown preset "huge"`},
		{[]string{"--out", out, "--sparsity", "0.5,x"}, 2, `bad number "x"`},
		{[]string{"--out", out, "--methods", "obs"}, 2, "--methods"},
		{[]string{"--out", out, "--pairs", "kjv"}, 2, "bad contrastive pair"},
		{[]string{"--out", out, "--eval-limit", "0"}, 2, "--eval-limit must be positive"},
		{[]string{"--out", out, "--preset", "quick", "--sparsity", "1.5"}, 1, "sparsity 1.5 is outside (0, 1)"},
		{[]string{"--out", out, "--preset", "quick", "--voices", "kjv,klingon"}, 1, `unknown voice "klingon"`},
	}
	for _, tc := range cases {
		code, _, errs := run(t, "", append([]string{"subnet", "study"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	code, out2, _ := run(t, "", "subnet", "study", "--help")
	if code != 0 || !strings.Contains(out2, "--preset") || !strings.Contains(out2, "registry.yaml") {
		t.Fatalf("help: %d %s", code, out2)
	}
}
