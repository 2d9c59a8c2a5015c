package serve

import (
	"errors"
	"net/http"

	"github.com/masque-ai/masque/tokenizer"
)

// tokenizeError is the answer to a text the model's tokenizer could not
// split in time (a pattern with catastrophic backtracking: see
// tokenizer.RegexTimeout), or nil for any other error.
func tokenizeError(err error) *apiError {
	var te *tokenizer.RegexTimeoutError
	if !errors.As(err, &te) {
		return nil
	}
	return newError(http.StatusUnprocessableEntity, typeInvalidRequest, "tokenizer_timeout", "",
		"the model's tokenizer could not split this text within %v (its pre-tokenizer pattern backtracks catastrophically on it); shorten or change the text, or fix the tokenizer's pattern", te.Timeout)
}
