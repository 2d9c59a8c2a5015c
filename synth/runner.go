package synth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/synth/teacher"
)

// Stages of synthesis; each keeps its own files in the output folder.
const (
	// StageProfiles: persona → character profile.
	StageProfiles = "profiles"
	// StageAnswers: instruction × character → in-character answer.
	StageAnswers = "answers"
	// StageScores: question → persona-sensitivity score.
	StageScores = "scores"
	// StagePersona: Persona-Pruner rewrites of the top-scoring questions.
	StagePersona = "persona"
)

// Deliverable files, built from the stage logs when a run (of the whole
// job, not a shard) or a merge finishes.
const (
	FileCharacters   = "synthetic_character.jsonl"
	FileDialogue     = "synthetic_dialogue.jsonl"
	FileDialogueChat = "synthetic_dialogue.chat.jsonl"
	FilePersonaData  = "persona_data.jsonl"
	FileCache        = "cache.jsonl"
)

// StageFile is the path of one of a stage's working files in dir: kind is
// "log" (kept rows, append-only), "rejected" (dropped rows with reasons),
// "failures" (requests that failed, append-only), "manifest",
// "report" (HTML) or "summary" (JSON).
func StageFile(dir, stage, kind string) string {
	ext := ".jsonl"
	switch kind {
	case "manifest", "summary":
		ext = ".json"
	case "report":
		ext = ".html"
	}
	if kind == "log" {
		return filepath.Join(dir, stage+".log"+ext)
	}
	return filepath.Join(dir, stage+"."+kind+ext)
}

// Common holds the settings every teacher-driven stage shares.
type Common struct {
	// Out is the output folder (created if needed).
	Out string
	// Teacher writes the outputs (usually a *teacher.Client).
	Teacher teacher.Teacher
	// TeacherModel is the model name put in every request.
	TeacherModel string
	// Shard is the part of the job this run does (zero: all of it).
	Shard Shard
	// Workers is the number of rows processed at once (default 4, or the
	// Client's concurrency).
	Workers int
	// Seed makes pairing and sampling reproducible.
	Seed uint64
	// MaxTokens, Temperature and TopP are the sampling settings of every
	// request (MaxTokens 0: the stage's default).
	MaxTokens   int
	Temperature float64 // sampling temperature (0: greedy)
	TopP        float64 // nucleus sampling (0: the teacher's default)
	// Quality selects the checks every output must pass.
	Quality QualityOptions
	// FlagOnly keeps outputs that fail a check, marked with "flags",
	// instead of dropping them to the rejected file.
	FlagOnly bool
	// DedupeThreshold is the MinHash similarity at which an answer counts
	// as a near duplicate of an earlier one (0: no deduplication; applied
	// when the deliverables are built).
	DedupeThreshold float64
	// Sync flushes every written row to stable storage (fsync).
	Sync bool
	// Progress, when not nil, is called after every row.
	Progress func(Progress)
	// Logf, when not nil, receives notices (resumption, problems, failures).
	Logf func(format string, args ...any)
}

// UseTeacher makes o the teacher of the run; Workers, when not set,
// becomes o's worth of rows at once, at least 4.
func (c *Common) UseTeacher(o *teacher.Opened) {
	c.Teacher, c.TeacherModel = o.Teacher, o.Model
	if c.Workers == 0 {
		c.Workers = max(o.Workers, 4)
	}
}

func (c *Common) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// settings are the common fingerprinted settings.
func (c *Common) settings() map[string]string {
	q := c.Quality
	return map[string]string{
		"prompts":     PromptVersion,
		"teacher":     c.TeacherModel,
		"seed":        fmt.Sprint(c.Seed),
		"max_tokens":  fmt.Sprint(c.MaxTokens),
		"temperature": fmt.Sprint(c.Temperature),
		"top_p":       fmt.Sprint(c.TopP),
		"quality":     fmt.Sprintf("lang=%s min=%d trunc=%v nochar=%v norefusal=%v", q.Language, q.MinChars, q.AllowTruncated, q.SkipCharacterCheck, q.SkipRefusalCheck),
		"flag_only":   fmt.Sprint(c.FlagOnly),
	}
}

