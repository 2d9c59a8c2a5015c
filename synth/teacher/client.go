package teacher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/masque-ai/masque/openaiclient"
)

// Options configure a Client. Zero values take the defaults noted.
type Options struct {
	// Concurrency bounds the requests in flight at once (default 4).
	Concurrency int
	// MaxAttempts is how many times one request is tried (default 6).
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the exponential backoff between
	// attempts: attempt k waits a random time in [d/2, d] with
	// d = min(MaxBackoff, BaseBackoff·2^k) (defaults 1s and 60s).
	BaseBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a server's Retry-After is honoured
	// (default 5 minutes).
	MaxRetryAfter time.Duration
	// Timeout bounds one attempt (default 5 minutes; < 0: none).
	Timeout time.Duration
	// RequestsPerSecond and TokensPerMinute rate-limit the requests sent
	// (0: unlimited). Cache hits are not limited.
	RequestsPerSecond, TokensPerMinute float64
	// Cache, when not nil, answers requests it holds and stores every
	// successful response.
	Cache *Cache
	// Logf, when not nil, receives a line for every retry.
	Logf func(format string, args ...any)
}

// Stats counts what a Client did.
type Stats struct {
	// Requests is the number of attempts sent to the backend.
	Requests int `json:"requests"`
	// Retries is the number of attempts after a first one.
	Retries int `json:"retries"`
	// CacheHits is the number of requests answered from the cache.
	CacheHits int `json:"cache_hits"`
	// Completed and Failed count requests (not attempts) by outcome.
	Completed int `json:"completed"`
	Failed    int `json:"failed"` // requests that gave up
	// PromptTokens and CompletionTokens add up the usage reported by the
	// backend for requests it answered (not cache hits).
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"` // tokens generated
	// Errors counts failed attempts by error kind.
	Errors map[string]int `json:"errors,omitempty"`
}

// Client is a Teacher that adds caching, bounded concurrency, rate limits,
// per-attempt timeouts and retries with backoff to a backend Teacher (the
// retry policy and limiter are openaiclient's).
// Identical requests in flight at the same time are sent once. It is safe
// for concurrent use.
type Client struct {
	backend Teacher
	opt     Options
	sem     chan struct{}
	lim     *openaiclient.Limiter
	retry   openaiclient.Retry

	mu       sync.Mutex
	stats    Stats
	inflight map[string]*flight
}

type flight struct {
	done chan struct{}
	resp *Response
	err  error
}

// NewClient wraps backend.
func NewClient(backend Teacher, o Options) *Client {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 5 * time.Minute
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	return &Client{backend: backend, opt: o, sem: make(chan struct{}, o.Concurrency),
		lim:      openaiclient.NewLimiter(o.RequestsPerSecond, o.TokensPerMinute),
		retry:    openaiclient.Retry{MaxAttempts: o.MaxAttempts, BaseBackoff: o.BaseBackoff, MaxBackoff: o.MaxBackoff, MaxRetryAfter: o.MaxRetryAfter},
		inflight: map[string]*flight{},
		stats:    Stats{Errors: map[string]int{}}}
}

// Concurrency is the configured bound on requests in flight.
func (c *Client) Concurrency() int { return c.opt.Concurrency }

// Stats returns a copy of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Errors = maps.Clone(c.stats.Errors)
	return s
}

// Complete returns the cached response for req, or asks the backend,
// retrying failures that are worth retrying. A retryable failure that
// outlasts MaxAttempts comes back wrapped, with its *openaiclient.Error inside.
func (c *Client) Complete(ctx context.Context, req Request) (*Response, error) {
	key := Key(req)
	if c.opt.Cache != nil {
		if r, ok := c.opt.Cache.Get(key); ok {
			c.count(func(s *Stats) { s.CacheHits++ })
			return r, nil
		}
	}
	c.mu.Lock()
	if f := c.inflight[key]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.resp, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[key] = f
	c.mu.Unlock()

	f.resp, f.err = c.do(ctx, key, req)
	c.mu.Lock()
	delete(c.inflight, key)
	c.mu.Unlock()
	close(f.done)
	return f.resp, f.err
}

func (c *Client) count(fn func(*Stats)) {
	c.mu.Lock()
	fn(&c.stats)
	c.mu.Unlock()
}

func (c *Client) do(ctx context.Context, key string, req Request) (*Response, error) {
	var resp *Response
	n, err := c.retry.Do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = c.attempt(ctx, req)
		if err != nil && ctx.Err() == nil {
			c.count(func(s *Stats) { s.Errors[openaiclient.ErrorKind(err)]++ })
		}
		return err
	}, func(k int, err error, d time.Duration) {
		if c.opt.Logf != nil {
			c.opt.Logf("teacher: %v; retry %d/%d in %v", err, k, c.opt.MaxAttempts-1, d.Round(time.Millisecond))
		}
		c.count(func(s *Stats) { s.Retries++ })
	})
	if err == nil {
		c.count(func(s *Stats) {
			s.Completed++
			s.PromptTokens += resp.PromptTokens
			s.CompletionTokens += resp.CompletionTokens
		})
		if c.opt.Cache != nil {
			if err := c.opt.Cache.Put(key, resp); err != nil {
				return nil, err
			}
		}
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.count(func(s *Stats) { s.Failed++ })
	if openaiclient.Retryable(err) {
		return nil, fmt.Errorf("gave up after %d attempts: %w", n, err)
	}
	return nil, err
}

// attempt sends req once, within the concurrency bound, rate limit and
// timeout.
func (c *Client) attempt(ctx context.Context, req Request) (*Response, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	est := openaiclient.EstimateTokens(req)
	if err := c.lim.Wait(ctx, est); err != nil {
		return nil, err
	}
	actx, cancel := ctx, context.CancelFunc(func() {})
	if c.opt.Timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, c.opt.Timeout)
	}
	defer cancel()
	c.count(func(s *Stats) { s.Requests++ })
	resp, err := c.backend.Complete(actx, req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) && openaiclient.ErrorKind(err) != openaiclient.KindTimeout {
			err = &openaiclient.Error{Kind: openaiclient.KindTimeout, Msg: fmt.Sprintf("no complete response within %v", c.opt.Timeout)}
		}
		return nil, err
	}
	c.lim.Used(est, resp.PromptTokens+resp.CompletionTokens)
	return resp, nil
}
