// Package builtin embeds masque's built-in models, so that every command works
// on a fresh clone with nothing else:
//
//   - builtin:voices (the default): a 12.6M-parameter Llama trained from
//     scratch by masque on nine public-domain voices (the voices corpus, see
//     data/voices), with its 8,192-token tokenizer and ChatML template. Each
//     voice is a persona, selected by its system prompt. The model card is
//     voices/README.md. It comes with an evaluation kit (VoicesKit): the
//     corpus's personas, validation and test splits, manifest and voice
//     classifier, which `masque eval voices` and `masque sculpt --persona`
//     use when no corpus is given.
//   - builtin:stories260K: a real 260K-parameter Llama trained on TinyStories
//     by Andrej Karpathy for llama2.c (MIT licence), with its 512-token
//     tokenizer. Tests use it where a model only has to be small.
package builtin

import (
	"embed"
	"io/fs"
)

// Names of the built-in models as users write them (--model NAME).
const (
	Voices  = "builtin:voices"
	Stories = "builtin:stories260K"
	Default = Voices
	// Alias is accepted for the default model.
	Alias = "builtin"
)

// Model is the llama2.c checkpoint stories260K.bin.
//
//go:embed stories260K.bin
var Model []byte

// Tokenizer is the llama2.c tokenizer tok512.bin.
//
//go:embed tok512.bin
var Tokenizer []byte

//go:embed voiceskit
var voicesKitFS embed.FS

// VoicesKitFS is the voices evaluation kit: a voices corpus folder without
// train splits (personas.json, MANIFEST.json, classifier.bin, and each
// VOICE/valid.jsonl and VOICE/test.jsonl).
func VoicesKitFS() fs.FS { return sub(voicesKitFS, "voiceskit") }

// VoicesKitDir unpacks the voices evaluation kit and returns the folder.
func VoicesKitDir() (string, error) { return voicesKitFolder.Dir() }

var voicesKitFolder = newFolder(VoicesKitFS(), "voices-kit")

// IsVoices reports whether name means builtin:voices ("builtin" does too).
func IsVoices(name string) bool { return name == Alias || name == Voices }

func sub(f embed.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil { // unreachable: dir is a literal embedded above
		panic(err)
	}
	return s
}
