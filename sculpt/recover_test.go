package sculpt

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/train"
)

// TestRecover: after the export, recovery fine-tuning lowers the held-out
// loss of the smaller model, and the recovered model is written whole: it
// loads, has the pruned shape, and computes what was trained.
func TestRecover(t *testing.T) {
	ck := openBuiltin(t)
	d := personaData(t, ck, "slang")
	for _, mode := range []string{RecoverLoRA, RecoverFull} {
		t.Run(mode, func(t *testing.T) {
			out := t.TempDir()
			cfg := smallConfig(ck, d, out)
			cfg.Ratio = 0.5
			lr := map[string]float64{RecoverLoRA: 3e-3, RecoverFull: 1e-3}[mode]
			cfg.Recover = &RecoverConfig{Mode: mode, Steps: 12, LR: lr}
			steps := 0
			cfg.RecoverProgress = func(train.Progress) { steps++ }
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			rv := res.Recovery
			if rv == nil || steps != 12 || rv.Steps != 12 {
				t.Fatalf("recovery %+v after %d progress calls", rv, steps)
			}
			if rv.InitValidLoss == nil || rv.ValidLoss == nil || !(*rv.ValidLoss < *rv.InitValidLoss) {
				t.Errorf("held-out loss did not fall: %v → %v", rv.InitValidLoss, rv.ValidLoss)
			}
			if !(rv.LastTrainLoss < rv.FirstTrainLoss) {
				t.Errorf("train loss %v → %v", rv.FirstTrainLoss, rv.LastTrainLoss)
			}
			// The recovered model loads whole, with the pruned shape, and
			// its held-out loss is the recovery's final one.
			rck, err := checkpoint.Open(filepath.Join(out, RecoveredDir, "model"), checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer rck.Close()
			if rck.Model.Config.Intermediate != res.K || rck.Model.NumParams() != res.Export.Params {
				t.Errorf("recovered model: intermediate %d params %d, want %d and %d", rck.Model.Config.Intermediate, rck.Model.NumParams(), res.K, res.Export.Params)
			}
			net, err := train.New(rck.Model, train.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r, err := train.EvaluateSet(net, d.Valid, 4096)
			if err != nil {
				t.Fatal(err)
			}
			if diff := r.Mean() - *rv.ValidLoss; diff > 1e-3 || diff < -1e-3 {
				t.Errorf("recovered model's held-out loss %v, recovery's %v", r.Mean(), *rv.ValidLoss)
			}
			// The pruned export is untouched: its loss is the learned mask's.
			pck, err := checkpoint.Open(filepath.Join(out, ModelDir), checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer pck.Close()
			pnet, _ := train.New(pck.Model, train.Options{})
			pr, err := train.EvaluateSet(pnet, d.Valid, 4096)
			if err != nil {
				t.Fatal(err)
			}
			if diff := pr.Mean() - res.ValidLoss; diff > 1e-3 || diff < -1e-3 {
				t.Errorf("pruned model's loss %v, learned mask's %v", pr.Mean(), res.ValidLoss)
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") || e.Name() == CkptDir || e.Name() == recoverCkptDir {
					t.Errorf("left behind: %s", e.Name())
				}
			}
			var rec RunRecord
			data, _ := os.ReadFile(filepath.Join(out, RunFile))
			if err := json.Unmarshal(data, &rec); err != nil || rec.Recovery == nil || rec.Recovery.Mode != mode {
				t.Errorf("run.json recovery: %v %+v", err, rec.Recovery)
			}
			html, _ := os.ReadFile(filepath.Join(out, ReportFile))
			if !strings.Contains(string(html), "Recovery fine-tuning") {
				t.Error("report.html has no recovery section")
			}
			// The dense model is untouched by full fine-tuning of the slice.
			fresh := openBuiltin(t)
			if a, b := ck.Model.Layers[0].Q.Float32s(), fresh.Model.Layers[0].Q.Float32s(); a[0] != b[0] || a[len(a)-1] != b[len(b)-1] {
				t.Error("recovery changed the dense model's weights")
			}
		})
	}
}

func TestRecoverInterruptAndResume(t *testing.T) {
	ck := openBuiltin(t)
	d := personaData(t, ck, "slang")
	out := t.TempDir()
	cfg := smallConfig(ck, d, out)
	cfg.Recover = &RecoverConfig{Mode: RecoverLoRA, Steps: 6, LR: 3e-3}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.RecoverProgress = func(p train.Progress) {
		if p.Step == 2 {
			cancel()
		}
	}
	if _, err := Run(ctx, cfg); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted recovery: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, RecoveredDir)); err == nil {
		t.Error("an interrupted recovery left a recovered model")
	}
	cfg.RecoverProgress = nil
	cfg.Resume = true
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovery == nil || res.Recovery.Steps != 6 || len(res.Recovery.History) != 6 {
		t.Fatalf("resumed recovery %+v", res.Recovery)
	}
	if _, err := os.Stat(filepath.Join(out, RecoveredDir, "model", "config.json")); err != nil {
		t.Error(err)
	}
}

func TestRecoverBadInput(t *testing.T) {
	ck := openBuiltin(t)
	d := personaData(t, ck, "slang")
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Recover = &RecoverConfig{Mode: "qlora"} }, "recovery mode"},
		{func(c *Config) { c.Recover = &RecoverConfig{Mode: RecoverLoRA, Steps: -2} }, "must be positive"},
		{func(c *Config) { c.Recover = &RecoverConfig{Mode: RecoverFull}; c.NoExport = true }, "no export"},
	} {
		cfg := smallConfig(ck, d, t.TempDir())
		c.mod(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v (want %q)", err, c.want)
		}
	}
	if m, err := ParseRecover("LoRA"); err != nil || m != RecoverLoRA {
		t.Errorf("ParseRecover: %q %v", m, err)
	}
	if _, err := ParseRecover("qlora"); err == nil {
		t.Error("ParseRecover accepted qlora")
	}
}
