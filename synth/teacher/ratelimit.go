package teacher

import (
	"context"
	"sync"
	"time"
)

// Limiter spaces requests to at most RequestsPerSecond and keeps the tokens
// spent within TokensPerMinute. A zero limit is no limit. Tokens are
// reserved from an estimate before a request and corrected with the real
// usage afterwards (Adjust); the token bucket holds at most one minute's
// worth and may go into debt, which later requests then wait out.
type Limiter struct {
	rps, tpm float64

	mu      sync.Mutex
	next    time.Time // earliest start of the next request
	tokens  float64   // available tokens (may be negative)
	updated time.Time
	now     func() time.Time
}

// NewLimiter returns a limiter; rps or tpm ≤ 0 turns that limit off.
func NewLimiter(rps, tpm float64) *Limiter {
	l := &Limiter{rps: rps, tpm: tpm, now: time.Now}
	l.tokens = tpm
	l.updated = l.now()
	return l
}

// reserve books a request of n tokens and returns how long to wait before
// sending it.
func (l *Limiter) reserve(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	if l.rps > 0 {
		start := now
		if l.next.After(start) {
			start = l.next
		}
		l.next = start.Add(time.Duration(float64(time.Second) / l.rps))
		wait = start.Sub(now)
	}
	if l.tpm > 0 {
		perSec := l.tpm / 60
		l.tokens = min(l.tpm, l.tokens+now.Sub(l.updated).Seconds()*perSec)
		l.updated = now
		need := min(float64(n), l.tpm)
		l.tokens -= need
		if l.tokens < 0 {
			wait = max(wait, time.Duration(-l.tokens/perSec*float64(time.Second)))
		}
	}
	return wait
}

// Wait blocks until a request estimated at n tokens may start, or ctx ends.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil || (l.rps <= 0 && l.tpm <= 0) {
		return ctx.Err()
	}
	return sleep(ctx, l.reserve(n))
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
