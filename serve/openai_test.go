//go:build conformance

// The OpenAI client conformance tests: they talk to the server through the
// official openai-go client, whose compilation is most of the serve
// package's test build. `go test -tags conformance ./serve/` runs them;
// .ci/run does.

package serve

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

func newClient(f *fixture) openai.Client {
	return openai.NewClient(option.WithBaseURL(f.ts.URL+"/v1/"), option.WithAPIKey(testAPIKey), option.WithMaxRetries(0),
		option.WithRequestTimeout(60*time.Second))
}

// TestOpenAIClient talks to the server with the official Go client,
// unchanged: models, chat (plain and streaming, with logprobs and usage)
// and completions.
func TestOpenAIClient(t *testing.T) {
	f := newFixture(t, nil)
	client := newClient(f)
	ctx := context.Background()

	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if want := []string{"base", "bard", "oracle", "pirate", "pruned", "ranger"}; !slices.Equal(ids, want) {
		t.Errorf("models %v, want %v", ids, want)
	}
	if m, err := client.Models.Get(ctx, "pirate"); err != nil || m.ID != "pirate" {
		t.Errorf("get model: %+v, %v", m, err)
	}

	params := openai.ChatCompletionNewParams{
		Model:       "pirate",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
		MaxTokens:   openai.Int(24),
		Temperature: openai.Float(0),
		Seed:        openai.Int(7),
		Logprobs:    openai.Bool(true),
		TopLogprobs: openai.Int(3),
	}
	res, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 || res.Choices[0].Message.Content == "" || res.Object != "chat.completion" || res.Model != "pirate" {
		t.Fatalf("response %+v", res)
	}
	ch := res.Choices[0]
	if res.Usage.CompletionTokens == 0 || res.Usage.PromptTokens == 0 || res.Usage.TotalTokens != res.Usage.PromptTokens+res.Usage.CompletionTokens {
		t.Errorf("usage %+v", res.Usage)
	}
	if ch.FinishReason != "length" && ch.FinishReason != "stop" {
		t.Errorf("finish reason %q", ch.FinishReason)
	}
	if len(ch.Logprobs.Content) == 0 || len(ch.Logprobs.Content[0].TopLogprobs) != 3 || ch.Logprobs.Content[0].Logprob > 0 {
		t.Errorf("logprobs %+v", ch.Logprobs.Content)
	}
	var joined strings.Builder
	for _, lp := range ch.Logprobs.Content {
		joined.WriteString(lp.Token)
	}
	if !strings.HasPrefix(strings.TrimSpace(joined.String()), strings.TrimSpace(ch.Message.Content)[:1]) {
		t.Errorf("logprob tokens %q do not spell the answer %q", joined.String(), ch.Message.Content)
	}

	// Streaming gives the same greedy text, chunk by chunk, and usage at the end.
	params.Logprobs, params.TopLogprobs = param.Opt[bool]{}, param.Opt[int64]{}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		c := stream.Current()
		acc.AddChunk(c)
		if len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			chunks++
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 2 {
		t.Errorf("%d content chunks: not streamed", chunks)
	}
	if got := acc.Choices[0].Message.Content; got != ch.Message.Content {
		t.Errorf("streamed %q, plain %q", got, ch.Message.Content)
	}
	if acc.Usage.CompletionTokens != res.Usage.CompletionTokens {
		t.Errorf("streamed usage %+v, plain %+v", acc.Usage, res.Usage)
	}

	// Completions, plain and streaming.
	cp := openai.CompletionNewParams{Model: "ranger", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens: openai.Int(12), Temperature: openai.Float(0), Logprobs: openai.Int(2)}
	cres, err := client.Completions.New(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if len(cres.Choices) != 1 || cres.Choices[0].Text == "" || cres.Usage.CompletionTokens == 0 || len(cres.Choices[0].Logprobs.Tokens) == 0 {
		t.Fatalf("completion %+v", cres)
	}
	cp.Logprobs = param.Opt[int64]{}
	cs := client.Completions.NewStreaming(ctx, cp)
	var text strings.Builder
	for cs.Next() {
		c := cs.Current()
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Text)
		}
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != cres.Choices[0].Text {
		t.Errorf("streamed completion %q, plain %q", text.String(), cres.Choices[0].Text)
	}

	// Errors come back as the client's APIError.
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "nobody", Messages: params.Messages})
	var apiErr *openai.Error
	if !errorsAs(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}
}

