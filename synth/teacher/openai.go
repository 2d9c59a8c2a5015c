package teacher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Environment variables read by ResolveOpenAI.
const (
	EnvURL       = "MASQUE_TEACHER_URL"
	EnvModel     = "MASQUE_TEACHER_MODEL"
	EnvKey       = "MASQUE_TEACHER_KEY"
	EnvOpenAIKey = "OPENAI_API_KEY"
)

// OpenAI is a Teacher that calls an OpenAI-compatible chat completions
// endpoint over plain net/http, one attempt per call (wrap it in a Client
// for retries, limits and caching).
type OpenAI struct {
	// BaseURL is the API root including its version, e.g.
	// https://api.openai.com/v1; requests go to BaseURL + "/chat/completions".
	BaseURL string
	// Model fills Request.Model when that is empty.
	Model string
	// APIKey, when set, is sent as "Authorization: Bearer APIKey".
	APIKey string
	// Stream asks for server-sent events and assembles the reply from them.
	// A stream that ends before its final event is a KindTruncated error.
	Stream bool
	// StallTimeout, when > 0, fails a streamed request with KindTimeout if
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

// wireResponse is a chat completion (non-streamed) or one stream chunk.
type wireResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message *struct {
			Content *string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	} `json:"error"`
}

// Complete sends one request.
func (o *OpenAI) Complete(ctx context.Context, req Request) (*Response, error) {
	if o.BaseURL == "" {
		return nil, &Error{Kind: KindAuth, Msg: "no teacher URL: pass --teacher-url or set " + EnvURL}
	}
	if req.Model == "" {
		req.Model = o.Model
	}
	body := req.wire()
	body.Stream = o.Stream
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	url := strings.TrimRight(o.BaseURL, "/") + "/chat/completions"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return nil, &Error{Kind: KindAuth, Msg: err.Error()}
	}
	hreq.Header.Set("Content-Type", "application/json")
	if o.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	if o.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	var stall *time.Timer
	if o.Stream && o.StallTimeout > 0 {
		stall = time.AfterFunc(o.StallTimeout, func() { cancel(errStalled) })
		defer stall.Stop()
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, statusError(resp, msg)
	}
	if !o.Stream {
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, transportError(ctx, err)
		}
		return parseCompletion(data)
	}
	return readStream(ctx, resp.Body, stall, o.StallTimeout)
}

var errStalled = errors.New("stream stalled")

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

// statusError turns a non-200 response into an *Error.
func statusError(resp *http.Response, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var w wireResponse
	if json.Unmarshal(body, &w) == nil && w.Error != nil && w.Error.Message != "" {
		msg = w.Error.Message
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
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

// parseCompletion reads a non-streamed chat completion body.
func parseCompletion(data []byte) (*Response, error) {
	var w wireResponse
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, &Error{Kind: KindBadResponse, Msg: fmt.Sprintf("malformed completion JSON: %v", err)}
	}
	if w.Error != nil {
		return nil, &Error{Kind: KindServer, Msg: w.Error.Message}
	}
	if len(w.Choices) == 0 || w.Choices[0].Message == nil {
		return nil, &Error{Kind: KindBadResponse, Msg: "completion has no choices[0].message"}
	}
	c := w.Choices[0]
	r := &Response{Model: w.Model}
	if c.Message.Content != nil {
		r.Text = *c.Message.Content
	}
	if c.FinishReason != nil {
		r.FinishReason = *c.FinishReason
	}
	if w.Usage != nil {
		r.PromptTokens, r.CompletionTokens = w.Usage.PromptTokens, w.Usage.CompletionTokens
	}
	return r, nil
}

// readStream assembles a streamed completion from server-sent events. The
// stream is complete when it has sent "data: [DONE]" or a chunk with a
// finish_reason; anything less is KindTruncated.
func readStream(ctx context.Context, body io.Reader, stall *time.Timer, stallAfter time.Duration) (*Response, error) {
	br := bufio.NewReaderSize(body, 1<<16)
	var text strings.Builder
	r := &Response{}
	done, finished := false, false
	for !done {
		line, err := br.ReadString('\n')
		if stall != nil && len(line) > 0 {
			stall.Reset(stallAfter)
		}
		complete := strings.HasSuffix(line, "\n")
		line = strings.TrimRight(line, "\r\n")
		if payload, ok := strings.CutPrefix(line, "data:"); ok {
			payload = strings.TrimSpace(payload)
			switch {
			case payload == "[DONE]":
				done = true
			case !complete:
				// A chunk cut off mid-line: the stream is truncated.
			default:
				var w wireResponse
				if err := json.Unmarshal([]byte(payload), &w); err != nil {
					return nil, &Error{Kind: KindBadResponse, Msg: fmt.Sprintf("malformed stream chunk: %v", err)}
				}
				if w.Error != nil {
					return nil, &Error{Kind: KindServer, Msg: "error in stream: " + w.Error.Message}
				}
				if w.Model != "" {
					r.Model = w.Model
				}
				if w.Usage != nil {
					r.PromptTokens, r.CompletionTokens = w.Usage.PromptTokens, w.Usage.CompletionTokens
				}
				for _, c := range w.Choices {
					if c.Delta != nil && c.Delta.Content != nil {
						text.WriteString(*c.Delta.Content)
					}
					if c.FinishReason != nil && *c.FinishReason != "" {
						r.FinishReason = *c.FinishReason
						finished = true
					}
				}
			}
		}
		if err != nil {
			if done || finished {
				break // complete; the connection may close without [DONE]
			}
			if errors.Is(err, io.EOF) {
				return nil, &Error{Kind: KindTruncated, Msg: fmt.Sprintf("stream ended after %d bytes of text without a final event", text.Len())}
			}
			if te := transportError(ctx, err); ErrorKind(te) != KindNetwork {
				return nil, te
			}
			return nil, &Error{Kind: KindTruncated, Msg: fmt.Sprintf("stream broke after %d bytes of text: %v", text.Len(), err)}
		}
	}
	if !finished {
		// [DONE] without any finish_reason: accept, but say so.
		r.FinishReason = "unknown"
	}
	r.Text = text.String()
	return r, nil
}
