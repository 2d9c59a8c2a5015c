// Package pretrain trains a new Llama-family model from scratch on a
// corpus (the voices corpus of `masque corpus voices`, see CORPUS.md, and/or
// JSONL or text files) with a Hugging Face tokenizer, and writes it as a
// Hugging Face folder that masque, PyTorch and (after `masque convert`)
// llama.cpp load.
//
// It is a pipeline over the training engine (package train): the model is
// initialised here (Init), the data are made into documents here (plain
// language-model text and chat rows, the latter through train/sft so the
// loss covers the assistant turns only), and train.Trainer runs the
// optimisation: micro-batches of whole documents packed one after another
// with block-diagonal causal attention and positions restarting at each
// document, AdamW, warm-up and cosine decay, gradient clipping and
// accumulation, per-voice validation, checkpoints that resume bit for bit.
package pretrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/masque-ai/masque/internal/cputime"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/tokenizer"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/hfsave"
)

// Config is a pretraining run. Zero fields take the defaults of
// DefaultConfig, except ChatRatio, Seed and the counts where 0 means
// "none" (EvalEvery, CheckpointEvery).
type Config struct {
	// CorpusDir is a voices corpus folder (CORPUS.md): VOICE/train.jsonl
	// is trained on and VOICE/valid.jsonl gives the voice's validation
	// loss. Optional when DataFiles are given.
	CorpusDir string
	// DataFiles are more training files: JSONL rows with "text" and/or
	// "messages" (and optionally "voice", "id"), or .txt files (documents
	// separated by lines holding only <|endoftext|>).
	DataFiles []string
	// ValidFiles are more validation files, each its own group (named by
	// the rows' "voice", else by the file's base name).
	ValidFiles []string
	// TokenizerDir holds tokenizer.json and tokenizer_config.json (with
	// the chat_template); its files are copied to the output.
	TokenizerDir string
	// Preset names a shape of Presets; ModelConfig (a Hugging Face
	// config.json) is the alternative. The vocabulary is the tokenizer's.
	Preset      string
	ModelConfig string
	// OutDir receives the model, run.json, loss.svg and checkpoint/.
	OutDir string

	// SeqLen is the longest document in tokens (longer ones are cut) and
	// the model's context (default 512).
	SeqLen int
	// BatchTokens is the token budget of one micro-batch (default
	// 8·SeqLen); Accum micro-batches make an optimiser step (default 1).
	BatchTokens, Accum int
	// Steps is the number of optimiser steps (0: Epochs passes, default 1).
	Steps  int
	Epochs float64
	// LR is the peak learning rate (default 3e-3), MinLR the final one
	// reached by the cosine decay on the last step (default LR/10), after
	// Warmup linear warm-up steps (negative: 2% of the steps).
	LR, MinLR float64
	Warmup    int
	// AdamW: Beta1 (0.9), Beta2 (0.95), Eps (1e-8), WeightDecay (0.1; on
	// the matrices, not the norms); negative WeightDecay means none.
	Beta1, Beta2, Eps, WeightDecay float64
	// ClipNorm clips the global gradient norm (default 1; negative: off).
	ClipNorm float64
	// ChatRatio is the fraction of rows that have both views ("text" and
	// "messages") trained as chat (loss on the assistant turns and their
	// <|im_end|>); the others are trained as plain text (loss on every
	// token). The choice per row is fixed by Seed and the row's id.
	ChatRatio float64
	// EvalEvery evaluates the validation sets every so many steps (0: at
	// the end only); EvalTokens caps each voice's validation set (a seeded
	// sample of its documents; default 8192, negative: all).
	EvalEvery, EvalTokens int
	// CheckpointEvery saves OutDir/checkpoint every so many steps (0: only
	// when interrupted).
	CheckpointEvery int
	// Resume continues from OutDir/checkpoint (the same data and flags).
	Resume bool
	// Seed fixes the initialisation, the chat/text choice, the data order
	// and the validation samples.
	Seed uint64
	// InitStd is the standard deviation of the initial weights (0.02).
	InitStd float64
	// Threads sets the matrix-product threads (kernels.SetThreads) and
	// the engine's own loops (0: all CPUs).
	Threads int
	// DType of the written model: "bf16" (default) or "f32".
	DType string
	// PeakFLOPS, if positive, is used as the machine's matrix-product peak
	// (wall-clock FLOP/s; the CPU-time figures are then not reported)
	// instead of measuring it (MeasurePeak, about a second) at the start.
	PeakFLOPS float64
	// Command is recorded in run.json (the command line that made the run).
	Command string
	// Progress, if set, is called after every optimiser step.
	Progress func(Progress)
	// Log, if set, receives a few lines about the data and the model.
	Log io.Writer
}