// request builds a request with the common sampling settings and a seed
// derived from the row id and attempt.
func (c *Common) request(msgs []chattemplate.Message, id string, attempt, defMax int) teacher.Request {
	seed := int64(hash64(fmt.Sprintf("%d\x00%s\x00%d", c.Seed, id, attempt)) >> 1)
	mt := c.MaxTokens
	if mt == 0 {
		mt = defMax
	}
	return teacher.Request{Model: c.TeacherModel, Messages: msgs, MaxTokens: mt, Temperature: c.Temperature, TopP: c.TopP, Seed: &seed}
}

// Progress reports how a run is going.
type Progress struct {
	Stage string // the stage running
	// Total is the number of rows this run has to do (not counting rows
	// already done by earlier runs); Done of them are finished.
	Total, Done int
	// Kept, Rejected, Failed and Deferred count this run's rows by outcome.
	Kept, Rejected, Failed, Deferred int
}

// Summary describes a finished (or interrupted) run.
type Summary struct {
	Stage string `json:"stage"` // the stage run
	Shard string `json:"shard"` // "i/n"
	// Total is the number of rows of the job in this shard; Resumed of them
	// were already done when the run started.
	Total   int `json:"total"`
	Resumed int `json:"resumed"` // done before this run
	// Kept, Rejected, Failed and Deferred count this run's rows: kept in
	// the log, dropped by a quality check, failed (to be retried by a
	// rerun), or deferred to a batch.
	Kept     int `json:"kept"`
	Rejected int `json:"rejected"` // dropped by a quality check
	Failed   int `json:"failed"`   // failed requests, retried by a rerun
	Deferred int `json:"deferred"` // waiting for batch results
	// Rejections and Flags count this run's quality reasons (Flags in
	// FlagOnly runs); Failures counts failures by error kind.
	Rejections map[string]int `json:"rejections,omitempty"`
	Flags      map[string]int `json:"flags,omitempty"`    // flagged rows by reason
	Failures   map[string]int `json:"failures,omitempty"` // failed rows by error kind
	// Remaining is the number of rows of the shard still not done.
	Remaining int `json:"remaining"`
	// Complete reports that every row of the shard is done.
	Complete bool `json:"complete"`
	// Interrupted reports that the run was stopped (SIGINT) before the end.
	Interrupted bool `json:"interrupted"`
	// Problems are input lines that could not be used.
	Problems []Problem `json:"problems,omitempty"`
	// Teacher holds the client's counters when the teacher is a Client.
	Teacher *teacher.Stats `json:"teacher,omitempty"`
	// Final describes the deliverables, when they were built.
	Final *FinalStats `json:"final,omitempty"`
	// Elapsed is the run's wall time.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Manifest records a stage's settings and progress in its output folder.
type Manifest struct {
	Stage string `json:"stage"` // the stage
	// Settings are the settings that shape the rows; Fingerprint hashes
	// them. A folder is only ever continued with the same fingerprint.
	Settings    map[string]string `json:"settings"`
	Fingerprint string            `json:"fingerprint"` // hash of Settings
	// Extra holds settings that do not shape the rows (e.g. the
	// deduplication threshold, applied when deliverables are built).
	Extra map[string]string `json:"extra,omitempty"`
	// Shard is "i/n".
	Shard string `json:"shard"`
	// Total is the number of rows of the job in this shard; Done of them are
	// in the log or the rejected file.
	Total    int       `json:"total"`
	Done     int       `json:"done"`     // rows logged or rejected
	Complete bool      `json:"complete"` // Done == Total
	Updated  time.Time `json:"updated"`  // when it was written
}

func fingerprint(settings map[string]string) string {
	keys := slices.Sorted(maps.Keys(settings))
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s=%d:%s;", len(k), k, len(settings[k]), settings[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// ReadManifest reads a stage's manifest from dir.
func ReadManifest(dir, stage string) (*Manifest, error) {
	data, err := os.ReadFile(StageFile(dir, stage, "manifest"))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", StageFile(dir, stage, "manifest"), err)
	}
	return &m, nil
}

func writeJSONFile(path string, v any) error {
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(data, '\n'))
		return err
	})
}

