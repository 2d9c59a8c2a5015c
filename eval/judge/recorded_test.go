package judge

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/masque-ai/masque/openaiclient"
)

// recording is one file of testdata/eval (see its README).
type recording struct {
	Endpoint string          `json:"endpoint"`
	Request  json.RawMessage `json:"request"`
	Status   int             `json:"status"`
	Response json.RawMessage `json:"response"`
}

func loadRecording(t *testing.T, name string) recording {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "eval", "serve-stories260K-"+name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r recording
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// digitMass sums the probability of the integer candidates of the first
// non-space position straight from the raw JSON, independently of
// ScoreResponse.
func digitMass(t *testing.T, raw json.RawMessage) float64 {
	var v struct {
		Choices []struct {
			Logprobs struct {
				Content []struct {
					Token string `json:"token"`
					Top   []struct {
						Token   string  `json:"token"`
						Logprob float64 `json:"logprob"`
					} `json:"top_logprobs"`
				} `json:"content"`
				Tokens []string             `json:"tokens"`
				TopMap []map[string]float64 `json:"top_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	json.Unmarshal(raw, &v)
	lp := v.Choices[0].Logprobs
	isInt := func(s string) bool {
		s = strings.TrimSpace(s)
		return s != "" && strings.Trim(s, "0123456789") == ""
	}
	m := 0.0
	if len(lp.Content) > 0 {
		for _, a := range lp.Content[0].Top {
			if isInt(a.Token) {
				m += math.Exp(a.Logprob)
			}
		}
		return m
	}
	for tok, l := range lp.TopMap[0] {
		if isInt(tok) {
			m += math.Exp(l)
		}
	}
	return m
}

func TestRecordedServeReplies(t *testing.T) {
	tests := []struct {
		file     string
		metric   Metric
		tokens   int // generated tokens with logprobs
		alts     int // alternatives at each
		method   string
		massNear float64
	}{
		{"compact-consistency", Compact.Consistency, 8, 20, MethodFailed, 0},
		{"compact-coherence", Compact.Coherence, 8, 20, MethodFailed, 0},
		{"compact-consistency-t5", Compact.Consistency, 8, 5, MethodFailed, 0},
		{"compact-rubric", Compact.Gym[2], 0, 0, MethodFailed, 0},
		{"digits", Compact.Consistency, 8, 20, MethodFailed, 0},
		// The "0" candidate: p = exp(−2.7318692) ≈ 0.0651 < 0.25.
		{"legacy-completion-digit", Compact.Consistency, 4, 5, MethodFailed, math.Exp(-2.7318692)},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			rec := loadRecording(t, tc.file)
			if rec.Status != 200 {
				t.Fatalf("status %d", rec.Status)
			}
			r, err := openaiclient.ParseResponse(rec.Response)
			if err != nil {
				t.Fatal(err)
			}
			if r.Text == "" || r.Model != "base" {
				t.Fatalf("reply %+v", r)
			}
			if len(r.Logprobs) != tc.tokens {
				t.Fatalf("%d tokens with logprobs, want %d", len(r.Logprobs), tc.tokens)
			}
			text := ""
			for _, tl := range r.Logprobs {
				text += tl.Token
				if len(tl.Top) != tc.alts {
					t.Fatalf("%d alternatives, want %d", len(tl.Top), tc.alts)
				}
				for i := 1; i < len(tl.Top); i++ {
					if tl.Top[i].Logprob > tl.Top[i-1].Logprob {
						t.Fatal("alternatives are not best first")
					}
				}
				if tl.Top[0].Logprob < tl.Logprob-1e-6 {
					t.Fatal("greedy token less likely than the best alternative")
				}
			}
			if tc.tokens > 0 && text != r.Text {
				t.Fatalf("tokens spell %q, text is %q", text, r.Text)
			}
			jd := Read(tc.metric, r, "base")
			if jd.OK || jd.Method != tc.method || jd.Reason == "" || jd.PromptVersion != CompactPromptVersion {
				t.Fatalf("judgement %+v", jd)
			}
			if tc.tokens > 0 {
				if want := digitMass(t, rec.Response); math.Abs(jd.Mass-want) > 1e-6 || math.Abs(jd.Mass-tc.massNear) > 1e-6 {
					t.Fatalf("mass %v, independent count %v, expected %v", jd.Mass, want, tc.massNear)
				}
			}
		})
	}
}

// TestRecordedRepliesOverHTTP replays the recordings through a loopback
// server, so the client sees the real bodies and statuses.
func TestRecordedRepliesOverHTTP(t *testing.T) {
	var calls atomic.Int32
	serveFile := func(name string) *httptest.Server {
		rec := loadRecording(t, name)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Status)
			w.Write(rec.Response)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	ok := serveFile("compact-consistency")
	j := &Judge{Client: fastClient(ok.URL), Model: "base"}
	jd, err := j.Judge(context.Background(), Compact.Consistency, Case{Persona: "p", Question: "q", Response: "r"})
	if err != nil || jd.OK || jd.Reply != "\"He,\" said, " {
		t.Fatalf("%+v %v", jd, err)
	}
	calls.Store(0)
	tooLong := serveFile("standard-consistency-too-long")
	j = &Judge{Client: fastClient(tooLong.URL), Model: "base"}
	_, err = j.Judge(context.Background(), Consistency, Case{Persona: "p", Question: "q", Response: "r"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 400: this model's maximum context length is 512 tokens, and the prompt has 821") {
		t.Fatalf("error %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("a 400 was retried (%d calls)", calls.Load())
	}
}
