package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/synth"
	"github.com/masque-ai/masque/synth/teacher"
)

// synthMode says how a synth stage command gets its completions.
type synthMode int

const (
	synthLive   synthMode = iota // ask the teacher
	synthExport                  // write an OpenAI Batch input file
	synthImport                  // read OpenAI Batch results
)

func (e *env) synthCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "synth",
		Short: "Synthesize persona role-play training data at scale",
		Long: `Synthesize role-play training data with a teacher model: masque's own engine
(--teacher-engine PATH|builtin) or any OpenAI-compatible endpoint (--teacher-url,
--teacher-model, --teacher-key, or MASQUE_TEACHER_URL, MASQUE_TEACHER_MODEL,
MASQUE_TEACHER_KEY / OPENAI_API_KEY).

  profiles      personas → character profiles      (synthetic_character.jsonl)
  answers       instructions × characters → answers (synthetic_dialogue.jsonl
                and synthetic_dialogue.chat.jsonl, ready for masque finetune)
  persona-data  Persona-Pruner data for one persona (persona_data.jsonl)
  merge         join and verify the shards of a sharded job
  batch         export requests to / import results from the OpenAI Batch API

Every job is resumable: rows are appended to <stage>.log.jsonl in --out one by
one, each under a stable id (a hash of its inputs); rerunning the same command
after a crash, kill -9 or Ctrl-C continues where it stopped, with no duplicate
or lost rows. Responses are cached in --out/cache.jsonl, so a rerun never pays
twice. --shard i/n does a deterministic part of the job; "masque synth merge"
joins the parts. Outputs that break character, refuse, are empty or truncated,
or are in the wrong language go to <stage>.rejected.jsonl with their reasons
(or stay, flagged, with --on-reject flag); near-duplicate answers are removed
when the output files are built. <stage>.report.html summarises each run.`,
	}
	c.AddCommand(
		e.synthProfilesCmd(synthLive), e.synthAnswersCmd(synthLive), e.synthPersonaCmd(synthLive),
		e.synthMergeCmd(), e.synthBatchCmd(),
	)
	return c
}

// synthCommon are the flags every stage shares.
type synthCommon struct {
	out            string
	shard          string
	seed           uint64
	maxTokens      int
	temperature    float64
	topP           float64
	lang           string
	minChars       int
	allowTruncated bool
	noCharCheck    bool
	noRefusalCheck bool
	onReject       string
	dedupe         float64
	workers        int
	fsync          bool
	quiet          bool
	asJSON         bool
}

func (f *synthCommon) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVarP(&f.out, "out", "o", "", "output folder (required); rerun with the same folder to resume")
	fl.StringVar(&f.shard, "shard", "", "do only shard i of n (i/n, e.g. 0/4), chosen by a hash of each row id")
	fl.Uint64Var(&f.seed, "seed", 1, "seed for character pairing and sampling")
	fl.IntVar(&f.maxTokens, "max-tokens", 0, "completion budget per request (0: the stage's default: 768 for profiles, 1024 otherwise)")
	fl.Float64Var(&f.temperature, "temperature", 0.7, "sampling temperature (0: greedy)")
	fl.Float64Var(&f.topP, "top-p", 0, "nucleus sampling (0: the teacher's default)")
	fl.StringVar(&f.lang, "lang", "en", `expected output language, checked by a script and stopword detector ("any": no check)`)
	fl.IntVar(&f.minChars, "min-chars", 1, "shortest acceptable output, in characters")
	fl.BoolVar(&f.allowTruncated, "allow-truncated", false, `keep outputs cut off at the token limit (finish_reason "length")`)
	fl.BoolVar(&f.noCharCheck, "no-character-check", false, "do not reject outputs that say they are an AI or a language model")
	fl.BoolVar(&f.noRefusalCheck, "no-refusal-check", false, "do not reject refusals")
	fl.StringVar(&f.onReject, "on-reject", "drop", "outputs failing a check: drop (to <stage>.rejected.jsonl) or flag (keep, with \"flags\")")
	fl.Float64Var(&f.dedupe, "dedupe", 0.85, "MinHash similarity at which an answer is a near duplicate of another (0: off)")
	fl.IntVar(&f.workers, "workers", 0, "rows processed at once (0: the teacher's --concurrency)")
	fl.BoolVar(&f.fsync, "fsync", false, "fsync every row (survives power loss, not only crashes; slower)")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	fl.BoolVar(&f.asJSON, "json", false, "print the end-of-run summary as JSON")
}

