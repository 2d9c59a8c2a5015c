// Package serve is masque's OpenAI-compatible multi-persona server: one or
// more base models, many personas (a system prompt, and optionally a
// weight mask, a LoRA adapter or a model of their own), all generating at
// once with continuous batching (package serve/engine) over shared weights.
//
// The default base is Options.Base. Every other model that the start-up
// personas name (Spec.Model; several personas naming one file share one
// copy) is a base of its own, with an engine of its own: its own batches,
// queue and slots, and a share of the KV memory (see Options.KVBytes).
//
// Endpoints: POST /v1/chat/completions and /v1/completions (streaming with
// server-sent events, or not), GET /v1/models, GET /health, GET /metrics
// (Prometheus), persona management under /v1/personas (admin key), and a
// small web playground at /.
package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve/engine"
	"github.com/masque-ai/masque/serve/playground"
)

// Options configure a Server. Zero values take the defaults named.
type Options struct {
	// Base is the opened base model. The server does not close it.
	Base *checkpoint.Checkpoint
	// BaseID is the model id under which the bare base model is served
	// (default "base").
	BaseID string
	// Personas are loaded at start; a persona that fails to load fails New.
	// The distinct models they name (Spec.Model, compared by resolved
	// path; the default base's file included) are the server's other
	// bases, opened once each.
	Personas []persona.Spec
	// PersonasFile is the registry file Personas came from, named in the
	// errors of New (empty: none).
	PersonasFile string
	// PersonaRoot is the folder whose files (masks, adapters, model
	// folders) personas added at run time may use; their paths are
	// relative to it and may not leave it. Empty: such personas can only
	// run on the base model with a prompt.
	PersonaRoot string
	// Registry, if set, is the registry file that personas added or
	// removed at run time are written back to (persona.SaveRegistry), so
	// they survive a restart. An add whose registry cannot be written is
	// undone and answered with an error.
	Registry string

	// APIKey, if set, is required (Authorization: Bearer KEY) by every
	// endpoint except the playground's static files.
	APIKey string
	// AdminKey, if set, enables persona management (POST and DELETE
	// /v1/personas), which requires it; without it those endpoints answer
	// 403, unless LocalAdmin.
	AdminKey string
	// LocalAdmin enables persona management without a key for a server
	// that has neither key and listens on loopback only, so the playground
	// can create and edit personas there: requests must then come from a
	// loopback address (and, as for every keyless request, be addressed to
	// a loopback name). Serve sets it for such a listener. Ignored when a
	// key is set.
	LocalAdmin bool

	// Ctx is the context length of each sequence (default: the model's
	// maximum, at most 4096).
	Ctx int
	// KVBytes bounds the KV cache memory of all sequences, of all bases
	// together (default 1 GiB). With several bases it is carved into one
	// share per base, in proportion to the KV memory of one sequence of
	// each (its layers × KV width × context), so that every base gets the
	// same number of sequences' worth: KVBytes ÷ (the sum of one
	// sequence of each) whole sequences, the remainder shared in the same
	// proportion. A base's share bounds its sequences; the prompt cache
	// (PromptCacheBytes) is split in the same proportion. Each base's share
	// is in GET /health and /metrics.
	KVBytes int64
	// CacheType is how the KV caches (and the prompt cache) store keys and
	// values (default F32; F16 halves the memory, Q8_0 takes about a
	// quarter): New sets it on Base.Model, on every other base and on
	// every persona's own model.
	CacheType model.CacheType
	// MaxSeqs is the most sequences generating at once on each base
	// (default 32).
	MaxSeqs int
	// MaxQueue is the most requests waiting for a slot of each base
	// (default 64); more are refused with 429.
	MaxQueue int
	// BatchTokens caps the tokens of one forward step (default 512).
	BatchTokens int
	// PromptCacheBytes bounds the memory of the prompt cache (0: the
	// default, 256 MiB, apart from KVBytes; negative is an error): the keys
	// and values of recent prompts, per persona, from which a request whose
	// prompt starts the same way (the chat template, the persona's system
	// prompt, earlier turns) resumes instead of running those tokens again.
	// Responses report the reused tokens as
	// usage.prompt_tokens_details.cached_tokens.
	PromptCacheBytes int64
	// SessionIdle, if positive, cuts the prompt cache's entries that no
	// request has used for that long (idle sessions) to the prefix they
	// share with another entry of their persona (the chat template and
	// system prompt), or drops them: a session's next turn then runs its
	// earlier turns again, with the same output (engine.Config.IdleAfter).
	// 0: entries go only when the cache needs room. Negative is an error.
	SessionIdle time.Duration
	// NoPromptCache turns the prompt cache off (the one way to say "off":
	// `masque serve --prompt-cache-mb 0` sets it).
	NoPromptCache bool
	// Timeout bounds each request, queueing included (default 5 minutes).
	Timeout time.Duration
	// MaxBodyBytes bounds request bodies (default 1 MiB; persona uploads
	// may be up to persona.MaxCardBytes).
	MaxBodyBytes int64
	// MaxMessageBytes bounds each message's content (default 64 KiB) and
	// MaxMessages their number (default 256).
	MaxMessageBytes, MaxMessages int
	// MaxTokens is the largest max_tokens a request may send (default 1024)
	// and the default of chat completions; completions default to 16 (as
	// OpenAI's do). A default is capped by the persona's max_tokens and the
	// room left in the context; a sent value over a limit is an error.
	MaxTokens int
	// NoPlayground turns off the web playground at /.
	NoPlayground bool
	// HideReasoning removes a leading <think>…</think> block from chat
	// replies (streamed replies are held back until it closes) unless a
	// persona (Spec.HideReasoning) or a request (hide_reasoning) says
	// otherwise.
	HideReasoning bool
	// CORSOrigins are the web origins (e.g. "https://app.example"; "*":
	// any) whose pages may call the API from a browser; requests from
	// other origins are refused (see guard.go). The playground, served
	// from the same origin, needs none.
	CORSOrigins []string
	// StallTimeout is how long one write to a client may block (the
	// client reads nothing: its TCP buffers are full) before the client
	// is dropped: its connection closed, its generation cancelled, and
	// masque_stalled_clients_total counted. Default 60 seconds; negative:
	// never.
	StallTimeout time.Duration
	// ShutdownGrace is how long Serve, once its context ends (SIGINT or
	// SIGTERM in the CLI), lets the requests in flight finish before it
	// ends them (streams then get an error event); default 10 seconds,
	// negative: end them at once.
	ShutdownGrace time.Duration
	// DrainDelay is how long Serve, once its context ends, goes on serving
	// every request while GET /health/ready answers 503 "draining" (and
	// responses carry Connection: close), so that load balancers and
	// Kubernetes take the replica out of rotation before it stops
	// accepting; ShutdownGrace follows. Default 0: stop accepting at once.
	DrainDelay time.Duration
	// Log receives one line per failed request (default: discarded).
	Log *slog.Logger

	// stepDelay slows every forward step down (tests only).
	stepDelay time.Duration
}

