package teacher

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/masque-ai/masque/openaiclient"
)

// Environment variables read by ResolveOpenAI.
const (
	EnvURL       = "MASQUE_TEACHER_URL"
	EnvModel     = "MASQUE_TEACHER_MODEL"
	EnvKey       = "MASQUE_TEACHER_KEY"
	EnvOpenAIKey = "OPENAI_API_KEY"
)

// OpenAI is a Teacher that calls an OpenAI-compatible chat completions
// endpoint (through openaiclient), one attempt per call (wrap it in a
// Client for retries, limits and caching).
type OpenAI struct {
	// BaseURL is the API root including its version, e.g.
	// https://api.openai.com/v1; requests go to BaseURL + "/chat/completions".
	BaseURL string
	// Model fills Request.Model when that is empty.
	Model string
	// APIKey, when set, is sent as "Authorization: Bearer APIKey".
	APIKey string
	// Stream asks for server-sent events and assembles the reply from them,
	// with the token usage from the last chunk (stream_options.include_usage).
	// A stream that ends before its final event is a openaiclient.KindTruncated error.
	Stream bool
	// StallTimeout, when > 0, fails a streamed request with openaiclient.KindTimeout if
	// no data arrives for that long.
	StallTimeout time.Duration
	// HTTPClient sends the requests (nil: a client with no overall timeout;
	// Client applies per-request timeouts through the context).
	HTTPClient *http.Client
}

// ResolveOpenAI fills in an endpoint from flags, falling back to the
// environment: MASQUE_TEACHER_URL, MASQUE_TEACHER_MODEL, and
// MASQUE_TEACHER_KEY or else OPENAI_API_KEY. getenv is os.Getenv in
// production.
func ResolveOpenAI(url, model, key string, getenv func(string) string) *OpenAI {
	if url == "" {
		url = getenv(EnvURL)
	}
	if model == "" {
		model = getenv(EnvModel)
	}
	if key == "" {
		key = getenv(EnvKey)
	}
	if key == "" {
		key = getenv(EnvOpenAIKey)
	}
	return &OpenAI{BaseURL: url, Model: model, APIKey: key}
}

// Complete sends one request.
func (o *OpenAI) Complete(ctx context.Context, req Request) (*Response, error) {
	if o.BaseURL == "" {
		return nil, &openaiclient.Error{Kind: openaiclient.KindAuth, Msg: "no teacher URL: pass --teacher-url or set " + EnvURL}
	}
	if req.Model == "" {
		req.Model = o.Model
	}
	c := &openaiclient.Client{Name: "teacher", URL: strings.TrimRight(o.BaseURL, "/") + "/chat/completions",
		APIKey: o.APIKey, HTTPClient: o.HTTPClient, Stream: o.Stream, StallTimeout: o.StallTimeout}
	r, err := c.Attempt(ctx, req)
	if err != nil {
		return nil, err
	}
	return fromAPI(r), nil
}
