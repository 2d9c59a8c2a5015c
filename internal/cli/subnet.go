package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/eval/mc"
	"github.com/masque-ai/masque/internal/textarg"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
	"github.com/masque-ai/masque/subnet"
)

// calibFlags select a calibration set.
type calibFlags struct {
	text, chat, persona string
	samples, maxTokens  int
	limit, genTokens    int
	temperature         float32
	seed                uint64
	includeSystem       bool
	save                string
}

func (f *calibFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.text, "calib-text", "", "calibration text file, one sample per line")
	fl.StringVar(&f.chat, "calib-chat", "", `calibration chat JSONL ({"messages":[...]} per line), rendered with the chat template`)
	fl.StringVar(&f.persona, "calib-persona", "", "persona description (or @FILE): the model answers seed questions in this persona")
	fl.IntVar(&f.samples, "calib-samples", 0, "persona: number of questions answered (0: each shipped seed question once)")
	fl.IntVar(&f.maxTokens, "calib-max-tokens", calib.DefaultMaxTokens, "truncate every sample at this many tokens")
	fl.IntVar(&f.limit, "calib-limit", 0, "use at most this many samples (0: all)")
	fl.IntVar(&f.genTokens, "calib-gen-tokens", 128, "persona: maximum tokens per answer")
	fl.Float32Var(&f.temperature, "calib-temperature", 0, "persona: sampling temperature (0: greedy)")
	fl.Uint64Var(&f.seed, "calib-seed", 0, "persona: sampling seed")
	fl.BoolVar(&f.includeSystem, "calib-include-system", false, "persona: keep the description as the system message of each sample")
	fl.StringVar(&f.save, "calib-save", "", "also write the calibration texts (e.g. the generated persona answers) to this file, one per line")
}

// skipWarner reports the rows of a chat file that are left out, as
// finetune does.
func skipWarner(e *env) func(chatdata.Problem) {
	skipped := 0
	return func(p chatdata.Problem) {
		skipped++
		if skipped <= 20 {
			fmt.Fprintf(e.stderr, "masque: skipping %v\n", p)
		} else if skipped == 21 {
			fmt.Fprintln(e.stderr, "masque: (further bad rows are skipped without a message)")
		}
	}
}

// source returns the calibration set the flags select (the shipped generic
// set when none is given).
func (f *calibFlags) source(warn func(chatdata.Problem)) (calib.Source, error) {
	src := calib.Source{Text: f.text, Chat: f.chat, Save: f.save, PersonaOptions: calib.PersonaOptions{
		Options: calib.Options{MaxTokens: f.maxTokens, Limit: f.limit, Warn: warn}, Samples: f.samples, GenTokens: f.genTokens,
		Temperature: f.temperature, Seed: f.seed, IncludeSystem: f.includeSystem}}
	if err := (calib.Source{Text: f.text, Chat: f.chat, Persona: f.persona}).Validate(); err != nil {
		return src, usagef("%v", err)
	}
	if f.persona != "" {
		desc, err := textarg.Read(f.persona)
		if err != nil {
			return src, fmt.Errorf("--calib-persona: %w", err)
		}
		src.Persona = desc
	}
	return src, nil
}

// logf prints a note or warning line on stderr.
func (e *env) logf(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }

