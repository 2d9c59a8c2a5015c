package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/hub"
)

// Resolve says where the model a --model argument names lives on disk. A
// path that exists is itself; "org/name", "org/name@revision" or
// "org/name:QUANT" that is no path here names a model that masque pull (or
// huggingface_hub) put in the Hugging Face cache, and resolves to its
// snapshot folder, or to its GGUF file for a GGUF repository. A model id that
// is not in the cache is an error that says to pull it. Anything else (an
// empty path, a built-in name, a missing file) comes back unchanged, for Open
// to handle or report.
func Resolve(path string) (string, error) {
	if path == "" {
		return path, nil
	}
	if _, err := os.Lstat(path); err == nil || !hub.IsRef(path) || looksLikeFile(path) {
		return path, nil
	}
	p, err := hub.Lookup("", path)
	if err != nil {
		return "", fmt.Errorf("opening model: %s is no file or folder here, nor a pulled model: %w", path, err)
	}
	return p, nil
}

// HubID reports whether path has the shape that Resolve reads as a hub
// model id (org/name[@rev][:QUANT]) when no file or folder of that name
// exists.
func HubID(path string) bool {
	return hub.IsRef(path) && !looksLikeFile(path)
}

// looksLikeFile: a missing "dir/model.gguf" is a mistyped path, not a hub id.
func looksLikeFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gguf", ".bin", ".safetensors", ".json", ".pt", ".pth":
		return true
	}
	return false
}
