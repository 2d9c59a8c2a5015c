package finetune

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/hfsave"
	"github.com/masque-ai/masque/train/sft"
)

// JobConfig is one `masque finetune` run from files to files: the chat data
// are read and encoded (train/sft), the model fine-tuned (Run), and Out
// receives the adapter (and with Merge the merged model in Out/merged) or,
// with Full, the model; training.json records the run and loss.svg plots it.
// Checkpoints go to Out/checkpoint.
type JobConfig struct {
	// Config holds the model and the training settings; its Data, Eval and
	// Train.CheckpointDir are filled in by the job.
	Config
	ModelPath string // the base model's name, recorded in training.json and the adapter
	Targets   string // the LoRA targets as given (for the mode text), e.g. "q,k,v,o,gate,up,down"

	Encoder *sft.Encoder // renders rows with the model's chat template
	// Data is the training file; EvalData the held-out file (without it,
	// Read.EvalFraction of Data is held out).
	Data, EvalData string
	Read           sft.Options // format, system prompt, length, bad-row policy, split, seed (Warn is set by the job)

	Out   string
	Merge bool   // LoRA: also write the merged model to Out/merged
	DType string // element type of saved models ("": the base model's)
	// Llama2CTokenizer returns the tokenizer.bin written beside model.bin
	// when the base is a llama2.c model (its tokenizer has no Hugging Face
	// form); it is called only when such a model is written.
	Llama2CTokenizer func() ([]byte, error)

	// Logf receives the run's notices (data summary, skipped rows, start).
	Logf func(format string, a ...any)
}

// JobResult is a finished (or interrupted) job.
type JobResult struct {
	*Result
	Data     *sft.Dataset
	EvalRows int
	Mode     string         // "full fine-tuning" or "LoRA r=… alpha=… on TARGETS"
	Summary  map[string]any // what training.json holds
}

// RunJob runs cfg. An interrupted run (ctx cancelled) writes its records and
// checkpoint and returns the result with an error wrapping
// train.ErrInterrupted.
func RunJob(ctx context.Context, cfg JobConfig) (*JobResult, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ckptDir := filepath.Join(cfg.Out, "checkpoint")
	if cfg.Resume && !train.HasCheckpoint(ckptDir) {
		return nil, fmt.Errorf("--resume: no checkpoint in %s", ckptDir)
	}
	if !cfg.Resume && train.HasCheckpoint(ckptDir) {
		return nil, fmt.Errorf("%s already holds a checkpoint: pass --resume to continue that run, or choose another --out", ckptDir)
	}
	if cfg.Threads > 0 {
		kernels.SetThreads(cfg.Threads)
	}
	job := &JobResult{Mode: "full fine-tuning"}
	if !cfg.Full {
		job.Mode = fmt.Sprintf("LoRA r=%d alpha=%g on %s", cfg.LoRA.Rank, cfg.LoRA.Alpha, cfg.Targets)
	}
	ds, evalSet, evalSkipped, err := cfg.load(logf)
	if err != nil {
		return nil, err
	}
	job.Data, job.EvalRows = ds, len(evalSet)
	logf("data: %d training rows, %d held out, %d skipped; %d tokens, %d trained on",
		len(ds.Train), len(evalSet), len(ds.Skipped)+len(evalSkipped), ds.Tokens, ds.Targets)

	fc := cfg.Config
	fc.Data, fc.Eval, fc.Train.CheckpointDir = ds.Train, evalSet, ckptDir
	started := fc.Started
	fc.Started = func(r *Result) {
		if cfg.Resume {
			logf("resuming at step %d of %d", r.ResumedAt, r.Trainer.State.TotalSteps)
		}
		logf("%s: %d trainable parameters of %d; %d steps", job.Mode, r.Net.NumTrainable(), cfg.Model.NumParams(), r.Trainer.State.TotalSteps)
		if started != nil {
			started(r)
		}
	}
	res, runErr := Run(ctx, fc)
	if runErr != nil && (res == nil || !res.Interrupted) {
		return nil, runErr
	}
	job.Result = res
	job.Summary = cfg.summary(job, fc.Train, evalSkipped)
	if !res.Interrupted {
		if err := cfg.save(job); err != nil {
			return job, err
		}
	}
	if err := cfg.records(job); err != nil {
		return job, err
	}
	return job, runErr
}

// load reads the training and held-out data.
func (cfg *JobConfig) load(logf func(string, ...any)) (ds *sft.Dataset, evalSet []train.Sequence, evalSkipped []chatdata.Problem, err error) {
	skipped := 0
	opts := cfg.Read
	opts.Warn = func(p chatdata.Problem) {
		skipped++
		if skipped <= 20 {
			logf("masque: skipping %v", p)
		} else if skipped == 21 {
			logf("masque: (further skipped rows are counted in training.json)")
		}
	}
	if cfg.EvalData != "" {
		opts.EvalFraction = 0
	}
	if ds, err = sft.Load(cfg.Data, cfg.Encoder, opts); err != nil {
		return nil, nil, nil, err
	}
	evalSet = ds.Eval
	if cfg.EvalData != "" {
		eds, err := sft.Load(cfg.EvalData, cfg.Encoder, opts)
		if err != nil {
			return nil, nil, nil, err
		}
		evalSet, evalSkipped = eds.Train, eds.Skipped
	}
	return ds, evalSet, evalSkipped, nil
}