// DefaultConfig returns the defaults of `masque pretrain`.
func DefaultConfig() Config {
	return Config{Preset: "voices-base", SeqLen: 512, Accum: 1, LR: 3e-3, Warmup: -1, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8,
		WeightDecay: 0.1, ClipNorm: 1, ChatRatio: 0.5, EvalTokens: 8192, InitStd: 0.02, DType: "bf16", Seed: 1}
}

// Progress is reported after every optimiser step.
type Progress struct {
	train.Progress
	// TrainTokensPerSec is the throughput of the optimiser steps alone
	// (this run, evaluation and checkpoints left out); MFU goes with it.
	TrainTokensPerSec, MFU float64
	// MFUCPU is the model FLOPs per CPU-second of the steps over the peak's
	// FLOPs per CPU-second: what MFU would be on an otherwise idle machine
	// (0 when not measured).
	MFUCPU float64
	// ETA estimates the time left at the run's mean pace so far.
	ETA time.Duration
}

// Result summarises a finished (or interrupted) run; run.json holds it
// and more.
type Result struct {
	OutDir      string
	Steps       int
	TotalSteps  int
	Tokens      int64
	Interrupted bool
	Params      Counts
	// TokensPerSec and MFU are over the optimiser steps of this process;
	// MFUCPU is MFU by CPU time (see Progress).
	TokensPerSec, MFU, MFUCPU, PeakFLOPS, FlopsPerToken float64
	// EvalLoss is the last validation loss per group, and over all.
	EvalLoss    map[string]float64
	EvalLossAll float64
}

// ErrInterrupted is returned (wrapped) when the context was cancelled; a
// checkpoint was saved first.
var ErrInterrupted = train.ErrInterrupted

// Checkpoint is the checkpoint folder inside OutDir.
func Checkpoint(outDir string) string { return filepath.Join(outDir, "checkpoint") }

