package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/internal/textarg"
	"github.com/masque-ai/masque/synth"
	"github.com/masque-ai/masque/synth/teacher"
)

// synthMode says how a synth stage command gets its completions.
type synthMode = teacher.Mode

const (
	synthLive   = teacher.Live   // ask the teacher
	synthExport = teacher.Export // write an OpenAI Batch input file
	synthImport = teacher.Import // read OpenAI Batch results
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
  style-rewrite stylised lines → neutral rewrite + reasoning trace → style-rewrite
                training rows (style_rewrite.chat.jsonl), or parallel data
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
		e.synthStyleCmd(synthLive), e.synthMergeCmd(), e.synthBatchCmd(),
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

// open opens the teacher the flags select.
func (f *synthTeacherFlags) open(cmd *cobra.Command, e *env, mode synthMode, out string) (*teacher.Opened, error) {
	conc := f.concurrency
	if f.engine != "" && !cmd.Flags().Changed("concurrency") {
		conc = 0 // the engine's default: one at a time
	}
	cache := f.cache
	if cache == "" {
		cache = filepath.Join(out, synth.FileCache)
	}
	o, err := teacher.Open(teacher.Setup{Mode: mode, URL: f.url, Model: f.model, Key: f.key,
		Engine: f.engine, EngineTokenizer: f.engineTok, Truncate: f.truncate, Stream: f.stream, Concurrency: conc,
		Attempts: f.attempts, RPS: f.rps, TPM: f.tpm, Timeout: f.timeout, Stall: f.stall, Cache: cache, NoCache: f.noCache,
		Out: out, BatchFile: f.batchFile, Results: f.results, Logf: e.logf})
	var se *teacher.SetupError
	if errors.As(err, &se) {
		return nil, usageError{err}
	}
	return o, err
}

// finishBatch commits the batch file of an export run.
func finishBatch(e *env, t *teacher.Opened) error {
	n, name, err := t.FinishBatch()
	if err != nil || name == "" {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %d requests to %s (custom_id = request key); after the batch completes, run the same command as \"masque synth batch import ... --results FILE\"\n", n, name)
	return nil
}

// synthWithTeacher opens the teacher the flags select, runs one stage with
// it (progress on ui) and prints the summary.
func (e *env) synthWithTeacher(cmd *cobra.Command, mode synthMode, cf *synthCommon, tf *synthTeacherFlags, com synth.Common,
	ui *synthUI, run func(synth.Common) (*synth.Summary, error)) error {
	t, err := tf.open(cmd, e, mode, cf.out)
	if err != nil {
		return err
	}
	defer t.Close()
	com.Progress, com.Logf = ui.progress, ui.logf
	com.UseTeacher(t)
	sum, err := run(com)
	ui.done()
	if err == nil {
		err = finishBatch(e, t)
	}
	return e.synthReport(cf, sum, err)
}

// synthUI shows the progress of each stage and prints notices above it.
type synthUI struct {
	e     *env
	quiet bool
	mu    sync.Mutex
	bar   *meter
	stage string
}

func (u *synthUI) progress(p synth.Progress) {
	if u.quiet {
		return
	}
	u.mu.Lock()
	if u.bar == nil || u.stage != p.Stage {
		if u.bar != nil {
			u.bar.end()
		}
		u.stage = p.Stage
		u.bar = u.e.meter(p.Stage, "rows")
	}
	bar := u.bar
	u.mu.Unlock()
	bar.describe(fmt.Sprintf("%s: kept %d, rejected %d, failed %d", p.Stage, p.Kept, p.Rejected, p.Failed))
	bar.set(int64(p.Done), int64(p.Total))
	if p.Done >= p.Total {
		bar.end()
	}
}

func (u *synthUI) logf(format string, args ...any) {
	u.mu.Lock()
	bar := u.bar
	u.mu.Unlock()
	if bar != nil {
		bar.logf(format, args...)
		return
	}
	fmt.Fprintf(u.e.stderr, format+"\n", args...)
}

func (u *synthUI) done() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar != nil {
		u.bar.end()
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
	st := &synthProfilesRun{}
	st.mode = mode
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
		RunE: func(cmd *cobra.Command, args []string) error { return e.runSynthProfiles(cmd, st) },
	}
	st.cf.register(c)
	st.tf.register(c, mode)
	c.Flags().StringArrayVar(&st.personas, "personas", nil, "persona file (repeatable): .jsonl, .txt, or a character card .json/.png")
	c.Flags().StringVar(&st.format, "persona-format", "auto", "auto, jsonl, text or card")
	c.Flags().IntVar(&st.retries, "profile-retries", 2, "extra attempts at a malformed profile (needs --temperature > 0; -1: none)")
	return c
}

// synthProfilesRun holds the flags of synthProfilesCmd.
type synthProfilesRun struct {
	mode     synthMode
	cf       synthCommon
	tf       synthTeacherFlags
	personas []string
	format   string
	retries  int
}