func (f *synthCommon) common() (synth.Common, error) {
	if f.out == "" {
		return synth.Common{}, usagef("--out is required")
	}
	sh, err := synth.ParseShard(f.shard)
	if err != nil {
		return synth.Common{}, usagef("--shard: %v", err)
	}
	if f.onReject != "drop" && f.onReject != "flag" {
		return synth.Common{}, usagef("--on-reject must be drop or flag")
	}
	if f.dedupe < 0 || f.dedupe > 1 {
		return synth.Common{}, usagef("--dedupe must be in [0,1]")
	}
	return synth.Common{
		Out: f.out, Shard: sh, Workers: f.workers, Seed: f.seed, MaxTokens: f.maxTokens,
		Temperature: f.temperature, TopP: f.topP, FlagOnly: f.onReject == "flag", DedupeThreshold: f.dedupe, Sync: f.fsync,
		Quality: synth.QualityOptions{Language: f.lang, MinChars: f.minChars, AllowTruncated: f.allowTruncated,
			SkipCharacterCheck: f.noCharCheck, SkipRefusalCheck: f.noRefusalCheck},
	}, nil
}

// synthTeacherFlags choose and tune the teacher.
type synthTeacherFlags struct {
	url, model, key string
	engine          string
	engineTok       string
	truncate        bool
	stream          bool
	concurrency     int
	attempts        int
	rps, tpm        float64
	timeout         time.Duration
	stall           time.Duration
	cache           string
	noCache         bool
	// batch modes
	batchFile string
	results   []string
}

func (f *synthTeacherFlags) register(c *cobra.Command, mode synthMode) {
	fl := c.Flags()
	fl.StringVar(&f.url, "teacher-url", "", "OpenAI-compatible API root, e.g. https://api.openai.com/v1 (env "+teacher.EnvURL+")")
	fl.StringVar(&f.model, "teacher-model", "", "teacher model name (env "+teacher.EnvModel+")")
	fl.StringVar(&f.key, "teacher-key", "", "API key (env "+teacher.EnvKey+" or "+teacher.EnvOpenAIKey+")")
	fl.StringVar(&f.cache, "cache", "", "response cache file (default: <out>/cache.jsonl); share it between runs to never pay twice")
	if mode == synthLive {
		fl.StringVar(&f.engine, "teacher-engine", "", `use masque's own engine in-process as the teacher: a model path, or "builtin"`)
		fl.StringVar(&f.engineTok, "teacher-tokenizer", "", "tokenizer for a llama2.c --teacher-engine checkpoint")
		fl.BoolVar(&f.truncate, "teacher-truncate", false, "with --teacher-engine, cut over-long prompts from the left instead of rejecting the row (for tiny demo models)")
		fl.BoolVar(&f.stream, "stream", true, "stream completions (server-sent events); a cut-off stream is retried")
		fl.IntVar(&f.concurrency, "concurrency", 4, "teacher requests in flight at once (with --teacher-engine the default is 1)")
		fl.IntVar(&f.attempts, "attempts", 6, "tries per request (retries on 429, 5xx, timeouts and cut-off streams, with exponential backoff and jitter; Retry-After is honoured)")
		fl.Float64Var(&f.rps, "rps", 0, "rate limit in requests per second (0: none)")
		fl.Float64Var(&f.tpm, "tpm", 0, "rate limit in tokens per minute, estimated before and corrected after each request (0: none)")
		fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "time limit of one request")
		fl.DurationVar(&f.stall, "stall-timeout", time.Minute, "fail (and retry) a stream that sends nothing for this long")
		fl.BoolVar(&f.noCache, "no-cache", false, "do not cache responses")
	}
	if mode == synthExport {
		fl.StringVar(&f.batchFile, "file", "", "the OpenAI Batch input file to write (required)")
	}
	if mode == synthImport {
		fl.StringArrayVar(&f.results, "results", nil, "OpenAI Batch results (or errors) file (required, repeatable)")
	}
}

