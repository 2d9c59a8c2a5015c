package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/data/evalset"
	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/report"
	"github.com/masque-ai/masque/eval/roleplay"
	"github.com/masque-ai/masque/internal/textarg"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/style"
)

// evalJudgeFlags select a judge endpoint and its prompts.
type evalJudgeFlags struct {
	url, model, key, prompts string
	concurrency, attempts    int
	rubricTokens             int
}

func (f *evalJudgeFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.url, "judge-url", "", "OpenAI-compatible endpoint of the judge (e.g. http://127.0.0.1:8080/v1)")
	fl.StringVar(&f.model, "judge-model", "", "the judge's model name on that endpoint")
	fl.StringVar(&f.key, "judge-key", "", "API key of the judge (default: $"+judge.KeyEnv+")")
	fl.StringVar(&f.prompts, "judge-prompts", "standard", "judge prompt set: standard, or compact for judges with a small context (scores are not comparable across sets)")
	fl.IntVar(&f.concurrency, "judge-concurrency", 4, "judge requests in flight at once")
	fl.IntVar(&f.attempts, "judge-attempts", 5, "attempts per judge request (retries with backoff on 429, 5xx and network errors)")
	fl.IntVar(&f.rubricTokens, "rubric-max-tokens", 0, "reply cap of the PersonaGym rubric tasks (0: the prompt set's)")
}

// judge returns the configured judge, or nil when no --judge-url is set.
func (f *evalJudgeFlags) judge() (*judge.Judge, *judge.PromptSet, error) {
	ps, ok := judge.PromptSetByName(f.prompts)
	if !ok {
		return nil, nil, usagef("--judge-prompts must be standard or compact, not %q", f.prompts)
	}
	if f.url == "" {
		return nil, ps, nil
	}
	if f.model == "" {
		return nil, nil, usagef("--judge-model is required with --judge-url")
	}
	return judge.NewEndpoint(judge.Endpoint{URL: f.url, Model: f.model, Key: f.key, Attempts: f.attempts, RubricMaxTokens: f.rubricTokens}, ps), ps, nil
}

// evalMetrics turns --judges (pp, gym, or metric names) into metrics of ps.
func evalMetrics(ps *judge.PromptSet, names []string) ([]judge.Metric, error) {
	ms, err := ps.Select(names)
	if err != nil {
		return nil, usagef("--judges: %v", err)
	}
	return ms, nil
}

// evalRunFlags are shared by eval run and eval rolebench.
type evalRunFlags struct {
	mf                            modelFlags
	jf                            evalJudgeFlags
	maskPath                      string
	modelURL, modelName, modelKey string
	judges                        []string
	out, cacheDir                 string
	label, method                 string
	sparsity                      float64
	maxTokens, concurrency        int
	temperature                   float32
	seed                          int64
	personas                      []string
	limit                         int
	mcTests                       []string
	mcSystem, mcFormat            string
	mcOpposing                    bool
	mcLimit                       int
	pplData                       []string
	pplMaxTokens                  int
	noReport, asJSON              bool
	styleProfile                  string
	styleGate                     float64
	styleEmb                      embedderFlags
}

