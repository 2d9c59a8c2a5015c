package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeAndLoadtest starts `masque serve` on the built-in model with two
// personas on a loopback port, checks the API with plain HTTP, runs a short
// `masque loadtest` against it (0 errors), and shuts it down.
func TestServeAndLoadtest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	reg := filepath.Join(t.TempDir(), "personas.yaml")
	os.WriteFile(reg, []byte("personas:\n  - name: sailor\n    description: A retired sailor who tells tall tales.\n  - name: librarian\n    description: A shy librarian.\n"), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() {
		root := newRoot(strings.NewReader(""), &out, &errb)
		root.SetArgs([]string{"serve", "--personas", reg, "--addr", addr, "--api-key", "k1", "--prompt-cache-mb", "16"})
		done <- root.ExecuteContext(ctx)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("server did not come up: %v\n%s", err, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	call := func(key, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v map[string]any
		json.Unmarshal(b, &v)
		return resp.StatusCode, v
	}
	story := `{"model":"sailor","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":8,"temperature":0}`
	code, v := call("k1", story)
	if code != 200 || v["choices"] == nil {
		t.Fatalf("chat: %d %v", code, v)
	}
	// The same request again resumes from the prompt cache.
	code, v = call("k1", story)
	u, _ := v["usage"].(map[string]any)
	details, _ := u["prompt_tokens_details"].(map[string]any)
	if cached, _ := details["cached_tokens"].(float64); code != 200 || cached < 1 || cached != u["prompt_tokens"].(float64)-1 {
		t.Errorf("second chat: %d, usage %v", code, u)
	}
	if code, _ := call("wrong", `{"model":"sailor","messages":[]}`); code != 401 {
		t.Errorf("bad key: %d, want 401", code)
	}
	if code, _ := call("k1", `{"model":"nobody","messages":[{"role":"user","content":"hi"}]}`); code != 404 {
		t.Errorf("unknown persona: %d, want 404", code)
	}
	if code, _ := call("k1", `{"model":`); code != 400 {
		t.Errorf("malformed JSON: %d, want 400", code)
	}
	lcode, lout, lerr := run(t, "", "loadtest", "--url", base, "--api-key", "k1", "--personas", "sailor,librarian",
		"--concurrency", "4", "--duration", "2s", "--max-tokens", "8", "--json")
	if lcode != 0 {
		t.Fatalf("loadtest: %s", lerr)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(lout), &rep); err != nil {
		t.Fatalf("loadtest output %q: %v", lout, err)
	}
	if fmt.Sprint(rep["errors"]) != "0" {
		t.Errorf("loadtest errors: %v", rep)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop on cancellation")
	}
	if !strings.Contains(errb.String(), "prompt cache 16 MiB") {
		t.Errorf("serve's banner: %s", errb.String())
	}
	if code, _, stderr := run(t, "", "serve", "--prompt-cache-mb", "-1"); code == 0 || !strings.Contains(stderr, "--prompt-cache-mb") {
		t.Errorf("a negative prompt cache: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(t, "", "serve", "--persist"); code == 0 || !strings.Contains(stderr, "--persist needs --personas") {
		t.Errorf("--persist without a registry: exit %d, %s", code, stderr)
	}
}
