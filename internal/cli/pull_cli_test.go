package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/hub/hubtest"
)

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPullCLI pulls a tiny model and a GGUF file from a local test hub,
// generates with --model org/name and checks the output equals generating
// from the same files on disk; then list and rm.
func TestPullCLI(t *testing.T) {
	h := hubtest.New(t)
	cache := t.TempDir()
	t.Setenv("HF_ENDPOINT", h.URL)
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HUGGING_FACE_HUB_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", filepath.Join(t.TempDir(), "none"))
	td, _ := filepath.Abs("../../testdata")
	t.Chdir(t.TempDir()) // so no folder named org/... is found before the cache

	// hf-tiny/llama (vocabulary 512) with the stories260K tokenizer beside it.
	hf := map[string][]byte{
		"config.json":       readFixture(t, filepath.Join(td, "hf-tiny/llama/config.json")),
		"model.safetensors": readFixture(t, filepath.Join(td, "hf-tiny/llama/model.safetensors")),
		"tokenizer.bin":     readFixture(t, filepath.Join(td, "stories260K/tok512.bin")),
		"golden.json":       readFixture(t, filepath.Join(td, "hf-tiny/llama/golden.json")),
	}
	commit := h.Commit("org/tiny-llama", "main", hf)
	local := t.TempDir()
	for n, b := range hf {
		os.WriteFile(filepath.Join(local, n), b, 0o644)
	}
	gguf := readFixture(t, filepath.Join(td, "gguf/tiny-llama-q4_0.gguf"))
	h.Commit("org/tiny-llama-GGUF", "main", map[string][]byte{
		"tiny-llama-Q4_0.gguf": gguf,
		"tiny-llama-Q8_0.gguf": readFixture(t, filepath.Join(td, "gguf/crosscheck.gguf")),
		"README.md":            []byte("# GGUF\n"),
	})

	// Before the pull: a clear error.
	gen := []string{"generate", "--prompt", "Once upon a time", "--temperature", "0", "-n", "12", "--json"}
	code, _, errs := run(t, "", append(gen, "--model", "org/tiny-llama")...)
	if code != 1 || !strings.Contains(errs, "masque pull org/tiny-llama") {
		t.Fatalf("before pull: code %d, %s", code, errs)
	}

	code, out, errs := run(t, "", "pull", "org/tiny-llama", "--include", "*.json", "--include", "*.safetensors", "--include", "tokenizer.bin", "--exclude", "golden*")
	if code != 0 {
		t.Fatal(errs)
	}
	snap := filepath.Join(cache, "models--org--tiny-llama", "snapshots", commit)
	if strings.TrimSpace(out) != snap {
		t.Fatalf("pull printed %q, want %s", out, snap)
	}
	if !strings.Contains(errs, "3 files") || !strings.Contains(errs, "--model org/tiny-llama") {
		t.Fatalf("summary: %s", errs)
	}
	if _, err := os.Lstat(filepath.Join(snap, "golden.json")); err == nil {
		t.Fatal("--exclude ignored")
	}
	code, _, errs = run(t, "", "pull", "org/tiny-llama", "--include", "*.json", "--include", "*.safetensors", "--include", "tokenizer.bin", "--exclude", "golden*")
	if code != 0 || !strings.Contains(errs, "0 B downloaded") {
		t.Fatalf("second pull: %d %s", code, errs)
	}

	code, want, errs := run(t, "", append(gen, "--model", local)...)
	if code != 0 {
		t.Fatal(errs)
	}
	for _, ref := range []string{"org/tiny-llama", "org/tiny-llama@main", "org/tiny-llama@" + commit[:8]} {
		code, got, errs := run(t, "", append(gen, "--model", ref)...)
		if code != 0 {
			t.Fatalf("--model %s: %s", ref, errs)
		}
		if got != want {
			t.Fatalf("--model %s generated\n%s\nthe folder generates\n%s", ref, got, want)
		}
	}

	// A GGUF file from a GGUF repository.
	code, out, errs = run(t, "", "pull", "org/tiny-llama-GGUF")
	if code != 1 || !strings.Contains(errs, "org/tiny-llama-GGUF:Q4_0") {
		t.Fatalf("GGUF repo without a tag: %d %s", code, errs)
	}
	code, out, errs = run(t, "", "pull", "-q", "org/tiny-llama-GGUF:Q4_0")
	if code != 0 || filepath.Base(strings.TrimSpace(out)) != "tiny-llama-Q4_0.gguf" || errs != "" {
		t.Fatalf("GGUF pull: %d %q %s", code, out, errs)
	}
	ggufLocal := filepath.Join(local, "x.gguf")
	os.WriteFile(ggufLocal, gguf, 0o644)
	_, want, _ = run(t, "", append(gen, "--model", ggufLocal)...)
	code, got, errs := run(t, "", append(gen, "--model", "org/tiny-llama-GGUF:Q4_0")...)
	if code != 0 || got != want {
		t.Fatalf("GGUF --model org/name:Q4_0: %d %s\n%s\nwant\n%s", code, errs, got, want)
	}

	// list
	code, out, errs = run(t, "", "list")
	if code != 0 {
		t.Fatal(errs)
	}
	t.Logf("masque list:\n%s%s", out, errs)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "MODEL") ||
		!strings.Contains(lines[1], "org/tiny-llama ") || !strings.Contains(lines[1], " main ") || !strings.Contains(lines[1], " HF ") ||
		!strings.Contains(lines[2], "org/tiny-llama-GGUF") || !strings.Contains(lines[2], "GGUF tiny-llama-Q4_0.gguf") {
		t.Fatalf("list:\n%s", out)
	}
	code, out, _ = run(t, "", "list", "--json")
	var models []struct {
		Repo      string `json:"repo"`
		Size      int64  `json:"size"`
		Snapshots []struct {
			Kind string `json:"kind"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(out), &models); err != nil || len(models) != 2 || models[1].Size != int64(len(gguf)) || models[1].Snapshots[0].Kind != "gguf" {
		t.Fatalf("list --json: %v %s", err, out)
	}

	// rm
	code, out, errs = run(t, "", "rm", "org/tiny-llama")
	if code != 0 || !strings.Contains(out, "removed org/tiny-llama (main)") {
		t.Fatalf("rm: %d %s %s", code, out, errs)
	}
	code, _, errs = run(t, "", append(gen, "--model", "org/tiny-llama")...)
	if code != 1 || !strings.Contains(errs, "masque pull org/tiny-llama") {
		t.Fatalf("after rm: %d %s", code, errs)
	}
	code, _, errs = run(t, "", "rm", "org/tiny-llama")
	if code != 1 || !strings.Contains(errs, "not in the cache") {
		t.Fatalf("rm twice: %d %s", code, errs)
	}

	// A repository without safetensors (PyTorch .bin only) is fetched, with a warning.
	h.Commit("org/pt-only", "main", map[string][]byte{"config.json": hf["config.json"], "pytorch_model.bin": hf["model.safetensors"]})
	code, _, errs = run(t, "", "pull", "org/pt-only")
	if code != 0 || !strings.Contains(errs, "warning: --model org/pt-only will not open it") || !strings.Contains(errs, "no .safetensors weights") {
		t.Fatalf("pt-only: %d %s", code, errs)
	}

	// Gated: the message says what to do.
	h.Commit("org/gated", "main", hf)
	h.Gate("org/gated")
	code, _, errs = run(t, "", "pull", "org/gated")
	if code != 1 || !strings.Contains(errs, "gated") || !strings.Contains(errs, "HF_TOKEN") {
		t.Fatalf("gated: %d %s", code, errs)
	}
	t.Setenv("HF_TOKEN", h.Token)
	if code, _, errs = run(t, "", "pull", "-q", "org/gated"); code != 0 {
		t.Fatalf("gated with token: %s", errs)
	}
	code, _, errs = run(t, "", "pull", "not-a-repo")
	if code != 2 || !strings.Contains(errs, "org/name") {
		t.Fatalf("bad id: %d %s", code, errs)
	}
}
