package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/sft"
)

// TestRunJob runs a LoRA job from a JSONL file on the built-in model: the
// bad row is reported, the adapter and merged llama2.c model are written
// with training.json and loss.svg, and a second run refuses the checkpoint
// left by an interrupted one.
func TestRunJob(t *testing.T) {
	ck, err := checkpoint.Open(builtin.Stories, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data.jsonl")
	row := `{"messages":[{"role":"user","content":"Tell me."},{"role":"assistant","content":"The dragon ate the apple."}]}`
	if err := os.WriteFile(data, []byte(strings.Repeat(row+"\n", 4)+"{\"messages\": [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var notes []string
	cfg := JobConfig{
		Config:    Config{Model: ck.Model, LoRA: testLoRA(), Train: train.Config{Steps: 3, BatchTokens: 512, Accum: 1, LR: 1e-3, Seed: 1}},
		ModelPath: ck.Path, Targets: "q,v", Encoder: sft.NewEncoder(ck.Template, ck.Tokenizer, ck.TemplateConfig, ck.HasTemplate),
		Data: data, Read: sft.Options{MaxLen: 256, OnBadRow: chatdata.SkipBadRows}, Out: filepath.Join(dir, "out"), Merge: true,
		Llama2CTokenizer: func() ([]byte, error) { return builtin.Tokenizer, nil },
		Logf:             func(f string, a ...any) { notes = append(notes, f) },
	}
	res, err := RunJob(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Trainer.State.Step != 3 || !strings.HasPrefix(res.Mode, "LoRA r=") || !strings.HasSuffix(res.Mode, " on q,v") {
		t.Errorf("steps %d, mode %q", res.Trainer.State.Step, res.Mode)
	}
	if got := strings.Join(notes, "|"); !strings.Contains(got, "masque: skipping") || !strings.Contains(got, "data: ") || !strings.Contains(got, "trainable parameters") {
		t.Errorf("notices %q", got)
	}
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json", "training.json", "loss.svg", "merged/model.bin", "merged/tokenizer.bin"} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Error(err)
		}
	}
	var rec map[string]any
	b, _ := os.ReadFile(filepath.Join(cfg.Out, "training.json"))
	if err := json.Unmarshal(b, &rec); err != nil || rec["steps_done"] != 3.0 || len(rec["skipped_rows"].([]any)) != 1 || rec["merged_model"] != filepath.Join(cfg.Out, "merged", "model.bin") {
		t.Errorf("training.json: %v %v", err, rec)
	}
	if _, err := model.LoadLlama2C(filepath.Join(cfg.Out, "merged", "model.bin")); err != nil {
		t.Errorf("merged model: %v", err)
	}

	// An interrupted run keeps its checkpoint and records; a new run in
	// the same folder must resume it.
	cfg.Out = filepath.Join(dir, "interrupted")
	cfg.Train.Steps, cfg.Train.CheckpointEvery = 1000, 0
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Progress = func(p train.Progress) {
		if p.Step == 2 {
			cancel()
		}
	}
	res, err = RunJob(ctx, cfg)
	if !errors.Is(err, train.ErrInterrupted) || res == nil || !res.Interrupted {
		t.Fatalf("interrupted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "training.json")); err != nil {
		t.Error(err)
	}
	cfg.Progress = nil
	if _, err := RunJob(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("a new run over a checkpoint: %v", err)
	}
}