// checkManifest refuses to continue a folder made with other settings or
// for another shard.
func checkManifest(dir, stage string, m *Manifest) error {
	old, err := ReadManifest(dir, stage)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if old.Shard != m.Shard {
		return fmt.Errorf("%s holds shard %s of this stage, not %s: use another --out", dir, old.Shard, m.Shard)
	}
	if old.Fingerprint != m.Fingerprint {
		var diff []string
		for _, k := range slices.Sorted(maps.Keys(m.Settings)) {
			if old.Settings[k] != m.Settings[k] {
				diff = append(diff, fmt.Sprintf("%s: %q then, %q now", k, old.Settings[k], m.Settings[k]))
			}
		}
		return fmt.Errorf("%s holds a %s run made with other settings (%s): use another --out to start a new run", dir, stage, strings.Join(diff, "; "))
	}
	return nil
}

// rejectedRow is a line of a stage's rejected file.
type rejectedRow struct {
	ID      string          `json:"id"`
	Reasons []string        `json:"reasons"`
	Row     json.RawMessage `json:"row"`
}

// failureRow is a line of a stage's failures file.
type failureRow struct {
	ID    string    `json:"id"`
	Kind  string    `json:"kind"`
	Error string    `json:"error"`
	Time  time.Time `json:"time"`
}

// flaggable rows carry quality flags.
type flaggable interface{ setFlags([]string) }

// outcome is what processing one row produced: a row for the log and the
// quality reasons it fails.
type outcome struct {
	row     any
	reasons []string
}

// runner drives one stage over its rows.
type runner struct {
	c        *Common
	stage    string
	log, rej *Log
	failures *os.File
	man      Manifest
	ids      []string // the shard's rows, in job order

	mu   sync.Mutex
	sum  Summary
	prog Progress
}

// openRunner prepares the output folder of a stage: checks its manifest,
// opens its logs (removing a torn last line) and works out what is left.
func openRunner(c *Common, stage string, settings map[string]string, ids []string) (*runner, error) {
	if c.Out == "" {
		return nil, errors.New("no output folder")
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, err
	}
	r := &runner{c: c, stage: stage}
	extra := map[string]string{"dedupe": fmt.Sprint(c.DedupeThreshold)}
	r.man = Manifest{Stage: stage, Settings: settings, Fingerprint: fingerprint(settings), Extra: extra, Shard: c.Shard.String()}
	if err := checkManifest(c.Out, stage, &r.man); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if c.Shard.Has(id) && !seen[id] {
			seen[id] = true
			r.ids = append(r.ids, id)
		}
	}
	var err error
	if r.log, err = OpenLog(StageFile(c.Out, stage, "log")); err != nil {
		return nil, err
	}
	if r.rej, err = OpenLog(StageFile(c.Out, stage, "rejected")); err != nil {
		r.log.Close()
		return nil, err
	}
	r.log.Sync, r.rej.Sync = c.Sync, c.Sync
	for _, p := range append(slices.Clone(r.log.Problems), r.rej.Problems...) {
		c.logf("resuming: %v", p)
	}
	if r.failures, err = os.OpenFile(StageFile(c.Out, stage, "failures"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
		r.close()
		return nil, err
	}
	r.man.Total = len(r.ids)
	r.sum = Summary{Stage: stage, Shard: r.man.Shard, Total: len(r.ids), Rejections: map[string]int{}, Flags: map[string]int{}, Failures: map[string]int{}}
	for _, id := range r.ids {
		if r.done(id) {
			r.sum.Resumed++
		}
	}
	r.man.Done = r.sum.Resumed
	r.man.Complete = r.man.Done == r.man.Total
	r.man.Updated = time.Now().UTC()
	if err := writeJSONFile(StageFile(c.Out, stage, "manifest"), r.man); err != nil {
		r.close()
		return nil, err
	}
	if r.sum.Resumed > 0 {
		c.logf("%s: resuming: %d of %d rows already done", stage, r.sum.Resumed, len(r.ids))
	}
	return r, nil
}

func (r *runner) done(id string) bool { return r.log.Has(id) || r.rej.Has(id) }

