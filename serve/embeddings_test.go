package serve

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/style"
)

// TestEmbeddings: POST /v1/embeddings answers OpenAI's shape with the
// numbers of style.ModelEmbedder over the base model (what masque embed
// prints); personas, other dimensions and requests without the key are
// refused.
func TestEmbeddings(t *testing.T) {
	f := newFixture(t, nil)
	base := f.srv.opts.BaseID
	texts := []string{"The cat sat on the mat.", "Arr, where is the gold?"}
	code, body := f.postJSON(t, "/v1/embeddings", map[string]any{"model": base, "input": texts})
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var r openaiclient.EmbeddingResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Object != "list" || r.Model != base || len(r.Data) != 2 {
		t.Fatalf("%v %s", err, body)
	}
	emb := &style.ModelEmbedder{Model: f.ck.Model, Tokenizer: f.ck.Tokenizer, Name: base}
	want, err := emb.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	tokens := 0
	for i, d := range r.Data {
		ids, _, _ := emb.Tokens(texts[i])
		tokens += len(ids)
		if d.Object != "embedding" || d.Index != i || len(d.Embedding) != f.ck.Model.Config.Hidden {
			t.Fatalf("data %d: %+v", i, d)
		}
		for j := range d.Embedding {
			if d.Embedding[j] != want[i][j] {
				t.Fatalf("text %d value %d: %v, want %v", i, j, d.Embedding[j], want[i][j])
			}
		}
	}
	if r.Usage.PromptTokens != tokens || r.Usage.TotalTokens != tokens {
		t.Fatalf("usage %+v, want %d tokens", r.Usage, tokens)
	}
	// style's client for any OpenAI-compatible endpoint reads the same
	// numbers (unit vectors already: unchanged by its normalisation).
	oe := &style.OpenAIEmbedder{BaseURL: f.ts.URL + "/v1", Model: base, APIKey: testAPIKey, Batch: 1, HTTPClient: f.ts.Client()}
	got, err := oe.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		if c := style.Cosine(got[i], want[i]); len(got[i]) != len(want[i]) || c < 1-1e-6 {
			t.Fatalf("OpenAIEmbedder text %d: cosine %v to masque's own embedding", i, c)
		}
	}
	for _, c := range []struct {
		body map[string]any
		code int
		want string
	}{
		{map[string]any{"model": "pirate", "input": "x"}, 400, "model_not_supported"},
		{map[string]any{"model": base, "input": "x", "dimensions": 3}, 400, "dimensions"},
		{map[string]any{"model": base, "input": [][]int{{1, 2}}}, 400, "invalid_type"},
		{map[string]any{"model": base}, 400, "missing_required_parameter"},
		{map[string]any{"model": base, "input": strings.Repeat("a", f.srv.opts.MaxMessageBytes+1)}, 400, "string_above_max_length"},
	} {
		if code, body := f.postJSON(t, "/v1/embeddings", c.body); code != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("%v: %d %s", c.body, code, body)
		}
	}
	if code, _, _ := f.do(t, "POST", "/v1/embeddings", "", "application/json", []byte(`{"model":"`+base+`","input":"x"}`)); code != 401 {
		t.Errorf("no key: %d", code)
	}
}
