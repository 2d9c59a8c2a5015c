package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/checkpoint"
	datavoices "github.com/masque-ai/masque/data/voices"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve"
)

// serveCmd is `masque serve`: the OpenAI-compatible multi-persona server.
// serveFlags are the options of `masque serve`.
type serveFlags struct {
	mf                                                    modelFlags
	personas, personaRoot, addr, apiKey, adminKey, baseID string
	kvMemory, maxBody, maxMessage                         string
	ctxLen, maxSeqs, queue, batchTokens, maxTokens        int
	promptCacheMB                                         int
	timeout, shutdownGrace, stallTimeout, drainDelay      time.Duration
	sessionIdle                                           time.Duration
	noPlayground, verbose, persist, hideReasoning         bool
	corsOrigins                                           []string
}

// serveCmd is `masque serve`: the OpenAI-compatible multi-persona server.
func (e *env) serveCmd() *cobra.Command {
	f := &serveFlags{mf: modelFlags{withCache: true}}
	c := &cobra.Command{
		Use:   "serve --model PATH [--personas FILE] [--addr 127.0.0.1:8080]",
		Short: "Serve personas through an OpenAI-compatible API, with continuous batching",
		Long:  serveLong,
		Example: `  masque serve
  masque serve --model ./Qwen2.5-0.5B-Instruct --personas personas.yaml
  masque serve --personas personas.yaml --api-key sk-local --admin-key sk-admin --kv-memory 2GiB --max-seqs 16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runServe(cmd, f) },
	}
	f.register(c)
	return c
}

func (f *serveFlags) register(c *cobra.Command) {
	f.mf.register(c)
	fl := c.Flags()
	fl.StringVar(&f.personas, "personas", "", "persona registry (YAML or JSON)")
	fl.BoolVar(&f.persist, "persist", false, "write personas added or removed at run time back to the --personas file")
	fl.StringVar(&f.personaRoot, "persona-root", "", "folder whose files personas added at run time may use (default: the registry's folder)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address (anything but loopback needs --api-key)")
	fl.StringVar(&f.apiKey, "api-key", "", "require this bearer key on every endpoint (default: $MASQUE_API_KEY)")
	fl.StringVar(&f.adminKey, "admin-key", "", "enable persona management with this bearer key (default: $MASQUE_ADMIN_KEY)")
	fl.StringVar(&f.baseID, "base-id", "base", "model id of the bare base model")
	fl.IntVar(&f.ctxLen, "ctx", 0, "context length of each sequence (default: the model's, at most 4096)")
	fl.StringVar(&f.kvMemory, "kv-memory", "1GiB", "bound on the KV cache memory of all sequences (of all base models together: split between them in proportion to one sequence of each)")
	fl.IntVar(&f.maxSeqs, "max-seqs", 32, "most sequences generating at once (batch slots) on each base model")
	fl.IntVar(&f.queue, "queue", 64, "most requests waiting for a slot of each base model; more get 429")
	fl.IntVar(&f.batchTokens, "batch-tokens", 512, "most tokens per forward step (longer prompts are fed in chunks)")
	fl.IntVar(&f.promptCacheMB, "prompt-cache-mb", 256, "MiB of recent prompts' keys and values kept (apart from --kv-memory) to skip shared prompt prefixes (0: off)")
	fl.DurationVar(&f.sessionIdle, "session-idle", 0, "cut the prompt cache entries of sessions idle this long to the prefix they share with the persona's other sessions (their next turn runs its history again, same output; 0: only when the cache needs room)")
	fl.IntVar(&f.maxTokens, "max-tokens", 1024, "default and largest max_tokens of a request")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "time limit of a request, queueing included")
	fl.StringVar(&f.maxBody, "max-body", "1MiB", "largest request body")
	fl.StringVar(&f.maxMessage, "max-message", "64KiB", "largest message content")
	fl.BoolVar(&f.noPlayground, "no-playground", false, "do not serve the web playground at /")
	fl.BoolVar(&f.hideReasoning, "hide-reasoning", false, `remove a leading <think>…</think> block from chat replies (streams are held back until it closes; a persona's hide_reasoning or a request's "hide_reasoning" overrides)`)
	fl.StringSliceVar(&f.corsOrigins, "cors-origin", nil, "web origin (e.g. https://app.example; * for any) whose pages may call the API from a browser; repeatable (default: none, only the playground's own origin)")
	fl.DurationVar(&f.stallTimeout, "stall-timeout", time.Minute, "drop a client whose connection accepts nothing for this long (it stopped reading); counted in /metrics (0: never)")
	fl.DurationVar(&f.shutdownGrace, "shutdown-grace", 10*time.Second, "on SIGTERM or SIGINT, stop accepting and give requests in flight this long to finish before ending them (streams then get an error event); exit 0")
	fl.DurationVar(&f.drainDelay, "drain-delay", 0, "on SIGTERM or SIGINT, first go on serving this long while /health/ready answers 503 (the time a load balancer or Kubernetes needs to take the replica out of rotation), then shut down as --shutdown-grace says")
	fl.BoolVar(&f.verbose, "verbose", false, "log one structured line (log/slog) per request: method, path, persona, status, prompt and completion tokens, latency")
}

// options checks the flags and returns the server's limits (the model and
// personas come later).
func (f *serveFlags) options() (serve.Options, error) {
	var o serve.Options
	if f.apiKey == "" {
		f.apiKey = os.Getenv("MASQUE_API_KEY")
	}
	if f.adminKey == "" {
		f.adminKey = os.Getenv("MASQUE_ADMIN_KEY")
	}
	if err := serve.CheckBind(f.addr, f.apiKey); err != nil {
		return o, usagef("%v", err)
	}
	kv, err := serve.ParseBytes(f.kvMemory)
	if err != nil {
		return o, usagef("--kv-memory: %v", err)
	}
	body, err := serve.ParseBytes(f.maxBody)
	if err != nil {
		return o, usagef("--max-body: %v", err)
	}
	msg, err := serve.ParseBytes(f.maxMessage)
	if err != nil {
		return o, usagef("--max-message: %v", err)
	}
	if f.shutdownGrace < 0 {
		return o, usagef("--shutdown-grace %v is negative", f.shutdownGrace)
	}
	if f.drainDelay < 0 {
		return o, usagef("--drain-delay %v is negative", f.drainDelay)
	}
	if f.shutdownGrace == 0 {
		f.shutdownGrace = -1 // serve.Options: negative is none, 0 the default
	}
	if f.stallTimeout <= 0 {
		f.stallTimeout = -1 // never
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"--max-seqs", f.maxSeqs}, {"--queue", f.queue}, {"--batch-tokens", f.batchTokens}, {"--max-tokens", f.maxTokens}} {
		if v.v < 1 {
			return o, usagef("%s must be at least 1", v.name)
		}
	}
	if f.timeout <= 0 {
		return o, usagef("--timeout must be positive")
	}
	if f.sessionIdle < 0 {
		return o, usagef("--session-idle must be 0 (off) or more")
	}
	if f.promptCacheMB < 0 {
		return o, usagef("--prompt-cache-mb must be 0 (off) or more")
	}
	promptCache := int64(f.promptCacheMB) << 20 // 0: NoPromptCache below
	if f.persist && f.personas == "" {
		return o, usagef("--persist needs --personas: the registry file to write")
	}
	ct, err := f.mf.cacheType()
	if err != nil {
		return o, err
	}
	o = serve.Options{BaseID: f.baseID, CacheType: ct, SessionIdle: f.sessionIdle, APIKey: f.apiKey, AdminKey: f.adminKey,
		Ctx: f.ctxLen, KVBytes: kv, MaxSeqs: f.maxSeqs, MaxQueue: f.queue, BatchTokens: f.batchTokens, PromptCacheBytes: promptCache, NoPromptCache: f.promptCacheMB == 0,
		Timeout: f.timeout, MaxBodyBytes: body, MaxMessageBytes: int(msg), MaxTokens: f.maxTokens,
		NoPlayground: f.noPlayground, HideReasoning: f.hideReasoning, ShutdownGrace: f.shutdownGrace, DrainDelay: f.drainDelay, CORSOrigins: f.corsOrigins, StallTimeout: f.stallTimeout}
	return o, nil
}

func (e *env) runServe(cmd *cobra.Command, f *serveFlags) error {
	o, err := f.options()
	if err != nil {
		return err
	}
	var specs []persona.Spec
	registry := ""
	if f.persist {
		registry = f.personas
	}
	if f.personas != "" {
		if specs, err = persona.LoadRegistry(f.personas); err != nil {
			return err
		}
		if f.personaRoot == "" {
			f.personaRoot = filepath.Dir(f.personas)
		}
	}
	// Without --model, the base that the personas' masks and adapters record.
	f.mf.from = append(f.mf.from, func() ([]checkpoint.Base, error) { return persona.Bases(specs) })
	ck, err := f.mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	if f.personas == "" && ck.Path == builtin.Voices {
		specs = datavoices.Specs() // the voices the built-in model was trained on
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	o.Base, o.Personas, o.PersonaRoot, o.Registry, o.PersonasFile = ck, specs, f.personaRoot, registry, f.personas
	o.Log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	srv, err := serve.New(o)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	bases := srv.Bases()
	if len(bases) == 1 {
		st := srv.Engine().Stats()
		fmt.Fprintf(e.stderr, "masque serve: %s with %d personas on http://%s (playground at /, %d slots, KV budget %d MiB, prompt cache %d MiB)\n",
			ck.Path, len(specs), ln.Addr(), st.MaxSeqs, st.KVBudget>>20, st.PrefixBudget>>20)
	} else {
		fmt.Fprintf(e.stderr, "masque serve: %d personas over %d base models on http://%s (playground at /):\n", len(specs), len(bases), ln.Addr())
		for _, b := range bases {
			fmt.Fprintf(e.stderr, "  %s: %s, %d personas, %d slots, KV share %d MiB, prompt cache %d MiB\n",
				b.ID, b.Model, b.Personas, b.Slots, b.KVBudget>>20, b.PromptCacheBudget>>20)
		}
	}
	return srv.Serve(cmd.Context(), ln)
}

// serveLong is serve's --help text.
const serveLong = `Serve a base model and its personas through an OpenAI-compatible HTTP API:
POST /v1/chat/completions and /v1/completions (streaming or not), GET /v1/models
(one id per persona, plus the base), GET /health, GET /metrics (Prometheus), and
a web playground at /.

A persona is a name, a profile that becomes the system prompt (unless a request
brings its own), and what it runs on: the base model, a mask file (masque subnet),
a LoRA adapter folder, or a separate pruned model folder. --personas reads them
from a YAML or JSON registry:

  personas:
    - name: pirate
      description: You are Captain Mira, a gruff but kind pirate.
      mask: masks/pirate.safetensors     # relative to the registry file
    - name: bard
      lora: adapters/bard
      temperature: 0.9
    - card: cards/old-sailor.png          # a SillyTavern character card (V1-V3, JSON or PNG)
    - name: qwen
      model: Qwen/Qwen2.5-0.5B-Instruct   # a separate model: a folder, or a hub id fetched by masque pull

Without --model, the base is the one the personas' masks and adapters record
(a note says so), else the default model.

Concurrent requests run in the same forward batches; mask and LoRA personas are
applied per sequence over one shared copy of the base weights. At most
--max-seqs sequences generate at once and their KV caches stay within
--kv-memory; --queue more may wait (then 429 with Retry-After).

Several base models: a persona's model: names the model it runs on (a folder,
a .gguf file or builtin:NAME), e.g. a 0.5B model for crowds and a 1.5B one for
the main characters. Every distinct model the registry names (compared by
resolved path; --model's file included) is opened once, shared by the personas
naming it, and gets an engine of its own: its own batches, --max-seqs slots and
--queue. --kv-memory is the budget of all bases together, split in proportion
to the KV memory of one sequence of each (so every base holds the same number
of sequences), and --prompt-cache-mb likewise; GET /health ("bases") and
/metrics (masque_base_*) report each base's share and load, GET /v1/models each
persona's "base". --model stays the default base (the personas without model:).
A persona added at run time may name a running base by its id (as in /health)
or model path; any other model of its own runs within the default base's share.

  personas:
    - name: villager
      description: A villager of Ashford.
      model: models/qwen2.5-0.5b-instruct
    - name: queen
      description: Queen Maren, who rules Ashford.
      model: models/qwen2.5-1.5b-instruct

Prompts are cached per persona: the keys and values of recent prompts (up to
--prompt-cache-mb, least recently used dropped first) let a request that starts
like an earlier one (the chat template, the persona's system prompt, earlier
turns of the conversation) run only the tokens that differ. Responses report
the reused tokens as usage.prompt_tokens_details.cached_tokens.

With --admin-key, personas can be added (POST /v1/personas: a JSON spec, or a
card as JSON or PNG) and removed (DELETE /v1/personas/NAME) at run time; their
files must lie inside --persona-root (default: the registry's folder). With
--persist, every such change is written back to the --personas file (atomically;
its comments and formatting are not kept), so the personas survive a restart.
A server with neither key on a loopback address allows the same from this
machine without a key (the playground at / creates, edits and imports cards).

Without --personas, builtin:voices (the default model) is served with its nine
voices as personas (kjv, web, spurgeon, sotu, jargon, webster, wordnet,
wesnoth, devil); another model is served with none but its base.

The server listens on the loopback interface by default; another address needs
--api-key. Keys can also come from MASQUE_API_KEY and MASQUE_ADMIN_KEY.

Web pages cannot drive the server through a browser: JSON endpoints take only
Content-Type: application/json, requests from another origin are refused unless
--cors-origin allows it, and a server without --api-key answers only requests
addressed to a loopback name (localhost, 127.0.0.1, [::1]; DNS-rebinding
protection). SIGTERM and SIGINT stop it cleanly: GET /health/ready answers
503 from then on, it serves on for --drain-delay (so load balancers and
Kubernetes stop sending it requests), then stops accepting, lets requests in
flight finish within --shutdown-grace, and exits 0. /health/live and
/health/ready need no key (probes send none); deploy/ has a container image,
a Kubernetes example and an NGINX config with session affinity.`
