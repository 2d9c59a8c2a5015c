package judge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/openaiclient"
)

func fastClient(url string) *openaiclient.Client {
	return &openaiclient.Client{Name: "judge", URL: url, MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 5 * time.Second}
}

type memCache map[string][]byte

func (m memCache) Get(k string, v any) bool {
	b, ok := m[k]
	return ok && json.Unmarshal(b, v) == nil
}
func (m memCache) Put(k string, v any) error {
	b, err := json.Marshal(v)
	m[k] = b
	return err
}

func TestJudgeCachesAndPairwise(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req struct {
			Messages []chattemplate.Message `json:"messages"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		user := req.Messages[len(req.Messages)-1].Content
		reply := "85"
		switch {
		case strings.Contains(user, "[RESPONSE A]"):
			// Prefers the response that mentions arrr, wherever it is.
			a := user[strings.Index(user, "[RESPONSE A]"):strings.Index(user, "[RESPONSE B]")]
			reply = "B"
			if strings.Contains(a, "arrr") {
				reply = "A"
			}
		case strings.Contains(user, "final score"):
			reply = "Fine.\nTherefore, the final score is 4"
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": reply}}}})
	}))
	defer srv.Close()
	j := &Judge{Client: fastClient(srv.URL), Model: "j", Cache: memCache{}}
	ctx := context.Background()
	c := Case{Persona: "a pirate", Question: "hi?", Response: "arrr"}
	for range 2 {
		jd, err := j.Judge(ctx, Consistency, c)
		if err != nil || !jd.OK || jd.Value != 85 || jd.Method != MethodText || jd.PromptVersion != PromptVersion {
			t.Fatalf("%+v %v", jd, err)
		}
		g, err := j.Judge(ctx, ExpectedAction, c)
		if err != nil || !g.OK || g.Value != 4 {
			t.Fatalf("%+v %v", g, err)
		}
	}
	if calls.Load() != 2 || !j.Cached(Consistency, c) || j.Cached(Coherence, c) {
		t.Fatalf("%d calls: the cache is not used", calls.Load())
	}
	o, err := j.Pairwise(ctx, "a pirate", "hi?", "hello", "arrr")
	if err != nil || o.Winner != WinB || !o.Consistent {
		t.Fatalf("%+v %v", o, err)
	}
}

// TestNewEndpoint: the key comes from Endpoint.Key, else $MASQUE_JUDGE_KEY.
func TestNewEndpoint(t *testing.T) {
	t.Setenv(KeyEnv, "from-env")
	j := NewEndpoint(Endpoint{URL: "http://127.0.0.1:1/v1", Model: "m", Attempts: 3, RubricMaxTokens: 7}, Compact)
	if j.Client.APIKey != "from-env" || j.Client.MaxAttempts != 3 || j.Client.URL != "http://127.0.0.1:1/v1" || j.Model != "m" ||
		j.RubricMaxTokens != 7 || j.Prompts != Compact {
		t.Errorf("%+v (client %+v)", j, j.Client)
	}
	if j := NewEndpoint(Endpoint{Key: "given"}, Standard); j.Client.APIKey != "given" {
		t.Errorf("key %q, want the given one", j.Client.APIKey)
	}
}