// synthTeacher is an opened teacher and what must be done when the run ends.
type synthTeacher struct {
	t       teacher.Teacher
	model   string
	cache   *teacher.Cache
	ck      *checkpoint.Checkpoint
	batch   *atomicfile.File
	rec     *teacher.Recorder
	workers int
}

func (t *synthTeacher) close() {
	if t.cache != nil {
		t.cache.Close()
	}
	if t.ck != nil {
		t.ck.Close()
	}
	if t.batch != nil {
		t.batch.Abort()
	}
}

func (f *synthTeacherFlags) open(cmd *cobra.Command, e *env, mode synthMode, out string) (*synthTeacher, error) {
	st := &synthTeacher{}
	ok := false
	defer func() {
		if !ok {
			st.close()
		}
	}()
	cachePath := f.cache
	if cachePath == "" {
		cachePath = filepath.Join(out, synth.FileCache)
	}
	if !f.noCache || mode != synthLive {
		if err := os.MkdirAll(filepath.Dir(cachePath), 0o755); err != nil {
			return nil, err
		}
		c, err := teacher.OpenCache(cachePath)
		if err != nil {
			return nil, err
		}
		if c.Skipped > 0 {
			fmt.Fprintf(e.stderr, "cache %s: %d unreadable lines skipped\n", cachePath, c.Skipped)
		}
		st.cache = c
	}
	oa := teacher.ResolveOpenAI(f.url, f.model, f.key, os.Getenv)
	switch mode {
	case synthExport, synthImport:
		if oa.Model == "" {
			return nil, usagef("--teacher-model (or %s) is required: it goes into every batch request", teacher.EnvModel)
		}
		st.model = oa.Model
		if mode == synthExport {
			if f.batchFile == "" {
				return nil, usagef("--file is required")
			}
			bf, err := atomicfile.Create(f.batchFile)
			if err != nil {
				return nil, err
			}
			st.batch = bf
			st.rec = teacher.NewRecorder(bf, st.cache)
			st.t = st.rec
		} else {
			if len(f.results) == 0 {
				return nil, usagef("--results is required")
			}
			failed := map[string]string{}
			for _, path := range f.results {
				rf, err := os.Open(path)
				if err != nil {
					return nil, err
				}
				is, err := teacher.ImportBatchResults(rf, path, st.cache)
				rf.Close()
				if err != nil {
					return nil, err
				}
				for k, v := range is.Failed {
					failed[k] = v
				}
				for _, p := range is.Problems {
					fmt.Fprintln(e.stderr, p)
				}
				fmt.Fprintf(e.stderr, "%s: %d responses imported, %d already cached, %d failed requests, %d unreadable lines\n",
					path, is.Imported, is.AlreadyCached, len(is.Failed), len(is.Problems))
			}
			st.t = &teacher.CacheOnly{Cache: st.cache, Failed: failed}
		}
		ok = true
		return st, nil
	}
	var backend teacher.Teacher
	conc := f.concurrency
	switch {
	case f.engine != "":
		path := f.engine
		if path == "builtin" {
			path = ""
		}
		ck, err := checkpoint.Open(path, checkpoint.Options{Tokenizer: f.engineTok})
		if err != nil {
			return nil, err
		}
		st.ck = ck
		eng := teacher.NewEngine(ck)
		eng.TruncateLeft = f.truncate
		backend, st.model = eng, ck.Path
		if !cmd.Flags().Changed("concurrency") {
			conc = 1
		}
	case oa.BaseURL != "":
		if oa.Model == "" {
			return nil, usagef("--teacher-model (or %s) is required with --teacher-url", teacher.EnvModel)
		}
		oa.Stream = f.stream
		oa.StallTimeout = f.stall
		oa.HTTPClient = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: max(conc, 2)}}
		backend, st.model = oa, oa.Model
	default:
		return nil, usagef("no teacher: give --teacher-url and --teacher-model (or set %s and %s), or --teacher-engine PATH|builtin", teacher.EnvURL, teacher.EnvModel)
	}
	if f.attempts < 1 {
		return nil, usagef("--attempts must be at least 1")
	}
	timeout := f.timeout
	if timeout <= 0 {
		timeout = -1
	}
	st.t = teacher.NewClient(backend, teacher.Options{
		Concurrency: conc, MaxAttempts: f.attempts, Timeout: timeout,
		RequestsPerSecond: f.rps, TokensPerMinute: f.tpm, Cache: st.cache,
	})
	st.workers = conc
	ok = true
	return st, nil
}

