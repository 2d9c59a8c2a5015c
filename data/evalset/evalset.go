// Package evalset embeds masque's own role-play evaluation set, written for
// the project: twelve personas in the Persona-Pruner layout (a description,
// an optional system prompt and 20 persona-specific questions each) and 20
// general questions asked of every persona. README.md describes it.
package evalset

import "embed"

// Name is how commands refer to the embedded set (--set builtin).
const Name = "builtin"

// FS holds the set in the layout roleplay.LoadSetFS reads.
//
//go:embed set.json general.txt */description.txt */specific.txt */system.txt
var FS embed.FS
