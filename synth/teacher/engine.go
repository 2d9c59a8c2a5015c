package teacher

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/openaiclient"
)

// Engine is a Teacher that runs masque's own engine in-process: the
// conversation is rendered with the checkpoint's chat template and
// completed with generate.Generate. Without a Request.Seed, the seed is
// derived from the request's Key, so the same request always gives the
// same completion. It is safe for concurrent use (each call has its own KV
// cache), though on CPU one call at a time is usually fastest.
type Engine struct {
	// CK is the opened checkpoint.
	CK *checkpoint.Checkpoint
	// Name is reported as Response.Model (default: the checkpoint path).
	Name string
	// DefaultMaxTokens applies when Request.MaxTokens is 0 (0: until a stop
	// token or the end of the context).
	DefaultMaxTokens int
	// TruncateLeft keeps only the last tokens of a prompt that does not
	// leave room for MaxTokens (at least a quarter of the context) in the
	// context, instead of failing with openaiclient.KindContextLength. It lets a tiny
	// model stand in for a real teacher in tests and demos.
	TruncateLeft bool
}

// NewEngine returns an Engine over ck.
func NewEngine(ck *checkpoint.Checkpoint) *Engine {
	return &Engine{CK: ck, Name: ck.Path}
}

// Complete generates the reply to req.
func (e *Engine) Complete(ctx context.Context, req Request) (*Response, error) {
	return e.Stream(ctx, req, nil)
}

// Stream is Complete that also passes the reply's text to onText as it is
// generated (onText may be nil). An error from onText stops generation and
// is returned.
func (e *Engine) Stream(ctx context.Context, req Request, onText func(string) error) (*Response, error) {
	msgs := make([]chattemplate.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = chattemplate.Message{Role: m.Role, Content: m.Content}
	}
	ids, err := e.CK.EncodeChat(msgs, true, nil)
	if err != nil {
		return nil, &openaiclient.Error{Kind: openaiclient.KindRejected, Msg: fmt.Sprintf("rendering the chat: %v", err)}
	}
	if len(ids) == 0 {
		return nil, &openaiclient.Error{Kind: openaiclient.KindRejected, Msg: "empty prompt"}
	}
	ctxLen := e.CK.Model.NewCache(0).Max()
	if e.TruncateLeft {
		room := req.MaxTokens
		if room <= 0 || room > ctxLen/4*3 {
			room = ctxLen / 4
		}
		if keep := ctxLen - room; len(ids) > keep {
			ids = ids[len(ids)-keep:]
		}
	}
	if len(ids) >= ctxLen {
		return nil, &openaiclient.Error{Kind: openaiclient.KindContextLength, Msg: fmt.Sprintf("prompt of %d tokens does not fit the context of %d", len(ids), ctxLen)}
	}
	var seed uint64
	if req.Seed != nil {
		seed = uint64(*req.Seed)
	} else {
		b, _ := hex.DecodeString(Key(req))
		seed = binary.LittleEndian.Uint64(b)
	}
	o := generate.Options{
		MaxTokens:   req.MaxTokens,
		Temperature: float32(req.Temperature),
		TopP:        float32(req.TopP),
		Seed:        seed,
		Stop:        req.Stop,
		StopTokens:  e.CK.StopTokens(),
		SkipSpecial: true,
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = e.DefaultMaxTokens
	}
	tok := generate.FromTokenizer(e.CK.Tokenizer)
	res, err := generate.Generate(ctx, e.CK.Model, tok, ids, o, onText)
	if err != nil {
		if res != nil && res.FinishReason == generate.FinishCancelled && onText != nil {
			return nil, err
		}
		if strings.Contains(err.Error(), "context length") {
			return nil, &openaiclient.Error{Kind: openaiclient.KindContextLength, Msg: err.Error()}
		}
		return nil, err
	}
	if res.FinishReason == generate.FinishCancelled {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &openaiclient.Error{Kind: openaiclient.KindServer, Msg: "generation cancelled"}
	}
	name := e.Name
	if name == "" {
		name = e.CK.Path
	}
	return &Response{Text: res.Text, FinishReason: res.FinishReason, PromptTokens: res.PromptTokens,
		CompletionTokens: res.CompletionTokens, Model: name}, nil
}
