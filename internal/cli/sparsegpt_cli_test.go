package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/mask"
)

// TestSubnetSparseGPTSettings: --sparsegpt-block, --sparsegpt-damp and
// --sparsegpt-whole-block reach SparseGPT and are recorded in the mask;
// they are refused with another method.
func TestSubnetSparseGPTSettings(t *testing.T) {
	dir := t.TempDir()
	calib := filepath.Join(dir, "calib.txt")
	os.WriteFile(calib, []byte("Once upon a time there was a little dog.\nThe cat sat on the mat and looked at the sun.\n"), 0o644)
	out := filepath.Join(dir, "sg.mask.safetensors")
	code, _, errs := run(t, "", "subnet", "--method", "sparsegpt", "--calib-text", calib, "--only", "mlp", "--sparsity", "0.5",
		"--sparsegpt-block", "16", "--sparsegpt-damp", "0.05", "--sparsegpt-whole-block", "--workers", "2", "--out", out)
	if code != 0 {
		t.Fatalf("subnet sparsegpt: %s", errs)
	}
	mk, err := mask.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if x := mk.Info.Extra; x["sparsegpt_block"] != "16" || x["sparsegpt_damp"] != "0.05" || x["sparsegpt_select"] != "block" || x["sparsegpt"] != "sequential" {
		t.Fatalf("mask metadata %v", x)
	}
	code, _, errs = run(t, "", "subnet", "--method", "wanda", "--calib-text", calib, "--sparsegpt-block", "16", "--out", filepath.Join(dir, "w.mask.safetensors"))
	if code == 0 || !strings.Contains(errs, "SparseGPT's settings") {
		t.Fatalf("wanda with --sparsegpt-block: exit %d, %s", code, errs)
	}
}