// finishBatch commits the batch file of an export run.
func (t *synthTeacher) finishBatch(e *env) error {
	if t.batch == nil {
		return nil
	}
	n := t.rec.Recorded()
	name := t.batch.Name()
	if err := t.batch.Commit(); err != nil {
		return err
	}
	t.batch = nil
	fmt.Fprintf(e.stderr, "wrote %d requests to %s (custom_id = request key); after the batch completes, run the same command as \"masque synth batch import ... --results FILE\"\n", n, name)
	return nil
}

// synthUI draws a progress bar and prints notices above it.
type synthUI struct {
	e     *env
	quiet bool
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	stage string
}

func (u *synthUI) progress(p synth.Progress) {
	if u.quiet {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar == nil || u.stage != p.Stage {
		if u.bar != nil {
			u.bar.Finish()
		}
		u.stage = p.Stage
		u.bar = progressbar.NewOptions(p.Total,
			progressbar.OptionSetWriter(u.e.stderr),
			progressbar.OptionSetDescription(p.Stage),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(u.e.stderr) }))
	}
	u.bar.Describe(fmt.Sprintf("%s: kept %d, rejected %d, failed %d", p.Stage, p.Kept, p.Rejected, p.Failed))
	u.bar.Set(p.Done)
}

func (u *synthUI) logf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar != nil {
		u.bar.Clear()
	}
	fmt.Fprintf(u.e.stderr, format+"\n", args...)
}

func (u *synthUI) done() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar != nil && !u.bar.IsFinished() {
		u.bar.Exit()
		fmt.Fprintln(u.e.stderr)
	}
	u.bar = nil
}

// synthProblems prints input problems (the first 20).
func (e *env) synthProblems(probs []synth.Problem) {
	for i, p := range probs {
		if i == 20 {
			fmt.Fprintf(e.stderr, "... and %d more input problems (all are in the run's summary JSON)\n", len(probs)-20)
			break
		}
		fmt.Fprintln(e.stderr, p.Error())
	}
}

// synthReport prints a summary and turns an interruption into an error.
func (e *env) synthReport(f *synthCommon, sum *synth.Summary, err error) error {
	if sum != nil {
		if f.asJSON {
			writeJSON(e.stdout, sum)
		} else {
			fmt.Fprint(e.stdout, sum.Format())
		}
		if err == nil && sum.Interrupted {
			return errors.New("interrupted; the rows written so far are kept: rerun the same command to continue")
		}
	}
	return err
}

