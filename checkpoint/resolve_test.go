package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/hub"
)

// TestResolveHubCache lays out a Hugging Face cache as huggingface_hub
// leaves it (blobs, snapshot links, refs/main) and resolves org/name to the
// snapshot, while an existing path of the same shape stays a path.
func TestResolveHubCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	t.Chdir(t.TempDir())
	commit := strings.Repeat("c0ffee", 6) + "beef"
	repo := filepath.Join(cache, "models--org--tiny")
	snap := filepath.Join(repo, "snapshots", commit)
	os.MkdirAll(filepath.Join(repo, "blobs"), 0o755)
	os.MkdirAll(snap, 0o755)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	for _, f := range []string{"config.json", "model.safetensors"} {
		blob := filepath.Join(repo, "blobs", f+"-etag")
		os.WriteFile(blob, []byte(f), 0o644) // only the layout matters here
		if err := os.Symlink(filepath.Join("..", "..", "blobs", f+"-etag"), filepath.Join(snap, f)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644)

	for _, ref := range []string{"org/tiny", "org/tiny@main", "org/tiny@" + commit[:7]} {
		got, err := Resolve(ref)
		if err != nil || got != snap {
			t.Fatalf("Resolve(%s) = %s, %v; want %s", ref, got, err, snap)
		}
	}
	_, err := Resolve("org/absent")
	if !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "masque pull org/absent") {
		t.Fatalf("absent model: %v", err)
	}
	// A local folder of the same shape wins over the cache.
	os.MkdirAll("org/tiny", 0o755)
	if got, err := Resolve("org/tiny"); err != nil || got != "org/tiny" {
		t.Fatalf("local folder: %s %v", got, err)
	}
	// Paths and names that are no hub ids pass through unchanged.
	for _, p := range []string{"", "builtin:voices", "/nonexistent/model", "x.gguf", "models/missing.gguf", "out/model.bin"} {
		if got, err := Resolve(p); err != nil || got != p {
			t.Fatalf("Resolve(%q) = %q, %v", p, got, err)
		}
	}
}
