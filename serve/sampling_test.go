//go:build conformance

// The OpenAI client conformance tests: they talk to the server through the
// official openai-go client, whose compilation is most of the serve
// package's test build. `go test -tags conformance ./serve/` runs them;
// .ci/run does.

package serve

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/generate"
)

// TestOpenAISamplingFields sends every sampling field through the official
// client and checks the answer against generate.Generate with the same
// options: temperature, top_p, top_k, min_p, repetition_penalty,
// frequency_penalty, presence_penalty, logit_bias, seed, stop, n (choice i
// with seed+i, streamed and not) and max_completion_tokens.
func TestOpenAISamplingFields(t *testing.T) {
	f := newFixture(t, nil)
	client := newClient(f)
	ctx := context.Background()
	const user = "Where is the cat?"
	ids, err := f.ck.EncodeChat([]chattemplate.Message{{Role: "user", Content: user}}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := generate.FromTokenizer(f.ck.Tokenizer)
	want := func(o generate.Options) *generate.Result {
		t.Helper()
		o.StopTokens, o.SkipSpecial = f.ck.StopTokens(), true
		res, err := generate.Generate(ctx, f.ck.Model, tok, ids, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage(user)}
	greedy := want(generate.Options{MaxTokens: 24})
	if len(greedy.IDs) == 0 {
		t.Fatal("greedy answer is empty")
	}
	first := greedy.IDs[0]
	cases := []struct {
		name   string
		params openai.ChatCompletionNewParams
		extra  map[string]any // fields the client has no parameter for
		opts   generate.Options
		differ bool // must differ from plain greedy
	}{
		{"top_k min_p top_p", openai.ChatCompletionNewParams{Temperature: openai.Float(1), TopP: openai.Float(0.9), Seed: openai.Int(11)},
			map[string]any{"top_k": 5, "min_p": 0.05}, generate.Options{Temperature: 1, TopP: 0.9, TopK: 5, MinP: 0.05, Seed: 11}, false},
		{"frequency and presence penalties", openai.ChatCompletionNewParams{Temperature: openai.Float(0), FrequencyPenalty: openai.Float(1.5), PresencePenalty: openai.Float(0.5)},
			nil, generate.Options{FrequencyPenalty: 1.5, PresencePenalty: 0.5}, true},
		{"repetition_penalty", openai.ChatCompletionNewParams{Temperature: openai.Float(0)},
			map[string]any{"repetition_penalty": 1.3}, generate.Options{RepetitionPenalty: 1.3}, true},
		{"logit_bias", openai.ChatCompletionNewParams{Temperature: openai.Float(0), LogitBias: map[string]int64{strconv.Itoa(first): -100}},
			nil, generate.Options{LogitBias: map[int]float32{first: -100}}, true},
		{"top_k 1 is greedy", openai.ChatCompletionNewParams{Temperature: openai.Float(1.5), Seed: openai.Int(3)},
			map[string]any{"top_k": 1}, generate.Options{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.params
			p.Model, p.Messages, p.MaxTokens = "base", msgs, openai.Int(24)
			var opts []option.RequestOption
			for k, v := range tc.extra {
				opts = append(opts, option.WithJSONSet(k, v))
			}
			res, err := client.Chat.Completions.New(ctx, p, opts...)
			if err != nil {
				t.Fatal(err)
			}
			o := tc.opts
			o.MaxTokens = 24
			w := want(o)
			if got := res.Choices[0].Message.Content; got != w.Text {
				t.Errorf("got %q, want %q", got, w.Text)
			}
			if tc.differ && w.Text == greedy.Text {
				t.Errorf("the field changes nothing: %q", w.Text)
			}
		})
	}
	if w := want(generate.Options{MaxTokens: 24, LogitBias: map[int]float32{first: -100}}); len(w.IDs) > 0 && w.IDs[0] == first {
		t.Errorf("a token biased by -100 came first")
	}

	// n = 3 with a seed: choice i is the generation with seed+i; the prompt
	// is counted once; the same request gives the same choices.
	p := openai.ChatCompletionNewParams{Model: "base", Messages: msgs, MaxCompletionTokens: openai.Int(20), Temperature: openai.Float(1), Seed: openai.Int(21), N: openai.Int(3)}
	res, err := client.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 3 {
		t.Fatalf("%d choices, want 3", len(res.Choices))
	}
	var texts []string
	var completion int64
	for i, ch := range res.Choices {
		w := want(generate.Options{MaxTokens: 20, Temperature: 1, Seed: 21 + uint64(i)})
		if ch.Index != int64(i) || ch.Message.Content != w.Text || ch.FinishReason != w.FinishReason {
			t.Errorf("choice %d (index %d): %q %s, want %q %s", i, ch.Index, ch.Message.Content, ch.FinishReason, w.Text, w.FinishReason)
		}
		texts = append(texts, ch.Message.Content)
		completion += int64(w.CompletionTokens)
	}
	if texts[0] == texts[1] && texts[1] == texts[2] {
		t.Errorf("three equal choices %q", texts[0])
	}
	if res.Usage.PromptTokens != int64(len(ids)) || res.Usage.CompletionTokens != completion {
		t.Errorf("usage %+v, want %d prompt and %d completion tokens", res.Usage, len(ids), completion)
	}
	again, err := client.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again.Choices {
		if again.Choices[i].Message.Content != texts[i] {
			t.Errorf("seed 21 again: choice %d %q, first time %q", i, again.Choices[i].Message.Content, texts[i])
		}
	}
	// Streamed, the choices arrive interleaved with their indexes.
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, p)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 3 {
		t.Fatalf("streamed %d choices", len(acc.Choices))
	}
	for i, ch := range acc.Choices {
		if ch.Message.Content != texts[i] {
			t.Errorf("streamed choice %d %q, plain %q", i, ch.Message.Content, texts[i])
		}
	}
	if acc.Usage.CompletionTokens != completion {
		t.Errorf("streamed usage %+v", acc.Usage)
	}

	// stop (a list) and max_completion_tokens.
	p = openai.ChatCompletionNewParams{Model: "base", Messages: msgs, MaxCompletionTokens: openai.Int(5), Temperature: openai.Float(0)}
	res, err = client.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if w := want(generate.Options{MaxTokens: 5}); res.Choices[0].Message.Content != w.Text || res.Usage.CompletionTokens != 5 || res.Choices[0].FinishReason != "length" {
		t.Errorf("max_completion_tokens 5: %q %+v %s, want %q", res.Choices[0].Message.Content, res.Usage, res.Choices[0].FinishReason, w.Text)
	}
	words := []string{greedy.Text[2:4], "zzz"}
	p = openai.ChatCompletionNewParams{Model: "base", Messages: msgs, MaxTokens: openai.Int(24), Temperature: openai.Float(0),
		Stop: openai.ChatCompletionNewParamsStopUnion{OfStringArray: words}}
	res, err = client.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if w := want(generate.Options{MaxTokens: 24, Stop: words}); res.Choices[0].Message.Content != w.Text || res.Choices[0].FinishReason != "stop" || len(w.Text) > 2 {
		t.Errorf("stop %q: %q %s, want %q", words, res.Choices[0].Message.Content, res.Choices[0].FinishReason, w.Text)
	}

	// Completions: n = 2 and the penalties.
	cres, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "base", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens: openai.Int(12), Temperature: openai.Float(0.8), Seed: openai.Int(5), N: openai.Int(2), FrequencyPenalty: openai.Float(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cres.Choices) != 2 {
		t.Fatalf("%d completion choices", len(cres.Choices))
	}
	cids := f.ck.Tokenizer.Encode("Once upon a time", true)
	for i, ch := range cres.Choices {
		w, err := generate.Generate(ctx, f.ck.Model, tok, cids, generate.Options{MaxTokens: 12, Temperature: 0.8, Seed: 5 + uint64(i), FrequencyPenalty: 1, StopTokens: f.ck.StopTokens(), SkipSpecial: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Text != w.Text || ch.Index != int64(i) {
			t.Errorf("completion choice %d: %q, want %q", i, ch.Text, w.Text)
		}
	}
	if slices.Equal([]string{cres.Choices[0].Text}, []string{cres.Choices[1].Text}) {
		t.Errorf("two equal completion choices %q", cres.Choices[0].Text)
	}
}
