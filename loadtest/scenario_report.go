package loadtest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Latency holds percentiles of a latency (nearest rank).
type Latency struct {
	P50, P95, P99, Max time.Duration
	// N is the number of samples.
	N int
}

// MarshalJSON writes milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"p50_ms": millis(l.P50), "p95_ms": millis(l.P95), "p99_ms": millis(l.P99), "max_ms": millis(l.Max), "n": l.N})
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latencyOf(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	return Latency{P50: percentile(d, 50), P95: percentile(d, 95), P99: percentile(d, 99), Max: slices.Max(d), N: len(d)}
}

func (l Latency) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("p50 %v, p95 %v, p99 %v, max %v (%d)", r(l.P50), r(l.P95), r(l.P99), r(l.Max), l.N)
}

// ScenarioReport is the outcome of a scenario run.
type ScenarioReport struct {
	Scenario  string `json:"scenario"`
	File      string `json:"file"`
	URL       string `json:"url"`
	InProcess bool   `json:"in_process"`
	// Model is the in-process server's base model.
	Model    string `json:"model,omitempty"`
	Sessions int    `json:"sessions"`

	// Baseline is one session alone without think time (nil: skipped).
	Baseline *BaselineReport `json:"baseline,omitempty"`

	// Turns counts the turns that completed; Errors the others; Rejected
	// the 429 answers (retried, not errors) and RetryWait the time spent
	// waiting on them.
	Turns      int     `json:"turns"`
	Errors     int     `json:"errors"`
	Rejected   int     `json:"rejected"`
	RetryWaitS float64 `json:"retry_wait_s"`
	// Tokens counts completion tokens; PromptTokens the prompts' tokens
	// and CachedTokens those the server took from its prompt cache.
	Tokens       int `json:"tokens"`
	PromptTokens int `json:"prompt_tokens"`
	CachedTokens int `json:"cached_tokens"`
	// ElapsedS is the wall time from the start of the sessions to the end
	// of the last turn; TokensPerSec is Tokens over it (aggregate
	// end-to-end throughput, think times included).
	ElapsedS     float64 `json:"elapsed_s"`
	TokensPerSec float64 `json:"tokens_per_s"`
	// VsOneSession is TokensPerSec over the baseline's (0 without one).
	VsOneSession float64 `json:"vs_one_session"`
	// TTFT is the time to first token, ITL the inter-token latency (the
	// gaps between a stream's content chunks), over the completed turns.
	TTFT Latency `json:"ttft"`
	ITL  Latency `json:"itl"`
	// ThinkMeanS is the mean think time drawn.
	ThinkMeanS float64 `json:"think_mean_s"`
	// Fairness compares the sessions.
	Fairness Fairness `json:"fairness"`

	PerKind    []GroupStats   `json:"per_kind"`
	PerPersona []GroupStats   `json:"per_persona"`
	PerSession []SessionStats `json:"per_session"`

	// Server holds the in-process server's engine figures for the run.
	Server *ServerFigures `json:"server,omitempty"`

	StatusCounts map[int]int `json:"status_counts"`
	ErrorSamples []string    `json:"error_samples"`
}

// BaselineReport is the single-session measurement.
type BaselineReport struct {
	Turns        int     `json:"turns"`
	Errors       int     `json:"errors"`
	Tokens       int     `json:"tokens"`
	ElapsedS     float64 `json:"elapsed_s"`
	TokensPerSec float64 `json:"tokens_per_s"`
	TTFT         Latency `json:"ttft"`
	ITL          Latency `json:"itl"`
}

// Fairness compares the sessions' shares: the least and most tokens and
// turns of a session, min/max, and Jain's index (Σx)²/(n·Σx²), 1 when all
// are equal, 1/n when one session has everything.
type Fairness struct {
	MinTokens    int     `json:"min_tokens"`
	MaxTokens    int     `json:"max_tokens"`
	MinMaxTokens float64 `json:"min_max_tokens"`
	JainTokens   float64 `json:"jain_tokens"`
	MinTurns     int     `json:"min_turns"`
	MaxTurns     int     `json:"max_turns"`
	JainTurns    float64 `json:"jain_turns"`
	// Starved counts sessions that completed no turn.
	Starved int `json:"starved"`
}