func (e *env) statsCmd() *cobra.Command {
	var mf modelFlags
	var cf calibFlags
	var out, gramLayers string
	var gram, asJSON bool
	c := &cobra.Command{
		Use:   "stats --out DIR [calibration flags]",
		Short: "Collect activation statistics of every linear layer over a calibration set",
		Long: `Run a calibration set through the model and record, for the input of every
linear layer (q, k, v, o, gate, up, down of every block), the per-sample L2 norm
of each channel, the token-pooled mean and variance of the raw activations and,
with --gram, the Gram matrix XᵀX (for SparseGPT; memory: 8·d² bytes per input,
accumulated in float64; --gram-layers limits them to some layers, so a large
model can be covered a few layers per run).

The calibration set is a text file (--calib-text), a chat JSONL file
(--calib-chat), a persona description (--calib-persona) or, by default, the
small generic set shipped with masque. DIR receives stats.safetensors and
manifest.json (model fingerprint, calibration set, counts); masque subnet
--stats DIR reuses them.`,
		Example: `  masque stats --model ./Llama-3.2-1B-Instruct --calib-persona "A shy librarian who loves old maps." --out stats/librarian`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out is required")
			}
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			var layers map[int]bool
			if gram || gramLayers != "" {
				if layers, err = stats.ParseLayers(gramLayers, ck.Model.Config.Layers); err != nil {
					return usagef("--gram-layers: %v", err)
				}
			}
			src, err := cf.source(skipWarner(e))
			if err != nil {
				return err
			}
			st, set, err := subnet.CollectStats(cmd.Context(), subnet.StatsConfig{Model: ck.Model, ModelName: ck.Path, Calib: src,
				CalibModel: calib.ModelOf(ck), GramLayers: layers, Out: out, Progress: e.stages(""), Logf: e.logf})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, st.Manifest)
			}
			fmt.Fprintf(e.stdout, "statistics of %s over %s: %d samples, %d tokens → %s\n", ck.Path, set.Name, st.Manifest.Samples, st.Manifest.Tokens, out)
			return nil
		},
	}
	mf.register(c)
	cf.register(c)
	c.Flags().StringVar(&out, "out", "", "output folder")
	c.Flags().BoolVar(&gram, "gram", false, "also collect the Gram matrix XᵀX of every input (for SparseGPT)")
	c.Flags().StringVar(&gramLayers, "gram-layers", "", "collect Gram matrices only for these layers, e.g. 0-3,7 (implies --gram)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the manifest as JSON")
	e.quietFlag(c)
	return c
}

// patternFlags are the mask-shape flags shared by subnet and contrast.
type patternFlags struct {
	sparsity   string
	layerRho   string
	nm         string
	structured bool
	only       string
	gamma      float64
	workers    int
}

func (f *patternFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.sparsity, "sparsity", "0.5", "share of weights pruned per row (or of FFN channels); a comma-separated list runs each")
	fl.StringVar(&f.layerRho, "layer-sparsity", "", "comma-separated sparsity per layer (overrides --sparsity)")
	fl.StringVar(&f.nm, "nm", "", "N:M semi-structured pattern, e.g. 2:4 or 4:8 (replaces --sparsity)")
	fl.BoolVar(&f.structured, "structured", false, "prune whole FFN channels (rows of gate/up, columns of down)")
	fl.StringVar(&f.only, "only", "all", "which projections to mask: all, mlp or attn")
	fl.Float64Var(&f.gamma, "gamma", 0, "soft gate γ: pruned weights are scaled by γ instead of zeroed")
	fl.IntVar(&f.workers, "workers", 0, "worker goroutines (0: all cores)")
}

// options returns one Options per requested sparsity.
func (f *patternFlags) options() ([]subnet.Options, error) {
	opts, err := subnet.PatternSpec{Sparsity: f.sparsity, LayerSparsity: f.layerRho, NM: f.nm, Structured: f.structured,
		Only: f.only, Gamma: f.gamma, Workers: f.workers}.Patterns()
	var se *subnet.SpecError
	if errors.As(err, &se) {
		return nil, usagef("--%s: %v", se.Field, se.Err)
	}
	return opts, err
}

// evalFlags run a multiple-choice persona test on each mask.
type evalFlags struct {
	tests, persona, format string
	limit                  int
}

func (f *evalFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.tests, "eval", "", "multiple-choice persona test (.csv or .jsonl) run with every mask")
	fl.StringVar(&f.persona, "eval-system", "", "system prompt for --eval (or @FILE; default none: the mask alone)")
	fl.StringVar(&f.format, "eval-format", "", "prompt format for --eval: chat or plain (default: chat when the model has a chat template)")
	fl.IntVar(&f.limit, "eval-limit", 0, "evaluate only the first N items")
}

// prompterFor returns the prompter of --eval-format or --mc-format.
func prompterFor(ck *checkpoint.Checkpoint, format string) (mc.Prompter, error) {
	p, err := mc.PrompterFor(ck, format)
	if errors.Is(err, mc.ErrFormat) {
		return nil, usageError{err}
	}
	return p, err
}

