package openaiclient

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/masque-ai/masque/chattemplate"
)

// Request is one chat completion request.
type Request struct {
	// Model is the model name sent to the endpoint.
	Model string
	// Messages is the conversation to complete.
	Messages []chattemplate.Message
	// MaxTokens caps the reply (≤ 0: not sent, the endpoint's default).
	MaxTokens int
	// Temperature is sent as given (0 is greedy).
	Temperature float64
	// TopP is nucleus sampling (0: not sent).
	TopP float64
	// Seed, when not nil, is sent for servers that honour it.
	Seed *int64
	// Stop lists stop strings (nil: not sent).
	Stop []string
	// TopLogprobs > 0 asks for logprobs with that many alternatives per
	// token (OpenAI allows up to 20).
	TopLogprobs int
}

// Alt is one candidate token at a position, with its log-probability.
type Alt struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
}

// TokenLogprob is one generated token with its log-probability and the
// most likely alternatives at its position (best first).
type TokenLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Top     []Alt   `json:"top,omitempty"`
}

// Response is the first choice of a chat completion, with the usage the
// endpoint reported.
type Response struct {
	Model        string         `json:"model,omitempty"`
	Text         string         `json:"text"`
	FinishReason string         `json:"finish_reason,omitempty"`
	Logprobs     []TokenLogprob `json:"logprobs,omitempty"`
	// PromptTokens and CompletionTokens are the usage the endpoint reported
	// (0 when it reported none; a stream reports it in its last chunk, which
	// the client asks for with stream_options.include_usage).
	PromptTokens     int `json:"prompt_tokens,omitempty"`
	CompletionTokens int `json:"completion_tokens,omitempty"`
}

// Body is the JSON body of a chat completions request without the
// streaming fields: the body of a line of an OpenAI Batch API input file,
// and what synth/teacher hashes as its cache key (so its fields, their
// order and which are omitted when zero are a file format: changing them
// makes every existing teacher cache miss).
type Body struct {
	Model       string                 `json:"model"`
	Messages    []chattemplate.Message `json:"messages"`
	MaxTokens   int                    `json:"max_tokens,omitempty"`
	Temperature float64                `json:"temperature"`
	TopP        float64                `json:"top_p,omitempty"`
	Seed        *int64                 `json:"seed,omitempty"`
	Stop        []string               `json:"stop,omitempty"`
	Logprobs    bool                   `json:"logprobs,omitempty"`
	TopLogprobs int                    `json:"top_logprobs,omitempty"`
}

// Body is r as a request body (Messages nil is sent as []). MaxTokens is
// as given; the client itself never sends a negative one.
func (r Request) Body() Body {
	msgs := r.Messages
	if msgs == nil {
		msgs = []chattemplate.Message{}
	}
	b := Body{Model: r.Model, Messages: msgs, MaxTokens: r.MaxTokens, Temperature: r.Temperature,
		TopP: r.TopP, Seed: r.Seed, Stop: r.Stop}
	if r.TopLogprobs > 0 {
		b.Logprobs, b.TopLogprobs = true, r.TopLogprobs
	}
	return b
}

