package study

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/sculpt"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/sft"
)

// MethodPersonaPruner is the method of KindSculpt subjects.
const MethodPersonaPruner = "persona-pruner"

// DefaultSculptSteps is Config.SculptSteps' default: the calibration
// passages are few (64 of at most 512 tokens), so half of sculpt's default
// already passes over them about seven times.
const DefaultSculptSteps = 100

// trainSeqs tokenizes a voice's calibration passages for training (the
// LoRA comparison and Persona-Pruner), once per voice: the same
// conversations as the masks' calibration set, loss on the answer's
// tokens, cut at CalibMaxTokens. The sequences are shared: do not modify
// them.
func (r *runner) trainSeqs(v string) ([]train.Sequence, error) {
	if seqs, ok := r.seqs[v]; ok {
		return seqs, nil
	}
	tok, err := r.ck.NeedTokenizer()
	if err != nil {
		return nil, err
	}
	enc := sft.NewEncoder(r.ck.Template, tok, r.ck.TemplateConfig, r.ck.HasTemplate)
	rows, err := r.corp.Rows(v, r.set.CalibSplit)
	if err != nil {
		return nil, err
	}
	var data []train.Sequence
	for i := range rows[:min(len(rows), r.cfg.CalibSamples)] {
		sys, user, ans := turns(&rows[i])
		var msgs []chattemplate.Message
		if r.cfg.CalibSystem && sys != "" {
			msgs = append(msgs, chattemplate.Message{Role: "system", Content: sys})
		}
		msgs = append(msgs, chattemplate.Message{Role: "user", Content: user}, chattemplate.Message{Role: "assistant", Content: ans})
		e, err := enc.Encode(msgs)
		if err != nil {
			return nil, fmt.Errorf("study: training data of %s, row %s: %w", v, rows[i].ID, err)
		}
		if n := r.cfg.CalibMaxTokens; len(e.Seq.Tokens) > n {
			e.Seq.Tokens, e.Seq.Targets = e.Seq.Tokens[:n], e.Seq.Targets[:n]
		}
		data = append(data, e.Seq)
	}
	r.seqs[v] = data
	return data, nil
}

// sculptPatterns are the FFN-channel patterns Persona-Pruner learns at.
func (r *runner) sculptPatterns() []Pattern {
	var out []Pattern
	for _, x := range r.cfg.SculptSparsities {
		out = append(out, Pattern{Granularity: FFN, Sparsity: x})
	}
	return out
}

// sculpted returns a voice's Persona-Pruner mask at an FFN pattern
// (package sculpt: learned top-k channel scores on the frozen model,
// straight-through estimator, on the voice's calibration passages), as a
// channel mask over the base like the training-free ffn masks: learned, or
// resumed from its run folder's checkpoint, or read from the cache.
func (r *runner) sculpted(ctx context.Context, v string, p Pattern) (*Subject, error) {
	set := r.calibs[v]
	k := key("sculpt", r.fp, set.Hash(), r.cfg.CalibSystem, r.cfg.CalibMaxTokens, p.Sparsity, r.set.SculptSteps, r.set.Seed)
	pc := p
	id := v + "/" + MethodPersonaPruner + "/" + p.String()
	s := &Subject{ID: id, Kind: KindSculpt, Method: MethodPersonaPruner, Pattern: &pc, Voice: v, Key: k,
		File: filepath.Join(r.cfg.Out, "masks", slug(id)+"-"+k+".safetensors")}
	dir := filepath.Join(r.cfg.Out, "sculpt", slug(v+"-"+p.String())+"-"+k)
	r.track.begin("sculpt", id)
	t0 := time.Now()
	mk, err := r.loadMask(s.File)
	if err != nil {
		return nil, err
	}
	cached := mk != nil
	if !cached {
		keep, err := r.learnKeep(ctx, v, p, dir)
		if err != nil {
			return nil, err
		}
		info := mask.Info{Method: MethodPersonaPruner, Sparsity: p.Sparsity, Calibration: set.Name + " " + set.Hash()[:12], Model: r.ck.Path,
			Extra: map[string]string{"steps": strconv.Itoa(r.set.SculptSteps), "run": dir}}
		if mk, err = sculpt.KeepMask(r.m, keep, info); err != nil {
			return nil, fmt.Errorf("study: %s: %w", id, err)
		}
		if err := os.MkdirAll(filepath.Dir(s.File), 0o755); err != nil {
			return nil, fmt.Errorf("study: %w", err)
		}
		if err := mk.Save(s.File); err != nil {
			return nil, err
		}
	}
	r.track.end("sculpt", cached, time.Since(t0))
	s.Density = mk.Density()
	s.build = func(context.Context) (*model.Model, error) { return r.maskedView(s, mk) }
	return s, nil
}

// learnKeep runs (or resumes) the sculpt run of voice v at pattern p in
// dir and returns its keep indices; a finished run is only read back.
func (r *runner) learnKeep(ctx context.Context, v string, p Pattern, dir string) ([][]int, error) {
	keepPath := filepath.Join(dir, sculpt.KeepFile)
	if _, err := os.Stat(keepPath); err == nil {
		keep, fp, err := sculpt.LoadKeep(keepPath)
		if err == nil && fp != "" && fp != r.fp {
			err = fmt.Errorf("made for another model (fingerprint %s, this one %s)", fp, r.fp)
		}
		if err != nil {
			return nil, fmt.Errorf("study: cached sculpt run %s: %w (delete the folder to learn it again)", dir, err)
		}
		return keep, nil
	}
	seqs, err := r.trainSeqs(v)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(filepath.Join(dir, sculpt.CkptDir))
	res, err := sculpt.Run(ctx, sculpt.Config{Checkpoint: r.ck, Persona: v,
		Data:  sculpt.NewData(seqs, nil, "study calibration passages of "+v+" ("+r.calibs[v].Name+")"),
		Ratio: p.Sparsity, Steps: r.set.SculptSteps, Seed: r.set.Seed, EvalEvery: -1,
		Out: dir, Resume: statErr == nil, NoExport: true, Threads: r.cfg.Workers, Logf: r.logf,
		Progress: func(pr sculpt.Progress) { r.track.step("Persona-Pruner steps", pr.Step, pr.Total) }})
	if errors.Is(err, sculpt.ErrInterrupted) && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("study: Persona-Pruner on %s at %s: %w", v, p, err)
	}
	return res.Keep, nil
}