// test returns the test the flags select (nil when none).
func (f *evalFlags) test(ck *checkpoint.Checkpoint) (*subnet.Test, error) {
	if f.tests == "" {
		return nil, nil
	}
	p, err := prompterFor(ck, f.format)
	if err != nil {
		return nil, err
	}
	sys, err := textarg.Read(f.persona)
	if err != nil {
		return nil, fmt.Errorf("--eval-system: %w", err)
	}
	return &subnet.Test{Path: f.tests, Prompter: p, System: sys, Limit: f.limit}, nil
}

// sweepFlags are the flags subnet and subnet contrast share.
type sweepFlags struct {
	mf modelFlags
	cf calibFlags
	pf patternFlags
	ef evalFlags
}

func (f *sweepFlags) register(c *cobra.Command) {
	f.mf.register(c)
	f.cf.register(c)
	f.pf.register(c)
	f.ef.register(c)
}

// open returns the calibration source, the model (to be closed) and the
// --eval test (nil without one).
func (f *sweepFlags) open(e *env) (calib.Source, *checkpoint.Checkpoint, *subnet.Test, error) {
	src, err := f.cf.source(skipWarner(e))
	if err != nil {
		return src, nil, nil, err
	}
	ck, err := f.mf.open()
	if err != nil {
		return src, nil, nil, err
	}
	test, err := f.ef.test(ck)
	if err != nil {
		ck.Close()
		return src, nil, nil, err
	}
	return src, ck, test, nil
}

func (e *env) subnetCmd() *cobra.Command {
	st := &subnetRun{}
	c := &cobra.Command{
		Use:   "subnet --method magnitude|wanda|sparsegpt --sparsity 0.5 [--nm 2:4] --out MASK",
		Short: "Find a persona subnetwork: a training-free mask from activation statistics",
		Long: `Build a mask over the model's linear layers from activation statistics
(METHODS §2): magnitude (|W|), Wanda (|W|·A, A the mean per-sample channel
norm on the calibration set) or SparseGPT (column-wise OBS pruning with weight
updates from the inverse Hessian of XᵀX).

Every output row keeps floor(in·(1−ρ)) weights; --nm keeps N of every M
consecutive inputs; --structured removes whole FFN channels. --only restricts
the mask to MLP or attention projections; --layer-sparsity sets ρ per layer.

Statistics come from --stats DIR (see masque stats) or are collected from the
calibration flags (default: the shipped generic set). SparseGPT without
--stats runs layer by layer, each block seeing the pruned blocks before it;
its updated weights are written with --model-out.

With a list of sparsities (--sparsity 0.1,0.3,0.5) a mask is written for each
(-s0.10 inserted before the extension), and --eval runs a multiple-choice
persona test with each; --report writes an HTML report (density per layer and
module, accuracy against sparsity).`,
		Example: `  masque subnet --method wanda --sparsity 0.5 --calib-persona "An outgoing tour guide" --out guide.mask.safetensors
  masque subnet --method sparsegpt --nm 2:4 --stats stats/generic --out sgpt.mask.safetensors --model-out ./pruned
  masque subnet --method wanda --sparsity 0.1,0.3,0.5 --eval testdata/persona-evals/extraversion.jsonl --report report.html --out m.safetensors`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runSubnet(cmd, st) },
	}
	st.register(c)
	fl := c.Flags()
	fl.StringVar(&st.method, "method", "wanda", "scorer: magnitude, wanda or sparsegpt")
	fl.IntVar(&st.sg.BlockSize, "sparsegpt-block", 0, "sparsegpt: columns per lazy-update block (0: 128); recorded in the mask")
	fl.Float64Var(&st.sg.Damp, "sparsegpt-damp", 0, "sparsegpt: relative dampening λ, H += λ·mean(diag H)·I (0: 0.01); recorded in the mask")
	fl.BoolVar(&st.sg.WholeBlock, "sparsegpt-whole-block", false, "sparsegpt: choose each block's pruned weights with one threshold over the whole block, as in the paper (rows prune different counts), instead of the same count per row")
	fl.StringVar(&st.statsDir, "stats", "", "use statistics saved by masque stats instead of collecting them (without --model, on the model they were collected on)")
	fl.StringVar(&st.out, "out", "", "mask file to write (.safetensors)")
	fl.StringVar(&st.modelOut, "model-out", "", "also write the masked model (with SparseGPT's updated weights) as a Hugging Face folder")
	fl.StringVar(&st.report, "report", "", "write an HTML report")
	fl.BoolVar(&st.force, "force", false, "overwrite existing outputs")
	fl.BoolVar(&st.asJSON, "json", false, "print JSON")
	c.AddCommand(e.contrastCmd(), e.studyCmd())
	e.quietFlag(c)
	return c
}

