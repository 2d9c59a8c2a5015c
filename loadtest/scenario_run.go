package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	datavoices "github.com/masque-ai/masque/data/voices"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve"
)

// ScenarioConfig describes a scenario run.
type ScenarioConfig struct {
	// Scenario is the workload (LoadScenario).
	Scenario *Scenario
	// URL is a running server's base URL; empty: an in-process server is
	// started on Base with the scenario's personas and server limits, on
	// a loopback port.
	URL string
	// APIKey is sent as a bearer token when set.
	APIKey string
	// AllowRemote permits a URL that is not a loopback address.
	AllowRemote bool
	// Base is the in-process server's base model (required without URL;
	// the caller opens and closes it).
	Base *checkpoint.Checkpoint
	// NoBaseline skips the single-session baseline.
	NoBaseline bool
	// Client is the HTTP client (default: one without timeout; turns are
	// bounded by the run's end plus the grace).
	Client *http.Client
	// OnTurn, if set, is called after every turn (one call at a time).
	OnTurn func(TurnRecord)
	// Logf, if set, receives progress lines (the phases).
	Logf func(format string, a ...any)
}

// TurnRecord is one turn as it happened.
type TurnRecord struct {
	// Phase is "baseline" or "run".
	Phase string
	// Session is the session's index (0 in the baseline), Persona the
	// persona it talked to, Conversation and Turn the turn's place.
	Session      int
	Persona      string
	Conversation int
	Turn         int
	// Messages is the number of messages sent (earlier turns of the
	// conversation, both sides, and this user turn).
	Messages int
	// Think is the think time drawn before the turn; Gap the time from the
	// end of the session's previous turn (or its start) to this request.
	Think, Gap time.Duration
	// PromptTokens and CachedTokens are the server's usage figures; Tokens
	// the completion tokens.
	PromptTokens, CachedTokens, Tokens int
	// TTFT is the time to the first content; Start and End bound the turn.
	TTFT       time.Duration
	Start, End time.Time
	// Reply is the assistant's text.
	Reply string
	// Err is empty for a turn that completed.
	Err string
}

// resolvedPersona is a scenario persona found in its registry.
type resolvedPersona struct {
	name, kind, registry string
	spec                 *persona.Spec // nil: not from a readable registry (remote) or the bare base
}

// specKind is the scenario kind of a registry spec.
func specKind(sp *persona.Spec) (string, error) {
	k := sp.Kind()
	switch k {
	case persona.KindBase:
		return KindPrompt, nil
	case persona.KindModel:
		return KindModel, nil
	case persona.KindLoRA:
		return KindLoRA, nil
	}
	mk, err := mask.Load(sp.Mask)
	if err != nil {
		return "", err
	}
	kind := KindMask
	if mk.Info.Granularity == "ffn-channels" {
		kind = KindFFNMask
	}
	if k == persona.KindMaskLoRA {
		kind += "+lora"
	}
	return kind, nil
}

