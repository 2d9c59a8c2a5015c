package judge

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Client calls an OpenAI-compatible chat completions endpoint over plain
// net/http. Failed requests are retried with exponential backoff when the
// failure may be temporary: a network error, HTTP 429 or any 5xx status.
// Other statuses and malformed bodies fail at once. A Client is safe for
// concurrent use; it does not limit concurrency itself.
type Client struct {
	// Name says what the endpoint is for in error messages ("" means
	// "judge").
	Name string
	// URL is the endpoint: a full ".../chat/completions" URL, an API root
	// ending in "/v1", or a server root (then "/v1/chat/completions" is
	// appended).
	URL string
	// APIKey, when set, is sent as "Authorization: Bearer APIKey".
	APIKey string
	// HTTPClient sends requests (nil: http.DefaultClient).
	HTTPClient *http.Client
	// MaxAttempts is how many times one request is tried (≤ 0: 5).
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the wait before retry k (from 0):
	// a random duration in [d/2, d] with d = min(MaxBackoff, BaseBackoff·2^k)
	// (defaults 500ms and 20s). A Retry-After header in seconds is honoured
	// up to MaxBackoff.
	BaseBackoff, MaxBackoff time.Duration
	// Timeout bounds each attempt (≤ 0: 5 minutes).
	Timeout time.Duration
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is one chat completion request.
type Request struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	// MaxTokens caps the reply (≤ 0: not sent).
	MaxTokens int `json:"max_tokens,omitempty"`
	// Temperature is sent as given (0 is greedy).
	Temperature float64 `json:"temperature"`
	// Seed, when not nil, is sent for servers that honour it.
	Seed *int64 `json:"seed,omitempty"`
	// TopLogprobs > 0 asks for logprobs with that many alternatives per
	// token (OpenAI allows up to 20).
	TopLogprobs int `json:"-"`
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

// Response is the part of a chat completion the evaluation uses.
type Response struct {
	Model        string         `json:"model,omitempty"`
	Text         string         `json:"text"`
	FinishReason string         `json:"finish_reason,omitempty"`
	Logprobs     []TokenLogprob `json:"logprobs,omitempty"`
}

// HTTPError is a response with a status other than 200.
type HTTPError struct {
	URL     string
	Status  int
	Message string // the server's error message, or the start of its body
}

// Error implements error: the URL, status and message.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.URL, e.Status, e.Message)
}

// Retryable reports whether the status may be temporary (429 or 5xx).
func (e *HTTPError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// ErrMalformed marks a 200 response whose body is not a chat completion.
var ErrMalformed = errors.New("malformed response")

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

type wireRequest struct {
	Request
	Logprobs    bool `json:"logprobs,omitempty"`
	TopLogprobs int  `json:"top_logprobs,omitempty"`
	Stream      bool `json:"stream"`
}

// Chat sends req and returns the first choice, retrying temporary
// failures. The error says which endpoint failed and how; a cancelled ctx
// stops at once.
func (c *Client) Chat(ctx context.Context, req Request) (*Response, error) {
	if c.URL == "" {
		return nil, errors.New("no endpoint URL")
	}
	w := wireRequest{Request: req}
	if req.TopLogprobs > 0 {
		w.Logprobs, w.TopLogprobs = true, req.TopLogprobs
	}
	body, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	base, maxB := c.BaseBackoff, c.MaxBackoff
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 20 * time.Second
	}
	var last error
	for k := range attempts {
		resp, retryAfter, err := c.once(ctx, body)
		if err == nil {
			return resp, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var he *HTTPError
		temporary := !errors.Is(err, ErrMalformed) && (!errors.As(err, &he) || he.Retryable())
		if !temporary || k == attempts-1 {
			break
		}
		d := min(maxB, base<<min(k, 30))
		d = d/2 + rand.N(d/2+1)
		if retryAfter > 0 {
			d = min(max(d, retryAfter), maxB)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	name := c.Name
	if name == "" {
		name = "judge"
	}
	var he *HTTPError
	if errors.As(last, &he) || errors.Is(last, ErrMalformed) {
		return nil, fmt.Errorf("%s endpoint %s: %w", name, c.Endpoint(), last)
	}
	return nil, fmt.Errorf("%s endpoint %s unreachable after %d attempts: %w", name, c.Endpoint(), attempts, last)
}

// once makes one attempt; retryAfter is the server's Retry-After, if any.
func (c *Client) once(ctx context.Context, body []byte) (*Response, time.Duration, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint(), bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(hr)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, 0, err
	}
	if res.StatusCode != http.StatusOK {
		var ra time.Duration
		if s, err := strconv.Atoi(strings.TrimSpace(res.Header.Get("Retry-After"))); err == nil && s > 0 {
			ra = time.Duration(s) * time.Second
		}
		return nil, ra, &HTTPError{URL: c.Endpoint(), Status: res.StatusCode, Message: errorMessage(data)}
	}
	r, err := ParseResponse(data)
	return r, 0, err
}

// errorMessage extracts {"error":{"message":…}} or the start of the body.
func errorMessage(data []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && len(e.Error) > 0 {
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &m) == nil && m.Message != "" {
			return m.Message
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" {
			return s
		}
	}
	return snippet(data)
}

func snippet(data []byte) string {
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200]
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

type wireAlt struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type wireToken struct {
	wireAlt
	TopLogprobs []wireAlt `json:"top_logprobs"`
}

type wireResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message *struct {
			Content *string `json:"content"`
		} `json:"message"`
		Text     *string `json:"text"` // legacy completions
		Logprobs *struct {
			Content []wireToken `json:"content"`
			// Legacy completions layout.
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []float64            `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
		} `json:"logprobs"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
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

// ParseResponse decodes an OpenAI chat completion body (logprobs in the
// chat layout, "content": [{token, logprob, bytes, top_logprobs}], or the
// legacy completions layout). A body that is not a completion with at least
// one choice and a text is an ErrMalformed error.
func ParseResponse(data []byte) (*Response, error) {
	var w wireResponse
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: not JSON (%v): %s", ErrMalformed, err, snippet(data))
	}
	if len(w.Choices) == 0 {
		return nil, fmt.Errorf("%w: no choices: %s", ErrMalformed, snippet(data))
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
		return nil, fmt.Errorf("%w: the choice has no message: %s", ErrMalformed, snippet(data))
	}
	if ch.FinishReason != nil {
		r.FinishReason = *ch.FinishReason
	}
	if lp := ch.Logprobs; lp != nil {
		for _, t := range lp.Content {
			tl := TokenLogprob{Token: tokenText(t.wireAlt), Logprob: t.Logprob}
			for _, a := range t.TopLogprobs {
				tl.Top = append(tl.Top, Alt{Token: tokenText(a), Logprob: a.Logprob})
			}
			r.Logprobs = append(r.Logprobs, tl)
		}
		if len(lp.Content) == 0 {
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
				r.Logprobs = append(r.Logprobs, tl)
			}
		}
	}
	return r, nil
}
