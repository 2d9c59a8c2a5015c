// Package hub fetches model files from the Hugging Face hub into the cache
// that huggingface_hub (transformers, huggingface-cli, vLLM, …) uses, and finds
// them there again. It knows files and the hub's protocol, not models.
//
// The cache layout is huggingface_hub's, so files downloaded by Python tools
// are found and reused, and theirs by ours:
//
//	$HF_HUB_CACHE/models--org--name/
//	    blobs/<etag>                      file contents, named by sha256 (LFS) or git blob sha1
//	    blobs/<etag>.incomplete           a download in progress (resumed with a Range request)
//	    snapshots/<commit>/<file>         relative symlinks to ../../blobs/<etag>
//	    refs/<revision>                   the commit a branch or tag pointed to when last pulled
//	$HF_HUB_CACHE/.locks/models--org--name/<etag>.lock
//
// The protocol is the hub's: GET /api/models/{repo}/revision/{rev}?blobs=true
// lists a revision's files with their sizes and hashes and names its commit;
// HEAD /{repo}/resolve/{commit}/{file} answers with the file's etag
// (X-Linked-Etag for LFS files), size and, for large files, a redirect to a
// CDN, which is then read with GET and Range.
package hub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultEndpoint is the hub huggingface_hub talks to when HF_ENDPOINT is unset.
const DefaultEndpoint = "https://huggingface.co"

// DefaultRevision is the branch a reference without @rev means.
const DefaultRevision = "main"

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// home is huggingface_hub's HF_HOME: $HF_HOME, else $XDG_CACHE_HOME/huggingface,
// else ~/.cache/huggingface.
func home() string {
	if h := os.Getenv("HF_HOME"); h != "" {
		return expandHome(h)
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(expandHome(x), "huggingface")
	}
	h, err := os.UserHomeDir()
	if err != nil {
		h = "."
	}
	return filepath.Join(h, ".cache", "huggingface")
}

// CacheDir is the hub cache folder, found as huggingface_hub finds it:
// $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE (its older name), else
// $HF_HOME/hub (HF_HOME defaulting to $XDG_CACHE_HOME/huggingface or
// ~/.cache/huggingface).
func CacheDir() string {
	for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if d := os.Getenv(v); d != "" {
			return expandHome(d)
		}
	}
	return filepath.Join(home(), "hub")
}

// Endpoint is $HF_ENDPOINT (a mirror) or DefaultEndpoint, without a trailing slash.
func Endpoint() string {
	if e := strings.TrimRight(os.Getenv("HF_ENDPOINT"), "/"); e != "" {
		return e
	}
	return DefaultEndpoint
}

// Token returns the access token and where it came from ("HF_TOKEN", or the
// token file's path): $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN, else the file
// $HF_TOKEN_PATH or $HF_HOME/token that `huggingface-cli login` writes. Both
// are empty when there is none. The token is never printed.
func Token() (token, source string) {
	for _, v := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if t := strings.TrimSpace(os.Getenv(v)); t != "" {
			return t, v
		}
	}
	path := os.Getenv("HF_TOKEN_PATH")
	if path == "" {
		path = filepath.Join(home(), "token")
	}
	path = expandHome(path)
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, path
		}
	}
	return "", ""
}

// Ref names a model on the hub: "org/name", with an optional "@revision"
// (branch, tag or commit) and an optional ":TAG" choosing the GGUF files of
// one quantisation in a GGUF repo ("bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M").
type Ref struct {
	Repo     string // "org/name"
	Revision string // "" means DefaultRevision
	Quant    string // "" when no quantisation is chosen
}

var repoPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]*[A-Za-z0-9_]$`)

// ParseRef parses "org/name[@revision][:TAG]".
func ParseRef(s string) (Ref, error) {
	var r Ref
	rest := s
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		r.Quant = rest[i+1:]
		rest = rest[:i]
		if r.Quant == "" || strings.ContainsAny(r.Quant, "/@ ") {
			return Ref{}, fmt.Errorf("%q: the part after ':' must be a quantisation tag such as Q4_K_M", s)
		}
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		r.Revision = rest[i+1:]
		rest = rest[:i]
		if r.Revision == "" || strings.Contains(r.Revision, "..") || strings.HasPrefix(r.Revision, "/") || strings.HasSuffix(r.Revision, "/") {
			return Ref{}, fmt.Errorf("%q: bad revision after '@'", s)
		}
	}
	r.Repo = rest
	if !repoPart.MatchString(rest) || len(rest) > 96*2+1 || strings.Contains(rest, "--") || strings.Contains(rest, "..") {
		return Ref{}, fmt.Errorf("%q is not a hub model id: want org/name, optionally @revision and :QUANT (e.g. Qwen/Qwen2.5-0.5B-Instruct)", s)
	}
	return r, nil
}

// IsRef reports whether s has the shape of a hub model reference. A path that
// exists on disk should be opened as a path first.
func IsRef(s string) bool {
	_, err := ParseRef(s)
	return err == nil
}

func (r Ref) rev() string {
	if r.Revision == "" {
		return DefaultRevision
	}
	return r.Revision
}

// String writes the reference back as ParseRef reads it.
func (r Ref) String() string {
	s := r.Repo
	if r.Revision != "" {
		s += "@" + r.Revision
	}
	if r.Quant != "" {
		s += ":" + r.Quant
	}
	return s
}

// repoDir is the repository's folder in the cache.
func repoDir(cache, repo string) string {
	return filepath.Join(cache, "models--"+strings.ReplaceAll(repo, "/", "--"))
}

// ErrNotCached is returned (wrapped) by Lookup when the cache lacks a model.
var ErrNotCached = errors.New("not in the cache")