func (c *Config) fill() error {
	d := DefaultConfig()
	if c.SeqLen == 0 {
		c.SeqLen = d.SeqLen
	}
	if c.BatchTokens == 0 {
		c.BatchTokens = 8 * c.SeqLen
	}
	if c.Accum == 0 {
		c.Accum = 1
	}
	if c.LR == 0 {
		c.LR = d.LR
	}
	if c.MinLR == 0 {
		c.MinLR = c.LR / 10
	}
	if c.Beta1 == 0 {
		c.Beta1 = d.Beta1
	}
	if c.Beta2 == 0 {
		c.Beta2 = d.Beta2
	}
	if c.Eps == 0 {
		c.Eps = d.Eps
	}
	switch {
	case c.WeightDecay == 0:
		c.WeightDecay = d.WeightDecay
	case c.WeightDecay < 0:
		c.WeightDecay = 0
	}
	switch {
	case c.ClipNorm == 0:
		c.ClipNorm = d.ClipNorm
	case c.ClipNorm < 0:
		c.ClipNorm = 0
	}
	if c.EvalTokens == 0 {
		c.EvalTokens = d.EvalTokens
	}
	if c.InitStd == 0 {
		c.InitStd = d.InitStd
	}
	if c.DType == "" {
		c.DType = d.DType
	}
	if c.Preset == "" && c.ModelConfig == "" {
		c.Preset = d.Preset
	}
	switch {
	case c.CorpusDir == "" && len(c.DataFiles) == 0:
		return fmt.Errorf("pretrain: no training data (give a corpus folder or data files)")
	case c.TokenizerDir == "":
		return fmt.Errorf("pretrain: no tokenizer folder")
	case c.OutDir == "":
		return fmt.Errorf("pretrain: no output folder")
	case c.Preset != "" && c.ModelConfig != "":
		return fmt.Errorf("pretrain: give a preset or a model config, not both")
	case c.SeqLen < 2 || c.SeqLen > 1<<16:
		return fmt.Errorf("pretrain: sequence length %d must be in [2, 65536]", c.SeqLen)
	case c.BatchTokens < c.SeqLen:
		return fmt.Errorf("pretrain: batch tokens %d must be at least the sequence length %d", c.BatchTokens, c.SeqLen)
	case c.Accum < 1 || c.Steps < 0 || c.Epochs < 0 || c.EvalEvery < 0 || c.CheckpointEvery < 0 || c.Threads < 0:
		return fmt.Errorf("pretrain: accumulation must be ≥ 1 and steps, epochs, eval/checkpoint intervals and threads not negative")
	case c.Steps > 0 && c.Epochs > 0:
		return fmt.Errorf("pretrain: give steps or epochs, not both")
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("pretrain: learning rate %g must be positive", c.LR)
	case !(c.MinLR >= 0) || c.MinLR > c.LR:
		return fmt.Errorf("pretrain: final learning rate %g must be in [0, %g]", c.MinLR, c.LR)
	case !(c.Beta1 > 0 && c.Beta1 < 1) || !(c.Beta2 > 0 && c.Beta2 < 1) || !(c.Eps > 0):
		return fmt.Errorf("pretrain: AdamW needs 0 < β1, β2 < 1 and ε > 0 (got %g, %g, %g)", c.Beta1, c.Beta2, c.Eps)
	case !(c.WeightDecay >= 0 && c.WeightDecay < 1) || math.IsNaN(c.ClipNorm):
		return fmt.Errorf("pretrain: weight decay %g must be in [0, 1)", c.WeightDecay)
	case !(c.ChatRatio >= 0 && c.ChatRatio <= 1):
		return fmt.Errorf("pretrain: chat ratio %g must be in [0, 1]", c.ChatRatio)
	case !(c.InitStd > 0) || c.InitStd > 1:
		return fmt.Errorf("pretrain: initialisation std %g must be in (0, 1]", c.InitStd)
	}
	if c.Preset != "" {
		if _, ok := Presets[c.Preset]; !ok {
			return fmt.Errorf("pretrain: unknown preset %q (known: %s)", c.Preset, strings.Join(PresetNames(), ", "))
		}
	}
	if _, err := dtypeName(c.DType); err != nil {
		return err
	}
	return nil
}

func dtypeName(s string) (string, error) {
	t, err := quant.ParseDTypeOf(s, quant.BF16, quant.F32)
	if err != nil {
		return "", fmt.Errorf("pretrain: output dtype: %w", err)
	}
	return strings.ToUpper(t.String()), nil
}

// Data are the tokenized documents of a run.
type Data struct {
	Train      []train.Sequence
	Valid      []train.EvalSet
	TrainStats map[string]Stats // by voice
	ValidStats map[string]Stats
	Voices     []string // training groups in order
}

