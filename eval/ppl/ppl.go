// Package ppl measures perplexity: the exponential of the mean negative
// log-likelihood per predicted token, over a text file (one sample per
// line, every token after the first scored) or a chat JSONL file (each
// conversation rendered with the chat template, only the assistant turns'
// tokens scored: each turn's content and its end-of-turn token, the tokens
// finetune trains on, so that a fine-tune's training loss and its held-out
// perplexity measure one quantity).
package ppl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train/sft"
)

// Sample is a token sequence and which of its tokens are scored (nil: every
// token but the first). Score[i] says whether token i is predicted and
// counted; token 0 never is.
type Sample struct {
	IDs   []int
	Score []bool
}

// TextSamples reads one sample per non-empty line (tokenized with the
// tokenizer's default special tokens), truncated at maxTokens (≤ 0: 512).
func TextSamples(path string, tok calib.Tokenizer, maxTokens int) ([]Sample, error) {
	s, err := calib.FromTextFile(path, tok, calib.Options{MaxTokens: maxTokens})
	if err != nil {
		return nil, err
	}
	out := make([]Sample, len(s.Samples))
	for i, ids := range s.Samples {
		out[i] = Sample{IDs: ids}
	}
	return out, nil
}

// ChatSamples reads a chat JSONL file (see calib.ReadChatJSONL) and encodes
// every conversation as finetune does (see ChatSample). Conversations are
// truncated at maxTokens (≤ 0: 512); those without an assistant message are
// skipped.
func ChatSamples(path string, enc *sft.Encoder, maxTokens int) ([]Sample, error) {
	if maxTokens <= 0 {
		maxTokens = calib.DefaultMaxTokens
	}
	convs, err := calib.ReadChatJSONL(path, calib.Options{OnBadRow: chatdata.FailOnBadRow})
	if err != nil {
		return nil, err
	}
	var out []Sample
	for ci, msgs := range convs {
		cm := make([]chattemplate.Message, len(msgs))
		for i, m := range msgs {
			cm[i] = chattemplate.Message{Role: m.Role, Content: m.Content}
		}
		s, ok, err := ChatSample(cm, enc)
		if err != nil {
			return nil, fmt.Errorf("ppl: %s: conversation %d: %v", path, ci+1, err)
		}
		if !ok {
			continue
		}
		if len(s.IDs) > maxTokens {
			s.IDs, s.Score = s.IDs[:maxTokens], s.Score[:maxTokens]
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ppl: %s: no assistant messages to score", path)
	}
	return out, nil
}

// ChatSample encodes one conversation with enc, finetune's encoder (see
// sft.NewEncoder), and scores exactly the tokens finetune trains on: the
// content of every assistant turn and the end-of-turn token that follows
// it (not what the template writes around them, such as ChatML's newline
// after <|im_end|>). A fine-tune's training loss and the perplexity of
// held-out rows are then one quantity. ok is false when the conversation
// has no assistant message with content. The sample ends at its last
// scored token.
func ChatSample(msgs []chattemplate.Message, enc *sft.Encoder) (s Sample, ok bool, err error) {
	if !slices.ContainsFunc(msgs, func(m chattemplate.Message) bool { return m.Role == "assistant" && m.Content != "" }) {
		return Sample{}, false, nil
	}
	e, err := enc.Encode(msgs)
	if err != nil {
		return Sample{}, false, err
	}
	s = Sample{IDs: e.Seq.Tokens, Score: e.Assistant}
	if len(s.Score) > 0 {
		s.Score[0] = false // token 0 is never predicted
	}
	// Tokens after the last scored one change nothing (the model is
	// causal): the sample ends there.
	n := len(s.Score)
	for n > 0 && !s.Score[n-1] {
		n--
	}
	s.IDs, s.Score = s.IDs[:n], s.Score[:n]
	return s, n > 0, nil
}

// Load reads samples from path: chat JSONL for .jsonl files (encoded with
// enc, see ChatSamples), text otherwise (tokenized with tok).
func Load(path string, tok calib.Tokenizer, enc *sft.Encoder, maxTokens int) ([]Sample, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("ppl: %w", err)
	}
	if strings.EqualFold(filepath.Ext(path), ".jsonl") {
		if enc == nil {
			return nil, fmt.Errorf("ppl: %s: chat data needs the model's chat template", path)
		}
		return ChatSamples(path, enc, maxTokens)
	}
	return TextSamples(path, tok, maxTokens)
}

// SampleResult is the outcome of one sample.
type SampleResult struct {
	Tokens int     `json:"tokens"`
	NLL    float64 `json:"nll"`
	PPL    float64 `json:"ppl"`
}

// Result is the outcome over all samples.
type Result struct {
	Name    string         `json:"name"`
	Samples int            `json:"samples"`
	Tokens  int            `json:"tokens"` // scored tokens
	NLL     float64        `json:"nll"`    // mean negative log-likelihood per scored token (nats)
	PPL     float64        `json:"ppl"`    // exp(NLL)
	Each    []SampleResult `json:"per_sample"`
}

// Evaluate computes the perplexity of m on samples. progress, if set, is
// called after each sample.
func Evaluate(ctx context.Context, m *model.Model, name string, samples []Sample, progress func(done, total int)) (*Result, error) {
	r := &Result{Name: name, Samples: len(samples)}
	var total float64
	sc := &Scorer{m: m} // no prefix shared: every sample whole
	for i, s := range samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.Score != nil && len(s.Score) != len(s.IDs) {
			return nil, fmt.Errorf("ppl: sample %d: %d score flags for %d tokens", i, len(s.Score), len(s.IDs))
		}
		sr := SampleResult{}
		var err error
		if sr.NLL, sr.Tokens, err = sc.NLL(ctx, "", s); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("ppl: sample %d: %w", i, errors.Unwrap(err))
		}
		total += sr.NLL
		r.Tokens += sr.Tokens
		if sr.Tokens > 0 {
			sr.NLL /= float64(sr.Tokens)
			sr.PPL = math.Exp(sr.NLL)
		}
		r.Each = append(r.Each, sr)
		if progress != nil {
			progress(i+1, len(samples))
		}
	}
	if r.Tokens == 0 {
		return nil, errors.New("ppl: no tokens to score")
	}
	r.NLL = total / float64(r.Tokens)
	r.PPL = math.Exp(r.NLL)
	return r, nil
}

// WriteTable prints a summary table of results.
func WriteTable(w io.Writer, results ...*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "data\tsamples\ttokens\tnll\tperplexity\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.4f\t%.3f\t\n", r.Name, r.Samples, r.Tokens, r.NLL, r.PPL)
	}
	return tw.Flush()
}

// EvaluateFiles measures m's perplexity on every file (Load with ck's
// tokenizer and chat template, samples cut at maxTokens; Evaluate), each
// named by its base name; progress(name), when progress is not nil, follows
// each file. m is ck's model, possibly masked.
func EvaluateFiles(ctx context.Context, ck *checkpoint.Checkpoint, m *model.Model, files []string, maxTokens int, progress func(name string) func(done, total int)) ([]*Result, error) {
	if len(files) == 0 {
		return nil, nil
	}
	tok, err := ck.NeedTokenizer()
	if err != nil {
		return nil, err
	}
	enc := sft.NewEncoder(ck.Template, ck.Tokenizer, ck.TemplateConfig, ck.HasTemplate)
	var results []*Result
	for _, f := range files {
		samples, err := Load(f, tok, enc, maxTokens)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(f)
		var pr func(done, total int)
		if progress != nil {
			pr = progress(name)
		}
		r, err := Evaluate(ctx, m, name, samples, pr)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}
