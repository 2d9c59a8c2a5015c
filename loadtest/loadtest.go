// Package loadtest drives an OpenAI-compatible chat server (masque serve)
// with concurrent streaming clients for a bounded time and reports
// throughput and latency: requests and tokens per second, time to first
// token and time per token (p50, p99), and errors.
//
// RunScenario runs a game-like workload from a scenario file instead
// (LoadScenario; the schema is ScenarioSchema): sessions over personas of
// every kind, multi-turn conversations with seeded think times, against a
// running server or an in-process one, with a single-session baseline,
// latency percentiles, per-kind/persona/session figures and fairness.
//
// It refuses to load anything but a loopback address unless told
// otherwise, and every client loop is bounded in time and in count.
package loadtest

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
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds on a run.
const (
	MaxConcurrency = 1024
	MaxDuration    = time.Hour
	// DefaultGrace is how long requests still running at the end of the
	// run may take to finish before they are cut off.
	DefaultGrace = 30 * time.Second
)

// Config describes a run.
type Config struct {
	// URL is the server's base URL (http://127.0.0.1:8080); requests go
	// to URL/v1/chat/completions.
	URL string
	// APIKey is sent as a bearer token when set.
	APIKey string
	// Personas are the model ids to use, round-robin over the clients (at
	// least one).
	Personas []string
	// Concurrency is the number of clients, each with one request in flight.
	Concurrency int
	// Duration is how long clients start new requests.
	Duration time.Duration
	// Grace is how long requests running at the end may go on (default
	// DefaultGrace); after that they are cut off and counted as errors.
	Grace time.Duration
	// MaxRequests, if positive, caps the number of requests started.
	MaxRequests int
	// MaxTokens is each request's max_tokens (default 64).
	MaxTokens int
	// Prompt is the user message (default: a short request for a story).
	Prompt string
	// Temperature is each request's temperature (default 0.8).
	Temperature *float64
	// AllowRemote permits a URL that is not a loopback address.
	AllowRemote bool
	// Client is the HTTP client (default: a client without timeout; each
	// request is bounded by the run's end plus Grace).
	Client *http.Client
}

// Report is the outcome of a run.
type Report struct {
	// Requests counts the requests that completed without error; Errors
	// the others (HTTP errors, error events, broken or cut-off streams).
	Requests, Errors int
	// Rejected counts the 429 answers (the server's queue was full): not
	// errors; the client waited as the server's Retry-After asked (else
	// backed off exponentially) and sent the request again.
	Rejected int
	// RetryWait is the time clients spent waiting on rejections.
	RetryWait time.Duration
	// Tokens counts completion tokens (from the usage the server reports,
	// else content chunks).
	Tokens int
	// Elapsed is the wall time from the first request to the last answer.
	Elapsed time.Duration
	// RequestsPerSec and TokensPerSec are Requests and Tokens over Elapsed.
	RequestsPerSec, TokensPerSec float64
	// TTFT is the time to the first content chunk, TPOT the time per
	// output token after it; P50 and P99 over all successful requests.
	TTFTP50, TTFTP99, TPOTP50, TPOTP99 time.Duration
	// ErrorSamples holds up to five error messages.
	ErrorSamples []string
	// StatusCounts counts HTTP statuses other than 200.
	StatusCounts map[int]int
}

// CheckURL returns an error unless raw is an http(s) URL whose host is a
// loopback address (127.0.0.0/8, ::1 or "localhost"), or allowRemote is set.
func CheckURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad URL %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URL %q: the scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("URL %q has no host", raw)
	}
	if allowRemote {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("URL %q is not a loopback address: load testing a remote server needs --allow-remote", raw)
}

func (c *Config) check() error {
	if err := CheckURL(c.URL, c.AllowRemote); err != nil {
		return err
	}
	switch {
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("concurrency %d outside [1, %d]", c.Concurrency, MaxConcurrency)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration %v outside (0, %v]", c.Duration, MaxDuration)
	case c.Grace < 0 || c.Grace > MaxDuration:
		return fmt.Errorf("grace %v outside [0, %v]", c.Grace, MaxDuration)
	case len(c.Personas) == 0:
		return errors.New("no personas: name at least one model id")
	case c.MaxTokens < 0 || c.MaxRequests < 0:
		return errors.New("max tokens and max requests must not be negative")
	}
	for _, p := range c.Personas {
		if p == "" {
			return errors.New("empty persona name")
		}
	}
	return nil
}

