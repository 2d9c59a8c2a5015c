package serve

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

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

// tokenizeRequest is POST /tokenize, in llama-server's shape; model (a
// persona id or the base's, default the base) is masque's addition, since
// a pruned persona can have a tokenizer of its own.
type tokenizeRequest struct {
	Model        string  `json:"model"`
	Content      *string `json:"content"`
	AddSpecial   bool    `json:"add_special"`
	ParseSpecial *bool   `json:"parse_special"`
	WithPieces   bool    `json:"with_pieces"`
}

// tokenPiece is a token with its text: a string, or the list of its bytes
// when they are not valid UTF-8 on their own (llama-server's shape).
type tokenPiece struct {
	ID    int `json:"id"`
	Piece any `json:"piece"`
}

// detokenizeRequest is POST /detokenize.
type detokenizeRequest struct {
	Model  string `json:"model"`
	Tokens []int  `json:"tokens"`
}

// tokenizerFor looks up the request's model for the tokenizer endpoints
// (the base when empty). The caller releases it.
func (s *Server) tokenizerFor(id string) (*loaded, *apiError) {
	if id == "" {
		id = s.opts.BaseID
	}
	return s.lookup(id)
}

// handleTokenize answers POST /tokenize: {"content": "...", "add_special":
// false, "with_pieces": false} → {"tokens": [ids]} (or [{"id", "piece"}]).
// Special tokens written in the content are always recognised
// (parse_special true, llama-server's default; false is refused).
func (s *Server) handleTokenize(w http.ResponseWriter, r *http.Request) *apiError {
	var req tokenizeRequest
	if e := decodeStrict(r, &req); e != nil {
		return e
	}
	if req.Content == nil {
		return badRequest("content", "missing_required_parameter", "'content' is required: the text to tokenize")
	}
	if len(*req.Content) > s.opts.MaxMessageBytes {
		return badRequest("content", "string_above_max_length", "'content' is limited to %d bytes", s.opts.MaxMessageBytes)
	}
	if req.ParseSpecial != nil && !*req.ParseSpecial {
		return badRequest("parse_special", "unsupported_value", "parse_special false is not supported: special tokens written in the text are always recognised")
	}
	p, e := s.tokenizerFor(req.Model)
	if e != nil {
		return e
	}
	defer p.base.release()
	tok := p.base.ck.Tokenizer
	ids, err := tok.EncodeChecked(*req.Content, req.AddSpecial)
	if err != nil {
		if e := tokenizeError(err); e != nil {
			return e
		}
		return badRequest("content", "invalid_value", "the content could not be tokenized: %v", err)
	}
	if !req.WithPieces {
		writeJSON(w, http.StatusOK, map[string]any{"tokens": ids})
		return nil
	}
	texts := p.base.tokenTexts()
	pieces := make([]tokenPiece, len(ids))
	for i, id := range ids {
		pieces[i] = tokenPiece{ID: id, Piece: texts.piece(tok.Token(id), id)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": pieces})
	return nil
}

// handleDetokenize answers POST /detokenize: {"tokens": [ids]} →
// {"content": "..."}, special tokens included.
func (s *Server) handleDetokenize(w http.ResponseWriter, r *http.Request) *apiError {
	var req detokenizeRequest
	if e := decodeStrict(r, &req); e != nil {
		return e
	}
	p, e := s.tokenizerFor(req.Model)
	if e != nil {
		return e
	}
	defer p.base.release()
	tok := p.base.ck.Tokenizer
	vocab := tok.VocabSize()
	if len(req.Tokens) > s.opts.MaxMessageBytes {
		return badRequest("tokens", "array_above_max_length", "at most %d tokens", s.opts.MaxMessageBytes)
	}
	for i, id := range req.Tokens {
		if id < 0 || id >= vocab {
			return badRequest("tokens", "invalid_value", "tokens[%d] = %d is outside the vocabulary [0, %d)", i, id, vocab)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"content": tok.Decode(req.Tokens, false)})
	return nil
}

// piece is a token's text for /tokenize: its text in the middle of a
// sequence, or, for a token that is not whole characters on its own, the
// list of its bytes: a byte-fallback token (<0xNN>), or a byte-level BPE
// token (GPT-2's byte alphabet).
func (t *tokenTable) piece(token string, id int) any {
	if id >= 0 && id < len(t.text) && t.ok[id] {
		return t.text[id]
	}
	if len(token) == 6 && strings.HasPrefix(token, "<0x") && token[5] == '>' {
		if b, err := strconv.ParseUint(token[3:5], 16, 8); err == nil && b >= utf8.RuneSelf {
			return []int{int(b)}
		}
	}
	if id >= 0 && id < len(t.text) && strings.ContainsRune(t.text[id], utf8.RuneError) {
		if b, ok := byteLevelBytes(token); ok && !utf8.Valid(b) {
			out := make([]int, len(b))
			for i, c := range b {
				out[i] = int(c)
			}
			return out
		}
	}
	if id >= 0 && id < len(t.text) {
		return t.text[id]
	}
	return ""
}

// byteLevelBytes maps a byte-level BPE token (every byte written as one
// character of GPT-2's bytes_to_unicode alphabet) back to its bytes; false
// when a character is outside the alphabet.
func byteLevelBytes(tok string) ([]byte, bool) {
	var out []byte
	for _, r := range tok {
		switch {
		case r >= '!' && r <= '~', r >= 0xA1 && r <= 0xAC, r >= 0xAE && r <= 0xFF:
			out = append(out, byte(r))
		case r >= 0x100 && r < 0x100+68:
			// The bytes outside the printable ranges, in order, from U+0100.
			out = append(out, byteLevelRest[r-0x100])
		default:
			return nil, false
		}
	}
	return out, len(out) > 0
}

// byteLevelRest lists the bytes that GPT-2's alphabet writes as U+0100
// onwards: 0x00-0x20, 0x7F-0xA0 and 0xAD.
var byteLevelRest = func() []byte {
	var b []byte
	for c := 0; c < 256; c++ {
		if !(c >= '!' && c <= '~' || c >= 0xA1 && c <= 0xAC || c >= 0xAE && c <= 0xFF) {
			b = append(b, byte(c))
		}
	}
	return b
}()
