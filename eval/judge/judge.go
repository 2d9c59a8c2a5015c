// Package judge scores role-play answers with an LLM judge behind any
// OpenAI-compatible chat completions endpoint:
//
//   - Persona-Pruner style: one integer 0–100 for persona consistency and a
//     second prompt for coherence, read as the probability-weighted mean
//     over the judge's top-20 next-token candidates that are integers in
//     range (ScoreResponse), with a text fallback and REFUSAL excluded;
//   - PersonaGym style: five 1–5 rubric tasks, read from "Therefore, the
//     final score is N" (ParseFinalScore), failures excluded and counted;
//   - pairwise: which of two answers plays the persona better, asked in both
//     orders to cancel position bias (Pairwise).
//
// Every prompt is project-written and versioned (PromptVersion); each
// verdict records the version. Replies are cached by the exact request, so
// an interrupted evaluation resumes without asking the judge again.
package judge

import (
	"context"
	"fmt"
	"os"

	"github.com/masque-ai/masque/jsonlstore"
	"github.com/masque-ai/masque/openaiclient"
)

// Cache keeps judge replies across runs (jsonlstore.Store implements it).
type Cache interface {
	// Get decodes the value stored under key into v; false if absent.
	Get(key string, v any) bool
	// Put stores v under key.
	Put(key string, v any) error
}

// Judge asks one judge model for verdicts.
type Judge struct {
	// Client reaches the endpoint.
	Client *openaiclient.Client
	// Model is the judge model's name on the endpoint.
	Model string
	// Cache, if set, keeps replies by request.
	Cache Cache
	// TopLogprobs is how many candidates per token are requested for 0–100
	// scores (≤ 0: 20, the OpenAI maximum).
	TopLogprobs int
	// RubricMaxTokens overrides the reply cap of the rubric tasks (≤ 0:
	// the metric's own).
	RubricMaxTokens int
	// Prompts is the prompt set of pairwise comparisons (nil: Standard).
	Prompts *PromptSet
}

// KeyEnv is the environment variable NewEndpoint reads the judge's API key
// from (never OPENAI_API_KEY, so that a key is only sent where it was meant
// to go).
const KeyEnv = "MASQUE_JUDGE_KEY"

// Endpoint is a judge model behind an OpenAI-compatible endpoint.
type Endpoint struct {
	URL, Model string
	// Key is the API key ("": $MASQUE_JUDGE_KEY).
	Key string
	// Attempts is the number of tries per request (≤ 0: the client's default).
	Attempts int
	// RubricMaxTokens overrides the rubric tasks' reply cap (≤ 0: the prompt set's).
	RubricMaxTokens int
}

// NewEndpoint returns the judge of ep with prompt set ps.
func NewEndpoint(ep Endpoint, ps *PromptSet) *Judge {
	key := ep.Key
	if key == "" {
		key = os.Getenv(KeyEnv)
	}
	return &Judge{Client: &openaiclient.Client{Name: "judge", URL: ep.URL, APIKey: key, MaxAttempts: ep.Attempts}, Model: ep.Model,
		RubricMaxTokens: ep.RubricMaxTokens, Prompts: ps}
}

// Judgement is one verdict on one response.
type Judgement struct {
	Metric        string `json:"metric"`
	PromptVersion string `json:"prompt_version"`
	JudgeModel    string `json:"judge_model"`
	Score
	// Reply is the judge's text.
	Reply string `json:"reply"`
}

// Cached reports whether a reply for this request is already in the cache.
func (j *Judge) Cached(m Metric, c Case) bool {
	if j.Cache == nil {
		return false
	}
	var r openaiclient.Response
	return j.Cache.Get(j.key(j.request(m, c)), &r)
}

func (j *Judge) request(m Metric, c Case) openaiclient.Request {
	req := openaiclient.Request{Model: j.Model, Messages: m.Messages(c), MaxTokens: m.MaxTokens}
	switch m.Family {
	case FamilyPersonaPruner:
		req.TopLogprobs = j.TopLogprobs
		if req.TopLogprobs <= 0 {
			req.TopLogprobs = 20
		}
	case FamilyPersonaGym:
		if j.RubricMaxTokens > 0 {
			req.MaxTokens = j.RubricMaxTokens
		}
	}
	return req
}

func (j *Judge) key(req openaiclient.Request) string {
	return jsonlstore.Key("judge-reply", req.Model, req.Messages, req.MaxTokens, req.Temperature, req.TopLogprobs)
}