func (r *runner) close() {
	r.log.Close()
	r.rej.Close()
	if r.failures != nil {
		r.failures.Close()
	}
}

// todo lists the rows not done yet.
func (r *runner) todo() []string {
	var out []string
	for _, id := range r.ids {
		if !r.done(id) {
			out = append(out, id)
		}
	}
	return out
}

// run processes every row not done yet with at most c.Workers at a time.
// process returns the outcome of one row, or an error. A cancelled ctx
// stops the run cleanly (rows written so far stay); a fatal teacher error
// stops it with that error.
func (r *runner) run(ctx context.Context, process func(ctx context.Context, id string) (outcome, error)) error {
	start := time.Now()
	todo := r.todo()
	workers := r.c.Workers
	if workers <= 0 {
		workers = 4
		if cl, ok := r.c.Teacher.(*teacher.Client); ok {
			workers = cl.Concurrency()
		}
	}
	r.prog = Progress{Stage: r.stage, Total: len(todo)}
	r.report()
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan string)
	var wg sync.WaitGroup
	var fatalOnce sync.Once
	for range min(workers, max(len(todo), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				out, err := process(rctx, id)
				if rctx.Err() != nil && err != nil {
					continue // interrupted: the row stays to do
				}
				if err := r.record(id, out, err); err != nil {
					fatalOnce.Do(func() { cancel(err) })
				}
			}
		}()
	}
feed:
	for _, id := range todo {
		select {
		case jobs <- id:
		case <-rctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	r.sum.Elapsed = time.Since(start)
	if cl, ok := r.c.Teacher.(*teacher.Client); ok {
		st := cl.Stats()
		r.sum.Teacher = &st
	}
	left := len(r.todo())
	r.sum.Remaining = left
	r.sum.Complete = left == 0
	r.man.Done = len(r.ids) - left
	r.man.Complete = left == 0
	r.man.Updated = time.Now().UTC()
	werr := writeJSONFile(StageFile(r.c.Out, r.stage, "manifest"), r.man)
	if cause := context.Cause(rctx); cause != nil && ctx.Err() == nil {
		return cause // fatal
	}
	r.sum.Interrupted = ctx.Err() != nil
	return werr
}

// record writes one row's outcome. It returns an error only when the run
// must stop (a fatal teacher error or a failed write).
func (r *runner) record(id string, out outcome, err error) error {
	if err != nil {
		var te *openaiclient.Error
		if errors.As(err, &te) && te.Fatal() {
			return err
		}
		if teacher.IsDeferred(err) {
			r.mu.Lock()
			r.sum.Deferred++
			r.prog.Deferred++
			r.prog.Done++
			r.mu.Unlock()
			r.report()
			return nil
		}
		kind := openaiclient.ErrorKind(err)
		if kind == openaiclient.KindContextLength {
			// Deterministic for this row: retrying cannot help.
			r.mu.Lock()
			r.sum.Rejected++
			r.sum.Rejections[ReasonTooLong]++
			r.prog.Rejected++
			r.prog.Done++
			r.mu.Unlock()
			raw, _ := json.Marshal(map[string]string{"id": id, "error": err.Error()})
			werr := r.rej.Append(id, rejectedRow{ID: id, Reasons: []string{ReasonTooLong}, Row: raw})
			r.report()
			return werr
		}
		data, _ := marshalLine(failureRow{ID: id, Kind: kind, Error: err.Error(), Time: time.Now().UTC()})
		r.mu.Lock()
		_, werr := r.failures.Write(data)
		r.sum.Failed++
		r.sum.Failures[kind]++
		r.prog.Failed++
		r.prog.Done++
		r.mu.Unlock()
		r.c.logf("%s: row %s failed: %v", r.stage, id, err)
		r.report()
		return werr
	}
	reasons := slices.Compact(slices.Sorted(slices.Values(out.reasons)))
	var werr error
	r.mu.Lock()
	switch {
	case len(reasons) == 0:
		r.sum.Kept++
		r.prog.Kept++
	case r.c.FlagOnly:
		if f, ok := out.row.(flaggable); ok {
			f.setFlags(reasons)
		}
		r.sum.Kept++
		r.prog.Kept++
		for _, x := range reasons {
			r.sum.Flags[x]++
		}
	default:
		r.sum.Rejected++
		r.prog.Rejected++
		for _, x := range reasons {
			r.sum.Rejections[x]++
		}
	}
	r.prog.Done++
	r.mu.Unlock()
	if len(reasons) == 0 || r.c.FlagOnly {
		werr = r.log.Append(id, out.row)
	} else {
		raw, err := json.Marshal(out.row)
		if err != nil {
			return err
		}
		werr = r.rej.Append(id, rejectedRow{ID: id, Reasons: reasons, Row: raw})
	}
	r.report()
	return werr
}

func (r *runner) report() {
	if r.c.Progress == nil {
		return
	}
	r.mu.Lock()
	p := r.prog
	r.mu.Unlock()
	r.c.Progress(p)
}

// finish closes the logs, builds the deliverables when the run covers the
// whole job, and writes the summary.
func (r *runner) finish(problems []Problem) (*Summary, error) {
	r.close()
	r.sum.Problems = problems
	if r.c.Shard.Whole() {
		fs, err := Finalize(r.c.Out, r.stage, FinalizeOptions{DedupeThreshold: r.c.DedupeThreshold, FlagOnly: r.c.FlagOnly})
		if err != nil {
			return &r.sum, err
		}
		r.sum.Final = fs
	}
	if err := writeJSONFile(StageFile(r.c.Out, r.stage, "summary"), r.sum); err != nil {
		return &r.sum, err
	}
	return &r.sum, nil
}

// sortedCounts lists a count map as "key N" pairs, largest first.
func sortedCounts(m map[string]int) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return out
}