func (o *Options) defaults() error {
	if o.Base == nil || o.Base.Model == nil {
		return errors.New("serve: no base model")
	}
	if _, err := o.Base.NeedTokenizer(); err != nil {
		return fmt.Errorf("serve: the base model needs a tokenizer: %v", err)
	}
	if o.BaseID == "" {
		o.BaseID = "base"
	}
	if err := persona.ValidName(o.BaseID); err != nil {
		return fmt.Errorf("serve: base id: %v", err)
	}
	if o.Ctx <= 0 {
		o.Ctx = min(modelCtx(o.Base), 4096)
	}
	o.Ctx = min(o.Ctx, modelCtx(o.Base))
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.MaxSeqs, 32)
	def(&o.BatchTokens, 512)
	def(&o.MaxMessageBytes, 64<<10)
	def(&o.MaxMessages, 256)
	def(&o.MaxTokens, 1024)
	if o.MaxQueue < 0 {
		return errors.New("serve: negative queue length")
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = 64
	}
	if o.KVBytes <= 0 {
		o.KVBytes = 1 << 30
	}
	if o.SessionIdle < 0 {
		return fmt.Errorf("serve: negative session idle limit %v", o.SessionIdle)
	}
	if err := o.CacheType.Validate(); err != nil {
		return fmt.Errorf("serve: %v", err)
	}
	switch {
	case o.PromptCacheBytes < 0:
		return fmt.Errorf("serve: negative prompt cache size %d (set NoPromptCache to turn the cache off)", o.PromptCacheBytes)
	case o.NoPromptCache:
		o.PromptCacheBytes = 0 // the engine's "no prefix store"
	case o.PromptCacheBytes == 0:
		o.PromptCacheBytes = 256 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	switch {
	case o.StallTimeout == 0:
		o.StallTimeout = time.Minute
	case o.StallTimeout < 0:
		o.StallTimeout = 0
	}
	switch {
	case o.ShutdownGrace == 0:
		o.ShutdownGrace = 10 * time.Second
	case o.ShutdownGrace < 0:
		o.ShutdownGrace = 0
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

func modelCtx(ck *checkpoint.Checkpoint) int {
	if n := ck.Model.Config.MaxSeq; n > 0 {
		return n
	}
	return 4096
}

// Server serves personas over HTTP. Create it with New and release it with
// Close.
type Server struct {
	opts    Options
	eng     *engine.Engine // the default base's (base.eng)
	base    *baseModel     // the default base (bases[0])
	bases   []*baseModel   // every base with an engine of its own
	metrics *metrics
	handler http.Handler
	created int64

	mu       sync.RWMutex
	personas map[string]*loaded
	closed   bool
	loads    uint64 // personas loaded so far (under mu): their prompt cache keys

	persistMu sync.Mutex // orders writes of Options.Registry

	draining atomic.Bool // Serve's context ended: readiness is 503

	apiKey, adminKey [32]byte
}

// New loads the personas, starts the engine and returns the server.
func New(opts Options) (*Server, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, personas: map[string]*loaded{}, created: time.Now().Unix()}
	s.apiKey = sha256.Sum256([]byte(opts.APIKey))
	s.adminKey = sha256.Sum256([]byte(opts.AdminKey))
	s.metrics = newMetrics(s)
	onStep := s.metrics.step
	if d := opts.stepDelay; d > 0 {
		onStep = func(base string, seqs, tokens int, t time.Duration) {
			s.metrics.step(base, seqs, tokens, t)
			time.Sleep(d)
		}
	}
	_ = opts.Base.Model.SetCacheType(opts.CacheType) // validated by defaults
	s.base = newBaseModel(opts.BaseID, opts.Base, opts.Ctx, false)
	s.base.key, s.base.shared = modelKey(opts.Base.Path), true
	s.bases = []*baseModel{s.base}
	if err := s.openBases(); err != nil {
		s.closeBases()
		return nil, err
	}
	if err := s.startEngines(onStep); err != nil {
		s.closeBases()
		return nil, err
	}
	s.eng = s.base.eng
	for _, spec := range opts.Personas {
		if err := s.addPersona(spec, ""); err != nil {
			s.Close()
			return nil, fmt.Errorf("serve: %spersona %s: %v", s.inFile(), spec.Name, err)
		}
	}
	s.handler = s.routes()
	return s, nil
}

// inFile is "FILE: " for Options.PersonasFile, for errors.
func (s *Server) inFile() string {
	if s.opts.PersonasFile == "" {
		return ""
	}
	return s.opts.PersonasFile + ": "
}

// openBases opens every distinct model that the start-up personas name and
// that is not the default base, once.
func (s *Server) openBases() error {
	for _, spec := range s.opts.Personas {
		if spec.Model == "" || spec.Validate() != nil || s.sharedBase(spec, "") != nil {
			continue // no model, one opened already, or addPersona will say what is wrong
		}
		ck, err := checkpoint.Open(spec.Model, checkpoint.Options{})
		if err != nil {
			return fmt.Errorf("serve: %spersona %s: its model %s does not open: %v", s.inFile(), spec.Name, spec.Model, err)
		}
		if _, err := ck.NeedTokenizer(); err != nil {
			ck.Close()
			return fmt.Errorf("serve: %spersona %s: its model %s: %v", s.inFile(), spec.Name, spec.Model, err)
		}
		_ = ck.Model.SetCacheType(s.opts.CacheType) // validated by defaults
		b := newBaseModel(s.baseName(spec.Model), ck, min(s.opts.Ctx, modelCtx(ck)), true)
		b.key, b.shared = modelKey(spec.Model), true
		s.bases = append(s.bases, b)
	}
	return nil
}

// baseName names a base opened from path in /health, /metrics and
// /v1/models: the file or folder name without extension (a built-in
// model's name without "builtin:"), made unique.
func (s *Server) baseName(path string) string {
	name := strings.TrimPrefix(path, "builtin:")
	if !strings.HasPrefix(path, "builtin:") {
		name = filepath.Base(filepath.Clean(path))
		name = strings.TrimSuffix(name, filepath.Ext(name))
	}
	if name == "" || name == "." || name == string(filepath.Separator) {
		name = "model"
	}
	taken := func(n string) bool {
		return slices.ContainsFunc(s.bases, func(b *baseModel) bool { return b.eb.Name == n })
	}
	out := name
	for i := 2; taken(out); i++ {
		out = fmt.Sprintf("%s-%d", name, i)
	}
	return out
}

// kvShares carves total into one share per base in proportion to their
// slot sizes: every base gets total ÷ Σslot whole slots, and the rest is
// split in the same proportion (see Options.KVBytes).
func kvShares(total int64, slots []int64) []int64 {
	var sum int64
	for _, v := range slots {
		sum += v
	}
	out := make([]int64, len(slots))
	if sum <= 0 {
		return out
	}
	n := total / sum
	rem := total - n*sum
	for i, v := range slots {
		out[i] = n*v + int64(float64(rem)*float64(v)/float64(sum))
	}
	return out
}

// startEngines starts one engine per base, each with its share of the KV
// and prompt cache memory.
func (s *Server) startEngines(onStep func(base string, seqs, tokens int, t time.Duration)) error {
	o := &s.opts
	slots := make([]int64, len(s.bases))
	var sum int64
	var each []string
	for i, b := range s.bases {
		if b.eb.Ctx < 2 {
			return fmt.Errorf("serve: base %s: context length %d is too short", b.eb.Name, b.eb.Ctx)
		}
		slots[i] = b.eb.SlotBytes()
		sum += slots[i]
		each = append(each, fmt.Sprintf("%s %d", b.eb.Name, slots[i]))
	}
	if len(s.bases) > 1 && o.KVBytes < sum {
		return fmt.Errorf("serve: %sthe KV memory of %d bytes does not hold one sequence of each of the %d bases (%d bytes: %s): raise the KV memory or lower the context length",
			s.inFile(), o.KVBytes, len(s.bases), sum, strings.Join(each, ", "))
	}
	kv := kvShares(o.KVBytes, slots)
	prefix := make([]int64, len(s.bases))
	if o.PromptCacheBytes > 0 {
		prefix = kvShares(o.PromptCacheBytes, slots)
		for i := range prefix {
			prefix[i] = max(prefix[i], 1)
		}
	}
	for i, b := range s.bases {
		eng, err := engine.New(engine.Config{MaxSeqs: o.MaxSeqs, MaxQueue: o.MaxQueue, KVBytes: kv[i], BatchTokens: o.BatchTokens,
			PrefixBytes: prefix[i], IdleAfter: o.SessionIdle, OnStep: onStep})
		if err != nil {
			return fmt.Errorf("serve: %v", err)
		}
		b.eng = eng
		if err := eng.CheckBase(b.eb); err != nil {
			return fmt.Errorf("serve: %v", err)
		}
	}
	return nil
}

// closeBases stops the engines and closes the bases the server opened.
func (s *Server) closeBases() {
	for _, b := range s.bases {
		if b.eng != nil {
			b.eng.Close()
		}
	}
	for _, b := range s.bases[1:] {
		b.release()
	}
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Engine returns the default base's scheduler (for statistics).
func (s *Server) Engine() *engine.Engine { return s.eng }

// BaseStats is a base model as GET /health reports it.
type BaseStats struct {
	// ID names the base (Options.BaseID for the default one).
	ID string `json:"id"`
	// Model is the model's path as given (or a built-in model's name).
	Model string `json:"model"`
	// Personas counts the personas on it.
	Personas int `json:"personas"`
	// Active and Queued count its running and waiting requests; Slots is
	// the most sequences that run at once (MaxSeqs, or fewer when its KV
	// share holds fewer) and MaxQueue the most that may wait.
	Active   int `json:"active"`
	Queued   int `json:"queued"`
	Slots    int `json:"slots"`
	MaxQueue int `json:"max_queue"`
	// SlotBytes is the KV memory of one sequence; KVBudget the base's
	// share of the KV memory, KVReserved what its caches hold reserved.
	SlotBytes  int64 `json:"slot_bytes"`
	KVBudget   int64 `json:"kv_budget_bytes"`
	KVReserved int64 `json:"kv_reserved_bytes"`
	KVUsed     int64 `json:"kv_used_bytes"`
	// PromptCacheBudget is its share of the prompt cache, PromptCacheBytes
	// what the share holds.
	PromptCacheBudget int64 `json:"prompt_cache_budget_bytes"`
	PromptCacheBytes  int64 `json:"prompt_cache_bytes"`
	// WeightBytes is the memory of its weights.
	WeightBytes int64 `json:"weight_bytes"`
}

// Bases reports every base model with an engine of its own, the default
// one first.
func (s *Server) Bases() []BaseStats {
	counts := map[*baseModel]int{}
	s.mu.RLock()
	for _, p := range s.personas {
		counts[p.base]++
	}
	s.mu.RUnlock()
	out := make([]BaseStats, len(s.bases))
	for i, b := range s.bases {
		st := b.eng.Stats()
		out[i] = BaseStats{ID: b.eb.Name, Model: b.ck.Path, Personas: counts[b], Active: st.Active, Queued: st.Queued,
			Slots: b.eng.Slots(b.eb), MaxQueue: st.MaxQueue, SlotBytes: b.eb.SlotBytes(), KVBudget: st.KVBudget, KVReserved: st.KVReserved,
			KVUsed: st.KVUsed, PromptCacheBudget: st.PrefixBudget, PromptCacheBytes: st.PrefixBytes, WeightBytes: b.bytes}
	}
	return out
}

// Close stops the engine (failing requests in flight) and closes the
// model folders that personas opened. The base checkpoint stays open.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ps := s.personas
	s.personas = map[string]*loaded{}
	s.mu.Unlock()
	for _, b := range s.bases {
		b.eng.Close()
	}
	for _, p := range ps {
		p.base.release()
	}
	for _, b := range s.bases[1:] {
		b.release() // the server's reference
	}
}

// route is one endpoint.
type route struct {
	methods []string
	auth    int // authNone, authUser, authAdmin
	name    string
	h       func(w http.ResponseWriter, r *http.Request) *apiError
}

const (
	authNone = iota
	authUser
	authAdmin
)

func (s *Server) routes() http.Handler {
	exact := map[string]route{
		"/health":              {[]string{"GET"}, authUser, "health", s.handleHealth},
		"/health/live":         {[]string{"GET"}, authNone, "health", s.handleLive},
		"/health/ready":        {[]string{"GET"}, authNone, "health", s.handleReady},
		"/metrics":             {[]string{"GET"}, authUser, "metrics", s.handleMetrics},
		"/v1/models":           {[]string{"GET"}, authUser, "models", s.handleModels},
		"/v1/chat/completions": {[]string{"POST"}, authUser, "chat", s.handleChat},
		"/v1/completions":      {[]string{"POST"}, authUser, "completions", s.handleCompletions},
		"/v1/personas":         {[]string{"GET", "POST"}, authUser, "personas", s.handlePersonas},
		"/v1/embeddings":       {[]string{"POST"}, authUser, "embeddings", s.handleEmbeddings},
		"/tokenize":            {[]string{"POST"}, authUser, "tokenize", s.handleTokenize},
		"/detokenize":          {[]string{"POST"}, authUser, "detokenize", s.handleDetokenize},
	}
	prefix := map[string]route{
		"/v1/models/":   {[]string{"GET"}, authUser, "models", s.handleModel},
		"/v1/personas/": {[]string{"GET", "DELETE"}, authUser, "personas", s.handlePersona},
	}
	var pg http.Handler
	if !s.opts.NoPlayground {
		pg = playground.Handler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, stall: s.opts.StallTimeout}
		if sw.stall > 0 {
			// No deadline left over from an earlier request on this
			// connection; the last one is set as the handler returns, for
			// the server's final flush.
			http.NewResponseController(w).SetWriteDeadline(time.Time{})
		}
		name := "other"
		r, rl := withReqLog(r)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.opts.Log.Error("panic", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				if !sw.wrote {
					writeError(sw, newError(500, typeServer, "", "", "internal error"))
				}
			}
			sw.deadline()
			s.metrics.request(name, sw.status(), time.Since(start))
			s.logRequest(r, rl, sw.status(), time.Since(start))
			if sw.stalled {
				s.metrics.stalled.Inc()
				s.opts.Log.Warn("client dropped: it read nothing for the stall timeout", "path", r.URL.Path, "remote", r.RemoteAddr, "stall_timeout", s.opts.StallTimeout)
			}
		}()
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		if s.draining.Load() {
			sw.Header().Set("Connection", "close") // reconnect, to a replica in rotation
		}
		if s.guard(sw, r) {
			return
		}
		path := r.URL.Path
		rt, ok := exact[path]
		if !ok {
			for p, pr := range prefix {
				if strings.HasPrefix(path, p) && len(path) > len(p) {
					rt, ok = pr, true
				}
			}
		}
		if !ok {
			if pg != nil && r.Method == http.MethodGet && playground.Serves(path) {
				name = "playground"
				pg.ServeHTTP(sw, r)
				return
			}
			writeError(sw, newError(http.StatusNotFound, typeNotFound, "not_found", "", "no endpoint %s %s", r.Method, path))
			return
		}
		name = rt.name
		allowed := false
		for _, m := range rt.methods {
			allowed = allowed || m == r.Method
		}
		if !allowed {
			sw.Header().Set("Allow", strings.Join(rt.methods, ", "))
			writeError(sw, newError(http.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "", "%s %s is not supported (allowed: %s)", r.Method, path, strings.Join(rt.methods, ", ")))
			return
		}
		auth := rt.auth
		if rt.name == "personas" && (r.Method == http.MethodPost || r.Method == http.MethodDelete) {
			auth = authAdmin
		}
		if e := s.authorize(r, auth); e != nil {
			writeError(sw, e)
			return
		}
		var ctOK *apiError
		if rt.name == "personas" {
			ctOK = checkJSONBody(r, "image/png")
		} else {
			ctOK = checkJSONBody(r)
		}
		if ctOK != nil {
			writeError(sw, ctOK)
			return
		}
		limit := s.opts.MaxBodyBytes
		if auth == authAdmin {
			limit = max(limit, persona.MaxCardBytes)
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		// A slow client gets bodyTimeout to send its body; generations
		// lift the deadline once it is read (see generation.run).
		http.NewResponseController(sw).SetReadDeadline(time.Now().Add(bodyTimeout))
		if e := rt.h(sw, r); e != nil {
			if e.Status >= 500 {
				s.opts.Log.Error("request failed", "path", path, "status", e.Status, "error", e.Message)
			}
			if sw.wrote {
				return // a stream already started reports its own errors
			}
			writeError(sw, e)
		}
	})
}