// subnetRun holds the flags of subnetCmd.
type subnetRun struct {
	sweepFlags
	method, statsDir, out, modelOut, report string
	force, asJSON                           bool
	sg                                      subnet.Options // SparseGPT's Damp, BlockSize and WholeBlock
}

func (e *env) runSubnet(cmd *cobra.Command, st *subnetRun) error {
	meth, err := subnet.ParseMethod(st.method)
	if err != nil {
		return usagef("--method: %v", err)
	}
	opts, err := st.pf.options()
	if err != nil {
		return err
	}
	for i := range opts {
		opts[i].Damp, opts[i].BlockSize, opts[i].WholeBlock = st.sg.Damp, st.sg.BlockSize, st.sg.WholeBlock
	}
	if st.out == "" {
		return usagef("--out is required")
	}
	if meth == subnet.SparseGPT && st.pf.structured {
		return usagef("SparseGPT does not support --structured")
	}
	st.mf.basedOn(stats.ReadBase, st.statsDir)
	src, ck, test, err := st.open(e)
	if err != nil {
		return err
	}
	defer ck.Close()
	runs, err := subnet.Sweep(cmd.Context(), subnet.SweepConfig{Model: ck.Model, ModelName: ck.Path, Method: meth, Patterns: opts,
		StatsDir: st.statsDir, Calib: src, CalibModel: calib.ModelOf(ck), Out: st.out, ModelOut: st.modelOut, Files: ck.ExtraFiles(st.mf.tokenizer),
		Overwrite: st.force, Test: test, Report: st.report, Progress: e.stages(""), Logf: e.logf})
	if err != nil {
		return err
	}
	if st.asJSON {
		return writeJSON(e.stdout, map[string]any{"method": meth, "runs": runs, "report": st.report})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "sparsity\tkept\taccuracy\tmask")
	for _, r := range runs {
		acc := "-"
		if v, ok := r.Metrics["accuracy"]; ok {
			acc = fmt.Sprintf("%.3f", v)
		}
		fmt.Fprintf(tw, "%.3f\t%.4f\t%s\t%s\n", r.Sparsity, r.Density, acc, r.Mask)
	}
	tw.Flush()
	if st.report != "" {
		fmt.Fprintf(e.stdout, "report: %s\n", st.report)
	}
	return nil
}

