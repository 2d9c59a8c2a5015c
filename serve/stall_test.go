package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// smallBufListener hands out connections with a small send buffer, so
// that a client that does not read blocks the server's writes soon.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestStalledReaderDropped: a client that sends a streaming request and
// never reads its answer is dropped once a write has been blocked for
// Options.StallTimeout (its connection is closed, its handler and
// generation end), and counted in /metrics.
func TestStalledReaderDropped(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.StallTimeout = 300 * time.Millisecond })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.srv.Serve(ctx, smallBufListener{ln})
	addr := ln.Addr().String()

	body := jsonBytes(chatBody("pirate", map[string]any{"stream": true, "max_tokens": 400, "logprobs": true, "top_logprobs": 20}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr, testAPIKey, len(body), body)
	// Read nothing for a while: the server's writes block.
	time.Sleep(2 * time.Second)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the server did not close the stalled connection (read %d bytes): %v", len(got), err)
	}
	if bytes.Contains(got, []byte("data: [DONE]")) {
		t.Fatalf("the stalled stream was finished rather than dropped (%d bytes)", len(got))
	}
	waitFor(t, func() bool { return f.srv.Engine().Stats().Active == 0 })

	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), "masque_stalled_clients_total 1") {
		t.Fatalf("the stalled client is not counted:\n%s", grepLines(string(m), "stalled"))
	}
	// A client that reads is not affected.
	if code, b := f.postJSON(t, "/v1/chat/completions", chatBody("pirate", map[string]any{"max_tokens": 4})); code != 200 {
		t.Fatalf("after the stall: %d %s", code, b)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