func (e *env) runSynthProfiles(cmd *cobra.Command, st *synthProfilesRun) error {
	com, err := st.cf.common()
	if err != nil {
		return err
	}
	if len(st.personas) == 0 {
		return usagef("--personas is required")
	}
	all, probs, err := synth.ReadPersonaFiles(st.personas, st.format)
	if err != nil {
		return err
	}
	e.synthProblems(probs)
	if len(all) == 0 {
		return fmt.Errorf("no usable personas in %s", strings.Join(st.personas, ", "))
	}
	return e.synthWithTeacher(cmd, st.mode, &st.cf, &st.tf, com, &synthUI{e: e, quiet: st.cf.quiet}, func(com synth.Common) (*synth.Summary, error) {
		return synth.RunProfiles(cmd.Context(), synth.ProfilesConfig{Common: com, Personas: all, Retries: st.retries, Problems: probs})
	})
}

func (e *env) synthAnswersCmd(mode synthMode) *cobra.Command {
	st := &synthAnswersRun{}
	st.mode = mode
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
		RunE:    func(cmd *cobra.Command, args []string) error { return e.runSynthAnswers(cmd, st) },
	}
	st.cf.register(c)
	st.tf.register(c, mode)
	c.Flags().StringVar(&st.strategy, "strategy", "g", "r: rewrite the reference answer in character; g: fresh in-character answer")
	c.Flags().StringArrayVar(&st.characters, "characters", nil, "characters: synthetic_character.jsonl or a character card (repeatable)")
	c.Flags().StringArrayVar(&st.instructions, "instructions", nil, "instruction file (repeatable)")
	c.Flags().StringVar(&st.format, "format", "auto", "instruction format: auto, alpaca, chat or questions")
	c.Flags().StringVar(&st.source, "question-source", "", "question_source of the rows (default: each file's base name)")
	c.Flags().IntVar(&st.per, "per-instruction", 3, "characters paired with each instruction")
	return c
}

// synthAnswersRun holds the flags of synthAnswersCmd.
type synthAnswersRun struct {
	mode                     synthMode
	cf                       synthCommon
	tf                       synthTeacherFlags
	characters, instructions []string
	format, source, strategy string
	per                      int
}

func (e *env) runSynthAnswers(cmd *cobra.Command, st *synthAnswersRun) error {
	com, err := st.cf.common()
	if err != nil {
		return err
	}
	st.strategy = strings.ToLower(st.strategy)
	if st.strategy != synth.StrategyR && st.strategy != synth.StrategyG {
		return usagef("--strategy must be r or g")
	}
	if len(st.characters) == 0 || len(st.instructions) == 0 {
		return usagef("--characters and --instructions are required")
	}
	chars, probs, err := synth.ReadCharacterFiles(st.characters)
	if err != nil {
		return err
	}
	ins, pr, err := synth.ReadInstructionFiles(st.instructions, st.format, st.source)
	if err != nil {
		return err
	}
	probs = append(probs, pr...)
	e.synthProblems(probs)
	if len(chars) == 0 {
		return fmt.Errorf("no usable characters in %s", strings.Join(st.characters, ", "))
	}
	if len(ins) == 0 {
		return fmt.Errorf("no usable instructions in %s", strings.Join(st.instructions, ", "))
	}
	return e.synthWithTeacher(cmd, st.mode, &st.cf, &st.tf, com, &synthUI{e: e, quiet: st.cf.quiet}, func(com synth.Common) (*synth.Summary, error) {
		return synth.RunAnswers(cmd.Context(), synth.AnswersConfig{Common: com, Strategy: st.strategy,
			Characters: chars, Instructions: ins, PerInstruction: st.per, Problems: probs})
	})
}

func (e *env) synthPersonaCmd(mode synthMode) *cobra.Command {
	st := &synthPersonaRun{}
	st.mode = mode
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
		RunE: func(cmd *cobra.Command, args []string) error { return e.runSynthPersona(cmd, st) },
	}
	st.cf.register(c)
	st.tf.register(c, mode)
	st.mf.register(c)
	c.Flags().StringVar(&st.persona, "persona", "", "the target persona description (or @FILE)")
	c.Flags().StringArrayVar(&st.instructions, "instructions", nil, "instruction file with reference answers (repeatable)")
	c.Flags().StringVar(&st.format, "format", "auto", "instruction format: auto, alpaca, chat or questions")
	c.Flags().StringVar(&st.exclude, "exclude", "", "evaluation questions never to use (a question list or any instruction file)")
	c.Flags().IntVar(&st.top, "top", 2000, "keep the N most persona-sensitive questions (the paper used 20,000)")
	c.Flags().StringVar(&st.modes, "modes", synth.ModeRewrite, "rewrite (with the reference answer), direct (without), or rewrite,direct")
	c.Flags().StringVar(&st.phase, "phase", "all", "all, score (only the sensitivity scores) or rewrite (only the teacher, from --scores)")
	c.Flags().StringVar(&st.scores, "scores", "", "scores log to select from (default: <out>/scores.log.jsonl)")
	c.Flags().IntVar(&st.firstLayer, "first-layer", synth.DefaultFirstLayer, "first layer of the sensitivity score, HF hidden_states numbering (clamped to the model)")
	c.Flags().IntVar(&st.lastLayer, "last-layer", synth.DefaultLastLayer, "last layer of the sensitivity score, inclusive; the model's depth is the final norm's output (clamped to the model)")
	return c
}

