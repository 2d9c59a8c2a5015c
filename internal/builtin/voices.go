package builtin

import (
	"embed"
	"io/fs"
)

//go:embed voices
var voicesFS embed.FS

// VoicesFS is the Hugging Face folder of builtin:voices (config.json,
// model.safetensors, tokenizer files, generation_config.json, run.json,
// loss.svg and the model card README.md).
func VoicesFS() fs.FS { return sub(voicesFS, "voices") }

// VoicesDir unpacks builtin:voices into the cache (see Unpack) and returns
// the folder.
func VoicesDir() (string, error) { return voicesFolder.Dir() }

var voicesFolder = newFolder(VoicesFS(), "voices")
