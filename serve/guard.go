package serve

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Guards against web pages driving the server through a user's browser.
//
// A browser lets any page send "simple" cross-site requests (a text/plain
// or form POST) and, after DNS rebinding, read the answers of a server
// that trusts its Host header. So:
//   - JSON endpoints refuse bodies sent as another type (text/plain, a
//     form, …: what a page can send cross-site without a CORS preflight);
//     a request without a Content-Type is taken as JSON, for clients that
//     send none (a browser that sends none also sends an Origin, which the
//     next rule checks);
//   - a request from another origin (its Origin header names another
//     scheme/host/port than the request's Host) is refused unless
//     Options.CORSOrigins allows that origin ("*": any), in which case it
//     gets the CORS headers, preflights included;
//   - without an API key, only loopback Host names (localhost, *.localhost,
//     127.0.0.0/8, ::1) are served, as Jupyter and other local servers do:
//     a rebound name reaches no endpoint, the playground included.

// hostAllowed reports whether the request's Host may be served.
func (s *Server) hostAllowed(r *http.Request) bool {
	if s.opts.APIKey != "" {
		return true
	}
	return isLoopbackHost(r.Host)
}

// isLoopbackHost reports whether host (host or host:port) names the
// loopback interface.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether origin (an Origin header) is the origin the
// request was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) ||
		// http://host:80 and https://host:443 are sent as "host".
		(u.Port() == "" && strings.EqualFold(u.Host+":"+defaultPort(u.Scheme), r.Host)) ||
		(!strings.Contains(r.Host, ":") && strings.EqualFold(u.Host, r.Host+":"+defaultPort(u.Scheme)))
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// corsAllowed reports whether cross-origin requests from origin are
// allowed.
func (s *Server) corsAllowed(origin string) bool {
	for _, o := range s.opts.CORSOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// guard applies the Host and Origin rules to every request, answering
// CORS preflights itself; it returns true when it has answered r.
func (s *Server) guard(w http.ResponseWriter, r *http.Request) bool {
	if !s.hostAllowed(r) {
		writeError(w, newError(http.StatusForbidden, typePermission, "host_not_allowed", "",
			"the Host %q is not a loopback name: a server without an API key answers only requests addressed to localhost, 127.0.0.1 or [::1] (this refuses DNS-rebinding attacks); start it with --api-key to serve other names", r.Host))
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" || sameOrigin(origin, r) {
		return false
	}
	if !s.corsAllowed(origin) {
		writeError(w, newError(http.StatusForbidden, typePermission, "cross_origin_forbidden", "",
			"cross-origin requests from %q are not allowed: start the server with --cors-origin %s to allow that web page", origin, origin))
		return true
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Session-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// checkJSONBody refuses a POST to a JSON endpoint whose Content-Type is
// another type than JSON (application/json or a */*+json type; none is
// taken as JSON); also lists further types the endpoint takes (image/png
// for character cards).
func checkJSONBody(r *http.Request, also ...string) *apiError {
	if r.Method != http.MethodPost {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if strings.TrimSpace(ct) == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	for _, a := range also {
		if err == nil && mt == a {
			return nil
		}
	}
	want := "application/json"
	if len(also) > 0 {
		want += " or " + strings.Join(also, " or ")
	}
	return newError(http.StatusUnsupportedMediaType, typeInvalidRequest, "unsupported_media_type", "",
		"the request body must be sent with Content-Type: %s (got %s)", want, ct)
}