// bodyTimeout bounds the time a client may take to send its request body.
var bodyTimeout = time.Minute

// authorize checks the bearer key: any key for authUser when an API key is
// set (the admin key also passes), the admin key for authAdmin.
func (s *Server) authorize(r *http.Request, level int) *apiError {
	if level == authNone {
		return nil
	}
	// The scheme is case-insensitive (RFC 7235, RFC 6750); the key is not.
	scheme, key, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	hasBearer := strings.EqualFold(scheme, "Bearer")
	key = strings.TrimSpace(key)
	sum := sha256.Sum256([]byte(key))
	isAdmin := s.opts.AdminKey != "" && hasBearer && subtle.ConstantTimeCompare(sum[:], s.adminKey[:]) == 1
	if level == authAdmin {
		if s.localAdmin(r) {
			return nil
		}
		if s.opts.AdminKey == "" {
			return newError(http.StatusForbidden, typePermission, "admin_disabled", "", "persona management is disabled: start the server with --admin-key")
		}
		if !isAdmin {
			return newError(http.StatusUnauthorized, typeAuthentication, "invalid_admin_key", "", "persona management needs the admin key (Authorization: Bearer ADMIN_KEY)")
		}
		return nil
	}
	if s.opts.APIKey == "" || isAdmin {
		return nil
	}
	if !hasBearer || subtle.ConstantTimeCompare(sum[:], s.apiKey[:]) != 1 {
		return newError(http.StatusUnauthorized, typeAuthentication, "invalid_api_key", "", "incorrect or missing API key (Authorization: Bearer KEY)")
	}
	return nil
}