// GroupStats are the figures of a persona or a kind.
type GroupStats struct {
	Name     string `json:"name"`
	Kind     string `json:"kind,omitempty"`
	Registry string `json:"registry,omitempty"`
	Personas int    `json:"personas,omitempty"`
	Sessions int    `json:"sessions"`
	Turns    int    `json:"turns"`
	Errors   int    `json:"errors"`
	Tokens   int    `json:"tokens"`
	// TokensPerSession is Tokens over Sessions.
	TokensPerSession float64 `json:"tokens_per_session"`
	TTFT             Latency `json:"ttft"`
	ITL              Latency `json:"itl"`
}

// SessionStats are one session's figures.
type SessionStats struct {
	Session       int    `json:"session"`
	Persona       string `json:"persona"`
	Turns         int    `json:"turns"`
	Errors        int    `json:"errors"`
	Conversations int    `json:"conversations"`
	Tokens        int    `json:"tokens"`
	PromptTokens  int    `json:"prompt_tokens"`
	CachedTokens  int    `json:"cached_tokens"`
	// MaxMessages is the longest request's message count.
	MaxMessages int `json:"max_messages"`
}

// ServerFigures are the in-process engine's counters over the run.
type ServerFigures struct {
	Steps         int64   `json:"steps"`
	Tokens        int64   `json:"tokens"`
	TokensPerStep float64 `json:"tokens_per_step"`
}

// jain returns Jain's fairness index of x (1 for no data).
func jain(x []int) float64 {
	var s, s2 float64
	for _, v := range x {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(x)) * s2)
}

func (r *scenarioRun) baselineReport(elapsed time.Duration) *BaselineReport {
	b := &BaselineReport{ElapsedS: elapsed.Seconds()}
	var ttft, itl []time.Duration
	for _, t := range r.results {
		if !t.s.ok {
			b.Errors++
			continue
		}
		b.Turns++
		b.Tokens += t.s.tokens
		if t.s.hasTiming {
			ttft = append(ttft, t.s.ttft)
		}
		itl = append(itl, t.gaps...)
	}
	if b.ElapsedS > 0 {
		b.TokensPerSec = float64(b.Tokens) / b.ElapsedS
	}
	b.TTFT, b.ITL = latencyOf(ttft), latencyOf(itl)
	return b
}