func (e *env) contrastCmd() *cobra.Command {
	st := &contrastRun{}
	c := &cobra.Command{
		Use:   "contrast --pos SPEC --neg SPEC --out-pos MASK --out-neg MASK",
		Short: "Contrastive masks for an opposing persona pair (e.g. extrovert/introvert)",
		Long: `Build the masks of two opposing personas from their activation statistics
(METHODS §2). Variant wanda (default): z = (μ+ − μ−)/sqrt(v+ + v− + 1e-6) from the
per-sample channel norms; p+ keeps the top k of |W|·φ(z) per row, p− of |W|·φ(−z),
φ = relu or softplus(·/2). Variant pooled: score = |μ+ − μ−|/sqrt(v+ + v− + 1e-6)
from token-pooled raw activations; p+ keeps the top k of |W|·score, p− the next k.

Ties under --phi relu: relu(z) is 0 for every channel with z ≤ 0, usually far
more entries than a row's k can separate, so masque breaks those ties by the
score before the relu: entries are ranked by |W|·z (channels with no evidence,
z = 0, before those that favour the other persona), then by |W|·Ā with Ā the
mean of both sides' norms. Since softplus(z/2) also increases with z, --phi relu
and --phi softplus rank by the same evidence and in practice give nearly the
same masks; the paper's relu leaves the zero scores unordered.

SPEC is a statistics folder (masque stats), a text file (one sample per line),
a chat .jsonl file, persona:DESCRIPTION (or persona:@FILE), or generic.
With --eval the p+ mask is scored on the test and the p− mask on the opposing side.`,
		Example: `  masque subnet contrast --pos persona:"An outgoing, talkative party host" --neg persona:"A quiet, reserved bookworm" \
      --out-pos extro.safetensors --out-neg intro.safetensors --eval testdata/persona-evals/extraversion.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runContrast(cmd, st) },
	}
	st.register(c)
	fl := c.Flags()
	fl.StringVar(&st.pos, "pos", "", "positive persona: statistics folder, text/.jsonl file, persona:TEXT or generic")
	fl.StringVar(&st.neg, "neg", "", "opposing persona (same forms as --pos)")
	fl.StringVar(&st.outPos, "out-pos", "", "mask file for the positive persona")
	fl.StringVar(&st.outNeg, "out-neg", "", "mask file for the opposing persona")
	fl.StringVar(&st.variant, "variant", "wanda", "wanda (per-sample norm z-scores) or pooled (pooled raw activations)")
	fl.StringVar(&st.phi, "phi", "relu", "φ for the wanda variant: relu or softplus (relu's zero-score ties are ranked by |W|·z, see above)")
	fl.StringVar(&st.report, "report", "", "write an HTML report")
	fl.BoolVar(&st.force, "force", false, "overwrite existing outputs")
	fl.BoolVar(&st.asJSON, "json", false, "print JSON")
	e.quietFlag(c)
	return c
}

// contrastRun holds the flags of contrastCmd.
type contrastRun struct {
	sweepFlags
	pos, neg, outPos, outNeg, variant, phi, report string
	force, asJSON                                  bool
}

func (e *env) runContrast(cmd *cobra.Command, st *contrastRun) error {
	v, err := subnet.ParseVariant(st.variant)
	if err != nil {
		return usagef("--variant: %v", err)
	}
	ph, err := subnet.ParsePhi(st.phi)
	if err != nil {
		return usagef("--phi: %v", err)
	}
	opts, err := st.pf.options()
	if err != nil {
		return err
	}
	if st.outPos == "" || st.outNeg == "" {
		return usagef("--out-pos and --out-neg are required")
	}
	if st.pos == "" || st.neg == "" {
		return usagef("--pos and --neg are required")
	}
	st.mf.basedOn(stats.SpecBase, st.pos)
	st.mf.basedOn(stats.SpecBase, st.neg)
	src, ck, test, err := st.open(e)
	if err != nil {
		return err
	}
	defer ck.Close()
	rows, err := subnet.RunContrast(cmd.Context(), subnet.ContrastConfig{Model: ck.Model, ModelName: ck.Path, Pos: st.pos, Neg: st.neg,
		Calib: src, CalibModel: calib.ModelOf(ck), Variant: v, Phi: ph, Patterns: opts, OutPos: st.outPos, OutNeg: st.outNeg,
		Overwrite: st.force, Test: test, Report: st.report, Progress: e.stages(""), Logf: e.logf})
	if err != nil {
		return err
	}
	if st.asJSON {
		return writeJSON(e.stdout, map[string]any{"variant": v, "phi": ph, "runs": rows, "report": st.report})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "sparsity\tdiffer\tacc p+\tacc p−\tp+ mask\tp− mask")
	for _, r := range rows {
		a, b := "-", "-"
		if r.Metrics != nil {
			a, b = fmt.Sprintf("%.3f", r.Metrics["accuracy (p+)"]), fmt.Sprintf("%.3f", r.Metrics["accuracy (p− opposing)"])
		}
		fmt.Fprintf(tw, "%.3f\t%.4f\t%s\t%s\t%s\t%s\n", r.Sparsity, r.DiffShare, a, b, r.Pos, r.Neg)
	}
	return tw.Flush()
}

func (e *env) maskCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "mask apply|diff|show",
		Short: "Apply, compare and inspect subnetwork masks",
		Long:  "Mask files are bit-packed safetensors files tied to one model by its fingerprint (see mask/FORMAT.md).",
	}
	c.AddCommand(e.maskApplyCmd(), e.maskDiffCmd(), e.maskShowCmd())
	return c
}

func (e *env) maskApplyCmd() *cobra.Command {
	var mf modelFlags
	var maskPath, out string
	var force bool
	c := &cobra.Command{
		Use:   "apply --mask MASK --out DIR [--model BASE]",
		Short: "Write the masked model as a Hugging Face folder",
		Long: `Write W ⊙ M (or W ⊙ (M + γ(1−M)) with a soft gate) for every masked matrix of
the model the mask was made for (without --model, the base the mask records).
A Hugging Face base keeps its files, tensor
order, types and tokenizer; other bases (llama2.c, the built-in model) are
written as a LlamaForCausalLM folder with their tokenizer file. The folder
appears atomically. A mask made for another model is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if maskPath == "" || out == "" {
				return usagef("--mask and --out are required")
			}
			mk, err := mask.Load(maskPath)
			if err != nil {
				return err
			}
			mf.basedOn(mask.ReadBase, maskPath)
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			if err := mask.Apply(ck.Model, mk, out, mask.ApplyOptions{Overwrite: force, Files: ck.ExtraFiles(mf.tokenizer), Progress: e.progress("writing")}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "masked model (kept %.2f%% of linear weights) → %s\n", 100*mk.Density(), out)
			return nil
		},
	}
	mf.register(c)
	c.Flags().StringVar(&maskPath, "mask", "", "mask file (without --model, applied to the base it records)")
	c.Flags().StringVar(&out, "out", "", "output folder")
	c.Flags().BoolVar(&force, "force", false, "replace an existing output folder")
	e.quietFlag(c)
	return c
}

