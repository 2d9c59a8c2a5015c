package openaiclient

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error kinds reported in Error.Kind.
const (
	// KindRateLimited: HTTP 429.
	KindRateLimited = "rate_limited"
	// KindServer: HTTP 5xx, 408 or 409, or an error object in a 200 body or
	// a stream.
	KindServer = "server_error"
	// KindTimeout: the request or a stalled stream ran past its timeout.
	KindTimeout = "timeout"
	// KindTruncated: a stream ended before its final event.
	KindTruncated = "truncated_stream"
	// KindNetwork: the connection failed.
	KindNetwork = "network"
	// KindBadResponse: the body could not be understood (errors.Is(err,
	// ErrMalformed) holds).
	KindBadResponse = "bad_response"
	// KindRejected: the endpoint refused this request (HTTP 400, 413, 422).
	KindRejected = "request_rejected"
	// KindContextLength: the prompt does not fit the model's context.
	KindContextLength = "context_length"
	// KindAuth: HTTP 401/403/404, or no endpoint at all: no request can
	// succeed.
	KindAuth = "auth"
)

// ErrMalformed matches (errors.Is) a KindBadResponse error: a 200
// response whose body is not a chat completion.
var ErrMalformed = errors.New("malformed response")

// Error is a failed request.
type Error struct {
	// Kind is one of the Kind constants (callers may add their own).
	Kind string
	// Status is the HTTP status (0 when there was none).
	Status int
	// RetryAfter is the delay the server asked for (0: none).
	RetryAfter time.Duration
	// Msg describes the failure.
	Msg string
}

// Error formats the failure: "kind: HTTP status: message".
func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s: HTTP %d: %s", e.Kind, e.Status, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Msg)
}

// Is makes errors.Is(err, ErrMalformed) hold for KindBadResponse errors.
func (e *Error) Is(target error) bool { return target == ErrMalformed && e.Kind == KindBadResponse }

// Retryable reports whether trying again may succeed.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited, KindServer, KindTimeout, KindTruncated, KindNetwork:
		return true
	}
	return false
}

// Fatal reports whether no request to this endpoint can succeed (bad
// credentials, unknown endpoint or model), so a run should stop.
func (e *Error) Fatal() bool { return e.Kind == KindAuth }

// Retryable reports whether err is (or wraps) an *Error that a retry may
// cure. Any other error is final.
func Retryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// ErrorKind returns the Kind of err when it is (or wraps) an *Error, and
// "error" otherwise.
func ErrorKind(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return "error"
}

// statusError turns a non-200 response into an *Error.
func statusError(resp *http.Response, body []byte) *Error {
	msg := errorMessage(body)
	e := &Error{Status: resp.StatusCode, Msg: msg, RetryAfter: RetryAfter(resp.Header, time.Now())}
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusConflict:
		e.Kind = KindServer
	case c == http.StatusUnauthorized, c == http.StatusForbidden, c == http.StatusNotFound:
		e.Kind = KindAuth
	default:
		e.Kind = KindRejected
		if l := strings.ToLower(msg); strings.Contains(l, "context length") || strings.Contains(l, "context_length") || strings.Contains(l, "maximum context") {
			e.Kind = KindContextLength
		}
	}
	return e
}

// RetryAfter reads the delay a response asks for: the retry-after-ms
// header (milliseconds, as OpenAI sends), else Retry-After in seconds or as
// an HTTP date. It returns 0 when there is none or it cannot be read.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