// fill computes the run's figures into rep.
func (r *scenarioRun) fill(rep *ScenarioReport, elapsed time.Duration, assign []int) {
	rep.ElapsedS = elapsed.Seconds()
	rep.Rejected, rep.RetryWaitS = r.rejected, r.retryWait.Seconds()
	rep.StatusCounts = map[int]int{}
	rep.ErrorSamples = []string{}
	sessions := make([]SessionStats, len(assign))
	for i, p := range assign {
		sessions[i] = SessionStats{Session: i, Persona: r.personas[p].name}
	}
	type group struct {
		g         GroupStats
		ttft, itl []time.Duration
	}
	persona := make([]group, len(r.personas))
	for i, p := range r.personas {
		persona[i].g = GroupStats{Name: p.name, Kind: p.kind, Registry: p.registry}
	}
	for _, p := range assign {
		persona[p].g.Sessions++
	}
	var ttft, itl []time.Duration
	var think time.Duration
	thinks := 0
	for _, t := range r.results {
		ss := &sessions[t.session]
		pg := &persona[t.persona]
		ss.Conversations = max(ss.Conversations, t.conv+1)
		if t.msgs > ss.MaxMessages {
			ss.MaxMessages = t.msgs
		}
		if t.think > 0 {
			think += t.think
			thinks++
		}
		if !t.s.ok {
			rep.Errors++
			ss.Errors++
			pg.g.Errors++
			if len(rep.ErrorSamples) < 5 {
				rep.ErrorSamples = append(rep.ErrorSamples, t.s.err)
			}
			if t.s.status != 0 && t.s.status != 200 {
				rep.StatusCounts[t.s.status]++
			}
			continue
		}
		rep.Turns++
		rep.Tokens += t.s.tokens
		rep.PromptTokens += t.prompt
		rep.CachedTokens += t.cached
		ss.Turns++
		ss.Tokens += t.s.tokens
		ss.PromptTokens += t.prompt
		ss.CachedTokens += t.cached
		pg.g.Turns++
		pg.g.Tokens += t.s.tokens
		if t.s.hasTiming {
			ttft = append(ttft, t.s.ttft)
			pg.ttft = append(pg.ttft, t.s.ttft)
		}
		itl = append(itl, t.gaps...)
		pg.itl = append(pg.itl, t.gaps...)
	}
	if rep.ElapsedS > 0 {
		rep.TokensPerSec = float64(rep.Tokens) / rep.ElapsedS
	}
	if rep.Baseline != nil && rep.Baseline.TokensPerSec > 0 {
		rep.VsOneSession = rep.TokensPerSec / rep.Baseline.TokensPerSec
	}
	if thinks > 0 {
		rep.ThinkMeanS = (think / time.Duration(thinks)).Seconds()
	}
	rep.TTFT, rep.ITL = latencyOf(ttft), latencyOf(itl)
	toks := make([]int, len(sessions))
	turns := make([]int, len(sessions))
	for i, s := range sessions {
		toks[i], turns[i] = s.Tokens, s.Turns
		if s.Turns == 0 {
			rep.Fairness.Starved++
		}
	}
	f := &rep.Fairness
	f.MinTokens, f.MaxTokens = slices.Min(toks), slices.Max(toks)
	f.MinTurns, f.MaxTurns = slices.Min(turns), slices.Max(turns)
	if f.MaxTokens > 0 {
		f.MinMaxTokens = float64(f.MinTokens) / float64(f.MaxTokens)
	}
	f.JainTokens, f.JainTurns = jain(toks), jain(turns)
	kinds := map[string]*group{}
	var kindOrder []string
	for i := range persona {
		pg := &persona[i]
		if pg.g.Sessions > 0 {
			pg.g.TokensPerSession = float64(pg.g.Tokens) / float64(pg.g.Sessions)
		}
		pg.g.TTFT, pg.g.ITL = latencyOf(pg.ttft), latencyOf(pg.itl)
		rep.PerPersona = append(rep.PerPersona, pg.g)
		k := kinds[pg.g.Kind]
		if k == nil {
			k = &group{g: GroupStats{Name: pg.g.Kind}}
			kinds[pg.g.Kind] = k
			kindOrder = append(kindOrder, pg.g.Kind)
		}
		k.g.Personas++
		k.g.Sessions += pg.g.Sessions
		k.g.Turns += pg.g.Turns
		k.g.Errors += pg.g.Errors
		k.g.Tokens += pg.g.Tokens
		k.ttft = append(k.ttft, pg.ttft...)
		k.itl = append(k.itl, pg.itl...)
	}
	for _, name := range kindOrder {
		k := kinds[name]
		if k.g.Sessions > 0 {
			k.g.TokensPerSession = float64(k.g.Tokens) / float64(k.g.Sessions)
		}
		k.g.TTFT, k.g.ITL = latencyOf(k.ttft), latencyOf(k.itl)
		rep.PerKind = append(rep.PerKind, k.g)
	}
	rep.PerSession = sessions
}

