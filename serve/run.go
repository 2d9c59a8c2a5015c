package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseBytes parses a memory size: a number with an optional unit, B, K/KB
// (1000), KiB (1024), M/MB, MiB, G/GB, GiB, T/TB or TiB (case-insensitive),
// e.g. "512MiB", "2G", "1048576".
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("bad size %q (want e.g. 512MiB or 2GB)", s)
	}
	mult := map[string]float64{"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "kib": 1 << 10, "m": 1e6, "mb": 1e6, "mib": 1 << 20,
		"g": 1e9, "gb": 1e9, "gib": 1 << 30, "t": 1e12, "tb": 1e12, "tib": 1 << 40}
	m, ok := mult[unit]
	if !ok {
		return 0, fmt.Errorf("bad size %q: unknown unit %q", s, unit)
	}
	out := v * m
	if out > 1<<62 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(out), nil
}

// IsLoopback reports whether the listen address addr (host:port) binds
// only the loopback interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckBind refuses to listen beyond the loopback interface without an
// API key: a server reachable from other machines must authenticate.
func CheckBind(addr, apiKey string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("bad listen address %q: %v", addr, err)
	}
	if !IsLoopback(addr) && apiKey == "" {
		return fmt.Errorf("listening on %s exposes the server beyond this machine: set --api-key (or bind 127.0.0.1)", addr)
	}
	return nil
}

// Serve answers HTTP on ln until ctx ends, then shuts down: GET
// /health/ready answers 503 from then on, it serves on for
// Options.DrainDelay, then stops accepting, gives requests in flight up to Options.ShutdownGrace to
// finish (streams end with their [DONE]), and then ends the remaining
// ones (streams get an error event, code "shutting_down"); it returns nil
// after a shutdown that ctx asked for. The server is closed
// when Serve returns after ctx ended.
//
// A server with no keys serving on a loopback listener gets LocalAdmin
// (persona management from this machine without a key).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.opts.APIKey == "" && s.opts.AdminKey == "" && IsLoopback(ln.Addr().String()) {
		s.opts.LocalAdmin = true
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout: it would also end long streams. Each request's
		// body gets bodyTimeout instead (see routes).
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	if d := s.opts.DrainDelay; d > 0 {
		// Keep serving while the balancers see /health/ready fail.
		select {
		case err := <-errc:
			return err
		case <-time.After(d):
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	go func() {
		<-sctx.Done()
		s.Close() // ends generations still running so that their handlers return
	}()
	err := hs.Shutdown(sctx)
	s.Close()
	if errors.Is(err, context.DeadlineExceeded) {
		err = hs.Close()
	}
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