// summary is training.json.
func (cfg *JobConfig) summary(job *JobResult, tc train.Config, evalSkipped []chatdata.Problem) map[string]any {
	res, ds, tr := job.Result, job.Data, job.Trainer
	skipped := append(append([]chatdata.Problem{}, ds.Skipped...), evalSkipped...)
	probs := make([]string, len(skipped))
	for i, p := range skipped {
		probs[i] = p.Error()
	}
	s := map[string]any{
		"model": cfg.ModelPath, "data": cfg.Data, "eval_data": cfg.EvalData, "mode": job.Mode,
		"trainable_parameters": res.Net.NumTrainable(), "total_parameters": cfg.Model.NumParams(),
		"rows": ds.Rows, "train_rows": len(ds.Train), "eval_rows": job.EvalRows, "skipped_rows": probs,
		"truncated_rows": ds.Truncated, "tokens": ds.Tokens, "trained_tokens": ds.Targets,
		"config": tr.Cfg, "warmup": res.Warmup, "lr": res.LR, "steps_done": tr.State.Step, "total_steps": tr.State.TotalSteps,
		"seconds": tr.State.Seconds, "history": tr.State.History, "interrupted": res.Interrupted,
	}
	if res.InitialEval != nil {
		s["initial_eval_loss"] = *res.InitialEval
	}
	if fe := job.LastEval(); !math.IsNaN(fe) {
		s["eval_loss"] = fe
		s["eval_perplexity"] = math.Exp(fe)
	}
	return s
}

// LastEval is the last held-out loss of the history (NaN if none).
func (r *Result) LastEval() float64 {
	fe := math.NaN()
	for _, p := range r.Trainer.State.History {
		if p.EvalLoss != nil {
			fe = *p.EvalLoss
		}
	}
	return fe
}

// save writes the adapter (and merged model) or the full model.
func (cfg *JobConfig) save(job *JobResult) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	m, a, s := cfg.Model, job.Adapter, job.Summary
	if a == nil {
		if err := hfsave.Save(m, cfg.Out, hfsave.Options{DType: cfg.DType}); err != nil {
			return err
		}
		s["model_out"] = cfg.Out
		if m.Config.Arch == "llama2.c" {
			s["model_out"] = filepath.Join(cfg.Out, "model.bin")
			return cfg.saveLlama2C(m, cfg.Out)
		}
		return nil
	}
	if err := a.Save(cfg.Out, map[string]any{"steps": job.Trainer.State.Step, "data": cfg.Data}); err != nil {
		return err
	}
	s["adapter"] = cfg.Out
	if !cfg.Merge {
		return nil
	}
	mdir := filepath.Join(cfg.Out, "merged")
	if err := hfsave.SaveMerged(a, m, mdir, hfsave.Options{DType: cfg.DType}); err != nil {
		return err
	}
	s["merged_model"] = mdir
	if m.Config.Arch != "llama2.c" {
		return nil
	}
	merged, err := a.Merged(m)
	if err != nil {
		return err
	}
	s["merged_model"] = filepath.Join(mdir, "model.bin")
	return cfg.saveLlama2C(merged, mdir)
}

// saveLlama2C also writes a model that came from a llama2.c checkpoint in
// that format (dir/model.bin) with its tokenizer (dir/tokenizer.bin):
// `--model dir/model.bin` then loads it.
func (cfg *JobConfig) saveLlama2C(m *model.Model, dir string) error {
	if err := hfsave.SaveLlama2C(m, filepath.Join(dir, "model.bin")); err != nil {
		return err
	}
	if cfg.Llama2CTokenizer == nil {
		return fmt.Errorf("finetune: no tokenizer.bin to write beside %s", filepath.Join(dir, "model.bin"))
	}
	tok, err := cfg.Llama2CTokenizer()
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "tokenizer.bin"), tok)
}

// records writes training.json and loss.svg (also for an interrupted run).
func (cfg *JobConfig) records(job *JobResult) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(job.Summary, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(cfg.Out, "training.json"), js); err != nil {
		return err
	}
	hist := job.Trainer.State.History
	if job.InitialEval != nil {
		hist = append([]train.Point{{Step: 0, TrainLoss: math.NaN(), EvalLoss: job.InitialEval}}, hist...)
	}
	return atomicfile.WriteBytes(filepath.Join(cfg.Out, "loss.svg"), train.LossSVG(hist, "masque finetune: "+filepath.Base(cfg.Data)))
}
