package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/masque-ai/masque/internal/fileerr"
)

// apiError is an error with its HTTP status, in OpenAI's error object:
// {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

// Error returns the message.
func (e *apiError) Error() string { return e.Message }

// Error types, as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typePermission     = "permission_error"
	typeNotFound       = "not_found_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
	typeTimeout        = "timeout_error"
)

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newError(status int, typ, code, param, format string, a ...any) *apiError {
	return &apiError{Status: status, Type: typ, Code: strp(code), Param: strp(param), Message: fmt.Sprintf(format, a...)}
}

// badRequest is a 400 invalid_request_error about param.
func badRequest(param, code, format string, a ...any) *apiError {
	return newError(http.StatusBadRequest, typeInvalidRequest, code, param, format, a...)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":{"message":"encoding the response failed","type":"server_error","param":null,"code":null}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// decodeBody reads a JSON request body into v: malformed JSON is a 400,
// a body over the limit a 413.
func decodeBody(r *http.Request, v any) *apiError {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large", "", "the request body is larger than %d bytes", mbe.Limit)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest(te.Field, "invalid_type", "invalid type for %s: expected %s, got a JSON %s", fieldName(te.Field), fileerr.Kind(te.Type), te.Value)
		}
		return badRequest("", "invalid_json", "we could not parse the JSON body of your request: %v", err)
	}
	if dec.More() {
		return badRequest("", "invalid_json", "we could not parse the JSON body of your request: trailing data after the JSON value")
	}
	return nil
}

// jsonErrText describes a JSON decoding error without Go type names
// ("expected an object, got a JSON string" rather than "cannot unmarshal
// string into Go value of type serve.x").
// whole names the value decoded, for an error about all of it.
func jsonErrText(err error, whole string) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		f := "'" + whole + "'"
		if te.Field != "" {
			f = "'" + whole + "." + te.Field + "'"
		}
		return fmt.Sprintf("invalid type for %s: expected %s, got a JSON %s", f, fileerr.Kind(te.Type), te.Value)
	}
	return err.Error()
}

func fieldName(f string) string {
	if f == "" {
		return "the body"
	}
	return "'" + f + "'"
}

// stringOrList is a JSON string or list of strings (the "stop" field).
type stringOrList []string

// UnmarshalJSON accepts a string, a list of strings or null.
func (s *stringOrList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*s = many
	return nil
}

// chatMessage is one message of a chat completion request. Content is a
// string or a list of parts ({"type": "text", "text": ...}).
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Name    string          `json:"name,omitempty"`
	// ToolCalls are an assistant message's calls: [{"id", "type":
	// "function", "function": {"name", "arguments": "<JSON text>"}}].
	ToolCalls json.RawMessage `json:"tool_calls,omitempty"`
	// ToolCallID is the call a "tool" message answers.
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// streamOptions are a streaming request's options.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// samplingFields are the sampling fields both completion endpoints take.
type samplingFields struct {
	MaxTokens         *int               `json:"max_tokens"`
	Temperature       *float64           `json:"temperature"`
	TopP              *float64           `json:"top_p"`
	TopK              *int               `json:"top_k"`
	MinP              *float64           `json:"min_p"`
	RepetitionPenalty *float64           `json:"repetition_penalty"`
	FrequencyPenalty  *float64           `json:"frequency_penalty"`
	PresencePenalty   *float64           `json:"presence_penalty"`
	LogitBias         map[string]float64 `json:"logit_bias"`
	Seed              *int64             `json:"seed"`
	Stop              stringOrList       `json:"stop"`
	N                 *int               `json:"n"`
	Stream            bool               `json:"stream"`
	StreamOptions     *streamOptions     `json:"stream_options"`
}

// ignoredFields are request fields that clients commonly send and that do
// not change what masque generates, so they are accepted and ignored:
// user, metadata, store (masque stores nothing), service_tier,
// prompt_cache_key (masque reuses prompt prefixes by itself) and
// safety_identifier.
// Any other field that the request type does not name is refused with a
// 400 that lists it (a field set to null counts as absent).
var ignoredFields = []string{"user", "metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"}