func (e *env) maskDiffCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "diff MASK_A MASK_B",
		Short: "Share of entries that differ between two masks, per layer and module",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := mask.Load(args[0])
			if err != nil {
				return err
			}
			b, err := mask.Load(args[1])
			if err != nil {
				return err
			}
			d, err := mask.Diff(a, b)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, d)
			}
			fmt.Fprintf(e.stdout, "entries differing: %d of %d (%.4f%%); kept %.4f vs %.4f\n\n", d.Total.Differ, d.Total.Entries, 100*d.Total.Share, d.DensityA, d.DensityB)
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "module\tdiffer\tshare\t")
			for p := model.Proj(0); p < model.NumProj; p++ {
				s := d.PerProj[p.String()]
				fmt.Fprintf(tw, "%s\t%d\t%.4f\t\n", p, s.Differ, s.Share)
			}
			fmt.Fprintln(tw, "\t\t\t")
			fmt.Fprintln(tw, "layer\tdiffer\tshare\t")
			for l, s := range d.PerLayer {
				fmt.Fprintf(tw, "%d\t%d\t%.4f\t\n", l, s.Differ, s.Share)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (e *env) maskShowCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show MASK",
		Short: "Print a mask's metadata and its density per layer and module",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mk, err := mask.Load(args[0])
			if err != nil {
				return err
			}
			run := subnet.RunFromMask(filepath.Base(args[0]), mk.Info.Sparsity, mk)
			if asJSON {
				return writeJSON(e.stdout, map[string]any{"fingerprint": mk.Fingerprint, "layers": mk.Layers, "gamma": mk.Gamma,
					"info": mk.Info, "density": mk.Density(), "per_layer": run.Density, "modules": projNames()})
			}
			fmt.Fprintf(e.stdout, "mask         %s\nfingerprint  %s\nmethod       %s\ngranularity  %s\ntargets      %s\nsparsity     %g\ngamma        %g\n",
				args[0], mk.Fingerprint, mk.Info.Method, mk.Info.Granularity, mk.Info.Targets, mk.Info.Sparsity, mk.Gamma)
			if mk.Info.Calibration != "" {
				fmt.Fprintf(e.stdout, "calibration  %s\n", mk.Info.Calibration)
			}
			if mk.Info.Model != "" {
				fmt.Fprintf(e.stdout, "made on      %s\n", mk.Info.Model)
			}
			for k, v := range mk.Info.Extra {
				fmt.Fprintf(e.stdout, "%-12s %s\n", k, v)
			}
			fmt.Fprintf(e.stdout, "kept         %.4f of %d linear weights\n\n", mk.Density(), mk.Entries())
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprint(tw, "layer\t")
			for p := model.Proj(0); p < model.NumProj; p++ {
				fmt.Fprintf(tw, "%s\t", p)
			}
			fmt.Fprintln(tw)
			for l, d := range run.Density {
				fmt.Fprintf(tw, "%d\t", l)
				for _, v := range d {
					fmt.Fprintf(tw, "%.3f\t", v)
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func projNames() []string {
	var out []string
	for p := model.Proj(0); p < model.NumProj; p++ {
		out = append(out, p.String())
	}
	return out
}