func synthArg(s string) (string, error) {
	if strings.HasPrefix(s, "@") {
		b, err := os.ReadFile(s[1:])
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	return s, nil
}

func synthUse(mode synthMode, stage string) string {
	switch mode {
	case synthExport:
		return stage + " --file batch.jsonl --teacher-model NAME --out DIR [flags]"
	case synthImport:
		return stage + " --results results.jsonl --teacher-model NAME --out DIR [flags]"
	}
	return stage
}

func (e *env) synthProfilesCmd(mode synthMode) *cobra.Command {
	var cf synthCommon
	var tf synthTeacherFlags
	var personas []string
	var format string
	var retries int
	c := &cobra.Command{
		Use:   synthUse(mode, "profiles") + " --personas FILE --out DIR",
		Short: "Expand personas into character profiles (synthetic_character.jsonl)",
		Long: `Expand each persona into a character profile (name, age, gender, race,
birthplace, appearance, general experience, personality; first line "Name: ...").
A malformed profile is asked for again with a new seed (--profile-retries),
then dropped or flagged as malformed_profile.

Personas: Persona Hub JSONL ({"persona": ...}), plain text (one per line), or
SillyTavern character cards V2 (.json, or .png with a "chara" tEXt chunk).
Output: <out>/synthetic_character.jsonl {"character_id","persona","character"}.`,
		Example: `  masque synth profiles --personas persona.jsonl --out run1 --teacher-url https://api.openai.com/v1 --teacher-model gpt-4o-mini
  masque synth profiles --personas personas.txt --out run1 --teacher-engine ./Qwen2.5-7B-Instruct`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			com, err := cf.common()
			if err != nil {
				return err
			}
			if len(personas) == 0 {
				return usagef("--personas is required")
			}
			var all []synth.Persona
			var probs []synth.Problem
			for _, p := range personas {
				ps, pr, err := synth.ReadPersonas(p, format)
				if err != nil {
					return err
				}
				all, probs = append(all, ps...), append(probs, pr...)
			}
			e.synthProblems(probs)
			if len(all) == 0 {
				return fmt.Errorf("no usable personas in %s", strings.Join(personas, ", "))
			}
			t, err := tf.open(cmd, e, mode, cf.out)
			if err != nil {
				return err
			}
			defer t.close()
			ui := &synthUI{e: e, quiet: cf.quiet}
			com.Teacher, com.TeacherModel, com.Progress, com.Logf = t.t, t.model, ui.progress, ui.logf
			if com.Workers == 0 {
				com.Workers = max(t.workers, 4)
			}
			sum, err := synth.RunProfiles(cmd.Context(), synth.ProfilesConfig{Common: com, Personas: all, Retries: retries, Problems: probs})
			ui.done()
			if err == nil {
				err = t.finishBatch(e)
			}
			return e.synthReport(&cf, sum, err)
		},
	}
	cf.register(c)
	tf.register(c, mode)
	c.Flags().StringArrayVar(&personas, "personas", nil, "persona file (repeatable): .jsonl, .txt, or a character card .json/.png")
	c.Flags().StringVar(&format, "persona-format", "auto", "auto, jsonl, text or card")
	c.Flags().IntVar(&retries, "profile-retries", 2, "extra attempts at a malformed profile (needs --temperature > 0; -1: none)")
	return c
}

// synthReadInstructions reads every instruction file.
func synthReadInstructions(files []string, format, source string) ([]synth.Instruction, []synth.Problem, error) {
	var all []synth.Instruction
	var probs []synth.Problem
	for _, p := range files {
		ins, pr, err := synth.ReadInstructions(p, format, source)
		if err != nil {
			return nil, nil, err
		}
		all, probs = append(all, ins...), append(probs, pr...)
	}
	return all, probs, nil
}