// TestGreedyMatchesGenerate: greedy output of every kind of persona
// through the server equals generate.Generate on the persona's model (the
// base with the persona's system prompt, the mask applied, the adapter
// merged, or the pruned model), alone and with other requests batched.
func TestGreedyMatchesGenerate(t *testing.T) {
	f := newFixture(t, nil)
	base := f.ck.Model
	maskedChannel, err := mask.Masked(base, f.channel, nil)
	if err != nil {
		t.Fatal(err)
	}
	maskedSparse, err := mask.Masked(base, f.sparse, nil)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := f.adapter.Merged(base)
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := checkpoint.Open(filepath.Join(f.dir, "pruned.gguf"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pruned.Close()
	tests := []struct {
		persona string
		system  string
		model   *model.Model
		ck      *checkpoint.Checkpoint // tokenizer and template, if not the base's
	}{
		{"base", "", base, nil},
		{"pirate", pirateSystem, base, nil},
		{"ranger", "A forest ranger.", maskedChannel, nil},
		{"oracle", "An oracle.", maskedSparse, nil},
		{"bard", "A bard.", merged, nil},
		{"pruned", "A pruned model.", pruned.Model, pruned}, // the channel-masked weights, with the GGUF's own tokenizer
	}
	user := "Where is the cat?"
	expected := func(t *testing.T, m *model.Model, ck *checkpoint.Checkpoint, system string) string {
		if ck == nil {
			ck = f.ck
		}
		var msgs []chattemplate.Message
		if system != "" {
			msgs = append(msgs, chattemplate.Message{Role: "system", Content: system})
		}
		msgs = append(msgs, chattemplate.Message{Role: "user", Content: user})
		ids, err := ck.EncodeChat(msgs, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		o := generate.Options{MaxTokens: 40, Seed: 9, StopTokens: ck.StopTokens(), SkipSpecial: true}
		res, err := generate.Generate(context.Background(), m, generate.FromTokenizer(ck.Tokenizer), ids, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Text
	}
	client := newClient(f)
	// ask returns the answer, and the prompt tokens taken from the prompt
	// cache and not.
	ask := func(name string) (string, [2]int64, error) {
		res, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: name,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(user)}, MaxTokens: openai.Int(40),
			Temperature: openai.Float(0), Seed: openai.Int(9)})
		if err != nil {
			return "", [2]int64{}, err
		}
		cached := res.Usage.PromptTokensDetails.CachedTokens
		return res.Choices[0].Message.Content, [2]int64{cached, res.Usage.PromptTokens - cached}, nil
	}
	want := map[string]string{}
	for _, tc := range tests {
		want[tc.persona] = expected(t, tc.model, tc.ck, tc.system)
	}
	// One at a time, all of the prompt run.
	for _, tc := range tests {
		got, tokens, err := ask(tc.persona)
		if err != nil {
			t.Fatal(err)
		}
		if got != want[tc.persona] {
			t.Errorf("%s alone:\n got %q\nwant %q", tc.persona, got, want[tc.persona])
		}
		if tokens[0] != 0 {
			t.Errorf("%s: %d cached prompt tokens on the first request", tc.persona, tokens[0])
		}
	}
	if want["ranger"] == want["base"] || want["bard"] == want["base"] || want["oracle"] == want["base"] {
		t.Errorf("the personas' weights change nothing: %q", want)
	}
	// All at once, sharing forward batches; the same prompts again, so
	// each resumes from the prompt cache and runs only its last token.
	type answer struct {
		name, text string
		tokens     [2]int64
		err        error
	}
	out := make(chan answer, len(tests))
	for _, tc := range tests {
		go func() {
			s, tokens, err := ask(tc.persona)
			out <- answer{tc.persona, s, tokens, err}
		}()
	}
	for range tests {
		a := <-out
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.text != want[a.name] {
			t.Errorf("%s batched:\n got %q\nwant %q", a.name, a.text, want[a.name])
		}
		if a.tokens[0] == 0 || a.tokens[1] != 1 {
			t.Errorf("%s batched: %d prompt tokens from the cache, %d run; want all but one from the cache", a.name, a.tokens[0], a.tokens[1])
		}
	}
}

// TestAssistantPrefill: a last assistant message is continued, not
// answered: the prompt is the conversation rendered up to the end of that
// message's text (for ChatML: the generation prompt followed by the
// text), and the reply is its continuation.
func TestAssistantPrefill(t *testing.T) {
	f := newFixture(t, nil)
	client := newClient(f)
	const user, start = "Tell me a story.", "Once upon a time, there was"
	head, err := f.ck.RenderChat([]chattemplate.Message{{Role: "user", Content: user}}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := f.ck.Tokenizer.Encode(head+start, false)
	want, err := generate.Generate(context.Background(), f.ck.Model, generate.FromTokenizer(f.ck.Tokenizer), ids,
		generate.Options{MaxTokens: 20, StopTokens: f.ck.StopTokens(), SkipSpecial: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "base", MaxTokens: openai.Int(20), Temperature: openai.Float(0),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(user), openai.AssistantMessage(start)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Message.Content; got != want.Text {
		t.Errorf("continued %q, want %q", got, want.Text)
	}
	if res.Usage.PromptTokens != int64(len(ids)) {
		t.Errorf("%d prompt tokens, want %d", res.Usage.PromptTokens, len(ids))
	}
	// Without the prefill, the reply starts a new turn: another prompt.
	fresh, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "base", MaxTokens: openai.Int(20), Temperature: openai.Float(0),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(user)}})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Usage.PromptTokens >= res.Usage.PromptTokens {
		t.Errorf("prompt of %d tokens with the prefill, %d without", res.Usage.PromptTokens, fresh.Usage.PromptTokens)
	}
}
