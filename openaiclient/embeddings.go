package openaiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// EmbeddingRequest is OpenAI's request body for POST /v1/embeddings (input
// as a list of strings; a single string is also accepted by servers).
type EmbeddingRequest struct {
	Model          string `json:"model"`
	Input          any    `json:"input"`
	EncodingFormat string `json:"encoding_format,omitempty"`
}

// EmbeddingResponse is OpenAI's response body.
type EmbeddingResponse struct {
	Object string          `json:"object"`
	Data   []EmbeddingData `json:"data"`
	Model  string          `json:"model"`
	Usage  EmbeddingUsage  `json:"usage"`
}

// EmbeddingData is one embedding of a response.
type EmbeddingData struct {
	Object    string    `json:"object"`
	Index     int       `json:"index"`
	Embedding []float32 `json:"embedding"`
}

// EmbeddingUsage counts the tokens of a request.
type EmbeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// EmbeddingsEndpoint is the embeddings URL: URL itself when it ends in
// "/embeddings", else the API root of URL (as for Endpoint) + "/embeddings".
func (c *Client) EmbeddingsEndpoint() string {
	u := strings.TrimRight(c.URL, "/")
	if strings.HasSuffix(u, "/embeddings") {
		return u
	}
	return strings.TrimSuffix(c.Endpoint(), "/chat/completions") + "/embeddings"
}

// Embed asks the endpoint for the embeddings of texts (one request, with
// the client's retries and limits) and returns them in the order of texts.
// A reply with a missing, repeated or empty embedding is a KindBadResponse
// error.
func (c *Client) Embed(ctx context.Context, model string, texts []string) ([][]float32, error) {
	url := c.EmbeddingsEndpoint()
	body, err := json.Marshal(EmbeddingRequest{Model: model, Input: texts})
	if err != nil {
		return nil, err
	}
	est := 0
	for _, t := range texts {
		est += len(t)/4 + 1
	}
	var out [][]float32
	n, err := c.Retry().Do(ctx, func(ctx context.Context) error {
		if err := c.Limiter.Wait(ctx, est); err != nil {
			return err
		}
		timeout := c.Timeout
		if timeout == 0 {
			timeout = 5 * time.Minute
		}
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		r, err := c.embedOnce(ctx, url, body)
		if err != nil {
			return err
		}
		c.Limiter.Used(est, r.Usage.TotalTokens)
		if len(r.Data) != len(texts) {
			return malformed("%d embeddings for %d texts", len(r.Data), len(texts))
		}
		vs := make([][]float32, len(texts))
		for _, d := range r.Data {
			if d.Index < 0 || d.Index >= len(texts) || vs[d.Index] != nil || len(d.Embedding) == 0 {
				return malformed("bad or repeated index %d", d.Index)
			}
			vs[d.Index] = d.Embedding
		}
		out = vs
		return nil
	}, func(k int, err error, d time.Duration) {
		if c.Logf != nil {
			c.Logf("%s: %v; retry %d in %v", c.name(), err, k, d.Round(time.Millisecond))
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if Retryable(err) {
			return nil, fmt.Errorf("embeddings %s: gave up after %d attempts: %w", url, n, err)
		}
		return nil, fmt.Errorf("embeddings %s: %w", url, err)
	}
	return out, nil
}

func (c *Client) embedOnce(ctx context.Context, url string, body []byte) (*EmbeddingResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Kind: KindAuth, Msg: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp, b)
	}
	var r EmbeddingResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, malformed("not an embeddings response (%v): %s", err, snippet(b))
	}
	return &r, nil
}
