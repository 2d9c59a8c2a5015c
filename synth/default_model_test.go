package synth

import (
	"os"

	"github.com/masque-ai/masque/checkpoint"
	builtinmodels "github.com/masque-ai/masque/internal/builtin"
)

// The tests of this package use the small built-in llama2.c model wherever
// they name no model (the default, builtin:voices, is fifty times larger);
// checkpoint's tests cover the default itself.
func init() { os.Setenv(checkpoint.DefaultModelEnv, builtinmodels.Stories) }
