package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/eval/report"
	"github.com/masque-ai/masque/eval/roleplay"
)

// TestEvalCompareErrors checks eval compare's exit codes: options the runs
// do not match and flag mistakes are usage errors (2), an unreadable run is
// an error (1); a good comparison prints its table and writes both files.
func TestEvalCompareErrors(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []*roleplay.Run{{Label: "a", Method: "dense"}, {Label: "b", Method: "wanda"}} {
		r.Format, r.Complete = roleplay.RunFormat, true
		os.MkdirAll(filepath.Join(dir, r.Label), 0o755)
		if err := roleplay.WriteRun(filepath.Join(dir, r.Label, roleplay.RunFile), r); err != nil {
			t.Fatal(err)
		}
	}
	a, b, out := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "cmp")
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{a, b}, 2, "--out is required"},
		{[]string{a, b, "--out", out, "--dense", "zzz"}, 2, `no run labelled "zzz"`},
		{[]string{a, b, "--out", out, "--pairwise"}, 2, "--pairwise needs --judge-url"},
		{[]string{a, filepath.Join(dir, "none"), "--out", out}, 1, "reading a run"},
	} {
		code, _, errs := run(t, "", append([]string{"eval", "compare"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.says) {
			t.Errorf("%q: exit %d, %s; want %d and %q", tc.args, code, errs, tc.code, tc.says)
		}
	}
	code, stdout, errs := run(t, "", "eval", "compare", a, b, "--out", out)
	if code != 0 || !strings.Contains(stdout, "Δ vs a") || !strings.Contains(errs, "wrote "+filepath.Join(out, report.CompareFile)) {
		t.Fatalf("exit %d: %s %s", code, stdout, errs)
	}
}
