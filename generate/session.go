package generate

import (
	"context"
	"errors"
	"slices"

	"github.com/masque-ai/masque/model"
)

// Session owns a KV cache and remembers which ids it holds, so that
// successive generations over a growing token sequence (the turns of a
// chat, re-rendered by a template each time) feed only what is new. If the
// sequence diverges from what is cached, the cache is cut back to the
// longest common prefix. A Session is not safe for concurrent use.
type Session struct {
	// Model is the model the cache belongs to.
	Model *model.Model
	// Cache holds the keys and values of Tokens().
	Cache  *model.Cache
	tokens []int
}

// NewSession returns a Session with an empty cache of maxSeq positions
// (≤ 0: the model's maximum sequence length).
func NewSession(m *model.Model, maxSeq int) *Session {
	return &Session{Model: m, Cache: m.NewCache(maxSeq)}
}

// Tokens returns the ids whose keys and values the cache holds. The slice
// belongs to the Session: do not modify it.
func (s *Session) Tokens() []int { return s.tokens }

// Reset empties the cache.
func (s *Session) Reset() {
	s.Cache.Reset()
	s.tokens = s.tokens[:0]
}

// Generate generates a continuation of tokens, the whole sequence so far
// (for a chat: every turn, rendered, ending with the assistant prompt). The
// longest prefix of tokens already in the cache is reused (at least the
// last token is always fed again, because its logits are needed);
// Result.CachedTokens says how many were reused and Result.PromptIDs are
// the ids fed. The repetition penalty sees the whole sequence. Otherwise it
// behaves like Generate.
func (s *Session) Generate(ctx context.Context, tok Tokenizer, tokens []int, o Options, onText func(string) error) (*Result, error) {
	if len(tokens) == 0 {
		return nil, errors.New("generate: empty prompt")
	}
	p := 0
	for p < len(s.tokens) && p < len(tokens) && s.tokens[p] == tokens[p] {
		p++
	}
	p = min(p, len(tokens)-1, s.Cache.Len())
	s.Cache.Truncate(p)
	s.tokens = s.tokens[:p]
	res, err := run(ctx, s.Model, s.Cache, tok, tokens[:p], tokens[p:], o, onText)
	if res != nil {
		// The cache now holds a prefix of tokens followed by res.IDs.
		n := s.Cache.Len()
		s.tokens = slices.Clone(tokens)
		if n <= len(tokens) {
			s.tokens = s.tokens[:n]
		} else {
			s.tokens = append(s.tokens, res.IDs[:n-len(tokens)]...)
		}
	}
	return res, err
}
