// Package cli implements the masque command line. Each subcommand lives in its
// own file; Main runs one with the given arguments and streams, so tests can
// call it in-process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
)

// Main runs the masque CLI and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// SIGTERM (systemd, Docker, Kubernetes) ends work as Ctrl-C does: the
	// server drains, long jobs write their checkpoint.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return mainContext(ctx, args, stdin, stdout, stderr)
}

// mainContext is Main under ctx: cancelling it ends the command as a
// signal does (the tests stop servers so).
func mainContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Say so when a write removes what an interrupted one left behind.
	atomicfile.SetReporter(func(s atomicfile.Stale) {
		fmt.Fprintf(stderr, "masque: removed %s (%.1f MiB), left by a write interrupted at %s\n",
			s.Path, float64(s.Bytes)/(1<<20), s.Modified.Format("2006-01-02 15:04"))
	})
	defer atomicfile.SetReporter(nil)
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "masque:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// env carries the streams every command writes to.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	quiet          bool // --quiet: no progress display
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "masque",
		Short: "Sculpt and serve persona-consistent role-play models on CPU",
		Long: `masque loads Llama-family checkpoints (Hugging Face folders, GGUF, llama2.c),
runs them on CPU with its own kernels, sculpts persona models out of them and
serves them through an OpenAI-compatible API.

With no --model, commands use the built-in default model, builtin:voices (builtin:stories260K
is the small llama2.c model, by name).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		e.generateCmd(), e.chatCmd(), e.tokenizeCmd(), e.logitsCmd(), e.templateCmd(), e.inspectCmd(),
		e.benchCmd(), e.randomCmd(), e.convertCmd(false), e.convertCmd(true),
		e.statsCmd(), e.subnetCmd(), e.maskCmd(), e.evalCmd(), e.finetuneCmd(), e.synthCmd(),
		e.serveCmd(), e.loadtestCmd(), e.tokenizerCmd(), e.pretrainCmd(), e.corpusCmd(), e.styleCmd(), e.embedCmd(), e.sculptCmd(),
		e.pullCmd(), e.listCmd(), e.rmCmd(),
	)
	return root
}

// modelFlags are the flags every model-using command shares.
type modelFlags struct {
	model     string
	tokenizer string
	lora      string
	withLoRA  bool
	// withMask adds --mask: a weight mask applied per sequence over the
	// model (see open and run).
	withMask bool
	mask     string
	masked   *model.Model // the view open makes for --mask, or nil
	// withCache adds --cache-type-k and --cache-type-v: the KV cache types
	// open sets on the model.
	withCache      bool
	cacheK, cacheV string

	cmd  *cobra.Command                      // where notes go (its stderr)
	from []func() ([]checkpoint.Base, error) // bases recorded by the command's artifacts
	def  string                              // the model when neither --model nor an artifact names one ("": checkpoint.DefaultModel)
}

// basedOn says that the command uses the artifact at path (a mask file, a
// statistics folder, a sculpt keep file; nothing when path is empty),
// whose recorded base model, read by read (mask.ReadBase, stats.ReadBase,
// …), is opened when --model is not given (checkpoint.ChooseModel).
func (f *modelFlags) basedOn(read func(string) (checkpoint.Base, error), path string) {
	if path == "" {
		return
	}
	f.from = append(f.from, func() ([]checkpoint.Base, error) {
		b, err := read(path)
		return []checkpoint.Base{b}, err
	})
}

// choose returns the model to open: --model, or the base the command's
// artifacts (and --lora) record, with a note on stderr, or "" (the default
// model). recorded is the file that named the base.
func (f *modelFlags) choose() (model, recorded string, err error) {
	var bases []checkpoint.Base
	if f.model == "" {
		from := f.from
		if f.lora != "" {
			from = append(from, func() ([]checkpoint.Base, error) {
				b, err := lora.ReadBase(f.lora)
				return []checkpoint.Base{b}, err
			})
		}
		for _, read := range from {
			bs, err := read()
			if err != nil {
				return "", "", err
			}
			bases = append(bases, bs...)
		}
	}
	model, note, err := checkpoint.ChooseModel(f.model, bases...)
	if err != nil || note == "" {
		if model == "" {
			model = f.def
		}
		return model, "", err
	}
	fmt.Fprintln(f.stderr(), "masque:", note)
	for _, b := range bases {
		if b.Ref == model {
			return model, b.File, nil
		}
	}
	return model, "", nil
}

func (f *modelFlags) stderr() io.Writer {
	if f.cmd != nil {
		return f.cmd.ErrOrStderr()
	}
	return os.Stderr
}

// warn prints a warning (nothing when w is empty).
func (f *modelFlags) warn(w string) {
	if w != "" {
		fmt.Fprintln(f.stderr(), "masque: warning:", w)
	}
}

func (f *modelFlags) register(c *cobra.Command) {
	f.cmd = c
	c.Flags().StringVarP(&f.model, "model", "m", "", "model: a Hugging Face folder, a .gguf file, a llama2.c .bin, or a hub id org/name[@rev][:QUANT] fetched by masque pull (default: the base that the given mask, LoRA adapter, statistics or sculpt run records, else builtin:voices; builtin:stories260K by name)")
	c.Flags().StringVar(&f.tokenizer, "tokenizer", "", "tokenizer file, for llama2.c checkpoints (tokenizer.bin) or to override the model's")
	if f.withLoRA {
		c.Flags().StringVar(&f.lora, "lora", "", "LoRA adapter folder (PEFT adapter_model.safetensors + adapter_config.json) merged into the model (without --model, into the base its base_model_name_or_path records)")
	}
	if f.withMask {
		c.Flags().StringVar(&f.mask, "mask", "", "weight mask (a .safetensors file written by masque subnet or sculpt) applied per sequence over the model, as serve applies a persona's (without --model, over the base it records)")
	}
	if f.withCache {
		names := strings.Join(model.CacheTypeNames, ", ")
		c.Flags().StringVar(&f.cacheK, "cache-type-k", "f32", "KV cache type of the keys, as llama.cpp's: "+names)
		c.Flags().StringVar(&f.cacheV, "cache-type-v", "f32", "KV cache type of the values: "+names)
	}
}

// cacheType is the KV cache type the flags ask for (F32 without withCache).
func (f *modelFlags) cacheType() (model.CacheType, error) {
	if !f.withCache {
		return model.CacheType{}, nil
	}
	ct, err := model.ParseCacheType(f.cacheK, f.cacheV)
	if err != nil {
		return ct, usagef("--cache-type-k/--cache-type-v: %v", err)
	}
	return ct, nil
}

// open opens the model the flags name (see choose), with its KV cache
// type set and the --lora adapter merged into it. With --mask, the mask and
// the adapter are not merged: both are checked against the model
// (mask.Compat, lora.Adapter.Compat; their warnings are printed) and
// applied per sequence by the view that run returns, as serve applies a
// persona's (the adapter's correction added to the masked projection).
func (f *modelFlags) open() (*checkpoint.Checkpoint, error) {
	ct, err := f.cacheType()
	if err != nil {
		return nil, err
	}
	f.basedOn(mask.ReadBase, f.mask)
	name, recorded, err := f.choose()
	if err != nil {
		return nil, err
	}
	ck, err := checkpoint.Open(name, checkpoint.Options{Tokenizer: f.tokenizer})
	if err != nil && recorded != "" {
		return nil, fmt.Errorf("%w (the base recorded in %s; pass --model to use another)", err, recorded)
	}
	if err != nil {
		return ck, err
	}
	err = ck.Model.SetCacheType(ct)
	if err == nil {
		err = f.apply(ck.Model)
	}
	if err != nil {
		ck.Close()
		return nil, err
	}
	return ck, nil
}

// apply checks --lora and --mask against m and applies them (see open).
func (f *modelFlags) apply(m *model.Model) error {
	var a *lora.Adapter
	if f.lora != "" {
		var err error
		if a, err = lora.Load(f.lora); err != nil {
			return err
		}
		w, err := a.Compat(m)
		if err != nil {
			return err
		}
		f.warn(w)
	}
	if f.mask == "" {
		if a != nil {
			return a.Merge(m)
		}
		return nil
	}
	mk, err := mask.Load(f.mask)
	if err != nil {
		return err
	}
	w, err := mk.Compat(m)
	if err != nil {
		return err
	}
	f.warn(w)
	ov, err := persona.NewOverlay(m, mk, a)
	if err != nil {
		return err
	}
	f.masked = ov.Model()
	return nil
}

// run is the model to run: ck.Model, or with --mask the view of it that
// applies the mask (and --lora) per sequence.
func (f *modelFlags) run(ck *checkpoint.Checkpoint) *model.Model {
	if f.masked != nil {
		return f.masked
	}
	return ck.Model
}

func (f *modelFlags) openText() (*checkpoint.Checkpoint, error) {
	return checkpoint.OpenText(f.model, checkpoint.Options{Tokenizer: f.tokenizer})
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
