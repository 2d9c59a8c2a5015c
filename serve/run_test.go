package serve

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true},
		{"512MiB", 512 << 20, true},
		{"2G", 2e9, true},
		{"1.5 GiB", 3 << 29, true},
		{"64kb", 64000, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"12 parsecs", 0, false},
		{"-1", 0, false},
		{"1e30", 0, false},
	} {
		got, err := ParseBytes(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestCheckBind(t *testing.T) {
	for _, tc := range []struct {
		addr, key string
		ok        bool
	}{
		{"127.0.0.1:8080", "", true},
		{"localhost:0", "", true},
		{"[::1]:8080", "", true},
		{"0.0.0.0:8080", "", false},
		{":8080", "", false},
		{"0.0.0.0:8080", "k", true},
		{"192.168.0.2:80", "", false},
		{"nonsense", "k", false},
	} {
		if err := CheckBind(tc.addr, tc.key); (err == nil) != tc.ok {
			t.Errorf("CheckBind(%q, %q) = %v, want ok %v", tc.addr, tc.key, err, tc.ok)
		}
	}
}

// TestServeShutdown serves on a loopback listener and stops with the context.
func TestServeShutdown(t *testing.T) {
	f := newFixture(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/health", nil)
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after the context ended")
	}
}

// TestLongStreamOutlivesBodyDeadline: the read deadline that bounds the
// request body must not end a generation that outlasts it.
func TestLongStreamOutlivesBodyDeadline(t *testing.T) {
	old := bodyTimeout
	bodyTimeout = 50 * time.Millisecond
	defer func() { bodyTimeout = old }()
	f := newFixture(t, func(o *Options) { o.stepDelay = 5 * time.Millisecond })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.srv.Serve(ctx, ln)
	for _, stream := range []bool{true, false} {
		body := jsonBytes(chatBody("pirate", map[string]any{"max_tokens": 60, "temperature": 1, "stream": stream, "stop": []string{"never-xyz"}}))
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %v: %d, %v", stream, resp.StatusCode, err)
		}
		if stream && !bytes.HasSuffix(data, []byte("data: [DONE]\n\n")) {
			t.Fatalf("the stream was cut after %v: %s", time.Since(t0), data)
		}
		if !stream && !bytes.Contains(data, []byte(`"finish_reason":"length"`)) {
			t.Fatalf("after %v: %s", time.Since(t0), data)
		}
		if d := time.Since(t0); d < 2*bodyTimeout {
			t.Logf("the generation took only %v", d)
		}
	}
}

// TestServeLoopbackLocalAdmin: a keyless server that Serve runs on a
// loopback listener lets this machine manage personas without a key.
func TestServeLoopbackLocalAdmin(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.APIKey, o.AdminKey = "", "" })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.srv.Serve(ctx, ln)
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/personas", "application/json", strings.NewReader(`{"name": "local", "description": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("keyless loopback server: %d %s", resp.StatusCode, body)
	}
}