func (e *env) synthAnswersCmd(mode synthMode) *cobra.Command {
	var cf synthCommon
	var tf synthTeacherFlags
	var characters, instructions []string
	var format, source, strategy string
	var per int
	c := &cobra.Command{
		Use:   synthUse(mode, "answers") + " --strategy r|g --characters FILE --instructions FILE --out DIR",
		Short: "Write in-character answers (synthetic_dialogue.jsonl and chat JSONL)",
		Long: `Pair each instruction with --per-instruction random characters (reproducible
from --seed) and write each character's answer: strategy r rewrites the
reference answer in character, keeping its facts (OpenCharacter-R); strategy g
writes a fresh in-character answer (OpenCharacter-G).

Characters: synthetic_character.jsonl (from "masque synth profiles") or
character cards (.json/.png). Instructions: Alpaca JSON/JSONL (instruction,
input, output), chat JSONL (first user turn, first assistant turn), or a plain
list of questions (strategy g only).
Outputs: <out>/synthetic_dialogue.jsonl {"character_id","question",
"question_source","character_answer"} and <out>/synthetic_dialogue.chat.jsonl
{"messages":[system = persona + profile, user, assistant]} for masque finetune.`,
		Example: `  masque synth answers --strategy g --characters run1/synthetic_character.jsonl --instructions alpaca.json --out run1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			com, err := cf.common()
			if err != nil {
				return err
			}
			strategy = strings.ToLower(strategy)
			if strategy != synth.StrategyR && strategy != synth.StrategyG {
				return usagef("--strategy must be r or g")
			}
			if len(characters) == 0 || len(instructions) == 0 {
				return usagef("--characters and --instructions are required")
			}
			var chars []synth.Character
			var probs []synth.Problem
			for _, p := range characters {
				cs, pr, err := synth.ReadCharacters(p)
				if err != nil {
					return err
				}
				chars, probs = append(chars, cs...), append(probs, pr...)
			}
			ins, pr, err := synthReadInstructions(instructions, format, source)
			if err != nil {
				return err
			}
			probs = append(probs, pr...)
			e.synthProblems(probs)
			if len(chars) == 0 {
				return fmt.Errorf("no usable characters in %s", strings.Join(characters, ", "))
			}
			if len(ins) == 0 {
				return fmt.Errorf("no usable instructions in %s", strings.Join(instructions, ", "))
			}
			t, err := tf.open(cmd, e, mode, cf.out)
			if err != nil {
				return err
			}
			defer t.close()
			ui := &synthUI{e: e, quiet: cf.quiet}
			com.Teacher, com.TeacherModel, com.Progress, com.Logf = t.t, t.model, ui.progress, ui.logf
			if com.Workers == 0 {
				com.Workers = max(t.workers, 4)
			}
			sum, err := synth.RunAnswers(cmd.Context(), synth.AnswersConfig{Common: com, Strategy: strategy,
				Characters: chars, Instructions: ins, PerInstruction: per, Problems: probs})
			ui.done()
			if err == nil {
				err = t.finishBatch(e)
			}
			return e.synthReport(&cf, sum, err)
		},
	}
	cf.register(c)
	tf.register(c, mode)
	c.Flags().StringVar(&strategy, "strategy", "g", "r: rewrite the reference answer in character; g: fresh in-character answer")
	c.Flags().StringArrayVar(&characters, "characters", nil, "characters: synthetic_character.jsonl or a character card (repeatable)")
	c.Flags().StringArrayVar(&instructions, "instructions", nil, "instruction file (repeatable)")
	c.Flags().StringVar(&format, "format", "auto", "instruction format: auto, alpaca, chat or questions")
	c.Flags().StringVar(&source, "question-source", "", "question_source of the rows (default: each file's base name)")
	c.Flags().IntVar(&per, "per-instruction", 3, "characters paired with each instruction")
	return c
}

func (e *env) synthPersonaCmd(mode synthMode) *cobra.Command {
	var cf synthCommon
	var tf synthTeacherFlags
	var mf modelFlags
	var persona, exclude, phase, scores, format, modes string
	var instructions []string
	var top, firstLayer, lastLayer int
	c := &cobra.Command{
		Use:   synthUse(mode, "persona-data") + ` --persona "..." --model PATH --instructions FILE --out DIR`,
		Short: "Make Persona-Pruner training data for one persona (persona_data.jsonl)",
		Long: `Make Persona-Pruner training data for one persona (METHODS §1, stage A):

1. score: every instruction's persona sensitivity s(q) with the model to be
   pruned (--model): for the chat prompt [system: persona, user: q] plus the
   generation prompt, the last token's hidden state at layers 5..24
   (--first-layer, --last-layer; clamped to the model's depth) is compared by
   cosine with the same prompt under 10 built-in reference personas;
   s(q) = 1 − the mean cosine. Layer l is Hugging Face's hidden_states[l]:
   the residual stream entering block l, and for l = the model's depth the
   output of the final norm (so a model of 24 layers or fewer is scored
   after its final norm, as in HF).
2. rewrite: the --top questions with the highest s(q), never one listed in
   --exclude, have their reference answer rewritten in the persona's voice by
   the teacher (--modes rewrite), and/or answered directly in persona
   (--modes direct).

Output: <out>/persona_data.jsonl, chat rows {"messages":[system, user,
assistant]} with the system prompt "You are roleplaying as a user with this
persona: {persona}\nAnswer the question, roleplay as the given persona."

--phase all does both; a sharded job runs --phase score on every shard,
merges them, then --phase rewrite --scores MERGED/scores.log.jsonl on every
shard, and merges again.`,
		Example: `  masque synth persona-data --persona "A grumpy lighthouse keeper" --model ./Llama-3.2-3B-Instruct \
      --instructions alpaca.json --exclude eval_questions.txt --top 2000 --out lighthouse \
      --teacher-url https://api.openai.com/v1 --teacher-model gpt-4o-mini`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			com, err := cf.common()
			if err != nil {
				return err
			}
			if persona, err = synthArg(persona); err != nil {
				return err
			}
			if strings.TrimSpace(persona) == "" {
				return usagef("--persona is required (text, or @FILE)")
			}
			if len(instructions) == 0 {
				return usagef("--instructions is required")
			}
			if firstLayer < 0 || lastLayer < firstLayer {
				return usagef("--first-layer %d --last-layer %d: want 0 ≤ first ≤ last", firstLayer, lastLayer)
			}
			switch phase {
			case "all", "score", "rewrite":
			default:
				return usagef("--phase must be all, score or rewrite")
			}
			if mode != synthLive && phase == "score" {
				return usagef("--phase score asks no teacher: run it with \"masque synth persona-data\"")
			}
			if phase == "all" && !com.Shard.Whole() {
				return usagef("a sharded job needs two phases: --phase score on every shard, \"masque synth merge\", then --phase rewrite --scores MERGED/%s", filepath.Base(synth.StageFile("", synth.StageScores, "log")))
			}
			var modeList []string
			for _, m := range strings.Split(modes, ",") {
				if m = strings.TrimSpace(m); m != "" {
					if m != synth.ModeRewrite && m != synth.ModeDirect {
						return usagef("--modes: %q is not rewrite or direct", m)
					}
					modeList = append(modeList, m)
				}
			}
			ins, probs, err := synthReadInstructions(instructions, format, "")
			if err != nil {
				return err
			}
			var excl map[string]bool
			if exclude != "" {
				var pr []synth.Problem
				if excl, pr, err = synth.ReadQuestionSet(exclude); err != nil {
					return err
				}
				probs = append(probs, pr...)
			}
			e.synthProblems(probs)
			if len(ins) == 0 {
				return fmt.Errorf("no usable instructions in %s", strings.Join(instructions, ", "))
			}
			ui := &synthUI{e: e, quiet: cf.quiet}
			ctx := cmd.Context()
			if phase == "all" || phase == "score" {
				ck, err := mf.open()
				if err != nil {
					return err
				}
				sc, err := synth.NewScorer(ck, persona, nil, firstLayer, lastLayer)
				if err != nil {
					ck.Close()
					return err
				}
				sum, err := synth.RunPersonaScores(ctx, synth.ScoresConfig{Out: cf.out, Shard: com.Shard, Persona: persona,
					Model: ck.Path, Scorer: sc, Instructions: ins, Exclude: excl, Sync: cf.fsync,
					Progress: ui.progress, Logf: ui.logf, Problems: probs})
				ui.done()
				ck.Close()
				if err := e.synthReport(&cf, sum, err); err != nil || phase == "score" {
					return err
				}
				if !sum.Complete {
					return fmt.Errorf("%d questions could not be scored; rerun to retry them", sum.Remaining)
				}
			}
			if scores == "" {
				scores = synth.StageFile(cf.out, synth.StageScores, "log")
			}
			sc, pr, err := synth.ReadScores(scores)
			if err != nil {
				return err
			}
			e.synthProblems(pr)
			t, err := tf.open(cmd, e, mode, cf.out)
			if err != nil {
				return err
			}
			defer t.close()
			com.Teacher, com.TeacherModel, com.Progress, com.Logf = t.t, t.model, ui.progress, ui.logf
			if com.Workers == 0 {
				com.Workers = max(t.workers, 4)
			}
			sum, err := synth.RunPersonaData(ctx, synth.PersonaConfig{Common: com, Persona: persona, Instructions: ins,
				Exclude: excl, Scores: sc, TopN: top, Modes: modeList, Problems: probs})
			ui.done()
			if err == nil {
				err = t.finishBatch(e)
			}
			return e.synthReport(&cf, sum, err)
		},
	}
	cf.register(c)
	tf.register(c, mode)
	mf.register(c)
	c.Flags().StringVar(&persona, "persona", "", "the target persona description (or @FILE)")
	c.Flags().StringArrayVar(&instructions, "instructions", nil, "instruction file with reference answers (repeatable)")
	c.Flags().StringVar(&format, "format", "auto", "instruction format: auto, alpaca, chat or questions")
	c.Flags().StringVar(&exclude, "exclude", "", "evaluation questions never to use (a question list or any instruction file)")
	c.Flags().IntVar(&top, "top", 2000, "keep the N most persona-sensitive questions (the paper used 20,000)")
	c.Flags().StringVar(&modes, "modes", synth.ModeRewrite, "rewrite (with the reference answer), direct (without), or rewrite,direct")
	c.Flags().StringVar(&phase, "phase", "all", "all, score (only the sensitivity scores) or rewrite (only the teacher, from --scores)")
	c.Flags().StringVar(&scores, "scores", "", "scores log to select from (default: <out>/scores.log.jsonl)")
	c.Flags().IntVar(&firstLayer, "first-layer", synth.DefaultFirstLayer, "first layer of the sensitivity score, HF hidden_states numbering (clamped to the model)")
	c.Flags().IntVar(&lastLayer, "last-layer", synth.DefaultLastLayer, "last layer of the sensitivity score, inclusive; the model's depth is the final norm's output (clamped to the model)")
	return c
}

