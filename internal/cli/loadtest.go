package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/loadtest"
)

// loadtestCmd is `masque loadtest`: concurrent streaming clients against a
// masque (or other OpenAI-compatible) server.
func (e *env) loadtestCmd() *cobra.Command {
	var cfg loadtest.Config
	var temperature float64
	var asJSON bool
	c := &cobra.Command{
		Use:   "loadtest --url URL --personas a,b,c [--concurrency 32 --duration 60s]",
		Short: "Load-test a chat server with concurrent streaming clients",
		Long: `Run --concurrency clients, each sending streaming chat completions one after
another (personas round-robin) for --duration, then report requests/s, tokens/s,
the p50/p99 time to first token and time per output token, and the errors.
Requests still running at the end get --grace to finish. Only loopback URLs
are accepted unless --allow-remote is given. The key comes from --api-key or
$MASQUE_API_KEY.`,
		Example: `  masque loadtest --url http://127.0.0.1:8080 --concurrency 32 --duration 60s --personas pirate,bard,ranger`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.APIKey == "" {
				cfg.APIKey = os.Getenv("MASQUE_API_KEY")
			}
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
	return c
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