// loadData reads and tokenizes the training and validation data.
func loadData(cfg *Config, tok *tokenizer.Tokenizer) (*Data, error) {
	enc, _, err := chatEncoder(tok, cfg.TokenizerDir)
	if err != nil {
		return nil, err
	}
	eot, ok := tok.TokenID(EndOfText)
	if !ok {
		return nil, fmt.Errorf("tokenizer: %s has no %s token (it separates documents)", cfg.TokenizerDir, EndOfText)
	}
	dm := &docMaker{tok: tok, enc: enc, eot: eot, seqLen: cfg.SeqLen, chatRatio: cfg.ChatRatio, seed: cfg.Seed}
	var trainFiles, trainNames, validFiles, validNames, voices []string
	if cfg.CorpusDir != "" {
		if voices, err = corpusVoices(cfg.CorpusDir); err != nil {
			return nil, err
		}
		for _, v := range voices {
			tf := filepath.Join(cfg.CorpusDir, v, "train.jsonl")
			if _, err := os.Stat(tf); err != nil {
				return nil, fmt.Errorf("corpus: voice %s: %w", v, err)
			}
			trainFiles, trainNames = append(trainFiles, tf), append(trainNames, v)
			vf := filepath.Join(cfg.CorpusDir, v, "valid.jsonl")
			if _, err := os.Stat(vf); err == nil {
				validFiles, validNames = append(validFiles, vf), append(validNames, v)
			}
		}
	}
	stem := func(f string) string { return strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)) }
	for _, f := range cfg.DataFiles {
		trainFiles, trainNames = append(trainFiles, f), append(trainNames, stem(f))
	}
	for _, f := range cfg.ValidFiles {
		validFiles, validNames = append(validFiles, f), append(validNames, stem(f))
	}
	tg, err := dm.readGroups(trainFiles, trainNames, voices)
	if err != nil {
		return nil, err
	}
	vg, err := dm.readGroups(validFiles, validNames, voices)
	if err != nil {
		return nil, err
	}
	d := &Data{TrainStats: map[string]Stats{}, ValidStats: map[string]Stats{}}
	for _, g := range tg {
		d.Train = append(d.Train, g.seqs...)
		d.TrainStats[g.name] = g.stats
		d.Voices = append(d.Voices, g.name)
	}
	if len(d.Train) == 0 {
		return nil, fmt.Errorf("pretrain: the training data hold no usable documents")
	}
	for i, g := range vg {
		seqs := capTokens(g.seqs, cfg.EvalTokens, cfg.Seed+uint64(i))
		var st Stats
		for _, s := range seqs {
			st.Sequences++
			st.Tokens += int64(len(s.Tokens))
			for _, t := range s.Targets {
				if t != train.IgnoreIndex {
					st.Targets++
				}
			}
		}
		st.Rows, st.ChatRows, st.TextRows = g.stats.Rows, g.stats.ChatRows, g.stats.TextRows
		d.Valid = append(d.Valid, train.EvalSet{Name: g.name, Seqs: seqs})
		d.ValidStats[g.name] = st
	}
	return d, nil
}