func (f *evalRunFlags) register(c *cobra.Command, defaultJudges []string) {
	f.mf.register(c)
	f.jf.register(c)
	fl := c.Flags()
	fl.StringVar(&f.maskPath, "mask", "", "evaluate the model with this weight mask applied in memory (without --model, the base it records)")
	fl.StringVar(&f.modelURL, "model-url", "", "evaluate a model behind an OpenAI-compatible endpoint instead of --model")
	fl.StringVar(&f.modelName, "model-name", "", "the model's name on --model-url")
	fl.StringVar(&f.modelKey, "model-key", "", "API key of --model-url (default: $"+roleplay.ModelKeyEnv+")")
	fl.StringSliceVar(&f.judges, "judges", defaultJudges, "judge metrics: pp (Persona-Pruner consistency and coherence), gym (the five PersonaGym rubric tasks), none, or metric names")
	fl.StringVarP(&f.out, "out", "o", "", "run folder: run.json, report.html and the resumable caches (required)")
	fl.StringVar(&f.cacheDir, "cache", "", "folder for generations.jsonl and judgements.jsonl (default: --out; runs may share one)")
	fl.StringVar(&f.label, "label", "", "name of the run in comparisons (default: the --out folder's name)")
	fl.StringVar(&f.method, "method", "", "how the model was made, for the score-vs-sparsity plot: dense, persona-pruner, wanda, llm-pruner, … (default: dense without --mask, else mask)")
	fl.Float64Var(&f.sparsity, "sparsity", -1, "share of weights or channels removed, 0–1, for the plot (-1: from the mask, or 0 for a dense model)")
	fl.IntVarP(&f.maxTokens, "max-tokens", "n", 256, "longest answer in tokens")
	fl.Float32VarP(&f.temperature, "temperature", "t", 0, "sampling temperature of answers (0: greedy, the paper's setting)")
	fl.Int64Var(&f.seed, "seed", 0, "sampling seed when --temperature > 0")
	fl.IntVar(&f.concurrency, "concurrency", 1, "answers generated at once")
	fl.StringSliceVar(&f.personas, "personas", nil, "evaluate only these persona ids (comma-separated)")
	fl.IntVar(&f.limit, "limit", 0, "ask only the first N questions of each kind per persona (0: all)")
	fl.StringArrayVar(&f.mcTests, "mc-tests", nil, "multiple-choice persona test (.csv or .jsonl, see eval mc) for the reference metrics; repeatable")
	fl.StringVar(&f.mcSystem, "mc-system", "", "system prompt for --mc-tests (or @FILE)")
	fl.BoolVar(&f.mcOpposing, "mc-opposing", false, "--mc-tests: score for the opposing persona")
	fl.IntVar(&f.mcLimit, "mc-limit", 0, "--mc-tests: only the first N items of each file")
	fl.StringVar(&f.mcFormat, "mc-format", "", "--mc-tests prompt format: chat or plain (default: chat when the model has a template)")
	fl.StringArrayVar(&f.pplData, "ppl-data", nil, "perplexity data (text, one sample per line, or chat .jsonl) for the reference metrics; repeatable")
	fl.IntVar(&f.pplMaxTokens, "ppl-max-tokens", 512, "--ppl-data: truncate samples at this many tokens")
	fl.BoolVar(&f.noReport, "no-report", false, "do not write report.html")
	fl.StringVar(&f.styleProfile, "style-profile", "", "style profiles of the personas (masque style profile; one character per persona id): adds the style metrics (style; with references semantic, vss, style_h)")
	fl.Float64Var(&f.styleGate, "style-gate", style.SemanticGate, "semantic fidelity above which style counts in vss")
	f.styleEmb.registerAs(c, "style-", "")
	fl.BoolVar(&f.asJSON, "json", false, "print run.json's summary as JSON instead of a table")
}

// evaluate runs the evaluation of set.
func (f *evalRunFlags) evaluate(cmd *cobra.Command, e *env, set *roleplay.Set) error {
	if f.out == "" {
		return usagef("--out is required")
	}
	set, err := set.Filter(f.personas, f.limit)
	if err != nil {
		return usagef("%v", err)
	}
	jd, ps, err := f.jf.judge()
	if err != nil {
		return err
	}
	metrics, err := evalMetrics(ps, f.judges)
	if err != nil {
		return err
	}
	if len(metrics) > 0 && jd == nil {
		return usagef("--judges %s needs --judge-url and --judge-model (or --judges none)", strings.Join(f.judges, ","))
	}
	if f.sparsity > 1 {
		return usagef("--sparsity must be in [0,1] (or -1)")
	}
	cfg := roleplay.Config{Out: f.out, CacheDir: f.cacheDir, Label: f.label, Method: f.method, Set: set,
		GenConcurrency: f.concurrency, Judge: jd, JudgeURL: f.jf.url, Metrics: metrics, JudgeConcurrency: f.jf.concurrency,
		Progress: e.stages("")}
	defer f.styleEmb.close()
	if cfg.Style, err = f.style(); err != nil {
		return err
	}
	if f.sparsity >= 0 {
		cfg.Sparsity = &f.sparsity
	}
	closeModel, err := f.setTarget(cmd.Context(), e, &cfg)
	if err != nil {
		return err
	}
	defer closeModel()
	return f.run(cmd.Context(), e, cfg)
}

// style returns the style metrics' settings (nil without --style-profile).
func (f *evalRunFlags) style() (*roleplay.StyleConfig, error) {
	if f.styleProfile == "" {
		if f.styleEmb.model != "" || f.styleEmb.url != "" {
			return nil, usagef("--style-model and --style-embed-url embed for --style-profile: give it")
		}
		return nil, nil
	}
	profiles, err := style.Load(f.styleProfile)
	if err != nil {
		return nil, err
	}
	emb, err := f.styleEmb.open()
	if err != nil {
		return nil, err
	}
	sc, err := style.NewScorer(profiles, nil, emb, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", f.styleProfile, err)
	}
	return &roleplay.StyleConfig{Scorer: sc, Gate: f.styleGate}, nil
}

