package serve

import (
	"context"
	"math"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/openaiclient"
)

// TestServerDecodesAsGenerate: the serving engine and generate.Generate run
// one decoding state machine (generate.Decoder), so the same seed and
// sampling parameters give the same tokens, text, finish reason, usage and
// log-probabilities over HTTP (streamed or not) as in-process.
func TestServerDecodesAsGenerate(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	msgs := []chattemplate.Message{{Role: "user", Content: "Tell me about the little dog."}}
	ids, err := f.ck.EncodeChat(msgs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := generate.FromTokenizer(f.ck.Tokenizer)
	seed := int64(7)
	for _, tc := range []struct {
		name string
		req  openaiclient.Request
		o    generate.Options
	}{
		{"sampled", openaiclient.Request{MaxTokens: 32, Temperature: 0.9, TopP: 0.95, Seed: &seed},
			generate.Options{MaxTokens: 32, Temperature: 0.9, TopP: 0.95, Seed: 7}},
		{"sampled with logprobs", openaiclient.Request{MaxTokens: 16, Temperature: 1.1, Seed: &seed, TopLogprobs: 3},
			generate.Options{MaxTokens: 16, Temperature: 1.1, Seed: 7, Logprobs: 3}},
		{"greedy with stop strings", openaiclient.Request{MaxTokens: 48, Temperature: 0, Stop: []string{".", "!"}},
			generate.Options{MaxTokens: 48, Stop: []string{".", "!"}}},
	} {
		o := tc.o
		o.StopTokens, o.SkipSpecial = f.ck.StopTokens(), true
		want, err := generate.Generate(ctx, f.ck.Model, tok, ids, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, stream := range []bool{false, true} {
			c := &openaiclient.Client{URL: f.ts.URL, APIKey: testAPIKey, HTTPClient: f.ts.Client(), Stream: stream, MaxAttempts: 1}
			req := tc.req
			req.Model, req.Messages = "base", msgs
			got, err := c.Chat(ctx, req)
			if err != nil {
				t.Fatalf("%s (stream %v): %v", tc.name, stream, err)
			}
			if got.Text != want.Text || got.FinishReason != want.FinishReason || got.CompletionTokens != want.CompletionTokens || got.PromptTokens != want.PromptTokens {
				t.Errorf("%s (stream %v): got %q (%s, %d+%d tokens), want %q (%s, %d+%d)", tc.name, stream, got.Text, got.FinishReason,
					got.PromptTokens, got.CompletionTokens, want.Text, want.FinishReason, want.PromptTokens, want.CompletionTokens)
			}
			if o.Logprobs > 0 {
				if len(got.Logprobs) != len(want.Logprobs) {
					t.Fatalf("%s (stream %v): %d logprob entries, want %d", tc.name, stream, len(got.Logprobs), len(want.Logprobs))
				}
				for i, e := range want.Logprobs {
					g := got.Logprobs[i]
					if math.Abs(g.Logprob-float64(e.Logprob)) > 1e-4 || len(g.Top) != len(e.Top) {
						t.Errorf("%s (stream %v) token %d: logprob %v with %d alternatives, want %v with %d", tc.name, stream, i, g.Logprob, len(g.Top), e.Logprob, len(e.Top))
					}
				}
			}
		}
	}
}
