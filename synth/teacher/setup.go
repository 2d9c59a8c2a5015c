package teacher

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/atomicfile"
)

// Mode says how a synth run gets its completions.
type Mode int

// The modes.
const (
	Live   Mode = iota // ask the teacher (an endpoint or masque's own engine)
	Export             // record the requests as an OpenAI Batch input file
	Import             // answer from imported OpenAI Batch results only
)

// SetupError is a setting that cannot work (a missing model name, no
// teacher at all): the caller's input is wrong, not the world.
type SetupError struct{ Msg string }

func (e *SetupError) Error() string { return e.Msg }

func setupErr(format string, a ...any) error { return &SetupError{fmt.Sprintf(format, a...)} }

// Setup selects and tunes a teacher, as masque synth's flags do.
type Setup struct {
	Mode Mode
	// URL, Model and Key name an OpenAI-compatible endpoint (each falls
	// back on its environment variable, read with Getenv; nil: os.Getenv).
	URL, Model, Key string
	Getenv          func(string) string
	// Engine runs masque's own engine in-process instead: a model path, or
	// "builtin" (the default model); EngineTokenizer for llama2.c files;
	// Truncate cuts over-long prompts from the left.
	Engine, EngineTokenizer string
	Truncate                bool

	Stream bool // stream completions (an endpoint)
	// Concurrency is the number of requests in flight (≤ 0 with an
	// Engine: 1); Attempts the tries per request (≥ 1).
	Concurrency int
	Attempts    int
	RPS, TPM    float64       // rate limits (0: none)
	Timeout     time.Duration // of one request (≤ 0: none)
	Stall       time.Duration // a stream silent this long fails

	// Cache is the response cache file ("": Out/cache.jsonl); NoCache
	// turns it off in Live mode.
	Cache   string
	NoCache bool
	Out     string

	BatchFile string   // Export: the OpenAI Batch input file to write
	Results   []string // Import: OpenAI Batch results (or errors) files

	// Logf receives notices (unreadable cache lines, import counts).
	Logf func(format string, a ...any)
}

// Opened is a teacher ready for a run, with what must be done when it ends.
type Opened struct {
	Teacher Teacher
	Model   string // the teacher's model name (recorded with every row)
	Workers int    // rows worth processing at once

	cache *Cache
	ck    *checkpoint.Checkpoint
	batch *atomicfile.File
	rec   *Recorder
}

// Close releases the cache and the engine's model, and drops an
// uncommitted batch file.
func (o *Opened) Close() {
	if o.cache != nil {
		o.cache.Close()
	}
	if o.ck != nil {
		o.ck.Close()
	}
	if o.batch != nil {
		o.batch.Abort()
	}
}

// FinishBatch commits the batch file of an Export run and returns the number
// of requests in it and its path (0, "" in other modes).
func (o *Opened) FinishBatch() (int, string, error) {
	if o.batch == nil {
		return 0, "", nil
	}
	n, name := o.rec.Recorded(), o.batch.Name()
	err := o.batch.Commit()
	o.batch = nil
	return n, name, err
}

// Open opens the teacher s selects.
func Open(s Setup) (*Opened, error) {
	if s.Getenv == nil {
		s.Getenv = os.Getenv
	}
	if s.Logf == nil {
		s.Logf = func(string, ...any) {}
	}
	o := &Opened{}
	ok := false
	defer func() {
		if !ok {
			o.Close()
		}
	}()
	if !s.NoCache || s.Mode != Live {
		if err := o.openCache(&s); err != nil {
			return nil, err
		}
	}
	var err error
	if s.Mode == Live {
		err = o.live(&s)
	} else {
		err = o.batchMode(&s)
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return o, nil
}

func (o *Opened) openCache(s *Setup) error {
	path := s.Cache
	if path == "" {
		path = filepath.Join(s.Out, "cache.jsonl")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	c, err := OpenCache(path)
	if err != nil {
		return err
	}
	if c.Skipped > 0 {
		s.Logf("cache %s: %d unreadable lines skipped", path, c.Skipped)
	}
	o.cache = c
	return nil
}

// batchMode opens an Export or Import run.
func (o *Opened) batchMode(s *Setup) error {
	oa := ResolveOpenAI(s.URL, s.Model, s.Key, s.Getenv)
	if oa.Model == "" {
		return setupErr("--teacher-model (or %s) is required: it goes into every batch request", EnvModel)
	}
	o.Model = oa.Model
	if s.Mode == Export {
		if s.BatchFile == "" {
			return setupErr("--file is required")
		}
		bf, err := atomicfile.Create(s.BatchFile)
		if err != nil {
			return err
		}
		o.batch = bf
		o.rec = NewRecorder(bf, o.cache)
		o.Teacher = o.rec
		return nil
	}
	if len(s.Results) == 0 {
		return setupErr("--results is required")
	}
	failed := map[string]string{}
	for _, path := range s.Results {
		rf, err := os.Open(path)
		if err != nil {
			return err
		}
		is, err := ImportBatchResults(rf, path, o.cache)
		rf.Close()
		if err != nil {
			return err
		}
		for k, v := range is.Failed {
			failed[k] = v
		}
		for _, p := range is.Problems {
			s.Logf("%v", p)
		}
		s.Logf("%s: %d responses imported, %d already cached, %d failed requests, %d unreadable lines",
			path, is.Imported, is.AlreadyCached, len(is.Failed), len(is.Problems))
	}
	o.Teacher = &CacheOnly{Cache: o.cache, Failed: failed}
	return nil
}

// live opens the engine or the endpoint behind a retrying, rate-limited,
// caching client.
func (o *Opened) live(s *Setup) error {
	oa := ResolveOpenAI(s.URL, s.Model, s.Key, s.Getenv)
	var backend Teacher
	conc := s.Concurrency
	switch {
	case s.Engine != "":
		path := s.Engine
		if path == "builtin" {
			path = ""
		}
		ck, err := checkpoint.Open(path, checkpoint.Options{Tokenizer: s.EngineTokenizer})
		if err != nil {
			return err
		}
		o.ck = ck
		eng := NewEngine(ck)
		eng.TruncateLeft = s.Truncate
		backend, o.Model = eng, ck.Path
		if conc <= 0 {
			conc = 1
		}
	case oa.BaseURL != "":
		if oa.Model == "" {
			return setupErr("--teacher-model (or %s) is required with --teacher-url", EnvModel)
		}
		oa.Stream = s.Stream
		oa.StallTimeout = s.Stall
		oa.HTTPClient = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: max(conc, 2)}}
		backend, o.Model = oa, oa.Model
	default:
		return setupErr("no teacher: give --teacher-url and --teacher-model (or set %s and %s), or --teacher-engine PATH|builtin", EnvURL, EnvModel)
	}
	if s.Attempts < 1 {
		return setupErr("--attempts must be at least 1")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = -1
	}
	o.Teacher = NewClient(backend, Options{
		Concurrency: conc, MaxAttempts: s.Attempts, Timeout: timeout,
		RequestsPerSecond: s.RPS, TokensPerMinute: s.TPM, Cache: o.cache,
	})
	o.Workers = conc
	return nil
}