// chatRequest is POST /v1/chat/completions. Fields it does not name, apart
// from ignoredFields, are refused.
type chatRequest struct {
	samplingFields
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Logprobs            *bool           `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	Tools               json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	ResponseFormat      json.RawMessage `json:"response_format"`
	// HideReasoning (a masque extension) removes a leading
	// <think>…</think> block from the reply.
	HideReasoning *bool `json:"hide_reasoning"`
}

// completionRequest is POST /v1/completions.
type completionRequest struct {
	samplingFields
	Model          string          `json:"model"`
	Prompt         json.RawMessage `json:"prompt"`
	BestOf         *int            `json:"best_of"`
	Logprobs       *int            `json:"logprobs"`
	Echo           bool            `json:"echo"`
	Suffix         *string         `json:"suffix"`
	ResponseFormat json.RawMessage `json:"response_format"`
}

// jsonFields returns the JSON names of a struct type's fields, those of
// embedded structs included.
func jsonFields(t reflect.Type, into map[string]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			jsonFields(f.Type, into)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			into[name] = true
		}
	}
}

// decodeStrict is decodeBody for the completion endpoints: besides a
// malformed body, a field that v's type does not name and that is not in
// ignoredFields is a 400 naming every such field, so that nothing a client
// asks for is silently ignored.
func decodeStrict(r *http.Request, v any) *apiError {
	var raw json.RawMessage
	if e := decodeBody(r, &raw); e != nil {
		return e
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return badRequest("", "invalid_type", "the request body must be a JSON object")
	}
	known := map[string]bool{}
	jsonFields(reflect.TypeOf(v).Elem(), known)
	for _, f := range ignoredFields {
		known[f] = true
	}
	var unknown []string
	for k, val := range obj {
		if !known[k] && !bytes.Equal(bytes.TrimSpace(val), []byte("null")) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return badRequest(unknown[0], "unsupported_parameter", "masque does not support %s: remove %s from the request",
			quoteList(unknown), map[bool]string{true: "it", false: "them"}[len(unknown) == 1])
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			f := strings.TrimPrefix(te.Field, "samplingFields.")
			return badRequest(f, "invalid_type", "invalid type for %s: expected %s, got a JSON %s", fieldName(f), fileerr.Kind(te.Type), te.Value)
		}
		return badRequest("", "invalid_json", "we could not parse the JSON body of your request: %v", err)
	}
	return nil
}

// quoteList is 'a', 'b' and 'c'.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// usage counts a request's tokens.
type usage struct {
	PromptTokens        int                 `json:"prompt_tokens"`
	CompletionTokens    int                 `json:"completion_tokens"`
	TotalTokens         int                 `json:"total_tokens"`
	PromptTokensDetails promptTokensDetails `json:"prompt_tokens_details"`
}

// promptTokensDetails breaks the prompt tokens down: CachedTokens were
// taken from the prompt cache instead of being run.
type promptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// topLogprob is one alternative token of a chat logprobs entry.
type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// tokenLogprob is one generated token of a chat logprobs entry.
type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float32      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

// chatLogprobs is a chat choice's logprobs.
type chatLogprobs struct {
	Content []tokenLogprob `json:"content"`
	Refusal []tokenLogprob `json:"refusal"`
}

// assistantMessage is the message of a chat choice.
type assistantMessage struct {
	Role      string            `json:"role"`
	Content   *string           `json:"content"`
	Refusal   *string           `json:"refusal"`
	ToolCalls []messageToolCall `json:"tool_calls,omitempty"`
}

type chatChoice struct {
	Index        int              `json:"index"`
	Message      assistantMessage `json:"message"`
	Logprobs     *chatLogprobs    `json:"logprobs"`
	FinishReason string           `json:"finish_reason"`
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             usage        `json:"usage"`
}

// chunkDelta is the delta of a streamed chat chunk.
type chunkDelta struct {
	Role      string          `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	ToolCalls []toolCallDelta `json:"tool_calls,omitempty"`
}

type chunkChoice struct {
	Index        int           `json:"index"`
	Delta        chunkDelta    `json:"delta"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type chatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           []chunkChoice `json:"choices"`
	Usage             *usage        `json:"usage,omitempty"`
}

// completionLogprobs is the legacy completions logprobs object.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type completionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

type completion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint"`
	Choices           []completionChoice `json:"choices"`
	Usage             *usage             `json:"usage,omitempty"`
}

// modelObject is an entry of GET /v1/models.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Base is the base model the persona runs on: its id in GET
	// /health's "bases" (a persona added at run time with a model of
	// its own: that model's name).
	Base string `json:"base,omitempty"`
}
