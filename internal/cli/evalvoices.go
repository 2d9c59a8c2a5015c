package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/eval/voices"
	"github.com/masque-ai/masque/internal/textarg"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/mask"
)

// evalVoicesCmd is `masque eval voices`.
func (e *env) evalVoicesCmd() *cobra.Command {
	st := &evalVoicesRun{}
	c := &cobra.Command{
		Use:   "voices [--corpus DIR] [--model M] [--mask MASK] [--out DIR]",
		Short: "Persona fidelity on a voices corpus: does the model speak as the persona it is given?",
		Long: `Measure persona fidelity on a voices corpus (masque corpus voices --out DIR;
without --corpus, the evaluation kit built into builtin:voices: the corpus's
personas, held-out splits and voice classifier):

  classifier   a naive Bayes voice classifier over word and character n-grams,
               trained on the train split (DIR/classifier.bin; trained and saved
               there when missing); its accuracy on the held-out test passages
               is the ceiling of the measure
  fidelity     the model answers each voice's first --limit test prompts (the
               row's persona system prompt and user prompt, in the model's chat
               template) greedily and at --temperature (seeded); fidelity is the
               share classified as the persona's voice; confusion matrices show
               which persona leaks into which
  conditioning the perplexity of each voice's test answers (assistant tokens)
               under its own persona against the mean under the other personas
  quality      test perplexity per voice; distinct-1/2 and repetition rate

--system replaces the persona system prompt of every generation (--system ""
drops it): with --mask, whether a persona mask carries the voice by itself.

--out DIR writes report.json, report.html (confusion heat maps, per-voice bars)
and run.json, which masque eval compare reads; an interrupted run resumes from
the caches there.`,
		Example: `  masque eval voices --out runs/voices-dense
  masque eval voices --corpus corpus/voices --model runs/voices-base --json
  masque eval voices --corpus corpus/voices --mask kjv.mask.safetensors --system "" --out runs/voices-kjv-mask
  masque eval compare runs/voices-dense runs/voices-kjv-mask --metric fidelity --out runs/voices-compare`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runEvalVoices(cmd, st) },
	}
	st.mf.register(c)
	fl := c.Flags()
	fl.StringVar(&st.cfg.Corpus, "corpus", "", "voices corpus folder (masque corpus voices --out DIR; default: the evaluation kit built into builtin:voices)")
	fl.StringVar(&st.cfg.ClassifierPath, "classifier", "", "voice classifier file (default: CORPUS/classifier.bin, trained there when missing)")
	fl.StringSliceVar(&st.cfg.Voices, "voices", nil, "evaluate only these voices (comma-separated; default: all)")
	fl.IntVar(&st.cfg.Limit, "limit", voices.DefaultLimit, "test prompts per voice")
	fl.IntVarP(&st.cfg.MaxTokens, "max-tokens", "n", voices.DefaultMaxTokens, "longest answer in tokens")
	fl.Float32VarP(&st.cfg.Temperature, "temperature", "t", voices.DefaultTemperature, "temperature of the sampled answers (the other set is greedy)")
	fl.Uint64Var(&st.cfg.Seed, "seed", 0, "sampling seed")
	fl.IntVar(&st.cfg.PPLMaxTokens, "ppl-max-tokens", 0, "longest scored conversation in tokens (0: the model's context)")
	fl.StringVar(&st.system, "system", "", "replace every persona system prompt with this text (or @FILE; \"\": no system prompt)")
	fl.StringVar(&st.maskPath, "mask", "", "evaluate the model with this weight mask applied in memory (without --model, the base it records)")
	fl.StringVar(&st.cfg.Label, "label", "", "name of the run in comparisons (default: the --out folder's name)")
	fl.StringVar(&st.method, "method", "", "how the model was made, for eval compare (default: dense, or the mask's method)")
	fl.Float64Var(&st.sparsity, "sparsity", 0, "share of weights removed, for eval compare (default: the mask's, 0 for a dense model)")
	fl.IntVar(&st.threads, "threads", 0, "kernel threads (default: one per core)")
	fl.StringVarP(&st.cfg.Out, "out", "o", "", "output folder: report.json, report.html, run.json and resumable caches")
	fl.BoolVar(&st.asJSON, "json", false, "print the report (without the answers) as JSON instead of a table")
	c.AddCommand(e.evalVoicesClassifierCmd())
	e.quietFlag(c)
	return c
}

// evalVoicesRun holds the flags of evalVoicesCmd.
type evalVoicesRun struct {
	mf                       modelFlags
	cfg                      voices.Config
	system, maskPath, method string
	sparsity                 float64
	threads                  int
	asJSON                   bool
}

func (e *env) runEvalVoices(cmd *cobra.Command, st *evalVoicesRun) error {
	if cmd.Flags().Changed("system") {
		s, err := textarg.Read(st.system)
		if err != nil {
			return fmt.Errorf("--system: %w", err)
		}
		st.cfg.System = &s
	}
	if cmd.Flags().Changed("sparsity") {
		if st.sparsity < 0 || st.sparsity > 1 {
			return usagef("--sparsity must be in [0,1]")
		}
		st.cfg.Sparsity = &st.sparsity
	}
	if st.threads > 0 {
		kernels.SetThreads(st.threads)
	}
	st.mf.def = voices.DefaultModel // unless --model, or the base --mask records
	st.mf.basedOn(mask.ReadBase, st.maskPath)
	ck, err := st.mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	st.cfg.Checkpoint, st.cfg.Method, st.cfg.Mask = ck, st.method, st.maskPath
	st.cfg.Progress = e.stages("")
	st.cfg.Logf = func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }
	rep, err := voices.Run(cmd.Context(), st.cfg)
	if err != nil {
		return err
	}
	if st.asJSON {
		summary := *rep
		summary.Items = nil
		return writeJSON(e.stdout, summary)
	}
	evalVoicesTable(e.stdout, rep)
	if st.cfg.Out != "" {
		fmt.Fprintf(e.stderr, "wrote %s, %s and %s\n", filepath.Join(st.cfg.Out, voices.ReportFile), filepath.Join(st.cfg.Out, voices.HTMLFile), filepath.Join(st.cfg.Out, "run.json"))
	}
	return nil
}

