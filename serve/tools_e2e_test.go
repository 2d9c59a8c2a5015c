//go:build conformance

// Tool calls through the official openai-go client (see openai_test.go).

package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
)

// qwenClient serves the tiny Qwen model and returns an openai-go client
// for it and the checkpoint.
func qwenClient(t *testing.T) (openai.Client, *checkpoint.Checkpoint) {
	t.Helper()
	ck, err := checkpoint.Open(tinyQwen(t), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Base: ck, APIKey: testAPIKey, Ctx: 1024, MaxSeqs: 4, MaxQueue: 8, KVBytes: 64 << 20, Timeout: 60 * time.Second, MaxTokens: 256})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		srv.Close()
		ck.Close()
	})
	return openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey(testAPIKey), option.WithMaxRetries(0),
		option.WithRequestTimeout(120*time.Second)), ck
}

func clientTools() []openai.ChatCompletionToolUnionParam {
	return []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name:        "get_weather",
			Description: openai.String("Current weather in a city."),
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{
				"city": map[string]any{"type": "string", "maxLength": 12},
				"unit": map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}}},
				"required": []string{"city", "unit"}},
		}),
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name:        "set_quest_flag",
			Description: openai.String("Set a quest flag."),
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{
				"flag":  map[string]any{"type": "string", "maxLength": 12},
				"value": map[string]any{"type": "boolean"}},
				"required": []string{"flag", "value"}},
		}),
	}
}

// checkCall checks that a call names one of the tools and that its
// arguments are a JSON object of that tool's schema.
func checkCall(t *testing.T, name, args string) {
	t.Helper()
	var a map[string]any
	if err := json.Unmarshal([]byte(args), &a); err != nil {
		t.Fatalf("the arguments of %s do not parse: %v: %q", name, err, args)
	}
	switch name {
	case "get_weather":
		city, ok1 := a["city"].(string)
		unit, ok2 := a["unit"].(string)
		if !ok1 || !ok2 || utf8.RuneCountInString(city) > 12 || (unit != "celsius" && unit != "fahrenheit") || len(a) != 2 {
			t.Errorf("get_weather arguments %q do not fit the schema", args)
		}
	case "set_quest_flag":
		flag, ok1 := a["flag"].(string)
		_, ok2 := a["value"].(bool)
		if !ok1 || !ok2 || utf8.RuneCountInString(flag) > 12 || len(a) != 2 {
			t.Errorf("set_quest_flag arguments %q do not fit the schema", args)
		}
	default:
		t.Errorf("call to %q, which is not a tool", name)
	}
}

