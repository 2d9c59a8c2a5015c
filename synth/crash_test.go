package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/masque-ai/masque/synth/teacher"
)

// The crash test re-executes this test binary as the synthesizing process
// (SYNTH_CHILD=1) and kills it with SIGKILL mid-run.
func TestMain(m *testing.M) {
	if os.Getenv("SYNTH_CHILD") == "1" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// childConfig is what the parent passes to the child (as JSON in
// SYNTH_CHILD_CONFIG).
type childConfig struct {
	Out, URL   string
	Characters []Character
	Questions  []Instruction
}

func childAnswers(cc childConfig, cache *teacher.Cache) AnswersConfig {
	cl := teacher.NewClient(&teacher.OpenAI{BaseURL: cc.URL + "/v1", Model: "fake", Stream: true},
		teacher.Options{Concurrency: 3, Cache: cache, BaseBackoff: 10 * time.Millisecond})
	return AnswersConfig{Common: Common{Out: cc.Out, Teacher: cl, TeacherModel: "fake", Seed: 5, MaxTokens: 64, Temperature: 0.7,
		DedupeThreshold: 0.85, Quality: QualityOptions{Language: "any"}},
		Strategy: StrategyG, Characters: cc.Characters, Instructions: cc.Questions, PerInstruction: 2}
}

func crashChild() int {
	var cc childConfig
	if err := json.Unmarshal([]byte(os.Getenv("SYNTH_CHILD_CONFIG")), &cc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	os.MkdirAll(cc.Out, 0o755)
	cache, err := teacher.OpenCache(filepath.Join(cc.Out, FileCache))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer cache.Close()
	sum, err := RunAnswers(context.Background(), childAnswers(cc, cache))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !sum.Complete {
		fmt.Fprintln(os.Stderr, "incomplete")
		return 1
	}
	return 0
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// TestKillAndResume kills the synthesizing process with SIGKILL twice in
// the middle of a run (and tears the last line of its log as a kill during
// a write would), reruns it, and checks that the output equals an
// uninterrupted run's, with no duplicate, lost or torn rows.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	dir := t.TempDir()
	h := newFakeHandler()
	h.delay = 25 * time.Millisecond
	srv := newServer(t, h)
	cc := childConfig{Out: filepath.Join(dir, "killed"), URL: srv.URL, Characters: testCharacters(6), Questions: testInstructions(40)}
	const total = 80
	cfgJSON, _ := json.Marshal(cc)
	logPath := StageFile(cc.Out, StageAnswers, "log")
	run := func(killAfter int) (killed bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SYNTH_CHILD=1", "SYNTH_CHILD_CONFIG="+string(cfgJSON))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if killAfter > 0 {
			deadline := time.After(30 * time.Second)
			for countLines(logPath) < killAfter {
				select {
				case err := <-done:
					t.Fatalf("child ended before the kill: %v\n%s", err, stderr.String())
				case <-deadline:
					cmd.Process.Kill()
					t.Fatal("child too slow")
				case <-time.After(5 * time.Millisecond):
				}
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			<-done
			return true
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child: %v\n%s", err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatal("child did not finish")
		}
		return false
	}
	run(15)
	n1 := countLines(logPath)
	if n1 >= total {
		t.Fatalf("killed too late: %d rows", n1)
	}
	// A kill in the middle of a write leaves a torn last line.
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"deadbeef","character_id":"x","quest`)
	f.Close()
	run(n1 + 20)
	if n := countLines(logPath); n >= total {
		t.Fatalf("second kill too late: %d rows", n)
	}
	run(0)

	ids := logIDs(t, logPath)
	if len(ids) != total || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != total {
		t.Fatalf("%d rows (%d distinct), want %d", len(ids), len(slices.Compact(slices.Sorted(slices.Values(ids)))), total)
	}
	if probs, _ := ReadLog(logPath, func(string, []byte) error { return nil }); len(probs) > 0 {
		t.Fatalf("log problems after resume: %v", probs)
	}
	data := mustRead(t, logPath)
	if strings.Contains(data, "deadbeef") || !strings.HasSuffix(data, "\n") {
		t.Fatal("torn line survived")
	}

	// An uninterrupted run in-process.
	ref := cc
	ref.Out = filepath.Join(dir, "reference")
	os.MkdirAll(ref.Out, 0o755)
	if sum, err := RunAnswers(context.Background(), childAnswers(ref, openCache(t, filepath.Join(ref.Out, FileCache)))); err != nil || !sum.Complete {
		t.Fatal(sum, err)
	}
	for _, name := range []string{FileDialogue, FileDialogueChat} {
		a, b := mustRead(t, filepath.Join(cc.Out, name)), mustRead(t, filepath.Join(ref.Out, name))
		if a != b || strings.Count(a, "\n") < total/2 {
			t.Fatalf("%s differs from an uninterrupted run (%d vs %d lines)", name, strings.Count(a, "\n"), strings.Count(b, "\n"))
		}
	}
}

// TestInterruptResume cancels a run (as SIGINT does) and resumes it.
func TestInterruptResume(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHandler()
	h.delay = 10 * time.Millisecond
	srv := newServer(t, h)
	cc := childConfig{Out: filepath.Join(dir, "run"), URL: srv.URL, Characters: testCharacters(4), Questions: testInstructions(20)}
	os.MkdirAll(cc.Out, 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := childAnswers(cc, openCache(t, filepath.Join(cc.Out, FileCache)))
	cfg.Progress = func(p Progress) {
		if p.Kept >= 8 {
			cancel()
		}
	}
	sum, err := RunAnswers(ctx, cfg)
	if err != nil || !sum.Interrupted || sum.Complete || sum.Kept < 8 || sum.Kept >= 40 || sum.Failed != 0 {
		t.Fatalf("interrupted run: %+v %v", sum, err)
	}
	if n := countLines(StageFile(cc.Out, StageAnswers, "log")); n != sum.Kept {
		t.Fatalf("%d rows in the log, %d kept", n, sum.Kept)
	}
	if man, _ := ReadManifest(cc.Out, StageAnswers); man.Complete || man.Done != sum.Kept || man.Total != 40 {
		t.Fatalf("manifest %+v", man)
	}
	cfg.Progress = nil
	sum2, err := RunAnswers(context.Background(), cfg)
	if err != nil || !sum2.Complete || sum2.Resumed != sum.Kept || sum2.Kept != 40-sum.Kept {
		t.Fatalf("resumed run: %+v %v", sum2, err)
	}
	// The folder refuses other settings.
	cfg.Seed = 6
	if _, err := RunAnswers(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Fatalf("changed settings accepted: %v", err)
	}
}