func evalVoicesTable(w io.Writer, r *voices.Report) {
	met := func(k string) string {
		if r.Targets.Met[k] {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "classifier accuracy on held-out passages: %.1f%% (target ≥ %.0f%%: %s)\n", 100*r.ClassifierAccuracy, 100*r.Targets.ClassifierAccuracy, met("classifier_accuracy"))
	fmt.Fprintf(w, "mean fidelity (greedy): %s (target ≥ %.0f%%: %s); lowest voice %s (target ≥ %.0f%%: %s); T=%g: %s\n",
		voicesPct(r.MeanFidelity), 100*r.Targets.MeanFidelity, met("mean_fidelity"), voicesPct(r.MinFidelity), 100*r.Targets.MinFidelity, met("min_fidelity"),
		r.Settings.Temperature, voicesPct(r.MeanFidelityT08))
	fmt.Fprintf(w, "worst conditioning ratio: %s (target ≤ %g: %s)\n", evalFmt(r.MaxConditioningRatio), r.Targets.ConditioningRatio, met("conditioning_ratio"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "voice\tprompts\tfidelity\tT=0.8\tppl\tppl other\tratio\tdistinct-2\trepetition\tclassifier\t")
	for _, v := range r.VoiceOrder {
		x := r.Voices[v]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f%%\t\n", v, x.Prompts, voicesPct(x.Fidelity), voicesPct(x.FidelityT08),
			evalFmt(x.PPL), evalFmt(x.PPLOtherPersonas), evalFmt(x.ConditioningRatio), evalFmt(x.Distinct2), evalFmt(x.Repetition), 100*x.ClassifierAccuracy)
	}
	tw.Flush()
}

func voicesPct(v voices.Num) string {
	if !v.Valid() {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(v))
}

// evalVoicesClassifierCmd is `masque eval voices classifier`.
func (e *env) evalVoicesClassifierCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "classifier",
		Short: "The voice classifier of eval voices",
	}
	var corpus, out string
	o := voices.TrainOptions{Features: voices.DefaultFeatures}
	words := []int{o.Features.WordMin, o.Features.WordMax}
	chars := []int{o.Features.CharMin, o.Features.CharMax}
	var asJSON bool
	train := &cobra.Command{
		Use:   "train --corpus DIR [--out FILE]",
		Short: "Train the voice classifier on the corpus's train split and report its held-out accuracy",
		Long: `Train the naive Bayes voice classifier of eval voices on the train split of
every voice (field text), save it (default CORPUS/classifier.bin, gzip'd,
versioned) and report its accuracy on the held-out test passages. Training is
deterministic: the same corpus and options give the same file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if corpus == "" {
				return usagef("--corpus is required")
			}
			if len(words) != 2 || len(chars) != 2 {
				return usagef("--word-ngrams and --char-ngrams take MIN,MAX")
			}
			o.Features.WordMin, o.Features.WordMax = words[0], words[1]
			o.Features.CharMin, o.Features.CharMax = chars[0], chars[1]
			run, err := voices.TrainClassifierFile(corpus, out, o)
			if err != nil {
				return err
			}
			cl, acc := run.Classifier, run.Test
			if asJSON {
				return writeJSON(e.stdout, map[string]any{"classifier": run.Path, "bytes": run.Bytes, "features": cl.Features,
					"selected_features": cl.NumFeatures(), "alpha": cl.Alpha, "train": cl.Info, "test": acc})
			}
			fmt.Fprintf(e.stdout, "wrote %s (%d bytes, %d features, alpha %g)\n", run.Path, run.Bytes, cl.NumFeatures(), cl.Alpha)
			fmt.Fprintf(e.stdout, "held-out accuracy: %.2f%% of %d test passages (macro %.2f%%)\n", 100*acc.Accuracy, acc.Texts, 100*acc.Macro)
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "voice\ttrain texts\ttest texts\taccuracy\t")
			for _, v := range run.Voices {
				a := acc.PerVoice[v]
				fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f%%\t\n", v, cl.Info.Texts[v], a.Texts, 100*a.Accuracy)
			}
			return tw.Flush()
		},
	}
	fl := train.Flags()
	fl.StringVar(&corpus, "corpus", "", "voices corpus folder")
	fl.StringVarP(&out, "out", "o", "", "classifier file (default: CORPUS/classifier.bin)")
	fl.IntVar(&o.MaxFeatures, "max-features", voices.DefaultMaxFeatures, "keep this many most frequent hashed features")
	fl.Float64Var(&o.Alpha, "alpha", voices.DefaultAlpha, "additive smoothing")
	fl.IntVar(&o.Features.Buckets, "buckets", voices.DefaultFeatures.Buckets, "hash space (a power of two)")
	fl.IntSliceVar(&words, "word-ngrams", words, "word n-gram lengths MIN,MAX (0,0: none)")
	fl.IntSliceVar(&chars, "char-ngrams", chars, "character n-gram lengths MIN,MAX (0,0: none)")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	c.AddCommand(train)
	return c
}