// setTarget sets the model under test: an endpoint or the local model,
// which stays open until the returned function is called.
func (f *evalRunFlags) setTarget(ctx context.Context, e *env, cfg *roleplay.Config) (func(), error) {
	closeModel := func() {}
	t := roleplay.Target{Mask: f.maskPath, MaxTokens: f.maxTokens, Temperature: f.temperature, Seed: f.seed}
	if f.modelURL != "" {
		if f.maskPath != "" || len(f.mcTests) > 0 || len(f.pplData) > 0 {
			return nil, usageError{roleplay.ErrEndpointReference}
		}
		if f.modelName == "" {
			return nil, usagef("--model-name is required with --model-url")
		}
		t.URL, t.Name, t.Key = f.modelURL, f.modelName, f.modelKey
	} else {
		sys, err := textarg.Read(f.mcSystem)
		if err != nil {
			return nil, fmt.Errorf("--mc-system: %w", err)
		}
		f.mf.basedOn(mask.ReadBase, f.maskPath)
		ck, err := f.mf.open()
		if err != nil {
			return nil, err
		}
		closeModel = func() { ck.Close() }
		t.Checkpoint = ck
		t.Reference = roleplay.ReferenceOptions{MCTests: f.mcTests, MCSystem: sys, MCOpposing: f.mcOpposing,
			MCLimit: f.mcLimit, MCFormat: f.mcFormat, PPLData: f.pplData, PPLMaxTokens: f.pplMaxTokens, Progress: e.stages("")}
	}
	if err := cfg.SetTarget(ctx, t); err != nil {
		closeModel()
		return nil, err
	}
	return closeModel, nil
}

// run evaluates and reports.
func (f *evalRunFlags) run(ctx context.Context, e *env, cfg roleplay.Config) error {
	set := cfg.Set
	metrics := cfg.Metrics
	fmt.Fprintf(e.stderr, "evaluating %s on %s: %d personas, %d questions, judge metrics: %s\n", cfg.Model, set.Name, len(set.Personas), set.Count(), evalMetricNames(metrics))
	run, err := roleplay.Evaluate(ctx, cfg)
	if run != nil && !f.noReport {
		if rerr := report.WriteRunPage(run, filepath.Join(f.out, report.ReportFile)); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return err
	}
	if f.asJSON {
		return writeJSON(e.stdout, map[string]any{"label": run.Label, "complete": run.Complete, "counts": run.Counts, "summary": run.Summary,
			"summary_by_kind": run.SummaryByKind, "run": filepath.Join(f.out, roleplay.RunFile)})
	}
	evalSummaryTable(e.stdout, run)
	fmt.Fprintf(e.stderr, "wrote %s", filepath.Join(f.out, roleplay.RunFile))
	if !f.noReport {
		fmt.Fprintf(e.stderr, " and %s", filepath.Join(f.out, report.ReportFile))
	}
	fmt.Fprintln(e.stderr)
	return nil
}

func evalMetricNames(ms []judge.Metric) string {
	if len(ms) == 0 {
		return "none"
	}
	var n []string
	for _, m := range ms {
		n = append(n, m.Name)
	}
	return strings.Join(n, ", ")
}

func evalFmt(v roleplay.Num) string {
	if !v.Valid() {
		return "—"
	}
	return fmt.Sprintf("%.3f", float64(v))
}

func evalSummaryTable(w io.Writer, r *roleplay.Run) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tmean\tSD over personas\tpersonas\titems\tfailures\trefusals\t")
	for _, m := range r.Metrics {
		a := r.Summary[m]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t\n", m, evalFmt(a.Mean), evalFmt(a.SD), a.N, a.Items, a.Failures, a.Refusals)
	}
	tw.Flush()
}