func (e *env) synthMergeCmd() *cobra.Command {
	var out string
	var allowIncomplete, asJSON bool
	var dedupe float64
	c := &cobra.Command{
		Use:   "merge --out DIR SHARD_DIR...",
		Short: "Join and verify the shards of a sharded job",
		Long: `Join the output folders of a job run with --shard 0/n ... n-1/n. Every shard
must be there exactly once, made with the same settings, complete, and hold
only its own rows (so no row is in two shards). The joined folder holds the
same output files an unsharded run would have made.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out is required")
			}
			if !cmd.Flags().Changed("dedupe") {
				dedupe = -1
			}
			res, err := synth.Merge(synth.MergeOptions{Out: out, Dirs: args, AllowIncomplete: allowIncomplete, DedupeThreshold: dedupe})
			if asJSON {
				writeJSON(e.stdout, res)
			} else {
				for _, m := range res {
					state := "complete"
					if !m.Complete {
						state = "INCOMPLETE"
					}
					fmt.Fprintf(e.stdout, "%s: %d shards joined, %s: %d of %d rows done (%d kept, %d rejected)\n",
						m.Stage, m.Shards, state, m.Kept+m.Rejected, m.Total, m.Kept, m.Rejected)
					if f := m.Final; f != nil {
						fmt.Fprintf(e.stdout, "  output: %d rows (%d near duplicates) in %s\n", f.Rows, f.NearDuplicates, strings.Join(f.Files, ", "))
					}
				}
			}
			return err
		},
	}
	c.Flags().StringVarP(&out, "out", "o", "", "folder for the joined job (required)")
	c.Flags().BoolVar(&allowIncomplete, "allow-incomplete", false, "join shards that still have rows to do")
	c.Flags().Float64Var(&dedupe, "dedupe", 0.85, "near-duplicate threshold (default: the one the shards were run with)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func (e *env) synthBatchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "batch export|import STAGE [flags]",
		Short: "Use the OpenAI Batch API: export requests, import results",
		Long: `Run a stage through the OpenAI Batch API instead of live requests.

"batch export STAGE" takes the same flags as the stage and writes every request
the run still needs as OpenAI Batch JSONL ({"custom_id","method":"POST",
"url":"/v1/chat/completions","body":{...}}) to --file. Upload it, and when the
batch is done, "batch import STAGE --results FILE" with the same flags reads
the results ({"custom_id","response":{"status_code","body"}}) into the response
cache and writes the rows. Rows whose profile must be asked for again (a
malformed profile) need another export/import round.`,
	}
	exp := &cobra.Command{Use: "export STAGE", Short: "Write the requests a stage needs as an OpenAI Batch input file"}
	exp.AddCommand(e.synthProfilesCmd(synthExport), e.synthAnswersCmd(synthExport), e.synthPersonaCmd(synthExport))
	imp := &cobra.Command{Use: "import STAGE", Short: "Read OpenAI Batch results and write the stage's rows"}
	imp.AddCommand(e.synthProfilesCmd(synthImport), e.synthAnswersCmd(synthImport), e.synthPersonaCmd(synthImport))
	c.AddCommand(exp, imp)
	return c
}