// String formats the report for people.
func (r *ScenarioReport) String() string {
	var b strings.Builder
	where := r.URL
	if r.InProcess {
		where = "an in-process server on " + r.Model
	}
	kinds := make([]string, len(r.PerKind))
	for i, k := range r.PerKind {
		kinds[i] = fmt.Sprintf("%s %d", k.Name, k.Personas)
	}
	fmt.Fprintf(&b, "scenario    %s: %d sessions over %d personas (%s), against %s\n", r.Scenario, r.Sessions, len(r.PerPersona), strings.Join(kinds, ", "), where)
	if bl := r.Baseline; bl != nil {
		fmt.Fprintf(&b, "baseline    one session, %d turns (%d errors), %d tokens in %.2fs: %.1f tokens/s\n", bl.Turns, bl.Errors, bl.Tokens, bl.ElapsedS, bl.TokensPerSec)
		fmt.Fprintf(&b, "            first token %v\n", bl.TTFT)
	}
	fmt.Fprintf(&b, "run         %d turns, %d errors, %d tokens in %.2fs: %.1f tokens/s", r.Turns, r.Errors, r.Tokens, r.ElapsedS, r.TokensPerSec)
	if r.VsOneSession > 0 {
		fmt.Fprintf(&b, " = %.2f× one session", r.VsOneSession)
	}
	b.WriteString("\n")
	if r.PromptTokens > 0 {
		fmt.Fprintf(&b, "prompts     %d tokens, %d from the prompt cache (%.1f%%)\n", r.PromptTokens, r.CachedTokens, 100*float64(r.CachedTokens)/float64(r.PromptTokens))
	}
	fmt.Fprintf(&b, "first token %v\n", r.TTFT)
	fmt.Fprintf(&b, "inter-token %v\n", r.ITL)
	fmt.Fprintf(&b, "think time  mean %.2fs drawn\n", r.ThinkMeanS)
	f := r.Fairness
	fmt.Fprintf(&b, "fairness    tokens per session %d..%d (min/max %.2f, Jain %.3f); turns %d..%d (Jain %.3f); %d sessions starved\n",
		f.MinTokens, f.MaxTokens, f.MinMaxTokens, f.JainTokens, f.MinTurns, f.MaxTurns, f.JainTurns, f.Starved)
	if r.Server != nil {
		fmt.Fprintf(&b, "server      %d forward steps, %.1f tokens per step\n", r.Server.Steps, r.Server.TokensPerStep)
	}
	if r.Rejected > 0 {
		fmt.Fprintf(&b, "rejected    %d times with HTTP 429 (server full); %.1fs waited in all\n", r.Rejected, r.RetryWaitS)
	}
	table := func(title string, rows []GroupStats, persona bool) {
		fmt.Fprintf(&b, "\n%s\n", title)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		if persona {
			fmt.Fprint(tw, "persona\tkind\tsessions\tturns\terrors\ttokens\ttokens/session\tTTFT p99\tITL p99\t\n")
		} else {
			fmt.Fprint(tw, "kind\tpersonas\tsessions\tturns\terrors\ttokens\ttokens/session\tTTFT p99\tITL p99\t\n")
		}
		for _, g := range rows {
			second := g.Kind
			if !persona {
				second = fmt.Sprint(g.Personas)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.1f\t%v\t%v\t\n", g.Name, second, g.Sessions, g.Turns, g.Errors, g.Tokens, g.TokensPerSession,
				g.TTFT.P99.Round(100*time.Microsecond), g.ITL.P99.Round(100*time.Microsecond))
		}
		tw.Flush()
	}
	table("per kind", r.PerKind, false)
	table("per persona", r.PerPersona, true)
	if len(r.PerSession) <= 16 {
		fmt.Fprintf(&b, "\nper session\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "session\tpersona\tturns\terrors\ttokens\tprompt\tcached\tmax messages\t\n")
		for _, s := range r.PerSession {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Session, s.Persona, s.Turns, s.Errors, s.Tokens, s.PromptTokens, s.CachedTokens, s.MaxMessages)
		}
		tw.Flush()
	} else {
		fmt.Fprintf(&b, "\n(per-session figures: --json)\n")
	}
	writeStatus(&b, r.StatusCounts, r.ErrorSamples)
	return b.String()
}