// evalRunCmd is `masque eval run`.
func (e *env) evalRunCmd() *cobra.Command {
	var f evalRunFlags
	var setPath string
	c := &cobra.Command{
		Use:   "run --model PATH --set DIR --judge-url URL --judge-model NAME --out DIR",
		Short: "Role-play evaluation: answer persona questions, have a judge score them",
		Long: `Evaluate how well a model plays personas, the way Persona-Pruner does: every
persona of the set gets its persona-specific and general questions, one per fresh
conversation after the persona's system prompt, answered greedily; a judge behind
any OpenAI-compatible endpoint then scores each answer.

Judges (--judges): pp = Persona-Pruner persona consistency and coherence, 0–100,
read as the probability-weighted mean of the judge's top-20 integer candidates
(text parsing below 25% integer mass; REFUSAL excluded); gym = the five PersonaGym
rubric tasks, 1–5, read from "Therefore, the final score is N" (an integer, as
the rubric asks: "4.5" is unreadable). Unreadable verdicts are excluded and
counted. The prompts are versioned and printed in the
report; --judge-prompts compact suits judges with a small context.

--set builtin (the default) is masque's own 12-persona set; a folder in the same
layout (see data/evalset/README.md) works too. The model is any checkpoint
(dense, pruned, LoRA-merged; --mask applies a mask in memory) or, with
--model-url, a model behind an endpoint. Reference metrics: --mc-tests and
--ppl-data (as in eval mc and eval ppl). Style scores are not available yet.

Answers and judge replies are appended to OUT/generations.jsonl and
OUT/judgements.jsonl as they arrive: after an interruption or a failing judge,
run the same command again to resume. Results: OUT/run.json and OUT/report.html.`,
		Example: `  masque serve --model ./Llama-3.1-8B-Instruct --addr 127.0.0.1:8080 &
  masque eval run --model ./pruned-25 --method persona-pruner --sparsity 0.25 \
      --judge-url http://127.0.0.1:8080/v1 --judge-model base --out runs/pp-25
  masque eval run --model ./Llama-3.2-3B-Instruct --set data/evalset --personas pirate-captain --limit 5 \
      --judge-url https://api.openai.com/v1 --judge-model gpt-4o-mini --judges pp,gym --out runs/dense`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := roleplay.OpenSet(setPath)
			if err != nil {
				return err
			}
			return f.evaluate(cmd, e, set)
		},
	}
	f.register(c, []string{"pp"})
	c.Flags().StringVar(&setPath, "set", evalset.Name, "evaluation set: builtin, or a folder in the Persona-Pruner layout")
	e.quietFlag(c)
	return c
}

// evalRolebenchCmd is `masque eval rolebench`.
func (e *env) evalRolebenchCmd() *cobra.Command {
	var f evalRunFlags
	var data, desc string
	c := &cobra.Command{
		Use:   "rolebench --model PATH --data test.jsonl --desc desc.json --out DIR",
		Short: "RoleBench: ROUGE-L F against the reference answer, optionally judge scores",
		Long: `Evaluate on RoleBench-format data: JSONL rows {"role", "question", "generated": [...]}
and a desc.json mapping each role to its description. Each role becomes a persona
(system prompt: the Persona-Pruner template around "role: description"); answers
are scored by ROUGE-L F against generated[0] (lower-cased runs of letters and
digits, each Han/kana character alone, punctuation dropped, no stemming) and, with
--judge-url, by the judges of --judges (default pp). A row without a reference
answer cannot be scored: it is skipped, counted and reported (on stderr and in
run.json's set.skipped and notes). Resumable like eval run.`,
		Example: `  masque eval rolebench --model ./pruned-25 --data rolebench-eng/test.jsonl --desc profiles-eng/desc.json --out runs/rb-pp25`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" || desc == "" {
				return usagef("--data and --desc are required")
			}
			if f.jf.url == "" && !cmd.Flags().Changed("judges") {
				f.judges = nil
			}
			set, err := roleplay.LoadRoleBench(data, desc)
			if err != nil {
				return err
			}
			if sk := set.SkippedSummary(); sk != "" {
				fmt.Fprintf(e.stderr, "rolebench: %s\n", sk)
			}
			return f.evaluate(cmd, e, set)
		},
	}
	f.register(c, []string{"pp"})
	c.Flags().StringVar(&data, "data", "", "RoleBench JSONL: role, question, generated[]")
	c.Flags().StringVar(&desc, "desc", "", "RoleBench desc.json: {\"role\": \"description\"}")
	e.quietFlag(c)
	return c
}

