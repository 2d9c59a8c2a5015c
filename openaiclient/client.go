// Package openaiclient is masque's one client for OpenAI-compatible chat
// completions endpoints (OpenAI, vLLM, llama.cpp, masque serve), used by the
// judges and endpoint generators of eval and by synth's teachers.
//
// Client sends a request and retries what may be temporary (HTTP 429, 5xx,
// 408, 409, timeouts, broken streams, network errors) with exponential
// backoff and jitter, honouring Retry-After (and OpenAI's retry-after-ms);
// it can bound the requests in flight and rate-limit them in requests per
// second and tokens per minute (Limiter). Attempt is one try with none of
// that, for callers that run their own retry loop with Retry.Do (synth's
// teacher client, which retries any backend). Failures are *Error values
// with a Kind; errors.Is(err, ErrMalformed) marks a body that is not a
// completion.
//
// Streamed requests (Client.Stream) ask for stream_options.include_usage,
// so that the token usage is known for streamed replies too.
package openaiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Client calls one OpenAI-compatible chat completions endpoint. The zero
// value of each field takes the default noted. A Client is safe for
// concurrent use once in use (do not change its fields then).
type Client struct {
	// Name says what the endpoint is for in error messages ("" means
	// "endpoint"): "judge endpoint http://…: …".
	Name string
	// URL is the endpoint: a full ".../chat/completions" URL, an API root
	// ending in "/v1", or a server root (then "/v1/chat/completions" is
	// appended). See Endpoint.
	URL string
	// APIKey, when set, is sent as "Authorization: Bearer APIKey".
	APIKey string
	// HTTPClient sends requests (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Stream asks for server-sent events (with the usage in the last chunk)
	// and assembles the reply from them. A stream that ends before its final
	// event is a KindTruncated error.
	Stream bool
	// StallTimeout, when > 0, fails a streamed request with KindTimeout if
	// no data arrives for that long.
	StallTimeout time.Duration
	// Timeout bounds each attempt (0: 5 minutes; < 0: none).
	Timeout time.Duration
	// MaxAttempts, BaseBackoff, MaxBackoff and MaxRetryAfter are the retry
	// policy (see Retry; defaults 5, 500ms, 20s and MaxBackoff).
	MaxAttempts             int
	BaseBackoff, MaxBackoff time.Duration
	MaxRetryAfter           time.Duration
	// Limiter, when not nil, rate-limits the attempts sent (see NewLimiter).
	Limiter *Limiter
	// Concurrency, when > 0, bounds the attempts in flight at once.
	Concurrency int
	// Logf, when not nil, receives a line for every retry.
	Logf func(format string, args ...any)

	semMu sync.Mutex
	semCh chan struct{}
}

// Endpoint returns the chat completions URL the client posts to.
func (c *Client) Endpoint() string {
	u := strings.TrimRight(c.URL, "/")
	switch {
	case strings.HasSuffix(u, "/chat/completions"):
		return u
	case strings.HasSuffix(u, "/v1"):
		return u + "/chat/completions"
	}
	return u + "/v1/chat/completions"
}

// Retry is the client's retry policy.
func (c *Client) Retry() Retry {
	return Retry{MaxAttempts: c.MaxAttempts, BaseBackoff: c.BaseBackoff, MaxBackoff: c.MaxBackoff, MaxRetryAfter: c.MaxRetryAfter}
}

// name is what the endpoint is for ("endpoint" when unnamed).
func (c *Client) name() string {
	if c.Name == "" {
		return "endpoint"
	}
	return c.Name
}

// where names the endpoint in errors: "judge endpoint URL".
func (c *Client) where() string {
	if c.Name == "" {
		return "endpoint " + c.Endpoint()
	}
	return c.Name + " endpoint " + c.Endpoint()
}

// Chat sends req and returns the first choice, retrying temporary
// failures within the rate limits. The error names the endpoint and says
// how it failed (wrapping the *Error); a cancelled ctx stops at once.
func (c *Client) Chat(ctx context.Context, req Request) (*Response, error) {
	if c.URL == "" {
		return nil, &Error{Kind: KindAuth, Msg: fmt.Sprintf("no %s URL", c.name())}
	}
	p := c.Retry().withDefaults()
	var resp *Response
	n, err := p.Do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = c.limitedAttempt(ctx, req)
		return err
	}, func(k int, err error, d time.Duration) {
		if c.Logf != nil {
			c.Logf("%s: %v; retry %d/%d in %v", c.name(), err, k, p.MaxAttempts-1, d.Round(time.Millisecond))
		}
	})
	switch {
	case err == nil:
		return resp, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case Retryable(err) && ErrorKind(err) == KindNetwork:
		return nil, fmt.Errorf("%s unreachable after %d attempts: %w", c.where(), n, err)
	case Retryable(err):
		return nil, fmt.Errorf("%s: gave up after %d attempts: %w", c.where(), n, err)
	}
	return nil, fmt.Errorf("%s: %w", c.where(), err)
}

// limitedAttempt is one attempt within the concurrency bound, the rate
// limits and the per-attempt timeout.
func (c *Client) limitedAttempt(ctx context.Context, req Request) (*Response, error) {
	if c.Concurrency > 0 {
		sem := c.sem()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-sem }()
	}
	est := EstimateTokens(req)
	if err := c.Limiter.Wait(ctx, est); err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	actx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	resp, err := c.Attempt(actx, req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) && ErrorKind(err) != KindTimeout {
			err = &Error{Kind: KindTimeout, Msg: fmt.Sprintf("no complete response within %v", timeout)}
		}
		return nil, err
	}
	c.Limiter.Used(est, resp.PromptTokens+resp.CompletionTokens)
	return resp, nil
}

// sem returns the concurrency semaphore, making it on first use.
func (c *Client) sem() chan struct{} {
	c.semMu.Lock()
	defer c.semMu.Unlock()
	if c.semCh == nil {
		c.semCh = make(chan struct{}, c.Concurrency)
	}
	return c.semCh
}

var errStalled = errors.New("stream stalled")

// Attempt sends req once: no retries, limits or timeout beyond ctx. A
// failure is an *Error (or ctx's error when ctx ended).
func (c *Client) Attempt(ctx context.Context, req Request) (*Response, error) {
	if c.URL == "" {
		return nil, &Error{Kind: KindAuth, Msg: fmt.Sprintf("no %s URL", c.name())}
	}
	data, err := json.Marshal(req.wire(c.Stream))
	if err != nil {
		return nil, &Error{Kind: KindRejected, Msg: err.Error()}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint(), bytes.NewReader(data))
	if err != nil {
		return nil, &Error{Kind: KindAuth, Msg: err.Error()}
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	if c.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	var stall *time.Timer
	if c.Stream && c.StallTimeout > 0 {
		stall = time.AfterFunc(c.StallTimeout, func() { cancel(errStalled) })
		defer stall.Stop()
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, statusError(resp, msg)
	}
	if !c.Stream {
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, transportError(ctx, err)
		}
		return ParseResponse(data)
	}
	return readStream(ctx, resp.Body, stall, c.StallTimeout)
}

// transportError classifies an error from sending or reading.
func transportError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
		return &Error{Kind: KindTimeout, Msg: "no data from the stream within the stall timeout"}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Kind: KindTimeout, Msg: "request timed out"}
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: KindTimeout, Msg: err.Error()}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &Error{Kind: KindTruncated, Msg: "connection closed before the response was complete"}
	}
	return &Error{Kind: KindNetwork, Msg: err.Error()}
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
