package style

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/tokenizer"
)

// Embedder turns texts into sentence embeddings (unit vectors of one
// dimension).
type Embedder interface {
	// ID names the embedder (model and source) in profiles: a profile is
	// only scored with the embedder it was built with.
	ID() string
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// ModelEmbedder embeds with a masque model: the mean, over the text's
// tokens (the BOS token left out), of the last hidden state (the final
// norm's output, seen through model.Hooks), scaled to unit length. Texts
// longer than the model's context keep their first MaxSeq tokens.
type ModelEmbedder struct {
	Model     *model.Model
	Tokenizer *tokenizer.Tokenizer
	// Name is the embedder's ID (e.g. the model path).
	Name string
}

// ID returns "masque:" + Name.
func (e *ModelEmbedder) ID() string { return "masque:" + e.Name }

// Embed embeds each text.
func (e *ModelEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v, err := e.one(t)
		if err != nil {
			return nil, fmt.Errorf("text %d: %v", i+1, err)
		}
		out[i] = v
	}
	return out, nil
}

// Tokens returns the token ids Embed runs for a text and how many of them
// it pools (the first skip ids are left out).
func (e *ModelEmbedder) Tokens(text string) (ids []int, skip int, err error) {
	if strings.TrimSpace(text) == "" {
		return nil, 0, errors.New("empty text")
	}
	ids = e.Tokenizer.Encode(text, true)
	if bos, ok := e.Tokenizer.BOS(); ok && len(ids) > 0 && ids[0] == bos {
		skip = 1
	}
	if n := e.Model.Config.MaxSeq; n > 0 && len(ids) > n {
		ids = ids[:n]
	}
	if len(ids) <= skip {
		return nil, 0, errors.New("the text has no tokens")
	}
	return ids, skip, nil
}

func (e *ModelEmbedder) one(text string) ([]float32, error) {
	ids, skip, err := e.Tokens(text)
	if err != nil {
		return nil, err
	}
	m := e.Model
	H := m.Config.Hidden
	sum := make([]float64, H)
	last := m.Config.Layers + 1
	h := &model.Hooks{Hidden: func(l int, x []float32, rows, cols int) {
		if l != last {
			return
		}
		for r := skip; r < rows; r++ {
			row := x[r*cols : (r+1)*cols]
			for j, v := range row {
				sum[j] += float64(v)
			}
		}
	}}
	if _, err := m.ForwardHooks(m.NewCache(len(ids)), ids, true, h); err != nil {
		return nil, err
	}
	n := float64(len(ids) - skip)
	v := make([]float32, H)
	norm := 0.0
	for j := range sum {
		sum[j] /= n
		norm += sum[j] * sum[j]
	}
	norm = math.Sqrt(norm)
	if norm == 0 || math.IsNaN(norm) {
		return nil, errors.New("the model's hidden states pool to a zero or NaN vector")
	}
	for j := range sum {
		v[j] = float32(sum[j] / norm)
	}
	return v, nil
}

// OpenAIEmbedder calls an OpenAI-compatible POST {BaseURL}/embeddings
// (BaseURL includes the version, e.g. http://localhost:8080/v1) through
// openaiclient.
type OpenAIEmbedder struct {
	BaseURL, Model, APIKey string
	// Batch is the most texts per request (default 64).
	Batch int
	// HTTPClient sends the requests (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// ID returns "openai:" + BaseURL + "#" + Model.
func (e *OpenAIEmbedder) ID() string { return "openai:" + e.BaseURL + "#" + e.Model }

// Embed sends the texts in batches (through openaiclient, which retries
// what may be temporary).
func (e *OpenAIEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	bs := e.Batch
	if bs <= 0 {
		bs = 64
	}
	c := &openaiclient.Client{Name: "embeddings", URL: strings.TrimRight(e.BaseURL, "/") + "/embeddings", APIKey: e.APIKey, HTTPClient: e.HTTPClient}
	var out [][]float32
	for i := 0; i < len(texts); i += bs {
		vs, err := c.Embed(ctx, e.Model, texts[i:min(len(texts), i+bs)])
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			out = append(out, unit(v))
		}
	}
	return out, nil
}

func unit(v []float32) []float32 {
	n := 0.0
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	n = math.Sqrt(n)
	out := make([]float32, len(v))
	if n == 0 {
		return out
	}
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

// cosine of two vectors (0 when either is zero).
func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// Cosine is the cosine similarity of two embeddings.
func Cosine(a, b []float32) float64 { return cosine(a, b) }

func mean(vs [][]float32) []float32 {
	if len(vs) == 0 {
		return nil
	}
	s := make([]float64, len(vs[0]))
	for _, v := range vs {
		for i, x := range v {
			s[i] += float64(x)
		}
	}
	out := make([]float32, len(s))
	for i := range s {
		out[i] = float32(s[i] / float64(len(vs)))
	}
	return out
}

func sub(a, b []float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}