// localAdmin reports whether r may manage personas without a key: the
// server has no keys, LocalAdmin is set, and r comes from loopback.
func (s *Server) localAdmin(r *http.Request) bool {
	if !s.opts.LocalAdmin || s.opts.AdminKey != "" || s.opts.APIKey != "" {
		return false
	}
	// A request relayed by a proxy on this machine (NGINX in deploy/
	// sets X-Forwarded-For) comes from a loopback address whatever its
	// client: it is not local.
	if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" || r.Header.Get("X-Real-IP") != "" {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// statusWriter records the status and whether anything was written, and
// passes Flush through for streaming. Each write and flush must finish
// within stall (if positive): a client that reads nothing fails the write
// (stalled), which ends the handler and its generation.
type statusWriter struct {
	http.ResponseWriter
	code    int
	wrote   bool
	stall   time.Duration
	stalled bool
}

// deadline gives the next write stall to complete.
func (w *statusWriter) deadline() {
	if w.stall > 0 {
		http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.stall))
	}
}

// check records a write that failed on its deadline.
func (w *statusWriter) check(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		w.stalled = true
	}
	return err
}

// WriteHeader records the status.
func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records that the body started.
func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.code, w.wrote = http.StatusOK, true
	}
	w.deadline()
	n, err := w.ResponseWriter.Write(b)
	return n, w.check(err)
}

