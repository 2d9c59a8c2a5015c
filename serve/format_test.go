//go:build conformance

// The OpenAI client conformance tests: they talk to the server through the
// official openai-go client, whose compilation is most of the serve
// package's test build. `go test -tags conformance ./serve/` runs them;
// .ci/run does.

package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// TestResponseFormat: response_format json_schema (strict) and json_object
// through the official client, sampled at temperature 1 with n choices,
// plain and streamed: every complete answer parses and matches the schema.
func TestResponseFormat(t *testing.T) {
	f := newFixture(t, nil)
	client := newClient(f)
	ctx := context.Background()
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"mood":  map[string]any{"type": "string", "enum": []string{"calm", "angry", "afraid"}},
			"line":  map[string]any{"type": "string", "maxLength": 20},
			"hp":    map[string]any{"type": "integer"},
			"flags": map[string]any{"type": "array", "items": map[string]any{"type": "boolean"}, "maxItems": 3},
		},
		"required":             []string{"mood", "line", "hp", "flags"},
		"additionalProperties": false,
	}
	type npc struct {
		Mood  string `json:"mood"`
		Line  string `json:"line"`
		HP    *int64 `json:"hp"`
		Flags []bool `json:"flags"`
	}
	check := func(t *testing.T, text string) {
		t.Helper()
		var v npc
		dec := json.NewDecoder(bytes.NewReader([]byte(text)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Errorf("%q: %v", text, err)
			return
		}
		var raw map[string]json.RawMessage
		json.Unmarshal([]byte(text), &raw)
		if len(raw) != 4 || v.HP == nil || len(v.Flags) > 3 || len([]rune(v.Line)) > 20 || (v.Mood != "calm" && v.Mood != "angry" && v.Mood != "afraid") {
			t.Errorf("%q does not match the schema", text)
		}
	}
	rf := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
		JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "npc", Schema: schema, Strict: openai.Bool(true)}}}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("How do you feel?")}
	done := 0
	for seed := int64(0); seed < 5; seed++ {
		res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "pirate", Messages: msgs, ResponseFormat: rf,
			Temperature: openai.Float(1), Seed: openai.Int(seed), N: openai.Int(4), MaxTokens: openai.Int(250)})
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range res.Choices {
			if ch.FinishReason == "stop" {
				done++
				check(t, ch.Message.Content)
			}
		}
	}
	t.Logf("%d of 20 answers complete within 250 tokens", done)
	if done < 15 {
		t.Errorf("only %d of 20 answers complete within 250 tokens", done)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "pirate", Messages: msgs, ResponseFormat: rf,
		Temperature: openai.Float(1), Seed: openai.Int(42), MaxTokens: openai.Int(250)})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].FinishReason == "stop" {
		check(t, acc.Choices[0].Message.Content)
	}

	// json_object: an object.
	res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "base", Messages: msgs, Temperature: openai.Float(0), MaxTokens: openai.Int(60),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Choices[0].Message.Content
	if res.Choices[0].FinishReason == "stop" {
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Errorf("json_object %q: %v", out, err)
		}
	} else if len(out) == 0 || out[0] != '{' {
		t.Errorf("json_object cut short: %q", out)
	}

	// Completions take response_format too.
	code, body := f.postJSON(t, "/v1/completions", map[string]any{"model": "base", "prompt": "Data:", "max_tokens": 250, "temperature": 1, "seed": 3,
		"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "npc", "schema": schema}}})
	if code != 200 {
		t.Fatalf("completions: %d %s", code, body)
	}
	var cres struct {
		Choices []struct {
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	json.Unmarshal(body, &cres)
	if cres.Choices[0].FinishReason == "stop" {
		check(t, cres.Choices[0].Text)
	}

	for _, bad := range []struct {
		rf    any
		param string
	}{
		{map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "x", "schema": map[string]any{"type": "string", "pattern": "a+"}}}, "response_format.json_schema.schema"},
		{map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "x"}}, "response_format.json_schema.schema"},
		{map[string]any{"type": "xml"}, "response_format.type"},
		{map[string]any{"type": "json_object", "grammar": "x"}, "response_format"},
	} {
		code, body := f.postJSON(t, "/v1/chat/completions", chatBody("pirate", map[string]any{"response_format": bad.rf}))
		var e struct {
			Error struct {
				Param *string `json:"param"`
			} `json:"error"`
		}
		json.Unmarshal(body, &e)
		if code != 400 || e.Error.Param == nil || *e.Error.Param != bad.param {
			t.Errorf("%v: %d %s, want a 400 about %s", bad.rf, code, body, bad.param)
		}
	}
}