// synthPersonaRun holds the flags of synthPersonaCmd.
type synthPersonaRun struct {
	mode                                           synthMode
	cf                                             synthCommon
	tf                                             synthTeacherFlags
	mf                                             modelFlags
	persona, exclude, phase, scores, format, modes string
	instructions                                   []string
	top, firstLayer, lastLayer                     int
}

// check validates the flags; it returns the --modes list.
func (st *synthPersonaRun) check(com synth.Common) ([]string, error) {
	var err error
	if st.persona, err = textarg.Read(st.persona); err != nil {
		return nil, err
	}
	if strings.TrimSpace(st.persona) == "" {
		return nil, usagef("--persona is required (text, or @FILE)")
	}
	if len(st.instructions) == 0 {
		return nil, usagef("--instructions is required")
	}
	if st.firstLayer < 0 || st.lastLayer < st.firstLayer {
		return nil, usagef("--first-layer %d --last-layer %d: want 0 ≤ first ≤ last", st.firstLayer, st.lastLayer)
	}
	switch st.phase {
	case "all", "score", "rewrite":
	default:
		return nil, usagef("--phase must be all, score or rewrite")
	}
	if st.mode != synthLive && st.phase == "score" {
		return nil, usagef("--phase score asks no teacher: run it with \"masque synth persona-data\"")
	}
	if st.phase == "all" && !com.Shard.Whole() {
		return nil, usagef("a sharded job needs two phases: --phase score on every shard, \"masque synth merge\", then --phase rewrite --scores MERGED/%s", filepath.Base(synth.StageFile("", synth.StageScores, "log")))
	}
	modeList, err := synth.ParseModes(st.modes)
	if err != nil {
		return nil, usagef("--modes: %v", err)
	}
	return modeList, nil
}

// synthPersonaScores runs the scoring phase of persona-data with the
// --model and prints its summary; done says that the command ends there.
func (e *env) synthPersonaScores(ctx context.Context, st *synthPersonaRun, com synth.Common, ui *synthUI, ins []synth.Instruction, excl map[string]bool, probs []synth.Problem) (done bool, err error) {
	ck, err := st.mf.open()
	if err != nil {
		return false, err
	}
	sum, err := synth.RunPersonaScores(ctx, synth.ScoresConfig{Out: st.cf.out, Shard: com.Shard, Persona: st.persona,
		Checkpoint: ck, FirstLayer: st.firstLayer, LastLayer: st.lastLayer, Instructions: ins, Exclude: excl,
		NeedAll: st.phase == "all", Sync: st.cf.fsync, Progress: ui.progress, Logf: ui.logf, Problems: probs})
	ui.done()
	ck.Close()
	err = e.synthReport(&st.cf, sum, err)
	return err != nil || st.phase == "score", err
}

func (e *env) runSynthPersona(cmd *cobra.Command, st *synthPersonaRun) error {
	com, err := st.cf.common()
	if err != nil {
		return err
	}
	modeList, err := st.check(com)
	if err != nil {
		return err
	}
	ins, probs, err := synth.ReadInstructionFiles(st.instructions, st.format, "")
	if err != nil {
		return err
	}
	var excl map[string]bool
	if st.exclude != "" {
		var pr []synth.Problem
		if excl, pr, err = synth.ReadQuestionSet(st.exclude); err != nil {
			return err
		}
		probs = append(probs, pr...)
	}
	e.synthProblems(probs)
	if len(ins) == 0 {
		return fmt.Errorf("no usable instructions in %s", strings.Join(st.instructions, ", "))
	}
	ui := &synthUI{e: e, quiet: st.cf.quiet}
	ctx := cmd.Context()
	if st.phase == "all" || st.phase == "score" {
		if done, err := e.synthPersonaScores(ctx, st, com, ui, ins, excl, probs); err != nil || done {
			return err
		}
	}
	if st.scores == "" {
		st.scores = synth.StageFile(st.cf.out, synth.StageScores, "log")
	}
	sc, pr, err := synth.ReadScores(st.scores)
	if err != nil {
		return err
	}
	e.synthProblems(pr)
	return e.synthWithTeacher(cmd, st.mode, &st.cf, &st.tf, com, ui, func(com synth.Common) (*synth.Summary, error) {
		return synth.RunPersonaData(ctx, synth.PersonaConfig{Common: com, Persona: st.persona, Instructions: ins,
			Exclude: excl, Scores: sc, TopN: st.top, Modes: modeList, Problems: probs})
	})
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
	exp.AddCommand(e.synthProfilesCmd(synthExport), e.synthAnswersCmd(synthExport), e.synthPersonaCmd(synthExport), e.synthStyleCmd(synthExport))
	imp := &cobra.Command{Use: "import STAGE", Short: "Read OpenAI Batch results and write the stage's rows"}
	imp.AddCommand(e.synthProfilesCmd(synthImport), e.synthAnswersCmd(synthImport), e.synthPersonaCmd(synthImport), e.synthStyleCmd(synthImport))
	c.AddCommand(exp, imp)
	return c
}