// sample is one request's outcome.
type sample struct {
	ok        bool
	status    int
	err       string
	tokens    int
	ttft      time.Duration
	perToken  time.Duration
	hasTiming bool
	// retryAfter is the wait a 429 answer asked for (-1: none given).
	retryAfter time.Duration
}

// MaxRetryAfter bounds the wait a server's Retry-After may ask for.
const MaxRetryAfter = time.Minute

// parseRetryAfter reads a Retry-After value, seconds or an HTTP date,
// as a wait from now (bounded by MaxRetryAfter); -1 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return -1
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter)
	}
	return -1
}

// Backoff bounds for rejections without a usable Retry-After.
const (
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 10 * time.Second
)

// connectBackoff is how long a client waits after a request that never
// reached the server.
const connectBackoff = 100 * time.Millisecond

// Run performs the load test.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = 64
	}
	if cfg.Prompt == "" {
		cfg.Prompt = "Tell me a short story about a brave knight."
	}
	temp := 0.8
	if cfg.Temperature != nil {
		temp = *cfg.Temperature
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency, Proxy: nil}}
	}
	endpoint := strings.TrimRight(cfg.URL, "/") + "/v1/chat/completions"

	start := time.Now()
	stopStarting := start.Add(cfg.Duration)
	hard, cancel := context.WithDeadline(ctx, stopStarting.Add(cfg.Grace))
	defer cancel()

	var mu sync.Mutex
	var samples []sample
	rejected, retryWait := 0, time.Duration(0)
	started := 0
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if time.Now().After(stopStarting) || hard.Err() != nil || (cfg.MaxRequests > 0 && started >= cfg.MaxRequests) {
			return 0, false
		}
		started++
		return started - 1, true
	}
	var wg sync.WaitGroup
	for c := 0; c < cfg.Concurrency; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, ok := take()
				if !ok {
					return
				}
				body, _ := json.Marshal(map[string]any{
					"model":          cfg.Personas[n%len(cfg.Personas)],
					"messages":       []map[string]string{{"role": "user", "content": cfg.Prompt}},
					"max_tokens":     cfg.MaxTokens,
					"temperature":    temp,
					"seed":           n,
					"stream":         true,
					"stream_options": map[string]bool{"include_usage": true},
				})
				s := one(hard, client, endpoint, cfg.APIKey, body, nil)
				for backoff := firstBackoff; s.status == http.StatusTooManyRequests; {
					// The server is full: wait as it asks (or back off), then
					// send the same request again, unless the run ends first.
					wait := s.retryAfter
					if wait < 0 {
						wait, backoff = backoff, min(2*backoff, maxBackoff)
					}
					mu.Lock()
					rejected++
					mu.Unlock()
					if time.Now().Add(wait).After(stopStarting) {
						return
					}
					select {
					case <-time.After(wait):
					case <-hard.Done():
						return
					}
					mu.Lock()
					retryWait += wait
					mu.Unlock()
					s = one(hard, client, endpoint, cfg.APIKey, body, nil)
				}
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
				if !s.ok && s.status == 0 {
					// The server could not be reached: pause instead of
					// spinning, so a dead server is not hammered.
					select {
					case <-time.After(connectBackoff):
					case <-hard.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
	r := summarize(samples, time.Since(start))
	r.Rejected, r.RetryWait = rejected, retryWait
	return r, nil
}

// streamExtra collects what a scenario needs of a stream beyond a sample:
// the reply's text, the arrival times of its content chunks and the
// prompt's token counts.
type streamExtra struct {
	content                    strings.Builder
	chunks                     []time.Time
	promptTokens, cachedTokens int
}

// one runs a streaming request and measures it; x, if not nil, collects
// more.
func one(ctx context.Context, client *http.Client, endpoint, key string, body []byte, x *streamExtra) sample {
	req, err := http.NewRequestWithContext(ctx, "POST", endpoint, bytes.NewReader(body))
	if err != nil {
		return sample{err: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return sample{err: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return sample{status: resp.StatusCode, err: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg)),
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	s := sample{status: 200}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var first, last time.Time
	chunks, usageTokens := 0, -1
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var ev struct {
			Error   *struct{ Message string } `json:"error"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens    int `json:"completion_tokens"`
				PromptTokens        int `json:"prompt_tokens"`
				PromptTokensDetails struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			s.err = "malformed event: " + err.Error()
			return s
		}
		if ev.Error != nil {
			s.err = "error event: " + ev.Error.Message
			return s
		}
		if ev.Usage != nil {
			usageTokens = ev.Usage.CompletionTokens
			if x != nil {
				x.promptTokens, x.cachedTokens = ev.Usage.PromptTokens, ev.Usage.PromptTokensDetails.CachedTokens
			}
		}
		if len(ev.Choices) > 0 && ev.Choices[0].Delta.Content != "" {
			now := time.Now()
			if x != nil {
				x.content.WriteString(ev.Choices[0].Delta.Content)
				x.chunks = append(x.chunks, now)
			}
			if chunks == 0 {
				first = now
			}
			last = now
			chunks++
		}
	}
	if !done {
		if err := sc.Err(); err != nil {
			s.err = "stream broken: " + err.Error()
		} else {
			s.err = "stream ended without [DONE]"
		}
		return s
	}
	s.ok = true
	s.tokens = chunks
	if usageTokens >= 0 {
		s.tokens = usageTokens
	}
	if chunks > 0 {
		s.hasTiming = true
		s.ttft = first.Sub(t0)
		if s.tokens > 1 {
			s.perToken = last.Sub(first) / time.Duration(s.tokens-1)
		}
	}
	return s
}

func summarize(samples []sample, elapsed time.Duration) *Report {
	r := &Report{Elapsed: elapsed, StatusCounts: map[int]int{}}
	var ttft, tpot []time.Duration
	for _, s := range samples {
		if !s.ok {
			r.Errors++
			if len(r.ErrorSamples) < 5 {
				r.ErrorSamples = append(r.ErrorSamples, s.err)
			}
			if s.status != 0 && s.status != 200 {
				r.StatusCounts[s.status]++
			}
			continue
		}
		r.Requests++
		r.Tokens += s.tokens
		if s.hasTiming {
			ttft = append(ttft, s.ttft)
			if s.tokens > 1 {
				tpot = append(tpot, s.perToken)
			}
		}
	}
	if secs := elapsed.Seconds(); secs > 0 {
		r.RequestsPerSec = float64(r.Requests) / secs
		r.TokensPerSec = float64(r.Tokens) / secs
	}
	r.TTFTP50, r.TTFTP99 = percentile(ttft, 50), percentile(ttft, 99)
	r.TPOTP50, r.TPOTP99 = percentile(tpot, 50), percentile(tpot, 99)
	return r
}

// percentile returns the p-th percentile (nearest rank) of d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// String formats the report for people.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests   %d ok, %d errors in %v\n", r.Requests, r.Errors, r.Elapsed.Round(time.Millisecond))
	if r.Rejected > 0 {
		fmt.Fprintf(&b, "rejected   %d times with HTTP 429 (server full); retried after the server's Retry-After, %v waited in all\n", r.Rejected, r.RetryWait.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "throughput %.2f requests/s, %.1f tokens/s (%d tokens)\n", r.RequestsPerSec, r.TokensPerSec, r.Tokens)
	fmt.Fprintf(&b, "first token p50 %v, p99 %v\n", r.TTFTP50.Round(time.Microsecond), r.TTFTP99.Round(time.Microsecond))
	fmt.Fprintf(&b, "per token   p50 %v, p99 %v\n", r.TPOTP50.Round(time.Microsecond), r.TPOTP99.Round(time.Microsecond))
	writeStatus(&b, r.StatusCounts, r.ErrorSamples)
	return b.String()
}

// writeStatus ends a text report: the count of each HTTP status (in
// order) and the sampled error messages.
func writeStatus(b *strings.Builder, counts map[int]int, errs []string) {
	codes := make([]int, 0, len(counts))
	for c := range counts {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(b, "HTTP %d: %d\n", c, counts[c])
	}
	for _, e := range errs {
		fmt.Fprintf(b, "error: %s\n", e)
	}
}