// wireRequest is the JSON body sent.
type wireRequest struct {
	Body
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

func (r Request) wire(stream bool) wireRequest {
	w := wireRequest{Body: r.Body(), Stream: stream}
	w.MaxTokens = max(w.MaxTokens, 0)
	if stream {
		w.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	return w
}

type wireAlt struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type wireToken struct {
	wireAlt
	TopLogprobs []wireAlt `json:"top_logprobs"`
}

type wireLogprobs struct {
	Content []wireToken `json:"content"`
	// Legacy completions layout.
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
}

type wireContent struct {
	Content *string `json:"content"`
}

// wireResponse is a chat completion (non-streamed) or one stream chunk.
type wireResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message      *wireContent  `json:"message"`
		Delta        *wireContent  `json:"delta"`
		Text         *string       `json:"text"` // legacy completions
		Logprobs     *wireLogprobs `json:"logprobs"`
		FinishReason *string       `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// errorText is the message of an {"error":…} value (an object with a
// message, or a string), or "" when there is none.
func errorText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &m) == nil && m.Message != "" {
		return m.Message
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s
	}
	return snippet(raw)
}

// BodyError is the message of an {"error":…} body (an object with a
// message, or a string), or "" when data holds none.
func BodyError(data []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &e) != nil {
		return ""
	}
	return errorText(e.Error)
}

// errorMessage extracts {"error":{"message":…}} (or {"error":"…"}) from
// an error body, or else gives the start of the body.
func errorMessage(data []byte) string {
	if s := BodyError(data); s != "" {
		return s
	}
	return snippet(data)
}

// snippet is the start of a body for an error message.
func snippet(data []byte) string {
	s := strings.TrimSpace(string(data))
	if len(s) > 300 {
		s = s[:300]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// tokenText is the token's text: its UTF-8 bytes when given and valid (a
// byte-level token's string form may be an escape), else its string.
func tokenText(a wireAlt) string {
	if len(a.Bytes) > 0 {
		b := make([]byte, len(a.Bytes))
		for i, v := range a.Bytes {
			if v < 0 || v > 255 {
				return a.Token
			}
			b[i] = byte(v)
		}
		if utf8.Valid(b) {
			return string(b)
		}
	}
	return a.Token
}

func malformed(format string, args ...any) *Error {
	return &Error{Kind: KindBadResponse, Msg: "malformed response: " + fmt.Sprintf(format, args...)}
}

// ParseResponse decodes an OpenAI chat completion body (logprobs in the
// chat layout, "content": [{token, logprob, bytes, top_logprobs}], or the
// legacy completions layout). An {"error":…} body is a KindServer error; a
// body that is not a completion with at least one choice and a text is a
// KindBadResponse error (errors.Is(err, ErrMalformed)).
func ParseResponse(data []byte) (*Response, error) {
	var w wireResponse
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, malformed("not JSON (%v): %s", err, snippet(data))
	}
	if msg := errorText(w.Error); msg != "" && len(w.Choices) == 0 {
		return nil, &Error{Kind: KindServer, Msg: msg}
	}
	if len(w.Choices) == 0 {
		return nil, malformed("no choices: %s", snippet(data))
	}
	ch := w.Choices[0]
	r := &Response{Model: w.Model}
	switch {
	case ch.Message != nil && ch.Message.Content != nil:
		r.Text = *ch.Message.Content
	case ch.Text != nil:
		r.Text = *ch.Text
	case ch.Message != nil:
		r.Text = "" // content: null (e.g. a reply cut at zero tokens)
	default:
		return nil, malformed("the choice has no message: %s", snippet(data))
	}
	if ch.FinishReason != nil {
		r.FinishReason = *ch.FinishReason
	}
	if w.Usage != nil {
		r.PromptTokens, r.CompletionTokens = w.Usage.PromptTokens, w.Usage.CompletionTokens
	}
	r.Logprobs = appendLogprobs(nil, ch.Logprobs)
	return r, nil
}

// appendLogprobs appends the tokens of lp (either layout) to out.
func appendLogprobs(out []TokenLogprob, lp *wireLogprobs) []TokenLogprob {
	if lp == nil {
		return out
	}
	for _, t := range lp.Content {
		tl := TokenLogprob{Token: tokenText(t.wireAlt), Logprob: t.Logprob}
		for _, a := range t.TopLogprobs {
			tl.Top = append(tl.Top, Alt{Token: tokenText(a), Logprob: a.Logprob})
		}
		out = append(out, tl)
	}
	if len(lp.Content) > 0 {
		return out
	}
	for i, tok := range lp.Tokens {
		tl := TokenLogprob{Token: tok}
		if i < len(lp.TokenLogprobs) {
			tl.Logprob = lp.TokenLogprobs[i]
		}
		if i < len(lp.TopLogprobs) {
			for s, v := range lp.TopLogprobs[i] {
				tl.Top = append(tl.Top, Alt{Token: s, Logprob: v})
			}
			slices.SortFunc(tl.Top, func(a, b Alt) int {
				if c := cmp.Compare(b.Logprob, a.Logprob); c != 0 {
					return c
				}
				return strings.Compare(a.Token, b.Token)
			})
		}
		out = append(out, tl)
	}
	return out
}

// readStream assembles a streamed completion from server-sent events. The
// stream is complete when it has sent "data: [DONE]" or a chunk with a
// finish_reason; anything less is KindTruncated. The usage chunk that
// stream_options.include_usage asks for (choices empty, usage set) comes
// after the finish_reason chunk and is read when the server sends it.
func readStream(ctx context.Context, body io.Reader, stall *time.Timer, stallAfter time.Duration) (*Response, error) {
	br := bufio.NewReaderSize(body, 1<<16)
	var text strings.Builder
	r := &Response{}
	done, finished := false, false
	for !done {
		line, err := br.ReadString('\n')
		if stall != nil && len(line) > 0 {
			stall.Reset(stallAfter)
		}
		complete := strings.HasSuffix(line, "\n")
		line = strings.TrimRight(line, "\r\n")
		if payload, ok := strings.CutPrefix(line, "data:"); ok {
			payload = strings.TrimSpace(payload)
			switch {
			case payload == "[DONE]":
				done = true
			case !complete:
				// A chunk cut off mid-line: the stream is truncated.
			default:
				var w wireResponse
				if err := json.Unmarshal([]byte(payload), &w); err != nil {
					return nil, malformed("stream chunk: %v", err)
				}
				if msg := errorText(w.Error); msg != "" {
					return nil, &Error{Kind: KindServer, Msg: "error in stream: " + msg}
				}
				if w.Model != "" {
					r.Model = w.Model
				}
				if w.Usage != nil {
					r.PromptTokens, r.CompletionTokens = w.Usage.PromptTokens, w.Usage.CompletionTokens
				}
				for _, c := range w.Choices {
					if c.Delta != nil && c.Delta.Content != nil {
						text.WriteString(*c.Delta.Content)
					}
					r.Logprobs = appendLogprobs(r.Logprobs, c.Logprobs)
					if c.FinishReason != nil && *c.FinishReason != "" {
						r.FinishReason = *c.FinishReason
						finished = true
					}
				}
			}
		}
		if err != nil {
			if done || finished {
				break // complete; the connection may close without [DONE]
			}
			if errors.Is(err, io.EOF) {
				return nil, &Error{Kind: KindTruncated, Msg: fmt.Sprintf("stream ended after %d bytes of text without a final event", text.Len())}
			}
			if te := transportError(ctx, err); ErrorKind(te) != KindNetwork {
				return nil, te
			}
			return nil, &Error{Kind: KindTruncated, Msg: fmt.Sprintf("stream broke after %d bytes of text: %v", text.Len(), err)}
		}
	}
	if !finished {
		// [DONE] without any finish_reason: accept, but say so.
		r.FinishReason = "unknown"
	}
	r.Text = text.String()
	return r, nil
}