// Flush flushes the underlying writer, for streams.
func (w *statusWriter) Flush() { w.FlushError() }

// FlushError flushes the underlying writer and returns its error (what
// http.ResponseController.Flush calls).
func (w *statusWriter) FlushError() error {
	w.deadline()
	return w.check(http.NewResponseController(w.ResponseWriter).Flush())
}

// Unwrap returns the underlying writer (for http.ResponseController).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.code
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) *apiError {
	bases := s.Bases()
	s.mu.RLock()
	n := len(s.personas)
	s.mu.RUnlock()
	status := "ok"
	if s.draining.Load() {
		status = "draining"
	}
	// The totals over every base; "bases" has each one's figures.
	var active, queued, slots, maxQueue int
	var kv int64
	for _, b := range bases {
		active, queued, slots, maxQueue, kv = active+b.Active, queued+b.Queued, slots+s.opts.MaxSeqs, maxQueue+b.MaxQueue, kv+b.KVBudget
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": status, "personas": n, "active": active, "queued": queued, "slots": slots,
		"max_queue": maxQueue, "draining": s.draining.Load(), "kv_budget_bytes": kv, "bases": bases})
	return nil
}

// handleLive answers the liveness probe (no key needed): 200 while the
// process serves HTTP, draining included, as restarting a draining
// replica would end its requests.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) *apiError {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	return nil
}