// ask sends req (or answers it from the cache).
func (j *Judge) ask(ctx context.Context, req openaiclient.Request) (*openaiclient.Response, error) {
	key := j.key(req)
	if j.Cache != nil {
		var r openaiclient.Response
		if j.Cache.Get(key, &r) {
			return &r, nil
		}
	}
	r, err := j.Client.Chat(ctx, req)
	if err != nil {
		return nil, err
	}
	if j.Cache != nil {
		if err := j.Cache.Put(key, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Judge scores one response with metric m. A reply that cannot be read is
// not an error: the Judgement is not OK and says why. Errors are failures
// to get a reply (unreachable endpoint, HTTP errors, malformed bodies).
func (j *Judge) Judge(ctx context.Context, m Metric, c Case) (Judgement, error) {
	r, err := j.ask(ctx, j.request(m, c))
	if err != nil {
		return Judgement{}, err
	}
	return Read(m, r, j.Model), nil
}

// Read turns a judge reply to metric m into a Judgement.
func Read(m Metric, r *openaiclient.Response, model string) Judgement {
	jd := Judgement{Metric: m.Name, PromptVersion: m.Version, JudgeModel: model, Reply: r.Text}
	switch m.Family {
	case FamilyPersonaGym:
		jd.Score = ParseFinalScore(r.Text)
	default:
		jd.Score = ScoreResponse(r, m.Lo, m.Hi)
	}
	return jd
}

// Pairwise outcomes (PairOutcome.Winner).
const (
	WinA    = "a"       // A is better
	WinB    = "b"       // B is better
	Tie     = "tie"     // neither is better
	Invalid = "invalid" // no readable verdict
)

// PairOutcome is a pairwise comparison asked in both orders.
type PairOutcome struct {
	PromptVersion string `json:"prompt_version"`
	// AFirst and BFirst are the verdicts (WinA, WinB, Tie or Invalid, in
	// terms of A and B) with A shown first and with B shown first.
	AFirst string `json:"a_first"`
	BFirst string `json:"b_first"`
	// Winner combines them: each readable order is a vote (A +1, B −1,
	// tie 0); a positive sum is WinA, negative WinB, zero Tie; Invalid when
	// neither order could be read.
	Winner string `json:"winner"`
	// Consistent says both orders were read and agree.
	Consistent bool `json:"consistent"`
}

// Pairwise compares responses a and b to question for the persona, asking
// once with a shown first and once with b shown first.
func (j *Judge) Pairwise(ctx context.Context, persona, question, a, b string) (PairOutcome, error) {
	ps := j.PromptSet()
	ask := func(first, second string) (string, error) {
		req := openaiclient.Request{Model: j.Model, Messages: ps.PairwiseMessages(persona, question, first, second), MaxTokens: PairwiseMaxTokens}
		r, err := j.ask(ctx, req)
		if err != nil {
			return "", err
		}
		return ParseVerdict(r.Text), nil
	}
	v1, err := ask(a, b)
	if err != nil {
		return PairOutcome{}, err
	}
	v2, err := ask(b, a)
	if err != nil {
		return PairOutcome{}, err
	}
	o := CombineVerdicts(v1, v2)
	o.PromptVersion = ps.Version
	return o, nil
}

// PromptSet returns the prompt set of pairwise comparisons.
func (j *Judge) PromptSet() *PromptSet {
	if j.Prompts == nil {
		return Standard
	}
	return j.Prompts
}

// CombineVerdicts combines the verdict with A shown first (v1) and with B
// shown first (v2), both as ParseVerdict returns them.
func CombineVerdicts(v1, v2 string) PairOutcome {
	o := PairOutcome{PromptVersion: PromptVersion}
	conv := func(v string, aFirst bool) string {
		switch {
		case v == VerdictTie:
			return Tie
		case v == VerdictFirst && aFirst, v == VerdictSecond && !aFirst:
			return WinA
		case v == VerdictSecond && aFirst, v == VerdictFirst && !aFirst:
			return WinB
		}
		return Invalid
	}
	o.AFirst, o.BFirst = conv(v1, true), conv(v2, false)
	votes, n := 0, 0
	for _, v := range []string{o.AFirst, o.BFirst} {
		switch v {
		case WinA:
			votes++
		case WinB:
			votes--
		case Invalid:
			continue
		}
		n++
	}
	switch {
	case n == 0:
		o.Winner = Invalid
	case votes > 0:
		o.Winner = WinA
	case votes < 0:
		o.Winner = WinB
	default:
		o.Winner = Tie
	}
	o.Consistent = o.AFirst != Invalid && o.AFirst == o.BFirst
	return o
}

// String summarises a judgement for logs.
func (jd Judgement) String() string {
	if jd.OK {
		return fmt.Sprintf("%s=%.2f (%s)", jd.Metric, jd.Value, jd.Method)
	}
	return fmt.Sprintf("%s: no score (%s: %s)", jd.Metric, jd.Method, jd.Reason)
}
