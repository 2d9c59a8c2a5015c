package roleplay

import (
	"context"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/mc"
	"github.com/masque-ai/masque/eval/ppl"
	"github.com/masque-ai/masque/model"
)

// Reference holds the reference metrics that need no judge, computed with
// the packages that own them: multiple-choice persona tests (eval/mc) and
// perplexity (eval/ppl). Style scores are run metrics (Config.Style).
type Reference struct {
	MC    []*mc.Report  `json:"mc,omitempty"`
	PPL   []*ppl.Result `json:"ppl,omitempty"`
	Notes []string      `json:"notes,omitempty"`
}

// ReferenceOptions choose the reference metrics.
type ReferenceOptions struct {
	// MCTests are multiple-choice test files (see mc.Load), run after the
	// MCSystem system prompt; MCOpposing scores for the opposing persona;
	// MCLimit caps the items per file (≤ 0: all); MCFormat is "chat",
	// "plain" or "" (chat when the checkpoint has a template).
	MCTests    []string
	MCSystem   string
	MCOpposing bool
	MCLimit    int
	MCFormat   string
	// PPLData are perplexity files (see ppl.Load), truncated at
	// PPLMaxTokens tokens per sample (≤ 0: 512).
	PPLData      []string
	PPLMaxTokens int
	// Progress, if set, reports progress per file.
	Progress func(name string, done, total int)
}

// ComputeReference runs the reference metrics of o with model m (nil:
// ck.Model), which uses ck's tokenizer and template. It needs a local
// model: an endpoint gives no log-probabilities of given text.
func ComputeReference(ctx context.Context, ck *checkpoint.Checkpoint, m *model.Model, o ReferenceOptions) (*Reference, error) {
	if m == nil {
		m = ck.Model
	}
	ref := &Reference{}
	if len(o.MCTests) == 0 && len(o.PPLData) == 0 {
		return ref, nil
	}
	prefixed := func(prefix string) func(name string) func(done, total int) {
		if o.Progress == nil {
			return nil
		}
		return func(name string) func(done, total int) {
			return func(d, t int) { o.Progress(prefix+name, d, t) }
		}
	}
	var err error
	if len(o.MCTests) > 0 {
		p, err := mc.PrompterFor(ck, o.MCFormat)
		if err != nil {
			return nil, err
		}
		if ref.MC, err = mc.EvaluateFiles(ctx, m, p, o.MCTests, mc.Options{System: o.MCSystem, Opposing: o.MCOpposing, Limit: o.MCLimit}, prefixed("mc ")); err != nil {
			return nil, err
		}
	}
	if ref.PPL, err = ppl.EvaluateFiles(ctx, ck, m, o.PPLData, o.PPLMaxTokens, prefixed("ppl ")); err != nil {
		return nil, err
	}
	return ref, nil
}