// resolvePersonas finds every persona of s in its registry. Without
// strict (a running server), a registry that cannot be read leaves the
// kinds as the scenario declares them.
func resolvePersonas(s *Scenario, strict bool, logf func(string, ...any)) ([]resolvedPersona, error) {
	name := s.Path
	if name == "" {
		name = "(scenario)"
	}
	regs := map[string][]persona.Spec{}
	regErr := map[string]error{}
	out := make([]resolvedPersona, len(s.Personas))
	for i, p := range s.Personas {
		f := fmt.Sprintf("scenario %s: personas[%d] (%s)", name, i, p.Name)
		reg := p.Registry
		if reg == "" {
			reg = s.Registry
		}
		path := s.registryPath(reg)
		specs, seen := regs[path]
		if !seen && regErr[path] == nil {
			var err error
			if path == VoicesRegistry {
				specs = datavoices.Specs()
			} else {
				specs, err = persona.LoadRegistry(path)
			}
			if err != nil {
				if strict {
					return nil, fmt.Errorf("%s: %v", f, err)
				}
				regErr[path] = err
				logf("masque loadtest: %v; persona kinds are as the scenario declares them", err)
			}
			regs[path] = specs
		}
		r := resolvedPersona{name: p.Name, kind: p.Kind, registry: reg}
		if regErr[path] != nil {
			if r.kind == "" {
				r.kind = "?"
			}
			out[i] = r
			continue
		}
		for j := range specs {
			if specs[j].Name == p.Name {
				r.spec = &specs[j]
			}
		}
		if r.spec == nil {
			if p.Name == "base" {
				if p.Kind != "" && p.Kind != KindPrompt {
					return nil, fmt.Errorf("%s: kind %s, but the bare base is a prompt-only persona", f, p.Kind)
				}
				r.kind, r.registry = KindPrompt, "" // the server's bare base
				out[i] = r
				continue
			}
			names := make([]string, len(specs))
			for j := range specs {
				names[j] = specs[j].Name
			}
			return nil, fmt.Errorf("%s: no persona %s in registry %s (it has: %s)", f, p.Name, reg, strings.Join(names, ", "))
		}
		kind, err := specKind(r.spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		if p.Kind != "" && p.Kind != kind {
			return nil, fmt.Errorf("%s: kind %s, but registry %s makes it a %s persona", f, p.Kind, reg, kind)
		}
		r.kind = kind
		out[i] = r
	}
	return out, nil
}

// startServer starts an in-process server for the scenario's personas on
// a loopback port and returns its URL and a function that stops it.
func startServer(ctx context.Context, s *Scenario, base *checkpoint.Checkpoint, personas []resolvedPersona) (string, *serve.Server, func(), error) {
	var specs []persona.Spec
	for _, p := range personas {
		if p.spec != nil {
			specs = append(specs, *p.spec)
		}
	}
	v := s.Server
	o := serve.Options{Base: base, Personas: specs, Ctx: v.Ctx, MaxSeqs: v.MaxSeqs, MaxQueue: v.Queue,
		BatchTokens: v.BatchTokens, MaxTokens: v.MaxTokens, NoPlayground: true}
	if v.KVMemory != "" {
		kv, err := serve.ParseBytes(v.KVMemory)
		if err != nil {
			return "", nil, nil, fmt.Errorf("scenario %s: server.kv_memory: %v", s.Path, err)
		}
		o.KVBytes = kv
	}
	if v.PromptCacheMB != nil {
		o.PromptCacheBytes = int64(*v.PromptCacheMB) << 20
		o.NoPromptCache = *v.PromptCacheMB == 0
	}
	srv, err := serve.New(o)
	if err != nil {
		return "", nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return "", nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(sctx, ln)
	}()
	stop := func() {
		cancel()
		<-done
	}
	return "http://" + ln.Addr().String(), srv, stop, nil
}

// servedModels lists the model ids of a running server.
func servedModels(ctx context.Context, client *http.Client, url, key string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(url, "/")+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("listing the server's personas: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("listing the server's personas: GET /v1/models: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("listing the server's personas: GET /v1/models: %v", err)
	}
	ids := make([]string, len(list.Data))
	for i, d := range list.Data {
		ids[i] = d.ID
	}
	return ids, nil
}

// turnResult is one finished (or failed) turn as the report needs it.
type turnResult struct {
	phase   string
	session int
	persona int
	conv    int
	s       sample
	gaps    []time.Duration // between consecutive content chunks
	prompt  int
	cached  int
	msgs    int
	think   time.Duration
	end     time.Time
}

// scenarioRun is the state shared by the sessions of one phase.
type scenarioRun struct {
	cfg      *ScenarioConfig
	sc       *Scenario
	client   *http.Client
	endpoint string
	personas []resolvedPersona
	temp     float64

	mu        sync.Mutex
	results   []turnResult
	rejected  int
	retryWait time.Duration
	lastEnd   time.Time
}

// sessionPlan says what one session does.
type sessionPlan struct {
	phase    string
	index    int
	personas []int         // persona of conversation c: personas[c mod len]
	delay    time.Duration // before the first turn
	think    bool
	maxTurns int       // 0: unbounded
	maxConvs int       // 0: unbounded
	stopAt   time.Time // no turn starts after it (zero: none)
}

// think draws a think time.
func drawThink(t *ThinkTime, rng *rand.Rand) time.Duration {
	switch t.Dist {
	case "fixed":
		return t.Mean.Std()
	case "uniform":
		return t.Min.Std() + time.Duration(rng.Float64()*float64(t.Max-t.Min))
	case "exponential":
		d := time.Duration(rng.ExpFloat64() * float64(t.Mean))
		if t.Max > 0 && d > t.Max.Std() {
			d = t.Max.Std()
		}
		return d
	}
	return 0
}

// turnText returns the user text of a turn.
func turnText(sc *Scenario, p *PersonaRef, turn int, rng *rand.Rand) string {
	texts, pool := p.Texts, p.Pool
	if len(texts) == 0 && len(pool) == 0 {
		texts, pool = sc.Conversation.Texts, sc.Conversation.Pool
	}
	if len(texts) > 0 {
		return texts[turn%len(texts)]
	}
	return pool[rng.IntN(len(pool))]
}

// sleepCtx waits d or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runSession runs one session's conversations until its plan ends.
func (r *scenarioRun) runSession(ctx context.Context, pl sessionPlan) {
	sc := r.sc
	stream := uint64(pl.index) + 1
	if pl.phase == "baseline" {
		stream = 1 << 40
	}
	textRNG := rand.New(rand.NewPCG(sc.Seed, stream))
	thinkRNG := rand.New(rand.NewPCG(sc.Seed^0x9e3779b97f4a7c15, stream))
	if !sleepCtx(ctx, pl.delay) {
		return
	}
	prevEnd := time.Now()
	turns := 0
	for conv := 0; pl.maxConvs == 0 || conv < pl.maxConvs; conv++ {
		pi := pl.personas[conv%len(pl.personas)]
		p := &sc.Personas[pi]
		var history []map[string]string
		for turn := 0; turn < sc.Conversation.Turns; turn++ {
			if pl.maxTurns > 0 && turns >= pl.maxTurns {
				return
			}
			var think time.Duration
			if pl.think && (conv > 0 || turn > 0) {
				think = drawThink(&sc.ThinkTime, thinkRNG)
			}
			text := turnText(sc, p, turn, textRNG)
			at := prevEnd.Add(think)
			if !pl.stopAt.IsZero() && at.After(pl.stopAt) {
				return
			}
			if !sleepCtx(ctx, time.Until(at)) {
				return
			}
			msgs := history
			if h := sc.Conversation.HistoryTurns; h > 0 && len(msgs) > 2*h {
				msgs = msgs[len(msgs)-2*h:]
			}
			msgs = append(slices.Clip(msgs), map[string]string{"role": "user", "content": text})
			seed := int64(rand.New(rand.NewPCG(sc.Seed^0x5851f42d4c957f2d, stream<<20|uint64(turns))).Uint32())
			body, _ := json.Marshal(map[string]any{
				"model": p.Name, "messages": msgs, "max_tokens": sc.Conversation.MaxTokens,
				"temperature": r.temp, "seed": seed, "stream": true,
				"stream_options": map[string]bool{"include_usage": true},
			})
			start := time.Now()
			gap := start.Sub(prevEnd)
			x := &streamExtra{}
			s, ok := r.send(ctx, body, x, pl.stopAt)
			if !ok {
				return
			}
			end := time.Now()
			prevEnd = end
			turns++
			res := turnResult{phase: pl.phase, session: pl.index, persona: pi, conv: conv, s: s, prompt: x.promptTokens,
				cached: x.cachedTokens, msgs: len(msgs), think: think, end: end}
			for k := 1; k < len(x.chunks); k++ {
				res.gaps = append(res.gaps, x.chunks[k].Sub(x.chunks[k-1]))
			}
			reply := x.content.String()
			if s.ok {
				history = append(history, map[string]string{"role": "user", "content": text},
					map[string]string{"role": "assistant", "content": reply})
			}
			r.mu.Lock()
			r.results = append(r.results, res)
			if end.After(r.lastEnd) {
				r.lastEnd = end
			}
			if r.cfg.OnTurn != nil {
				r.cfg.OnTurn(TurnRecord{Phase: pl.phase, Session: pl.index, Persona: p.Name, Conversation: conv, Turn: turn,
					Messages: len(msgs), Think: think, Gap: gap, PromptTokens: x.promptTokens, CachedTokens: x.cachedTokens,
					Tokens: s.tokens, TTFT: s.ttft, Start: start, End: end, Reply: reply, Err: s.err})
			}
			r.mu.Unlock()
			if !s.ok && s.status == 0 && !sleepCtx(ctx, connectBackoff) {
				return
			}
		}
	}
}

// send runs a turn's request, waiting out 429 answers as the server asks;
// false when the run ended first.
func (r *scenarioRun) send(ctx context.Context, body []byte, x *streamExtra, stopAt time.Time) (sample, bool) {
	s := one(ctx, r.client, r.endpoint, r.cfg.APIKey, body, x)
	for backoff := firstBackoff; s.status == http.StatusTooManyRequests; {
		wait := s.retryAfter
		if wait < 0 {
			wait, backoff = backoff, min(2*backoff, maxBackoff)
		}
		r.mu.Lock()
		r.rejected++
		r.mu.Unlock()
		if !stopAt.IsZero() && time.Now().Add(wait).After(stopAt) {
			return s, false
		}
		if !sleepCtx(ctx, wait) {
			return s, false
		}
		r.mu.Lock()
		r.retryWait += wait
		r.mu.Unlock()
		s = one(ctx, r.client, r.endpoint, r.cfg.APIKey, body, x)
	}
	return s, true
}

// RunScenario runs a scenario: the single-session baseline (unless
// skipped), then every session at once, and reports.
func RunScenario(ctx context.Context, cfg ScenarioConfig) (*ScenarioReport, error) {
	sc := cfg.Scenario
	if sc == nil {
		return nil, errors.New("no scenario")
	}
	if err := sc.Check(); err != nil {
		return nil, err
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	inProcess := cfg.URL == ""
	if inProcess && cfg.Base == nil {
		return nil, errors.New("an in-process server needs a base model (or give the URL of a running server)")
	}
	if !inProcess {
		if err := CheckURL(cfg.URL, cfg.AllowRemote); err != nil {
			return nil, err
		}
	}
	personas, err := resolvePersonas(sc, inProcess, logf)
	if err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: sc.Sessions, Proxy: nil}}
	}
	url := cfg.URL
	var srv *serve.Server
	if inProcess {
		var stop func()
		url, srv, stop, err = startServer(ctx, sc, cfg.Base, personas)
		if err != nil {
			return nil, err
		}
		defer stop()
		logf("masque loadtest: in-process server on %s at %s (%d personas)", cfg.Base.Path, url, len(personas))
	}
	ids, err := servedModels(ctx, client, url, cfg.APIKey)
	if err != nil {
		return nil, err
	}
	for i, p := range personas {
		if !slices.Contains(ids, p.name) {
			return nil, fmt.Errorf("scenario %s: personas[%d]: the server at %s does not serve %s (it serves: %s)", sc.Path, i, url, p.name, strings.Join(ids, ", "))
		}
	}
	temp := 0.8
	if sc.Conversation.Temperature != nil {
		temp = *sc.Conversation.Temperature
	}
	newRun := func() *scenarioRun {
		return &scenarioRun{cfg: &cfg, sc: sc, client: client, endpoint: strings.TrimRight(url, "/") + "/v1/chat/completions", personas: personas, temp: temp}
	}
	grace := sc.Grace.Std()
	if grace == 0 {
		grace = DefaultGrace
	}

	rep := &ScenarioReport{Scenario: sc.Name, File: sc.Path, URL: url, InProcess: inProcess, Sessions: sc.Sessions}
	if rep.Scenario == "" && sc.Path != "" {
		rep.Scenario = strings.TrimSuffix(filepath.Base(sc.Path), filepath.Ext(sc.Path))
	}
	if inProcess {
		rep.Model = cfg.Base.Path
	}
	if !cfg.NoBaseline && !sc.Baseline.Skip {
		logf("masque loadtest: baseline: one session, %d turns without think time", sc.Baseline.Turns)
		br := newRun()
		all := make([]int, len(personas))
		for i := range all {
			all[i] = i
		}
		bctx, cancel := context.WithTimeout(ctx, MaxDuration)
		start := time.Now()
		br.runSession(bctx, sessionPlan{phase: "baseline", personas: all, maxTurns: sc.Baseline.Turns})
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		took := br.lastEnd.Sub(start)
		if br.lastEnd.IsZero() {
			took = time.Since(start)
		}
		rep.Baseline = br.baselineReport(took)
	}

	logf("masque loadtest: %d sessions over %d personas", sc.Sessions, len(personas))
	run := newRun()
	assign := sc.SessionPersonas()
	start := time.Now()
	var stopAt time.Time
	hardEnd := start.Add(MaxDuration + grace)
	if sc.Duration > 0 {
		stopAt = start.Add(sc.Duration.Std())
		hardEnd = stopAt.Add(grace)
	}
	hard, cancel := context.WithDeadline(ctx, hardEnd)
	defer cancel()
	var engSteps, engTokens int64
	if srv != nil {
		st := srv.Engine().Stats()
		engSteps, engTokens = st.Steps, st.Tokens
	}
	var wg sync.WaitGroup
	for i := 0; i < sc.Sessions; i++ {
		pl := sessionPlan{phase: "run", index: i, personas: []int{assign[i]}, think: true,
			maxConvs: sc.Conversations, stopAt: stopAt}
		if sc.Sessions > 1 {
			pl.delay = time.Duration(float64(sc.Ramp) * float64(i) / float64(sc.Sessions))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run.runSession(hard, pl)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	elapsed := run.lastEnd.Sub(start)
	if run.lastEnd.IsZero() {
		elapsed = time.Since(start)
	}
	run.fill(rep, elapsed, assign)
	if srv != nil {
		st := srv.Engine().Stats()
		rep.Server = &ServerFigures{Steps: st.Steps - engSteps, Tokens: st.Tokens - engTokens}
		if rep.Server.Steps > 0 {
			rep.Server.TokensPerStep = float64(rep.Server.Tokens) / float64(rep.Server.Steps)
		}
	}
	return rep, nil
}