// TestToolsOpenAIClient calls tools through the official Go client on a
// model with Qwen2.5's tokenizer and template: tool_choice "required" and
// a named function (plain and streamed) always give a call whose arguments
// fit the function's schema, with finish_reason "tool_calls"; the call and
// its result go back to the model in the next request, rendered by the
// template; "auto" and "none" answer.
func TestToolsOpenAIClient(t *testing.T) {
	client, ck := qwenClient(t)
	ctx := context.Background()
	user := openai.UserMessage("What is the weather in Paris?")
	seen := map[string]bool{}
	for seed := int64(1); seed <= 6; seed++ {
		res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "base", Messages: []openai.ChatCompletionMessageParamUnion{user}, Tools: clientTools(),
			ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
			Seed:       openai.Int(seed), Temperature: openai.Float(1), MaxTokens: openai.Int(120),
		})
		if err != nil {
			var apiErr *openai.Error
			if errors.As(err, &apiErr) {
				t.Fatalf("%v: %s", err, apiErr.RawJSON())
			}
			t.Fatal(err)
		}
		ch := res.Choices[0]
		if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 {
			t.Fatalf("seed %d: finish %q, calls %+v, content %q", seed, ch.FinishReason, ch.Message.ToolCalls, ch.Message.Content)
		}
		c := ch.Message.ToolCalls[0]
		if !strings.HasPrefix(c.ID, "call_") || c.Type != "function" {
			t.Errorf("call %+v", c)
		}
		checkCall(t, c.Function.Name, c.Function.Arguments)
		seen[c.Function.Name] = true

		if seed == 1 {
			// The call and its result go back: the prompt is the template's
			// rendering of them (counted in tokens).
			msgs := []openai.ChatCompletionMessageParamUnion{user, ch.Message.ToParam(), openai.ToolMessage(`{"temperature": 21}`, c.ID)}
			res2, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "base", Messages: msgs, Tools: clientTools(),
				MaxTokens: openai.Int(4), Seed: openai.Int(1)})
			if err != nil {
				t.Fatal(err)
			}
			var tools []any
			b, _ := json.Marshal(clientTools())
			var raws []json.RawMessage
			json.Unmarshal(b, &raws)
			for _, r := range raws {
				tools = append(tools, r)
			}
			var args json.RawMessage = json.RawMessage(c.Function.Arguments)
			call := json.RawMessage(`{"id":` + string(mustJSON(c.ID)) + `,"type":"function","function":{"name":` + string(mustJSON(c.Function.Name)) + `,"arguments":` + string(args) + `}}`)
			want, err := ck.EncodeChat([]chattemplate.Message{
				{Role: "user", Content: "What is the weather in Paris?"},
				{Role: "assistant", Content: "", Fields: map[string]any{"tool_calls": []any{call}}},
				{Role: "tool", Content: `{"temperature": 21}`, Fields: map[string]any{"tool_call_id": c.ID}},
			}, true, map[string]any{"tools": tools})
			if err != nil {
				t.Fatal(err)
			}
			text, _ := ck.RenderChat([]chattemplate.Message{{Role: "tool", Content: `{"temperature": 21}`}}, false, nil)
			if !strings.Contains(text, "<tool_response>") {
				t.Fatalf("the template does not render tool results: %q", text)
			}
			if int(res2.Usage.PromptTokens) != len(want) {
				t.Errorf("the follow-up prompt has %d tokens, the template's rendering %d", res2.Usage.PromptTokens, len(want))
			}
		}
	}
	if !seen["get_weather"] || !seen["set_quest_flag"] {
		t.Logf("functions called over the seeds: %v", seen)
	}

	// A named function, streamed: header delta (id, name), then argument
	// fragments, then finish_reason tool_calls.
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "base", Messages: []openai.ChatCompletionMessageParamUnion{user}, Tools: clientTools(),
		ToolChoice: openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "set_quest_flag"}),
		Seed:       openai.Int(3), MaxTokens: openai.Int(120),
	})
	acc := openai.ChatCompletionAccumulator{}
	var finished []openai.FinishedChatCompletionToolCall
	var fragments int
	var finish string
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, tc)
		}
		for _, ch := range chunk.Choices {
			for i, d := range ch.Delta.ToolCalls {
				if d.ID != "" && (d.Function.Name != "set_quest_flag" || d.Function.Arguments != "") {
					t.Errorf("header delta %d: %+v", i, d)
				}
				if d.ID == "" && d.Function.Arguments != "" {
					fragments++
				}
			}
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if finish != "tool_calls" {
		t.Errorf("streamed finish_reason %q", finish)
	}
	if len(acc.Choices) != 1 || len(acc.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("accumulated %+v", acc.Choices)
	}
	c := acc.Choices[0].Message.ToolCalls[0]
	if c.Function.Name != "set_quest_flag" {
		t.Errorf("named function: called %q", c.Function.Name)
	}
	checkCall(t, c.Function.Name, c.Function.Arguments)
	if fragments < 2 {
		t.Errorf("the arguments came in %d fragments: not streamed", fragments)
	}
	t.Logf("streamed call %s(%s) in %d argument fragments; finished calls seen by the accumulator: %d", c.Function.Name, c.Function.Arguments, fragments, len(finished))

	// auto and none answer (a random model rarely calls anything).
	for _, choice := range []string{"auto", "none"} {
		res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "base", Messages: []openai.ChatCompletionMessageParamUnion{user}, Tools: clientTools(),
			ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String(choice)},
			MaxTokens:  openai.Int(8), Seed: openai.Int(1), ParallelToolCalls: openai.Bool(false),
		})
		if err != nil {
			t.Fatalf("%s: %v", choice, err)
		}
		fr := res.Choices[0].FinishReason
		if !slices.Contains([]string{"stop", "length", "tool_calls"}, fr) || (choice == "none" && fr == "tool_calls") {
			t.Errorf("%s: finish_reason %q", choice, fr)
		}
	}
}