// newModelConfig is the configuration of the model to train.
func newModelConfig(cfg *Config, tok *tokenizer.Tokenizer) (model.Config, error) {
	vocab := tok.VocabSize()
	var eos []int
	for _, t := range []string{"<|im_end|>", EndOfText} {
		if id, ok := tok.TokenID(t); ok {
			eos = append(eos, id)
		}
	}
	if id, ok := tok.EOS(); ok && !containsInt(eos, id) {
		eos = append(eos, id)
	}
	bos := -1
	if id, ok := tok.BOS(); ok {
		bos = id
	}
	if cfg.Preset != "" {
		mc := Presets[cfg.Preset].modelConfig(vocab, cfg.SeqLen, bos, eos)
		return mc, mc.Validate()
	}
	mc, err := loadConfigFile(cfg.ModelConfig)
	if err != nil {
		return model.Config{}, err
	}
	if mc.Vocab < vocab {
		return model.Config{}, fmt.Errorf("%s: vocab_size %d is smaller than the tokenizer's %d tokens", cfg.ModelConfig, mc.Vocab, vocab)
	}
	if mc.MaxSeq < cfg.SeqLen {
		mc.MaxSeq = cfg.SeqLen
	}
	mc.BOS, mc.EOS = bos, eos
	return *mc, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Run trains a model as cfg says. When ctx is cancelled it stops after the
// current step, saves a checkpoint, writes run.json and loss.svg, and
// returns an error wrapping ErrInterrupted (continue with Resume).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	logf := func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format, a...)
		}
	}
	ckptDir := Checkpoint(cfg.OutDir)
	switch has := train.HasCheckpoint(ckptDir); {
	case cfg.Resume && !has:
		return nil, fmt.Errorf("pretrain: resume: no checkpoint in %s", ckptDir)
	case !cfg.Resume && has:
		return nil, fmt.Errorf("pretrain: %s already holds a checkpoint: resume that run, or choose another output folder", ckptDir)
	}
	threads := cfg.Threads
	if threads > 0 {
		kernels.SetThreads(threads)
	} else {
		threads = runtime.GOMAXPROCS(0)
		kernels.SetThreads(0)
	}
	tok, err := tokenizer.Load(cfg.TokenizerDir)
	if err != nil {
		return nil, err
	}
	mc, err := newModelConfig(&cfg, tok)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	data, err := loadData(&cfg, tok)
	if err != nil {
		return nil, err
	}
	var all Stats
	for _, v := range data.Voices {
		all.add(data.TrainStats[v])
	}
	logf("data: %d rows (%d chat, %d text) → %d documents, %d tokens, %d with loss; %d validation sets (%.1fs)\n",
		all.Rows, all.ChatRows, all.TextRows, all.Sequences, all.Tokens, all.Targets, len(data.Valid), time.Since(t0).Seconds())

	m, err := Init(mc, cfg.Seed, cfg.InitStd)
	if err != nil {
		return nil, err
	}
	net, err := train.New(m, train.Options{Full: true, Threads: threads})
	if err != nil {
		return nil, err
	}
	minRatio := cfg.MinLR / cfg.LR
	tcfg := train.Config{Steps: cfg.Steps, Epochs: cfg.Epochs, BatchTokens: cfg.BatchTokens, Accum: cfg.Accum, LR: cfg.LR,
		Schedule: train.Schedule{Kind: "cosine", MinRatio: minRatio}, Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps,
		WeightDecay: cfg.WeightDecay, ClipNorm: cfg.ClipNorm, Seed: cfg.Seed, EvalEvery: cfg.EvalEvery,
		CheckpointEvery: cfg.CheckpointEvery, CheckpointDir: ckptDir}
	tr, err := train.NewTrainer(net, tcfg, data.Train, nil)
	if err != nil {
		return nil, err
	}
	tr.EvalSets = data.Valid
	warm := cfg.Warmup
	if warm < 0 {
		warm = int(math.Ceil(0.02 * float64(tr.State.TotalSteps)))
	}
	tr.Cfg.Schedule.Warmup = warm
	if cfg.Resume {
		if err := tr.LoadCheckpoint(ckptDir); err != nil {
			return nil, err
		}
		logf("resuming at step %d of %d\n", tr.State.Step, tr.State.TotalSteps)
	}
	counts := CountParams(mc)
	logf("model: %s, %d parameters (%d non-embedding), vocabulary %d, context %d; %d steps of ≤%d×%d tokens\n",
		modelName(&cfg), counts.Total, counts.NonEmbedding, mc.Vocab, mc.MaxSeq, tr.State.TotalSteps, cfg.BatchTokens, cfg.Accum)

	pk := Peak{FLOPS: cfg.PeakFLOPS}
	if !(pk.FLOPS > 0) {
		pk = MeasurePeak(net.K, time.Second)
	}
	peak := pk.FLOPS
	fpt := FlopsPerToken(mc, data.Train)
	logf("throughput: %.2f MFLOP per token; matrix-product peak %.1f GFLOP/s on %d threads (%s kernels), %.1f GFLOP per CPU-second\n",
		fpt/1e6, peak/1e9, kernels.Threads(), net.K.Name(), pk.PerCPUSecond/1e9)

	rec := &record{cfg: &cfg, mc: mc, counts: counts, data: data, tr: tr, peak: peak, peakCPU: pk.PerCPUSecond, fpt: fpt, warmup: warm, threads: threads, kernels: net.K.Name()}
	startStep, startTokens := tr.State.Step, tr.State.Tokens
	runStart := time.Now()
	var stepSecs float64
	lastTokens := tr.State.Tokens
	// CPU time is counted over the intervals between two reports that hold
	// only an optimiser step (no evaluation, no checkpoint).
	lastCPU, lastClean := cputime.Used(), true
	onStep := func(p train.Progress) {
		stepSecs += p.StepTime.Seconds()
		cpu := cputime.Used()
		if lastClean && p.EvalGroups == nil && cpu > lastCPU {
			rec.cpuTokens += p.Tokens - lastTokens
			rec.cpuSecs += (cpu - lastCPU).Seconds()
		}
		saves := cfg.CheckpointEvery > 0 && p.Step%cfg.CheckpointEvery == 0
		lastClean = !saves
		lastTokens = p.Tokens
		rec.trainTokens, rec.trainSecs = lastTokens-startTokens, stepSecs
		pr := Progress{Progress: p}
		if stepSecs > 0 {
			pr.TrainTokensPerSec = float64(lastTokens-startTokens) / stepSecs
			pr.MFU = pr.TrainTokensPerSec * fpt / peak
		}
		pr.MFUCPU = rec.mfuCPU()
		if done := p.Step - startStep; done > 0 {
			pr.ETA = time.Duration(float64(time.Since(runStart)) / float64(done) * float64(p.Total-p.Step))
		}
		if cfg.Progress != nil {
			cfg.Progress(pr)
		}
		if p.EvalGroups != nil || saves {
			// Curves and the record so far, for watching a long run.
			_ = rec.write(false, false)
		}
		lastCPU = cputime.Used()
	}
	runErr := tr.Run(ctx, onStep)
	interrupted := errors.Is(runErr, train.ErrInterrupted)
	if runErr != nil && !interrupted {
		return nil, runErr
	}
	if !interrupted {
		// The final state too, so that a finished run can be extended
		// (Resume with more Steps) and its float32 weights are at hand.
		if err := tr.SaveCheckpoint(ckptDir); err != nil {
			return nil, err
		}
		dt, _ := dtypeName(cfg.DType)
		if err := saveModel(m, &cfg, dt); err != nil {
			return nil, err
		}
	}
	if err := rec.write(true, interrupted); err != nil {
		return nil, err
	}
	res := rec.result(interrupted)
	if interrupted {
		return res, runErr
	}
	return res, nil
}

