package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// get sends GET path to addr (with the user key unless key is "") and
// returns the status and the body's "status" field.
func getStatus(t *testing.T, addr, path, key string) (int, string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var v struct {
		Status string `json:"status"`
	}
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, data)
	}
	return resp.StatusCode, v.Status, resp
}

// TestServeDrain: once Serve's context ends, /health/ready answers 503
// "draining" (without a key, as Kubernetes probes send none) while the
// server goes on serving for DrainDelay, with Connection: close; the
// request in flight finishes, and the listener closes after the delay.
// /health/live stays 200. X-Session-ID (the balancer's affinity key in
// deploy/) is accepted and ignored.
func TestServeDrain(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.DrainDelay = 2 * time.Second; o.stepDelay = 5 * time.Millisecond })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()

	chat := func(maxTokens int, stream bool) (*http.Response, []byte, error) {
		body := jsonBytes(chatBody("pirate", map[string]any{"max_tokens": maxTokens, "temperature": 1, "stream": stream, "stop": []string{"never-xyz"}}))
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		req.Header.Set("X-Session-ID", "npc-17")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return resp, data, err
	}
	if code, st, _ := getStatus(t, addr, "/health/ready", ""); code != 200 || st != "ready" {
		t.Fatalf("ready before shutdown: %d %q", code, st)
	}
	if code, st, _ := getStatus(t, addr, "/health/live", ""); code != 200 || st != "ok" {
		t.Fatalf("live: %d %q", code, st)
	}
	if code, _, _ := getStatus(t, addr, "/health", ""); code != 401 {
		t.Fatalf("/health without the key: %d, want 401 (only the probes are open)", code)
	}
	if resp, data, err := chat(4, false); err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("chat with X-Session-ID: %v %v %s", err, resp, data)
	}

	// A stream in flight when the shutdown starts.
	type result struct {
		resp *http.Response
		data []byte
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, data, err := chat(120, true)
		inflight <- result{resp, data, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); f.srv.eng.Stats().Active == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not start")
		}
	}
	cancel()
	for deadline := time.Now().Add(time.Second); !f.srv.draining.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Serve did not start draining")
		}
	}
	if code, st, _ := getStatus(t, addr, "/health/ready", ""); code != 503 || st != "draining" {
		t.Errorf("ready while draining: %d %q, want 503 draining", code, st)
	}
	if code, st, _ := getStatus(t, addr, "/health/live", ""); code != 200 || st != "ok" {
		t.Errorf("live while draining: %d %q", code, st)
	}
	if code, st, resp := getStatus(t, addr, "/health", testAPIKey); code != 200 || st != "draining" || !resp.Close {
		t.Errorf("/health while draining: %d %q, Connection: close %v", code, st, resp.Close)
	}
	// New requests are still served while the balancers catch up.
	if resp, data, err := chat(4, false); err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Errorf("chat while draining: %v %v %s", err, resp, data)
	}
	r := <-inflight
	if r.err != nil || r.resp.StatusCode != 200 || !bytes.HasSuffix(r.data, []byte("data: [DONE]\n\n")) || strings.Contains(string(r.data), "shutting_down") {
		t.Errorf("the stream in flight: %v %v %s", r.err, r.resp, r.data)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("the listener still accepts after Serve returned")
	}
}

// TestReadySaturated: /health/ready answers 503 "saturated" while the
// queue is full (a new request would get 429), and 200 again after.
func TestReadySaturated(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxSeqs, o.MaxQueue, o.stepDelay = 1, 1, 5*time.Millisecond })
	ready := func() (int, string) {
		resp, err := http.Get(f.ts.URL + "/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Status string }
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v.Status
	}
	errc := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			code, data := f.postJSON(t, "/v1/chat/completions", chatBody("pirate", map[string]any{"max_tokens": 120, "stop": []string{"never-xyz"}}))
			if code != 200 {
				errc <- fmt.Errorf("chat: %d %s", code, data)
				return
			}
			errc <- nil
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); f.srv.eng.Stats().Queued == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no request queued")
		}
	}
	// The queue may drain while /health/ready is asked (a loaded machine
	// can be slow to answer): only an answer given with the queue full
	// before and after it must say saturated.
	drained := ""
	for {
		before := f.srv.eng.Stats().Queued
		code, st := ready()
		after := f.srv.eng.Stats().Queued
		if code == 503 && st == "saturated" {
			break
		}
		if before > 0 && after > 0 {
			t.Errorf("ready with a full queue: %d %q", code, st)
			break
		}
		if after == 0 {
			drained = fmt.Sprintf("%d %q", code, st)
			break
		}
	}
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if code, st := ready(); code != 200 || st != "ready" {
		t.Errorf("ready after: %d %q", code, st)
	}
	if drained != "" {
		t.Skipf("the queue drained before /health/ready answered (%s): the machine is too loaded to test saturation", drained)
	}
}

// TestLocalAdminNotThroughProxy: a request that a proxy on this machine
// relayed (X-Forwarded-For, Forwarded or X-Real-IP) comes from loopback
// but not from this machine's user: no keyless persona management.
func TestLocalAdminNotThroughProxy(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.APIKey, o.AdminKey = "", "" })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.srv.Serve(ctx, ln)
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-IP"} {
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/personas", strings.NewReader(`{"name": "relayed", "description": "x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(h, "203.0.113.7")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "admin_disabled") {
			t.Errorf("relayed with %s: %d %s, want 403 admin_disabled", h, resp.StatusCode, body)
		}
	}
}
