package openaiclient

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Retry is a retry policy: how often to try and how long to wait between
// tries. Zero fields take the defaults noted.
type Retry struct {
	// MaxAttempts is how many times one request is tried (default 5).
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the exponential backoff: the wait
	// before retry k+1 (k from 0) is a random duration in [d/2, d] with
	// d = min(MaxBackoff, BaseBackoff·2^k) (defaults 500ms and 20s).
	BaseBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a server's Retry-After is honoured
	// (default MaxBackoff). A Retry-After replaces the backoff.
	MaxRetryAfter time.Duration
}

func (p Retry) withDefaults() Retry {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.BaseBackoff <= 0 {
		p.BaseBackoff = 500 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 20 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = p.MaxBackoff
	}
	return p
}

// Delay is the wait before retry k+1 (k from 0) after err: the Retry-After
// that err carries, capped at MaxRetryAfter and spread by up to a tenth
// (so that the clients a server turned away do not all return at once),
// else the jittered exponential backoff.
func (p Retry) Delay(k int, err error) time.Duration {
	p = p.withDefaults()
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		d := min(e.RetryAfter, p.MaxRetryAfter)
		return d + rand.N(d/10+1)
	}
	d := p.BaseBackoff
	for i := 0; i < k && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// Do calls attempt until it succeeds, fails with an error that is not
// Retryable, ctx ends, or MaxAttempts tries have been made, waiting Delay
// between tries. onRetry (may be nil) is called before each wait with the
// number of the coming retry (from 1), the error and the wait. Do returns
// the number of tries made and the last error (nil on success; ctx's error
// when ctx ended).
func (p Retry) Do(ctx context.Context, attempt func(context.Context) error, onRetry func(k int, err error, wait time.Duration)) (int, error) {
	p = p.withDefaults()
	for k := 0; ; k++ {
		err := attempt(ctx)
		if err == nil {
			return k + 1, nil
		}
		if ctx.Err() != nil {
			return k + 1, ctx.Err()
		}
		if !Retryable(err) || k+1 >= p.MaxAttempts {
			return k + 1, err
		}
		d := p.Delay(k, err)
		if onRetry != nil {
			onRetry(k+1, err, d)
		}
		if err := sleep(ctx, d); err != nil {
			return k + 1, err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
