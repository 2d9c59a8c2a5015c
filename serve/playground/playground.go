// Package playground is masque serve's web playground: one self-contained
// page (HTML, CSS and JavaScript embedded in the binary, no external
// resources, works offline) to build personas and try them: the persona
// list with each one's kind and size, an editor (create, edit, delete over
// the admin endpoints), character card import by drag and drop, chat with
// one persona or two side by side on the same message over the streaming
// chat completions API, tokens per second and prompt cache hits per reply,
// and live server totals from /metrics. Every control has a label and is
// reachable by keyboard; Enter sends and saves, Escape closes the editor.
package playground

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// files maps URL paths to embedded files.
var files = map[string]struct{ name, typ string }{
	"/":                      {"static/index.html", "text/html; charset=utf-8"},
	"/playground/app.js":     {"static/app.js", "text/javascript; charset=utf-8"},
	"/playground/style.css":  {"static/style.css", "text/css; charset=utf-8"},
	"/playground/index.html": {"static/index.html", "text/html; charset=utf-8"},
}

// Serves reports whether path is one of the playground's pages.
func Serves(path string) bool {
	_, ok := files[path]
	return ok
}

// csp allows the page its own scripts, styles and API calls only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the playground: the page at / and its script and style
// sheet under /playground/. Other paths are 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		data, err := fs.ReadFile(static, f.name)
		if err != nil {
			http.Error(w, "missing asset", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.typ)
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if strings.HasSuffix(f.name, ".html") {
			h.Set("X-Frame-Options", "DENY")
		}
		w.Write(data)
	})
}
