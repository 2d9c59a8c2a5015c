// Package builtin embeds masque's built-in default model: stories260K, a real
// 260K-parameter Llama trained on TinyStories by Andrej Karpathy for llama2.c
// (MIT licence), with its 512-token tokenizer. It lets `masque generate` work
// on a fresh clone with nothing else.
package builtin

import _ "embed"

// Model is the llama2.c checkpoint stories260K.bin.
//
//go:embed stories260K.bin
var Model []byte

// Tokenizer is the llama2.c tokenizer tok512.bin.
//
//go:embed tok512.bin
var Tokenizer []byte

// Name is how the built-in model is shown to users.
const Name = "builtin:stories260K"
