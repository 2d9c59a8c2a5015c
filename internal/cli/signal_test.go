package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run the CLI in a child process: with
// MASQUE_CLI_CHILD=1 the test binary is masque, its arguments the
// command's (the signal tests re-execute it so that a real SIGTERM
// reaches a real process).
func TestMain(m *testing.M) {
	if os.Getenv("MASQUE_CLI_CHILD") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child is masque running in a child process.
type child struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	errs bytes.Buffer // stderr so far
	done chan struct{}
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(exe, args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), "MASQUE_CLI_CHILD=1")
	pr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			c.mu.Lock()
			c.errs.Write(buf[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

func (c *child) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errs.String()
}

// waitFor waits until stderr matches re and returns the match.
func (c *child) waitFor(t *testing.T, re *regexp.Regexp, limit time.Duration) []string {
	t.Helper()
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		if m := re.FindStringSubmatch(c.stderr()); m != nil {
			return m
		}
		select {
		case <-c.done:
			t.Fatalf("the child exited before printing %s:\n%s", re, c.stderr())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("the child did not print %s within %v:\n%s", re, limit, c.stderr())
	return nil
}

// terminate sends SIGTERM and returns the exit code (-1: killed by a
// signal).
func (c *child) terminate(t *testing.T, limit time.Duration) int {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The stderr reader reaches EOF when the child exits; only then may
	// Wait run, since Wait closes the pipe and would drop the child's last
	// lines still unread (os/exec: "it is incorrect to call Wait before all
	// reads from the pipe have completed").
	select {
	case <-c.done:
	case <-time.After(limit):
		c.cmd.Process.Kill()
		<-c.done
		c.cmd.Wait()
		t.Fatalf("the child did not exit within %v of SIGTERM:\n%s", limit, c.stderr())
	}
	c.cmd.Wait()
	return c.cmd.ProcessState.ExitCode()
}

// TestServeSIGTERM: SIGTERM (systemd, Docker, Kubernetes) makes `masque
// serve` stop accepting, let the stream in flight finish with its
// [DONE], and exit 0.
func TestServeSIGTERM(t *testing.T) {
	c := startChild(t, "serve", "--model", "builtin:stories260K", "--addr", "127.0.0.1:0", "--no-playground", "--shutdown-grace", "30s")
	addr := c.waitFor(t, regexp.MustCompile(`on http://(\S+) `), time.Minute)[1]
	body := `{"model":"base","stream":true,"max_tokens":200,"temperature":0,"messages":[{"role":"user","content":"Once upon a time"}]}`
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "data: {") {
		t.Fatalf("first line %q, %v", first, err)
	}
	code := make(chan int, 1)
	go func() { code <- c.terminate(t, time.Minute) }()
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("the stream was cut after %q: %v", rest, err)
	}
	var events []string
	for _, l := range strings.Split(first+string(rest), "\n") {
		if strings.HasPrefix(l, "data: ") {
			events = append(events, strings.TrimPrefix(l, "data: "))
		}
	}
	if n := len(events); n < 2 || events[n-1] != "[DONE]" {
		t.Fatalf("the stream did not end with [DONE]: %q", events)
	}
	var last struct {
		Choices []struct {
			FinishReason *string `json:"finish_reason"`
		}
	}
	if err := json.Unmarshal([]byte(events[len(events)-2]), &last); err != nil || len(last.Choices) != 1 || last.Choices[0].FinishReason == nil {
		t.Errorf("the last chunk before [DONE] has no finish_reason: %s", events[len(events)-2])
	}
	if got := <-code; got != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", got, c.stderr())
	}
	// The listener is closed: nothing is served any more.
	if _, err := http.Get("http://" + addr + "/v1/models"); err == nil {
		t.Error("the server still answers after it exited")
	}
}

// TestTrainSIGTERM: SIGTERM makes finetune and pretrain write a
// resumable checkpoint, as Ctrl-C does.
func TestTrainSIGTERM(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.jsonl")
	var rows []string
	for i := 0; i < 12; i++ {
		text := fmt.Sprintf("the cat number %d sat on the mat and the dog ran to it.", i)
		b, _ := json.Marshal(map[string]any{"id": fmt.Sprint(i), "voice": "cats", "text": text,
			"messages": []map[string]string{{"role": "user", "content": "Tell me."}, {"role": "assistant", "content": text}}})
		rows = append(rows, string(b))
	}
	os.WriteFile(data, []byte(strings.Join(rows, "\n")+"\n"), 0o644)
	tok := filepath.Join("..", "..", "train", "pretrain", "testdata", "tokenizer")
	for _, tc := range []struct {
		name, ready string
		args        []string
	}{
		{"finetune", "trainable parameters", []string{"finetune", "--model", "builtin:stories260K", "--data", data, "--steps", "1000000", "--checkpoint-every", "0",
			"--lora-rank", "4", "--eval-fraction", "0", "--seed", "1"}},
		{"pretrain", `valid [0-9]`, []string{"pretrain", "--data", data, "--valid", data, "--tokenizer", tok, "--preset", "voices-tiny",
			"--seq-len", "64", "--batch-tokens", "256", "--steps", "1000000", "--checkpoint-every", "0", "--eval-every", "3", "--threads", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name)
			c := startChild(t, append(tc.args, "--out", out)...)
			c.waitFor(t, regexp.MustCompile(tc.ready), 2*time.Minute)
			time.Sleep(500 * time.Millisecond)
			code := c.terminate(t, 2*time.Minute)
			if code < 0 {
				t.Fatalf("killed by SIGTERM without cleanup:\n%s", c.stderr())
			}
			if _, err := os.Stat(filepath.Join(out, "checkpoint")); err != nil {
				t.Fatalf("no checkpoint after SIGTERM (exit %d): %v\n%s", code, err, c.stderr())
			}
			if !strings.Contains(c.stderr(), "resume") {
				t.Errorf("the output does not say how to resume:\n%s", c.stderr())
			}
		})
	}
}