// evalCompareCmd is `masque eval compare`.
func (e *env) evalCompareCmd() *cobra.Command {
	st := &evalCompareRun{}
	c := &cobra.Command{
		Use:   "compare RUN_A RUN_B ... [--dense LABEL] [--baseline METHOD|LABEL] --out DIR",
		Short: "Compare evaluation runs: per-persona scores, bootstrap intervals, recovered share, HTML report",
		Long: `Compare runs of eval run / eval rolebench (their folders or run.json files):
per metric, each run's mean and SD over personas and its per-persona means; the
difference of every run from the dense run (--dense, default the run whose method
is dense, else the first run) with a paired, persona-stratified bootstrap interval
(--resamples, --seed: the same seed gives the same interval); and, with
--baseline, the Persona-Pruner share of the dense model's drop recovered,
1 − drop_run / drop_baseline (drop = dense − score over the items both runs
scored, the same paired figure as the difference), where the baseline is the run
with that label or the run of that method at the same sparsity.

--pairwise also has the judge compare every run's answers with the dense run's,
question by question, in both orders (position swapping); the win rate counts a
tie as half.

Writes OUT/compare.json and OUT/report.html: a self-contained page with inline
SVG plots (score vs sparsity per method, per-persona bars, differences with
intervals) and the judge prompts, viewable offline.`,
		Example: `  masque eval compare runs/dense runs/pp-25 runs/pp-50 runs/llmp-25 runs/llmp-50 --baseline llm-pruner --out runs/compare`,
		Args:    cobra.MinimumNArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return e.runEvalCompare(cmd, args, st) },
	}
	fl := c.Flags()
	fl.StringVarP(&st.out, "out", "o", "", "output folder for compare.json and report.html (required)")
	fl.StringVar(&st.o.Metric, "metric", "", "headline metric of the plots (default: consistency if present)")
	fl.StringVar(&st.o.Dense, "dense", "", "label of the dense run (default: the run whose method is dense)")
	fl.StringVar(&st.o.Baseline, "baseline", "", "baseline for the recovered share: a run label, or a method whose run at the same sparsity is used")
	fl.IntVar(&st.o.Resamples, "resamples", 2000, "bootstrap resamples")
	fl.Uint64Var(&st.o.Seed, "seed", 1, "bootstrap seed")
	fl.Float64Var(&st.o.Level, "level", 0.95, "confidence level of the intervals")
	fl.BoolVar(&st.pairwise, "pairwise", false, "judge every run against the dense run pairwise, in both orders")
	fl.BoolVar(&st.asJSON, "json", false, "print compare.json instead of the table")
	st.jf.register(c)
	e.quietFlag(c)
	return c
}

// evalCompareRun holds the flags of evalCompareCmd.
type evalCompareRun struct {
	o                report.Options
	jf               evalJudgeFlags
	out              string
	pairwise, asJSON bool
}

func (e *env) runEvalCompare(cmd *cobra.Command, args []string, st *evalCompareRun) error {
	if st.out == "" {
		return usagef("--out is required")
	}
	cfg := report.Config{Runs: args, Options: st.o, Out: st.out, JudgeConcurrency: st.jf.concurrency}
	if st.pairwise {
		jd, _, err := st.jf.judge()
		if err != nil {
			return err
		}
		if jd == nil {
			return usagef("--pairwise needs --judge-url and --judge-model")
		}
		cfg.Judge, cfg.Progress = jd, e.stages("pairwise")
	}
	c, err := report.Run(cmd.Context(), cfg)
	var oe *report.OptionsError
	if errors.As(err, &oe) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if st.asJSON {
		return writeJSON(e.stdout, c)
	}
	evalCompareTable(e.stdout, c)
	fmt.Fprintf(e.stderr, "wrote %s and %s\n", filepath.Join(st.out, report.CompareFile), filepath.Join(st.out, report.ReportFile))
	return nil
}

func evalCompareTable(w io.Writer, c *report.Comparison) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	m := c.Options.Metric
	fmt.Fprintf(tw, "run\tmethod\tsparsity\t%s mean\tSD\tΔ vs %s\t%g%% interval\t\n", m, c.Reference, 100*c.Options.Level)
	for _, r := range c.Runs {
		sp := "—"
		if r.Sparsity != nil {
			sp = fmt.Sprintf("%.0f%%", 100*(*r.Sparsity))
		}
		a := r.Summary[m]
		diff, ci := "", ""
		for _, d := range c.Diffs {
			if d.B == r.Label && d.Metric == m {
				diff = evalFmt(d.Mean)
				ci = "[" + evalFmt(d.Lo) + ", " + evalFmt(d.Hi) + "]"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Label, r.Method, sp, evalFmt(a.Mean), evalFmt(a.SD), diff, ci)
	}
	tw.Flush()
	for _, r := range c.Recovered {
		if r.Metric == m {
			share := "—"
			if r.Share.Valid() {
				share = fmt.Sprintf("%.1f%%", 100*float64(r.Share))
			}
			fmt.Fprintf(w, "%s recovers %s of the dense model's drop relative to %s (%s)\n", r.Run, share, r.Baseline, m)
		}
	}
	for _, p := range c.Pairwise {
		rate := "—"
		if p.WinRateB.Valid() && !math.IsNaN(float64(p.WinRateB)) {
			rate = fmt.Sprintf("%.1f%%", 100*float64(p.WinRateB))
		}
		fmt.Fprintf(w, "pairwise: %s wins %s against %s (%d items, %d unreadable)\n", p.B, rate, p.A, p.Items, p.Invalid)
	}
	for _, wng := range c.Warnings {
		fmt.Fprintln(w, "warning:", wng)
	}
}
