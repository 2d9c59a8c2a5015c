package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masque-ai/masque/internal/atomicfile"
)

// TestCheckpointCleansStaleStages: a checkpoint save killed mid-write
// leaves its staging folder (.checkpoint.tmp-NNN, model-sized); the next
// save removes it when it is old, reports it, and leaves a fresh one (a
// save still at work) alone.
func TestCheckpointCleansStaleStages(t *testing.T) {
	m, tok := loadStories(t)
	n, err := New(m, Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	seqs := []Sequence{lmSequence(tok.Encode("Once upon a time there was a girl.", true))}
	tr, err := NewTrainer(n, Config{Steps: 1, LR: 1e-3, BatchTokens: 40, Seed: 1}, seqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "checkpoint")
	old := time.Now().Add(-time.Hour)
	stale := filepath.Join(filepath.Dir(dir), ".checkpoint.tmp-1234")
	fresh := filepath.Join(filepath.Dir(dir), ".checkpoint.tmp-5678")
	for _, d := range []string{stale, fresh} {
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "params.safetensors"), make([]byte, 4096), 0o644)
	}
	os.Chtimes(filepath.Join(stale, "params.safetensors"), old, old)
	os.Chtimes(stale, old, old)
	var msgs []string
	atomicfile.SetReporter(func(s atomicfile.Stale) { msgs = append(msgs, s.Path) })
	defer atomicfile.SetReporter(nil)
	if err := tr.SaveCheckpoint(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale staging folder is still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the fresh staging folder was removed: %v", err)
	}
	if len(msgs) != 1 || !strings.HasSuffix(msgs[0], ".checkpoint.tmp-1234") {
		t.Errorf("reported %q", msgs)
	}
	if !HasCheckpoint(dir) {
		t.Error("no checkpoint written")
	}
}
