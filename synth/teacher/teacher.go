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
// The HTTP side (OpenAI) and the retry, backoff and rate-limit machinery
// are package openaiclient's, shared with eval's judges. Failures are
// *openaiclient.Error values.
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

	"github.com/masque-ai/masque/openaiclient"
)

// Request is one chat completion request: openaiclient's. Every field
// takes part in the cache key (see Key). The teachers' Response carries no
// logprobs, so TopLogprobs is only of use to callers of openaiclient.
type Request = openaiclient.Request

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
	// are *openaiclient.Error values with Retryable() true.
	Complete(ctx context.Context, req Request) (*Response, error)
}

// Error kinds of this package's own, beside openaiclient's.
const (
	// KindDeferred: the request was recorded for a batch, or no batch
	// result is available for it yet (see Recorder, CacheOnly).
	KindDeferred = "deferred"
	// KindBatchFailed: the batch results hold an error for this request.
	KindBatchFailed = "batch_failed"
)

// IsDeferred reports whether err is a KindDeferred error.
func IsDeferred(err error) bool { return openaiclient.ErrorKind(err) == KindDeferred }

// Key is the cache key of a request: the first 128 bits, in hex, of the
// SHA-256 of its canonical JSON body (model, messages and every sampling
// parameter; not whether it is streamed). It is also the custom_id of the
// request in OpenAI Batch files.
func Key(r Request) string {
	b, err := json.Marshal(r.Body())
	if err != nil {
		panic(err) // plain strings and numbers always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// fromAPI is the openaiclient response as a teacher Response.
func fromAPI(r *openaiclient.Response) *Response {
	return &Response{Text: r.Text, FinishReason: r.FinishReason, PromptTokens: r.PromptTokens,
		CompletionTokens: r.CompletionTokens, Model: r.Model}
}
