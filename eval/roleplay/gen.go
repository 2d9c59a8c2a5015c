package roleplay

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/jsonlstore"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/openaiclient"
)

// Generation is a candidate answer.
type Generation struct {
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason,omitempty"`
	Tokens       int    `json:"tokens,omitempty"`
}

// Generator produces the answers of the model under test.
type Generator interface {
	// Fingerprint identifies the model and its decoding settings; with the
	// prompt it keys the generation cache, so it must change whenever the
	// answers could.
	Fingerprint() string
	// Generate answers question in a fresh conversation after the system
	// prompt. It must be safe for concurrent use.
	Generate(ctx context.Context, system, question string) (Generation, error)
}

// Local generates with masque's own engine: any model checkpoint.Open
// gives (dense, pruned, LoRA-merged) or a masked model built from it.
type Local struct {
	ck     *checkpoint.Checkpoint
	m      *model.Model
	opts   generate.Options
	fp     string
	encMu  sync.Mutex // chat templates are rendered one at a time
	tokens generate.Tokenizer
}

// NewLocal returns a generator running m (nil: ck.Model) with ck's
// tokenizer and chat template. o is used as given except that the
// checkpoint's stop tokens are added and special tokens are left out of
// the text; the zero Options with MaxTokens set is greedy decoding. extra
// is mixed into the fingerprint (for example a mask file's hash).
func NewLocal(ck *checkpoint.Checkpoint, m *model.Model, o generate.Options, extra string) (*Local, error) {
	return NewLocalWeights(ck, m, "", o, extra)
}

// NewLocalWeights is NewLocal with the fingerprint of m's weights given
// ("": m.Fingerprint()): a caller that applies a mask per sequence
// (persona.MaskedModel) passes mask.FingerprintMasked, the masked weights'
// fingerprint, which a masked copy of the model would have.
func NewLocalWeights(ck *checkpoint.Checkpoint, m *model.Model, weights string, o generate.Options, extra string) (*Local, error) {
	if m == nil {
		m = ck.Model
	}
	tok, err := ck.NeedTokenizer()
	if err != nil {
		return nil, err
	}
	o.StopTokens = append(append([]int(nil), o.StopTokens...), ck.StopTokens()...)
	o.SkipSpecial = true
	l := &Local{ck: ck, m: m, opts: o, tokens: generate.FromTokenizer(tok)}
	opt, _ := json.Marshal(o)
	if weights == "" {
		weights = m.Fingerprint()
	}
	l.fp = jsonlstore.Key("local", weights, extra, string(opt))
	return l, nil
}

// Fingerprint implements Generator: a hash of the weights' fingerprint
// (model.Model.Fingerprint), extra and the decoding options.
func (l *Local) Fingerprint() string { return l.fp }

// Generate implements Generator.
func (l *Local) Generate(ctx context.Context, system, question string) (Generation, error) {
	var msgs []chattemplate.Message
	if system != "" {
		msgs = append(msgs, chattemplate.Message{Role: "system", Content: system})
	}
	msgs = append(msgs, chattemplate.Message{Role: "user", Content: question})
	l.encMu.Lock()
	ids, err := l.ck.EncodeChat(msgs, true, nil)
	l.encMu.Unlock()
	if err != nil {
		return Generation{}, err
	}
	if limit := l.m.Config.MaxSeq; limit > 0 && len(ids) >= limit {
		return Generation{}, fmt.Errorf("the prompt has %d tokens, the model's context is %d", len(ids), limit)
	}
	res, err := generate.Generate(ctx, l.m, l.tokens, ids, l.opts, nil)
	if err != nil {
		return Generation{}, err
	}
	if res.FinishReason == generate.FinishCancelled {
		return Generation{}, ctx.Err()
	}
	return Generation{Text: res.Text, FinishReason: res.FinishReason, Tokens: len(res.IDs)}, nil
}

// Endpoint generates with a model behind an OpenAI-compatible endpoint.
type Endpoint struct {
	// Client reaches the endpoint.
	Client *openaiclient.Client
	// Model is the model's name there.
	Model string
	// MaxTokens caps each answer; Temperature 0 is greedy; Seed is sent
	// when not nil.
	MaxTokens   int
	Temperature float64
	Seed        *int64
}

// Fingerprint implements Generator: the endpoint, model name and settings.
// A model that changes behind the same name keeps its fingerprint: use a
// fresh output folder or model name then.
func (e *Endpoint) Fingerprint() string {
	return jsonlstore.Key("endpoint", e.Client.Endpoint(), e.Model, e.MaxTokens, e.Temperature, e.Seed)
}

// Generate implements Generator.
func (e *Endpoint) Generate(ctx context.Context, system, question string) (Generation, error) {
	var msgs []chattemplate.Message
	if system != "" {
		msgs = append(msgs, chattemplate.Message{Role: "system", Content: system})
	}
	msgs = append(msgs, chattemplate.Message{Role: "user", Content: question})
	r, err := e.Client.Chat(ctx, openaiclient.Request{Model: e.Model, Messages: msgs, MaxTokens: e.MaxTokens, Temperature: e.Temperature, Seed: e.Seed})
	if err != nil {
		return Generation{}, err
	}
	return Generation{Text: r.Text, FinishReason: r.FinishReason}, nil
}
