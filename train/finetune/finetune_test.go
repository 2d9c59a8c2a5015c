package finetune

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/randmodel"
	"github.com/masque-ai/masque/train"
)

func tinyModel(t *testing.T) *model.Model {
	t.Helper()
	m, err := randmodel.New(randmodel.Presets["tiny"], 3, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seqs are a few repetitions of one token pattern: a model can learn it.
func seqs() []train.Sequence {
	var out []train.Sequence
	for i := 0; i < 4; i++ {
		var s train.Sequence
		for j := 0; j < 24; j++ {
			s.Tokens = append(s.Tokens, 10+(j*7+i)%13)
		}
		for j := range s.Tokens {
			if j+1 < len(s.Tokens) {
				s.Targets = append(s.Targets, s.Tokens[j+1])
			} else {
				s.Targets = append(s.Targets, train.IgnoreIndex)
			}
		}
		out = append(out, s)
	}
	return out
}

func loss(t *testing.T, m *model.Model, data []train.Sequence) float64 {
	t.Helper()
	n, err := train.New(m, train.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := train.EvaluateSet(n, data, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return r.Mean()
}

func TestLoRA(t *testing.T) {
	m := tinyModel(t)
	data := seqs()
	before := loss(t, m, data)
	up := m.Layers[0].Up.Float32s()
	started := false
	res, err := Run(context.Background(), Config{Model: m, Data: data, Eval: data[:1],
		LoRA:    testLoRA(),
		Train:   train.Config{Steps: 30, LR: 1e-2, Seed: 1},
		Warmup:  -1,
		Started: func(r *Result) { started = r.Trainer != nil && r.InitialEval != nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !started || res.Adapter == nil || res.Warmup != 1 || res.LR != 1e-2 || !strings.HasPrefix(res.Mode(), "LoRA r=4") {
		t.Errorf("result %+v (started %v)", res, started)
	}
	if !(res.FinalEval < *res.InitialEval) {
		t.Errorf("held-out loss %v → %v did not fall", *res.InitialEval, res.FinalEval)
	}
	if !slices.Equal(up, m.Layers[0].Up.Float32s()) {
		t.Error("LoRA training changed the base model")
	}
	merged, err := res.Model()
	if err != nil {
		t.Fatal(err)
	}
	if after := loss(t, merged, data); !(after < before-0.1) {
		t.Errorf("merged model's loss %v, base %v", after, before)
	}
	if b := loss(t, m, data); b != before {
		t.Errorf("base model's loss changed %v → %v", before, b)
	}
}

func testLoRA() (c lora.Config) {
	c.Rank, c.Alpha, c.Targets = 4, 8, []model.Proj{model.ProjQ, model.ProjV, model.ProjGate, model.ProjUp, model.ProjDown}
	return c
}

func TestFull(t *testing.T) {
	m := tinyModel(t)
	data := seqs()
	before := loss(t, m, data)
	shared := m.Layers[1].Down // another model holding this matrix must not see the training
	sharedData := shared.Float32s()
	res, err := Run(context.Background(), Config{Model: m, Data: data, Full: true, Train: train.Config{Steps: 20, LR: 3e-3, Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Adapter != nil || res.Mode() != "full fine-tuning" || res.InitialEval != nil {
		t.Errorf("result %+v", res)
	}
	tuned, err := res.Model()
	if err != nil {
		t.Fatal(err)
	}
	if after := loss(t, tuned, data); !(after < before-0.1) {
		t.Errorf("loss %v → %v", before, after)
	}
	if !slices.Equal(sharedData, shared.Float32s()) {
		t.Error("full fine-tuning wrote into the model's original matrix")
	}
}

func TestInterruptAndResume(t *testing.T) {
	data := seqs()
	ck := filepath.Join(t.TempDir(), "checkpoint")
	cfg := Config{Data: data, LoRA: testLoRA(), Train: train.Config{Steps: 6, LR: 1e-2, Seed: 1, CheckpointDir: ck}}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Model = tinyModel(t)
	cfg.Progress = func(p train.Progress) {
		if p.Step == 3 {
			cancel()
		}
	}
	res, err := Run(ctx, cfg)
	if !errors.Is(err, train.ErrInterrupted) || res == nil || !res.Interrupted {
		t.Fatalf("interrupted run: %v %+v", err, res)
	}
	cfg.Progress = nil
	cfg.Model = tinyModel(t)
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Errorf("fresh run over a checkpoint: %v", err)
	}
	cfg.Resume = true
	res, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedAt != 3 || res.Trainer.State.Step != 6 {
		t.Errorf("resumed at %d, ended at %d", res.ResumedAt, res.Trainer.State.Step)
	}
	// The same run uninterrupted ends with the same adapter.
	whole := Config{Model: tinyModel(t), Data: data, LoRA: testLoRA(), Train: train.Config{Steps: 6, LR: 1e-2, Seed: 1}}
	ref, err := Run(context.Background(), whole)
	if err != nil {
		t.Fatal(err)
	}
	a, b := res.Adapter.All(), ref.Adapter.All()
	for i := range a {
		if !slices.Equal(a[i].B, b[i].B) {
			t.Fatalf("resumed adapter differs from the uninterrupted one at %d", i)
		}
	}
}

func TestBadInput(t *testing.T) {
	m := tinyModel(t)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Data: seqs()}, "no model"},
		{Config{Model: m}, "no training sequences"},
		{Config{Model: m, Data: seqs(), LoRA: lora.Config{Rank: 0, Targets: []model.Proj{model.ProjQ}}}, "rank"},
		{Config{Model: m, Data: seqs(), Full: true, Resume: true, Train: train.Config{CheckpointDir: t.TempDir()}}, "no checkpoint"},
		{Config{Model: m, Data: seqs(), Full: true, Train: train.Config{Steps: -1}}, "must not be negative"},
	} {
		if _, err := Run(context.Background(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v (want %q)", c.cfg, err, c.want)
		}
	}
}
