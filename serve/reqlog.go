package serve

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Request log: with Options.Log enabled at Info (masque serve --verbose),
// every request gets one structured line as it ends: "request" with
// method, path, persona, status, prompt_tokens, completion_tokens,
// latency and remote. Handlers fill in what only they know (the persona,
// the tokens) through the request's reqLog.

// reqLog is what a handler tells the request log about its request. It is
// used by the request's own goroutine only.
type reqLog struct {
	persona                        string
	promptTokens, completionTokens int
}

type reqLogKey struct{}

// withReqLog attaches a fresh reqLog to r.
func withReqLog(r *http.Request) (*http.Request, *reqLog) {
	rl := &reqLog{}
	return r.WithContext(context.WithValue(r.Context(), reqLogKey{}, rl)), rl
}

// logOf returns r's reqLog (a throwaway one when r has none, as in tests
// that call a handler directly).
func logOf(r *http.Request) *reqLog {
	if rl, ok := r.Context().Value(reqLogKey{}).(*reqLog); ok {
		return rl
	}
	return &reqLog{}
}

// logRequest writes the request's line at Info.
func (s *Server) logRequest(r *http.Request, rl *reqLog, status int, latency time.Duration) {
	if !s.opts.Log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	s.opts.Log.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("persona", rl.persona),
		slog.Int("status", status), slog.Int("prompt_tokens", rl.promptTokens), slog.Int("completion_tokens", rl.completionTokens),
		slog.Duration("latency", latency), slog.String("remote", r.RemoteAddr))
}
