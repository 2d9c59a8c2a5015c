package cli

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/loadtest"
)

// loadtestCmd is `masque loadtest`: concurrent streaming clients against a
// masque (or other OpenAI-compatible) server.
func (e *env) loadtestCmd() *cobra.Command {
	var cfg loadtest.Config
	var temperature float64
	var asJSON bool
	var sf scenarioFlags
	c := &cobra.Command{
		Use:   "loadtest --url URL --personas a,b,c [--concurrency 32 --duration 60s] | --scenario FILE",
		Short: "Load-test a chat server with concurrent streaming clients",
		Long: `Run --concurrency clients, each sending streaming chat completions one after
another (personas round-robin) for --duration, then report requests/s, tokens/s,
the p50/p99 time to first token and time per output token, and the errors.
Requests still running at the end get --grace to finish. Only loopback URLs
are accepted unless --allow-remote is given. The key comes from --api-key or
$MASQUE_API_KEY.

With --scenario FILE it runs a game-like workload instead: sessions (players)
talking to personas in multi-turn conversations, each turn after a think time,
every session keeping its conversation's history (so the server's prompt cache
sees the prompts grow). Without --url it starts an in-process server on the
scenario's model (or --model) with the scenario's personas and limits; with
--url it drives that server. First one session alone, without think time, runs
baseline.turns turns (--no-baseline skips it); then all sessions run for the
scenario's duration (--duration overrides it) or conversations; --think-time 0
runs the same sessions without think time, which measures what the server can
do rather than what the players ask of it. The report:
aggregate tokens/s (wall time, think time included) and its ratio to the lone
session's, the p50/p95/p99 time to first token and inter-token latency, prompt
tokens served from the cache, tokens per kind, persona and session, fairness
(min/max tokens per session and Jain's index), and errors. The scenario file
(YAML or JSON; relative paths are relative to it):

` + indent(loadtest.ScenarioSchema, "  "),
		Example: `  masque loadtest --url http://127.0.0.1:8080 --concurrency 32 --duration 60s --personas pirate,bard,ranger
  masque loadtest --scenario loadtest/scenarios/npc64.yaml --duration 60s --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.APIKey == "" {
				cfg.APIKey = os.Getenv("MASQUE_API_KEY")
			}
			if sf.file != "" {
				for _, f := range []string{"personas", "concurrency", "max-requests", "max-tokens", "prompt", "temperature", "grace"} {
					if cmd.Flags().Changed(f) {
						return usagef("--%s does not apply to --scenario (the scenario file sets it)", f)
					}
				}
				if !cmd.Flags().Changed("url") {
					cfg.URL = ""
				}
				if cmd.Flags().Changed("duration") {
					sf.duration = cfg.Duration
				}
				sf.thinkSet = cmd.Flags().Changed("think-time")
				return e.runScenario(cmd, &sf, cfg, asJSON)
			}
			if cmd.Flags().Changed("model") || sf.noBaseline || cmd.Flags().Changed("think-time") {
				return usagef("--model, --no-baseline and --think-time apply to --scenario only")
			}
			return e.runUniform(cmd, cfg, temperature, asJSON)
		},
	}
	fl := c.Flags()
	fl.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "server base URL")
	fl.StringVar(&cfg.APIKey, "api-key", "", "bearer key (default: $MASQUE_API_KEY)")
	fl.StringSliceVar(&cfg.Personas, "personas", nil, "model ids to use, comma-separated (round-robin)")
	fl.IntVar(&cfg.Concurrency, "concurrency", 32, fmt.Sprintf("concurrent clients (at most %d)", loadtest.MaxConcurrency))
	fl.DurationVar(&cfg.Duration, "duration", 60*time.Second, fmt.Sprintf("how long to start requests (at most %v)", loadtest.MaxDuration))
	fl.DurationVar(&cfg.Grace, "grace", loadtest.DefaultGrace, "time requests running at the end may take to finish")
	fl.IntVar(&cfg.MaxRequests, "max-requests", 0, "stop after starting this many requests (0: no cap)")
	fl.IntVar(&cfg.MaxTokens, "max-tokens", 64, "max_tokens of each request")
	fl.StringVar(&cfg.Prompt, "prompt", "", "user message (default: a request for a short story)")
	fl.Float64Var(&temperature, "temperature", 0.8, "temperature of each request")
	fl.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a URL that is not a loopback address")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.StringVar(&sf.file, "scenario", "", "run the scenario in this file (YAML or JSON; see above) instead of uniform clients")
	fl.StringVar(&sf.model, "model", "", "scenario: base model of the in-process server (default: the scenario's model)")
	fl.BoolVar(&sf.noBaseline, "no-baseline", false, "scenario: skip the single-session baseline")
	fl.DurationVar(&sf.think, "think-time", 0, "scenario: a fixed think time before every turn instead of the scenario's (0: none, which measures the server's capacity)")
	return c
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// scenarioFlags are loadtest's scenario-mode options.
type scenarioFlags struct {
	file, model string
	noBaseline  bool
	duration    time.Duration // overrides the scenario's when set
	think       time.Duration // with thinkSet, replaces the scenario's think time
	thinkSet    bool
}

// runScenario runs `masque loadtest --scenario`.
func (e *env) runScenario(cmd *cobra.Command, sf *scenarioFlags, lc loadtest.Config, asJSON bool) error {
	sc, err := loadtest.LoadScenario(sf.file)
	if err != nil {
		return err
	}
	if sf.duration > 0 {
		if sf.duration > loadtest.MaxDuration {
			return usagef("--duration %v is over %v", sf.duration, loadtest.MaxDuration)
		}
		sc.Duration = loadtest.Duration(sf.duration)
	}
	if sf.thinkSet {
		if sf.think < 0 || sf.think > loadtest.MaxDuration {
			return usagef("--think-time %v is outside [0, %v]", sf.think, loadtest.MaxDuration)
		}
		sc.ThinkTime = loadtest.ThinkTime{}
		if sf.think > 0 {
			sc.ThinkTime = loadtest.ThinkTime{Dist: "fixed", Mean: loadtest.Duration(sf.think)}
		}
	}
	cfg := loadtest.ScenarioConfig{Scenario: sc, URL: lc.URL, APIKey: lc.APIKey, AllowRemote: lc.AllowRemote, NoBaseline: sf.noBaseline,
		Logf: func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }}
	if cfg.URL == "" {
		if sf.model == "" {
			sf.model = sc.Model
		}
		ck, err := checkpoint.Open(sf.model, checkpoint.Options{})
		if err != nil {
			return err
		}
		defer ck.Close()
		cfg.Base = ck
	} else if sf.model != "" {
		return usagef("--model starts an in-process server: leave out --url, or --model")
	}
	// A line every 10 seconds, so a long run shows it is alive.
	var mu sync.Mutex
	turns, tokens := 0, 0
	cfg.OnTurn = func(r loadtest.TurnRecord) {
		mu.Lock()
		turns++
		tokens += r.Tokens
		mu.Unlock()
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				fmt.Fprintf(e.stderr, "masque loadtest: %d turns, %d tokens\n", turns, tokens)
				mu.Unlock()
			}
		}
	}()
	r, err := loadtest.RunScenario(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(e.stdout, r); err != nil {
			return err
		}
	} else {
		fmt.Fprint(e.stdout, r)
	}
	if r.Errors > 0 {
		return fmt.Errorf("%d of %d turns failed", r.Errors, r.Errors+r.Turns)
	}
	return nil
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// runUniform runs --concurrency uniform streaming clients and prints
// their report.
func (e *env) runUniform(cmd *cobra.Command, cfg loadtest.Config, temperature float64, asJSON bool) error {
	if err := loadtest.CheckURL(cfg.URL, cfg.AllowRemote); err != nil {
		return usagef("%v", err)
	}
	if len(cfg.Personas) == 0 {
		return usagef("--personas: name at least one persona (model id)")
	}
	cfg.Temperature = &temperature
	fmt.Fprintf(e.stderr, "masque loadtest: %d clients for %v against %s (%v)\n", cfg.Concurrency, cfg.Duration, cfg.URL, cfg.Personas)
	r, err := loadtest.Run(cmd.Context(), cfg)
	if err != nil {
		return usagef("%v", err)
	}
	if asJSON {
		return writeJSON(e.stdout, map[string]any{
			"requests": r.Requests, "errors": r.Errors, "rejected": r.Rejected, "retry_wait_s": r.RetryWait.Seconds(), "tokens": r.Tokens, "elapsed_s": r.Elapsed.Seconds(),
			"requests_per_s": r.RequestsPerSec, "tokens_per_s": r.TokensPerSec,
			"ttft_p50_ms": millis(r.TTFTP50), "ttft_p99_ms": millis(r.TTFTP99), "tpot_p50_ms": millis(r.TPOTP50), "tpot_p99_ms": millis(r.TPOTP99),
			"status_counts": r.StatusCounts, "error_samples": r.ErrorSamples,
		})
	}
	fmt.Fprint(e.stdout, r)
	if r.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed", r.Errors, r.Errors+r.Requests)
	}
	return nil
}