// handleReady answers the readiness probe (no key needed, so it tells no
// more than a status): 503 "draining" once Serve's context has ended (the
// replica is shutting down: send it nothing new), 503 "saturated" while the
// queue is full (a new request would get 429), else 200 "ready".
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) *apiError {
	full := false // a base's queue is full
	for _, b := range s.bases {
		st := b.eng.Stats()
		full = full || st.Queued >= st.MaxQueue
	}
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
	case full:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "saturated"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	}
	return nil
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) *apiError {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}

func (s *Server) modelObjects() []modelObject {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []modelObject{{ID: s.opts.BaseID, Object: "model", Created: s.created, OwnedBy: "masque", Base: s.base.eb.Name}}
	for _, name := range s.sortedNamesLocked() {
		p := s.personas[name]
		out = append(out, modelObject{ID: name, Object: "model", Created: p.created, OwnedBy: "masque", Base: p.base.eb.Name})
	}
	return out
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) *apiError {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": s.modelObjects()})
	return nil
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) *apiError {
	id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
	for _, m := range s.modelObjects() {
		if m.ID == id {
			writeJSON(w, http.StatusOK, m)
			return nil
		}
	}
	return modelNotFound(id)
}

func modelNotFound(id string) *apiError {
	return newError(http.StatusNotFound, typeInvalidRequest, "model_not_found", "model", "the model %q does not exist (GET /v1/models lists the personas)", id)
}

// requestContext bounds a request by the server's timeout.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opts.Timeout)
}
