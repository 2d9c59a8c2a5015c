package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeVoicesPersonas: `masque serve --model builtin:voices` without a
// registry hosts the nine voices as personas, each answering with its own
// system prompt.
func TestServeVoicesPersonas(t *testing.T) {
	t.Setenv("MASQUE_CACHE", t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() {
		root := newRoot(strings.NewReader(""), &out, &errb)
		root.SetArgs([]string{"serve", "--model", "builtin:voices", "--addr", addr, "--no-playground"})
		done <- root.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, errb.String())
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v\n%s", err, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &models); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	ids := map[string]bool{}
	for _, m := range models.Data {
		ids[m.ID] = true
	}
	for _, v := range []string{"kjv", "web", "spurgeon", "sotu", "jargon", "webster", "wordnet", "wesnoth", "devil"} {
		if !ids[v] {
			t.Errorf("persona %s missing from /v1/models: %s", v, b)
		}
	}
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(
		`{"model":"devil","messages":[{"role":"user","content":"Define: PEACE."}],"max_tokens":6,"temperature":0}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var chat struct {
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	// The devil's system prompt (about 60 tokens) is part of the prompt.
	if resp.StatusCode != 200 || json.Unmarshal(b, &chat) != nil || chat.Usage.PromptTokens < 40 {
		t.Fatalf("chat with devil: %d %s", resp.StatusCode, b)
	}
}