// Format renders the summary as the end-of-run text the CLI prints.
func (s *Summary) Format() string {
	var b strings.Builder
	state := "complete"
	switch {
	case s.Interrupted:
		state = "interrupted (rerun the same command to continue)"
	case !s.Complete && s.Deferred > 0 && s.Failed == 0:
		state = fmt.Sprintf("%d rows wait for batch results", s.Remaining)
	case !s.Complete:
		state = fmt.Sprintf("incomplete: %d rows left (rerun to retry them)", s.Remaining)
	}
	fmt.Fprintf(&b, "%s, shard %s: %s in %v\n", s.Stage, s.Shard, state, s.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "  rows in job %d, done before %d, this run: kept %d, rejected %d, failed %d", s.Total, s.Resumed, s.Kept, s.Rejected, s.Failed)
	if s.Deferred > 0 {
		fmt.Fprintf(&b, ", deferred to batch %d", s.Deferred)
	}
	b.WriteString("\n")
	if len(s.Rejections) > 0 {
		fmt.Fprintf(&b, "  rejected by reason: %s\n", strings.Join(sortedCounts(s.Rejections), ", "))
	}
	if len(s.Flags) > 0 {
		fmt.Fprintf(&b, "  flagged by reason: %s\n", strings.Join(sortedCounts(s.Flags), ", "))
	}
	if len(s.Failures) > 0 {
		fmt.Fprintf(&b, "  failed by kind: %s\n", strings.Join(sortedCounts(s.Failures), ", "))
	}
	if t := s.Teacher; t != nil {
		fmt.Fprintf(&b, "  teacher: %d requests (%d retries), %d cache hits, %d prompt + %d completion tokens\n",
			t.Requests, t.Retries, t.CacheHits, t.PromptTokens, t.CompletionTokens)
	}
	if n := len(s.Problems); n > 0 {
		fmt.Fprintf(&b, "  %d input problems, e.g. %v\n", n, s.Problems[0])
	}
	if f := s.Final; f != nil {
		fmt.Fprintf(&b, "  output: %d rows", f.Rows)
		if f.NearDuplicates > 0 {
			fmt.Fprintf(&b, " (%d near duplicates %s)", f.NearDuplicates, map[bool]string{true: "flagged", false: "dropped"}[f.FlagOnly])
		}
		fmt.Fprintf(&b, " in %s\n", strings.Join(f.Files, ", "))
	} else if s.Shard != "0/1" {
		b.WriteString("  shard done: join the shards with `masque synth merge` to build the output files\n")
	}
	return b.String()
}
