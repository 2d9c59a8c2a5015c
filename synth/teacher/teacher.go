// Package teacher talks to the language models that write synthetic data:
// masque's own engine in-process (Engine) or any OpenAI-compatible chat
// completions endpoint (OpenAI), behind one interface (Teacher).
//
// Client wraps a backend with what a long data-synthesis run needs: bounded
// concurrency, retries with exponential backoff and jitter (honouring
// Retry-After), a rate limit in requests per second and tokens per minute,
// per-request timeouts, and an on-disk response cache keyed by the full
// request, so that a rerun never pays twice for the same completion.
//
// Recorder and CacheOnly support the OpenAI Batch API: the first writes the
// requests a run would make as batch JSONL, the second answers only from
// the cache that ImportBatchResults fills from the batch results file.
package teacher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message is one turn of a chat.
type Message struct {
	Role    string `json:"role"`    // "system", "user" or "assistant"
	Content string `json:"content"` // the text
}

// Request is one chat completion request. Every field takes part in the
// cache key (see Key).
type Request struct {
	// Model is the model name sent to the endpoint (for Engine, informative).
	Model string
	// Messages is the conversation to complete.
	Messages []Message
	// MaxTokens caps the completion (0: the backend's default).
	MaxTokens int
	// Temperature is the sampling temperature; 0 is greedy and is sent as 0.
	Temperature float64
	// TopP is nucleus sampling (0: not sent, the backend's default).
	TopP float64
	// Seed, when not nil, seeds sampling for reproducible completions.
	Seed *int64
	// Stop lists stop strings.
	Stop []string
}

// Response is a completed chat completion.
type Response struct {
	// Text is the assistant's reply.
	Text string `json:"text"`
	// FinishReason is "stop", "length" or what the backend reported.
	FinishReason string `json:"finish_reason"`
	// PromptTokens and CompletionTokens are the usage the backend reported
	// (0 when it reported none).
	PromptTokens     int `json:"prompt_tokens,omitempty"`
	CompletionTokens int `json:"completion_tokens,omitempty"` // tokens generated
	// Model is the model that answered, as the backend named it.
	Model string `json:"model,omitempty"`
	// Cached is true when the response came from the cache.
	Cached bool `json:"-"`
}

// Teacher completes chat requests.
type Teacher interface {
	// Complete returns the completion of req. Errors that a retry may cure
	// are *Error values with Retryable() true.
	Complete(ctx context.Context, req Request) (*Response, error)
}

// Error kinds reported in Error.Kind.
const (
	// KindRateLimited: HTTP 429.
	KindRateLimited = "rate_limited"
	// KindServer: HTTP 5xx, 408 or 409, or an error event in a stream.
	KindServer = "server_error"
	// KindTimeout: the request or a stalled stream ran past its timeout.
	KindTimeout = "timeout"
	// KindTruncated: a stream ended before its final event.
	KindTruncated = "truncated_stream"
	// KindNetwork: the connection failed.
	KindNetwork = "network"
	// KindBadResponse: the body could not be understood.
	KindBadResponse = "bad_response"
	// KindRejected: the endpoint refused this request (HTTP 400, 413, 422).
	KindRejected = "request_rejected"
	// KindContextLength: the prompt does not fit the model's context.
	KindContextLength = "context_length"
	// KindAuth: HTTP 401/403/404: no request can succeed; runs stop.
	KindAuth = "auth"
	// KindDeferred: the request was recorded for a batch, or no batch
	// result is available for it yet (see Recorder, CacheOnly).
	KindDeferred = "deferred"
	// KindBatchFailed: the batch results hold an error for this request.
	KindBatchFailed = "batch_failed"
)

// Error is a failed request.
type Error struct {
	// Kind is one of the Kind constants.
	Kind string
	// Status is the HTTP status (0 when there was none).
	Status int
	// RetryAfter is the delay the server asked for (0: none).
	RetryAfter time.Duration
	// Msg describes the failure.
	Msg string
}

// Error formats the failure.
func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (HTTP %d): %s", e.Kind, e.Status, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Msg)
}

// Retryable reports whether trying again may succeed.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited, KindServer, KindTimeout, KindTruncated, KindNetwork:
		return true
	}
	return false
}

// Fatal reports whether no request to this backend can succeed (bad
// credentials, unknown endpoint or model), so a run should stop.
func (e *Error) Fatal() bool { return e.Kind == KindAuth }

// ErrorKind returns the Kind of err when it is (or wraps) an *Error, and
// "error" otherwise.
func ErrorKind(err error) string {
	var te *Error
	if errors.As(err, &te) {
		return te.Kind
	}
	return "error"
}

// IsDeferred reports whether err is a KindDeferred error.
func IsDeferred(err error) bool { return ErrorKind(err) == KindDeferred }

// wireRequest is the JSON body of a chat completions request.
type wireRequest struct {
	Model       string    `json:"model"`
	Messages    []Message `json:"messages"`
	MaxTokens   int       `json:"max_tokens,omitempty"`
	Temperature float64   `json:"temperature"`
	TopP        float64   `json:"top_p,omitempty"`
	Seed        *int64    `json:"seed,omitempty"`
	Stop        []string  `json:"stop,omitempty"`
	Stream      bool      `json:"stream,omitempty"`
}

func (r Request) wire() wireRequest {
	msgs := r.Messages
	if msgs == nil {
		msgs = []Message{}
	}
	return wireRequest{Model: r.Model, Messages: msgs, MaxTokens: r.MaxTokens, Temperature: r.Temperature,
		TopP: r.TopP, Seed: r.Seed, Stop: r.Stop}
}

// Key is the cache key of a request: the first 128 bits, in hex, of the
// SHA-256 of its canonical JSON body (model, messages and every sampling
// parameter; not whether it is streamed). It is also the custom_id of the
// request in OpenAI Batch files.
func Key(r Request) string {
	b, err := json.Marshal(r.wire())
	if err != nil {
		panic(err) // plain strings and numbers always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// EstimateTokens is a rough token count of a request, prompt (4 bytes a
// token) plus the completion budget, used by the tokens-per-minute limit
// before the real usage is known.
func EstimateTokens(r Request) int {
	n := 0
	for _, m := range r.Messages {
		n += len(m.Content)/4 + 4
	}
	if r.MaxTokens > 0 {
		n += r.MaxTokens
	} else {
		n += 256
	}
	return n
}
