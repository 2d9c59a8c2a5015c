package teacher

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
)

func noEnv(string) string { return "" }

// TestOpenSetup opens each kind of teacher as masque synth does, and checks
// that impossible settings are SetupErrors.
func TestOpenSetup(t *testing.T) {
	dir := t.TempDir()
	// The built-in engine: one request at a time, the cache in Out.
	o, err := Open(Setup{Engine: "builtin", Attempts: 1, Out: dir, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if o.Workers != 1 || o.Model == "" || o.Teacher == nil {
		t.Errorf("engine teacher: workers %d, model %q", o.Workers, o.Model)
	}
	o.Close()
	if _, err := os.Stat(filepath.Join(dir, "cache.jsonl")); err != nil {
		t.Errorf("no cache file: %v", err)
	}

	// An endpoint (not contacted here).
	o, err = Open(Setup{URL: "http://127.0.0.1:1/v1", Model: "m", Concurrency: 3, Attempts: 2, NoCache: true, Getenv: noEnv})
	if err != nil || o.Workers != 3 || o.Model != "m" {
		t.Fatalf("endpoint teacher: %v %+v", err, o)
	}
	o.Close()

	// Export: the batch file appears only when committed.
	batch := filepath.Join(dir, "batch.jsonl")
	o, err = Open(Setup{Mode: Export, Model: "m", BatchFile: batch, Out: dir, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.Teacher.Complete(context.Background(), Request{Model: "m", Messages: []chattemplate.Message{{Role: "user", Content: "hi"}}, MaxTokens: 8})
	if !IsDeferred(err) {
		t.Errorf("a recorded request: %v, want a deferred error", err)
	}
	if _, err := os.Stat(batch); err == nil {
		t.Error("the batch file exists before FinishBatch")
	}
	n, name, err := o.FinishBatch()
	if err != nil || n != 1 || name != batch {
		t.Errorf("FinishBatch = %d, %q, %v", n, name, err)
	}
	o.Close()
	if b, err := os.ReadFile(batch); err != nil || !strings.Contains(string(b), `"custom_id"`) {
		t.Errorf("batch file: %v %q", err, b)
	}

	for _, tc := range []struct {
		s    Setup
		want string
	}{
		{Setup{Attempts: 1, NoCache: true}, "no teacher"},
		{Setup{URL: "http://x/v1", Attempts: 1, NoCache: true}, "--teacher-model"},
		{Setup{URL: "http://x/v1", Model: "m", NoCache: true}, "--attempts"},
		{Setup{Mode: Export, Model: "m", Out: dir}, "--file"},
		{Setup{Mode: Import, Out: dir}, "--teacher-model"},
		{Setup{Mode: Import, Model: "m", Out: dir}, "--results"},
	} {
		tc.s.Getenv = noEnv
		_, err := Open(tc.s)
		var se *SetupError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want a SetupError naming %s", tc.s, err, tc.want)
		}
	}
	if _, err := Open(Setup{Mode: Import, Model: "m", Out: dir, Results: []string{filepath.Join(dir, "missing.jsonl")}, Getenv: noEnv}); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing results file: %v", err)
	}
}
