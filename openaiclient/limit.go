package openaiclient

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter keeps requests within a rate in requests per second and the
// tokens they spend within a budget in tokens per minute. A zero limit is
// no limit; a nil *Limiter limits nothing.
//
// Requests are spaced evenly (golang.org/x/time/rate with a burst of one).
// Tokens are reserved from an estimate before a request and corrected with
// the real usage afterwards (Used): the token bucket holds at most one
// minute's worth and may go into debt, which later requests then wait out,
// and an overestimate is given back. (x/time/rate cannot give tokens back,
// so the token bucket is kept here.)
type Limiter struct {
	req *rate.Limiter // nil: no request limit
	tpm float64

	mu      sync.Mutex
	tokens  float64 // available tokens (may be negative)
	updated time.Time
	now     func() time.Time
}

// NewLimiter returns a limiter; rps or tpm ≤ 0 turns that limit off.
func NewLimiter(rps, tpm float64) *Limiter {
	l := &Limiter{tpm: max(tpm, 0), now: time.Now}
	if rps > 0 {
		l.req = rate.NewLimiter(rate.Limit(rps), 1)
	}
	l.tokens = l.tpm
	l.updated = l.now()
	return l
}

// reserveTokens books n tokens and returns how long to wait before they
// are available.
func (l *Limiter) reserveTokens(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	perSec := l.tpm / 60
	l.tokens = min(l.tpm, l.tokens+now.Sub(l.updated).Seconds()*perSec)
	l.updated = now
	l.tokens -= min(float64(n), l.tpm)
	if l.tokens < 0 {
		return time.Duration(math.Ceil(-l.tokens / perSec * float64(time.Second)))
	}
	return 0
}

// Wait blocks until a request estimated at n tokens may start, or ctx ends.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil {
		return ctx.Err()
	}
	if l.req != nil {
		if err := l.req.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The wait would outlast ctx's deadline: wait what we may, then
			// report the deadline as ctx would.
			<-ctx.Done()
			return ctx.Err()
		}
	}
	if l.tpm > 0 {
		return sleep(ctx, l.reserveTokens(n))
	}
	return ctx.Err()
}

// Used corrects the token balance of a request reserved at estimated
// tokens that used used tokens (0: unknown, left as estimated).
func (l *Limiter) Used(estimated, used int) {
	if used > 0 {
		l.Adjust(used - estimated)
	}
}

// Adjust corrects the token balance by delta tokens (actual − estimated).
func (l *Limiter) Adjust(delta int) {
	if l == nil || l.tpm <= 0 || delta == 0 {
		return
	}
	l.mu.Lock()
	l.tokens = min(l.tpm, l.tokens-float64(delta))
	l.mu.Unlock()
}