func modelName(cfg *Config) string {
	if cfg.Preset != "" {
		return cfg.Preset
	}
	return cfg.ModelConfig
}

// saveModel writes the Hugging Face folder: config.json, model.safetensors,
// the tokenizer files and a generation_config.json.
func saveModel(m *model.Model, cfg *Config, dtype string) error {
	if err := hfsave.Save(m, cfg.OutDir, hfsave.Options{DType: dtype, SourceDir: cfg.TokenizerDir,
		Metadata: map[string]string{"masque_pretrain_seed": fmt.Sprint(cfg.Seed)}}); err != nil {
		return err
	}
	gen := map[string]any{"eos_token_id": m.Config.EOS}
	if m.Config.BOS >= 0 {
		gen["bos_token_id"] = m.Config.BOS
	}
	return writeJSON(filepath.Join(cfg.OutDir, "generation_config.json"), gen)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// record writes run.json and loss.svg.
type record struct {
	cfg                *Config
	mc                 model.Config
	counts             Counts
	data               *Data
	tr                 *train.Trainer
	peak, peakCPU, fpt float64
	warmup, threads    int
	kernels            string
	trainTokens        int64
	trainSecs          float64
	cpuTokens          int64
	cpuSecs            float64
}

// mfuCPU is the MFU by CPU time (0 when either side was not measured).
func (r *record) mfuCPU() float64 {
	if r.cpuSecs <= 0 || r.peakCPU <= 0 {
		return 0
	}
	return float64(r.cpuTokens) * r.fpt / r.cpuSecs / r.peakCPU
}

func (r *record) result(interrupted bool) *Result {
	res := &Result{OutDir: r.cfg.OutDir, Steps: r.tr.State.Step, TotalSteps: r.tr.State.TotalSteps, Tokens: r.tr.State.Tokens,
		Interrupted: interrupted, Params: r.counts, PeakFLOPS: r.peak, FlopsPerToken: r.fpt, EvalLossAll: math.NaN()}
	if r.trainSecs > 0 {
		res.TokensPerSec = float64(r.trainTokens) / r.trainSecs
		res.MFU = res.TokensPerSec * r.fpt / r.peak
	}
	res.MFUCPU = r.mfuCPU()
	for i := len(r.tr.State.History) - 1; i >= 0; i-- {
		if p := r.tr.State.History[i]; p.EvalLoss != nil {
			res.EvalLoss, res.EvalLossAll = p.EvalGroups, *p.EvalLoss
			break
		}
	}
	return res
}

func (r *record) write(final, interrupted bool) error {
	c := r.cfg
	res := r.result(interrupted)
	tc := r.tr.Cfg
	out := map[string]any{
		"command": c.Command, "corpus": c.CorpusDir, "data_files": c.DataFiles, "valid_files": c.ValidFiles, "tokenizer": c.TokenizerDir,
		"model": map[string]any{"preset": c.Preset, "config_file": c.ModelConfig, "config": r.mc.HFConfig(), "parameters": r.counts},
		"recipe": map[string]any{
			"seq_len": c.SeqLen, "batch_tokens": c.BatchTokens, "accum": c.Accum, "steps": r.tr.State.TotalSteps,
			"lr": c.LR, "min_lr": c.MinLR, "schedule": tc.Schedule.Kind, "warmup": r.warmup,
			"optimizer": "AdamW", "beta1": tc.Beta1, "beta2": tc.Beta2, "eps": tc.Eps, "weight_decay": tc.WeightDecay, "weight_decay_on": "every matrix (the tied embeddings included), not the norms",
			"clip_norm": tc.ClipNorm, "chat_ratio": c.ChatRatio, "eval_every": c.EvalEvery, "eval_tokens_per_set": c.EvalTokens,
			"checkpoint_every": c.CheckpointEvery, "seed": c.Seed, "init_std": c.InitStd, "init_residual_std": c.InitStd / math.Sqrt(2*float64(r.mc.Layers)),
			"dtype": strings.ToLower(c.DType),
		},
		"data":    map[string]any{"train": r.data.TrainStats, "valid": r.data.ValidStats, "voices": r.data.Voices},
		"machine": map[string]any{"threads": r.threads, "kernels": r.kernels, "gomaxprocs": runtime.GOMAXPROCS(0), "goarch": runtime.GOARCH},
		"throughput": map[string]any{
			"tokens_per_second": res.TokensPerSec, "mfu": res.MFU, "model_flops_per_token": r.fpt, "peak_flops": r.peak,
			"mfu_cpu_time": res.MFUCPU, "peak_flops_per_cpu_second": r.peakCPU, "train_cpu_seconds": r.cpuSecs,
			"note": "tokens/s over this process's optimiser steps (evaluation and checkpoints excluded); MFU = tokens/s × model FLOPs per token / the kernels' best measured MatMul rate on the same threads (wall clock); mfu_cpu_time = model FLOPs per CPU-second of the steps / MatMul FLOPs per CPU-second, nearly independent of other load on the machine",
		},
		"steps_done": r.tr.State.Step, "tokens_seen": r.tr.State.Tokens, "seconds": r.tr.State.Seconds,
		"finished": final && !interrupted, "interrupted": interrupted,
		"history": r.tr.State.History,
	}
	if res.EvalLoss != nil {
		out["eval_loss"] = res.EvalLoss
		out["eval_loss_all"] = res.EvalLossAll
	}
	if err := os.MkdirAll(c.OutDir, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(c.OutDir, "run.json"), out); err != nil {
		return err
	}
	svg := train.LossSVG(r.tr.State.History, "masque pretrain: "+modelName(c))
	return atomicfile.WriteFile(filepath.Join(c.OutDir, "loss.svg"), func(w io.Writer) error {
		_, err := w.Write(svg)
		return err
	})
}
