package cli

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMeterPlain checks the display where stderr is not a terminal: plain
// lines with the rate and ETA at most every plainEvery and a last line with
// the totals, never a carriage return; and nothing at all when quiet.
func TestMeterPlain(t *testing.T) {
	var buf bytes.Buffer
	e := &env{stderr: &buf}
	m := e.meter("work", "rows")
	m.every = time.Hour
	m.set(0, 10)
	m.set(3, 10)
	if buf.Len() != 0 {
		t.Fatalf("a line before the interval passed: %q", buf.String())
	}
	m.every = 0
	m.describe("kept 3")
	m.set(4, 10)
	m.set(10, 10)
	m.end()
	m.end()
	out := buf.String()
	if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
		t.Fatalf("carriage return or escape in a log: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one progress line and one final line, got %q", out)
	}
	if !regexp.MustCompile(`^work 4/10 \(40%\), [0-9.]+ rows/s, ETA \S+, kept 3$`).MatchString(lines[0]) {
		t.Errorf("progress line %q", lines[0])
	}
	if !regexp.MustCompile(`^work 10/10 in \S+, [0-9.]+ rows/s, kept 3$`).MatchString(lines[1]) {
		t.Errorf("final line %q", lines[1])
	}

	// A stage run again after it ended starts over.
	m.set(1, 5)
	m.set(5, 5)
	m.end()
	if got := strings.Count(buf.String(), "\n"); got != 4 {
		t.Errorf("a restarted stage: %q", buf.String())
	}

	buf.Reset()
	q := &env{stderr: &buf, quiet: true}
	qm := q.meter("work", "")
	qm.every = 0
	qm.set(1, 2)
	qm.set(2, 2)
	qm.end()
	q.progress("other")(3, 3)
	q.stages("x")("s", 1, 1)
	if buf.Len() != 0 {
		t.Errorf("quiet meter printed %q", buf.String())
	}

	// A terminal meter (pull's bar) shows nothing off a terminal.
	tm := e.terminalMeter("org/model", "bytes", false)
	tm.every = 0
	tm.describe("1/2 model.safetensors")
	tm.set(5, 10)
	tm.set(10, 10)
	tm.end()
	if buf.Len() != 0 {
		t.Errorf("terminal meter printed %q off a terminal", buf.String())
	}
}

// TestProgressNotATerminal runs long commands in-process (stderr a buffer,
// not a terminal): progress comes as plain lines without carriage returns,
// and --quiet removes it.
func TestProgressNotATerminal(t *testing.T) {
	data := "../../tokenizer/bpetrain/testdata/kjv-genesis-1-3.txt"
	out := filepath.Join(t.TempDir(), "tok")
	code, _, stderr := run(t, "", "tokenizer", "train", "--data", data, "--vocab-size", "300", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("carriage return in non-terminal output: %q", stderr)
	}
	if !regexp.MustCompile(`(?m)^merging \d+/\d+ in \S+, [0-9.]+ merges/s$`).MatchString(stderr) {
		t.Errorf("no final progress line: %q", stderr)
	}
	code, _, stderr = run(t, "", "tokenizer", "train", "--data", data, "--vocab-size", "300", "--out", out, "--quiet")
	if code != 0 || stderr != "" {
		t.Errorf("--quiet: exit %d, stderr %q", code, stderr)
	}

	dir := t.TempDir()
	code, _, stderr = run(t, "", "stats", "--calib-limit", "2", "--out", dir)
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "\r") || !strings.Contains(stderr, "statistics 2/2 in ") {
		t.Errorf("stats progress: %q", stderr)
	}
	code, _, stderr = run(t, "", "stats", "--calib-limit", "2", "--out", dir, "--quiet")
	if code != 0 || stderr != "" {
		t.Errorf("stats --quiet: exit %d, stderr %q", code, stderr)
	}
}
