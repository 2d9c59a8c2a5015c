// Package hubtest runs a local server that speaks the Hugging Face hub's
// download protocol, for tests of code that pulls models: the revision API
// (GET /api/models/{repo}/revision/{rev}?blobs=true), the resolve endpoint
// (HEAD/GET /{repo}/resolve/{rev}/{file}) answering LFS files with
// X-Linked-Etag, X-Linked-Size and a redirect to a CDN on another host,
// small files directly with a git-sha1 ETag, X-Repo-Commit, Range requests,
// gated repositories (401/403 with X-Error-Code GatedRepo), unknown
// repositories, revisions and files (RepoNotFound, RevisionNotFound,
// EntryNotFound), and renamed repositories (a relative redirect). Faults can
// be injected: a transfer cut off after some bytes, a transfer that stalls
// until the client goes away, corrupted bytes, error statuses.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one request the hub or its CDN received.
type Request struct {
	CDN    bool // to the CDN host, not the hub
	Method string
	Path   string // unescaped
	Range  string
	Auth   string // the Authorization header
}

type repo struct {
	gated     bool
	renamedTo string
	refs      map[string]string            // branch or tag → commit
	commits   map[string]map[string][]byte // commit → file → contents
}

// Hub is the fake hub. Its methods are safe for concurrent use.
type Hub struct {
	URL   string // the endpoint (HF_ENDPOINT)
	CDN   string // where LFS files redirect to
	Token string // the token gated repositories accept
	// LFSThreshold: files of at least this many bytes are LFS files.
	LFSThreshold int

	api, cdn *httptest.Server
	mu       sync.Mutex
	repos    map[string]*repo
	blobs    map[string][]byte // sha256 → contents
	cut      map[string]int64  // content key → cut the next transfer after n bytes
	stall    map[string]int64  // content key → stall the next transfer after n bytes
	corrupt  map[string]int    // content key → transfers left to corrupt
	fail     map[string]failure
	log      []Request
	seq      int
}

// New starts a hub and its CDN; both stop when the test ends.
func New(t testing.TB) *Hub {
	h := &Hub{Token: "hf_test_token_not_real", LFSThreshold: 1024,
		repos: map[string]*repo{}, blobs: map[string][]byte{},
		cut: map[string]int64{}, stall: map[string]int64{}, corrupt: map[string]int{}, fail: map[string]failure{}}
	h.api = httptest.NewServer(http.HandlerFunc(h.serveHub))
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	// Distinct hosts (host:port), as huggingface.co and its CDN are.
	h.URL = h.api.URL
	h.CDN = h.cdn.URL
	t.Cleanup(func() { h.api.Close(); h.cdn.Close() })
	return h
}

// SHA256 is the hex sha256 of b (an LFS file's etag).
func SHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// GitSHA1 is git's blob hash of b (a small file's etag).
func GitSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// Etag is the etag the hub gives a file: sha256 for LFS files, git sha1 otherwise.
func (h *Hub) Etag(b []byte) string {
	if len(b) >= h.LFSThreshold {
		return SHA256(b)
	}
	return GitSHA1(b)
}

// Commit makes a commit of repo holding files and points branch at it; it
// returns the commit's hash.
func (h *Hub) Commit(repoID, branch string, files map[string][]byte) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.repos[repoID]
	if r == nil {
		r = &repo{refs: map[string]string{}, commits: map[string]map[string][]byte{}}
		h.repos[repoID] = r
	}
	h.seq++
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	hs := sha1.New()
	fmt.Fprintf(hs, "%s %d\n", repoID, h.seq)
	cp := map[string][]byte{}
	for _, n := range names {
		fmt.Fprintf(hs, "%s %s\n", n, GitSHA1(files[n]))
		cp[n] = append([]byte(nil), files[n]...)
		if len(files[n]) >= h.LFSThreshold {
			h.blobs[SHA256(files[n])] = cp[n]
		}
	}
	c := hex.EncodeToString(hs.Sum(nil))
	r.commits[c] = cp
	r.refs[branch] = c
	return c
}

// Tag points a tag (or branch) at a commit.
func (h *Hub) Tag(repoID, tag, commit string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.repos[repoID].refs[tag] = commit
}

// Gate makes a repository answer only requests that carry Token.
func (h *Hub) Gate(repoID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.repos[repoID].gated = true
}

// Rename moves a repository: the old id redirects (relatively) to the new.
func (h *Hub) Rename(oldID, newID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.repos[newID] = h.repos[oldID]
	h.repos[oldID] = &repo{renamedTo: newID}
}

// CutAfter makes the next transfer of content drop the connection after n bytes.
func (h *Hub) CutAfter(content []byte, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cut[h.Etag(content)] = n
}

// StallAfter makes the next transfer of content stop sending after n bytes
// and hold the connection until the client goes away.
func (h *Hub) StallAfter(content []byte, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stall[h.Etag(content)] = n
}

// Corrupt makes the next times transfers of content send one byte flipped.
func (h *Hub) Corrupt(content []byte, times int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.corrupt[h.Etag(content)] = times
}

type failure struct{ status, times int }

// Fail makes the next times transfers (GET) of content answer with status
// instead: 503 or 429 as an overloaded hub does, or 403 from the CDN as an
// expired signed URL does.
func (h *Hub) Fail(content []byte, status, times int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail[h.Etag(content)] = failure{status, times}
}

// Requests returns the requests received so far and forgets them.
func (h *Hub) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.log
	h.log = nil
	return out
}

func (h *Hub) record(r *http.Request, cdn bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, Request{CDN: cdn, Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization")})
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// serveHub answers the API and the resolve endpoint.
func (h *Hub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.record(r, false)
	var segs []string
	for _, s := range strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			http.Error(w, "bad path", 400)
			return
		}
		segs = append(segs, u)
	}
	api := len(segs) == 6 && segs[0] == "api" && segs[1] == "models" && segs[4] == "revision" && r.Method == http.MethodGet
	resolve := len(segs) >= 5 && segs[2] == "resolve" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	if !api && !resolve {
		http.NotFound(w, r)
		return
	}
	var repoID, rev, file string
	if api {
		repoID, rev = segs[2]+"/"+segs[3], segs[5]
	} else {
		repoID, rev, file = segs[0]+"/"+segs[1], segs[3], strings.Join(segs[4:], "/")
	}
	h.mu.Lock()
	rp := h.repos[repoID]
	var commit string
	var files map[string][]byte
	if rp != nil && rp.renamedTo == "" {
		commit = rp.refs[rev]
		if commit == "" && rp.commits[rev] != nil {
			commit = rev
		}
		files = rp.commits[commit]
	}
	h.mu.Unlock()
	authed := r.Header.Get("Authorization") == "Bearer "+h.Token
	switch {
	case rp == nil:
		if r.Header.Get("Authorization") == "" {
			fail(w, 401, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		} else {
			fail(w, 404, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		}
		return
	case rp.renamedTo != "":
		to := strings.Replace(r.URL.EscapedPath(), "/"+repoID+"/", "/"+rp.renamedTo+"/", 1)
		if r.URL.RawQuery != "" {
			to += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", to) // relative, as the hub's are
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	case rp.gated && r.Header.Get("Authorization") == "":
		fail(w, 401, "GatedRepo", "Access to model "+repoID+" is restricted. You must have access to it and be authenticated to access it. Please log in.")
		return
	case rp.gated && !authed:
		fail(w, 403, "GatedRepo", "Access to model "+repoID+" is restricted and you are not in the authorized list.")
		return
	case commit == "":
		fail(w, 404, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	if api {
		type lfs struct {
			SHA256      string `json:"sha256"`
			Size        int    `json:"size"`
			PointerSize int    `json:"pointerSize"`
		}
		type sib struct {
			Name   string `json:"rfilename"`
			Size   int    `json:"size"`
			BlobID string `json:"blobId"`
			LFS    *lfs   `json:"lfs,omitempty"`
		}
		var sibs []sib
		var names []string
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			b := files[n]
			s := sib{Name: n}
			if len(b) >= h.LFSThreshold {
				ptr := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", SHA256(b), len(b))
				s.Size, s.BlobID = len(b), GitSHA1([]byte(ptr))
				s.LFS = &lfs{SHA256: SHA256(b), Size: len(b), PointerSize: len(ptr)}
			} else {
				s.Size, s.BlobID = len(b), GitSHA1(b)
			}
			if r.URL.Query().Get("blobs") != "true" {
				s = sib{Name: n}
			}
			sibs = append(sibs, s)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": repoID, "modelId": repoID, "sha": commit, "private": false, "gated": rp.gated, "siblings": sibs})
		return
	}
	b, ok := files[file]
	if !ok {
		fail(w, 404, "EntryNotFound", file+" does not exist on \""+rev+"\"")
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	if len(b) >= h.LFSThreshold {
		w.Header().Set("X-Linked-Etag", `"`+SHA256(b)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(b)))
		w.Header().Set("ETag", `W/"`+GitSHA1([]byte(file))+`"`) // the pointer's, not the file's
		w.Header().Set("Location", h.CDN+"/blobs/"+SHA256(b)+"?X-Amz-Expires=3600&X-Amz-Signature=0")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+GitSHA1(b)+`"`)
	h.serveContent(w, r, GitSHA1(b), b)
}

// serveCDN answers GET /blobs/<sha256>.
func (h *Hub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.record(r, true)
	sha, ok := strings.CutPrefix(r.URL.Path, "/blobs/")
	h.mu.Lock()
	b, found := h.blobs[sha]
	h.mu.Unlock()
	if !ok || !found || r.Method != http.MethodGet {
		http.Error(w, "<Error><Code>AccessDenied</Code></Error>", 403)
		return
	}
	h.serveContent(w, r, sha, b)
}

// serveContent serves b with Range support, applying any fault queued for key.
func (h *Hub) serveContent(w http.ResponseWriter, r *http.Request, key string, b []byte) {
	h.mu.Lock()
	if f := h.fail[key]; f.times > 0 && r.Method == http.MethodGet {
		f.times--
		h.fail[key] = f
		h.mu.Unlock()
		http.Error(w, http.StatusText(f.status), f.status)
		return
	}
	cut, hasCut := h.cut[key]
	stall, hasStall := h.stall[key]
	bad := h.corrupt[key] > 0
	if r.Method == http.MethodGet {
		delete(h.cut, key)
		delete(h.stall, key)
		if bad {
			h.corrupt[key]--
		}
	}
	h.mu.Unlock()
	if r.Method != http.MethodGet {
		hasCut, hasStall, bad = false, false, false
	}
	if bad {
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 0x55
	}
	var out http.ResponseWriter = w
	lw := &limitWriter{ResponseWriter: w, left: -1}
	if hasCut {
		lw.left = cut
		out = lw
	}
	if hasStall {
		lw.left = stall
		out = lw
	}
	http.ServeContent(out, r, "", time.Time{}, strings.NewReader(string(b)))
	if lw.hit {
		if hasStall {
			<-r.Context().Done()
		}
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
}

// limitWriter passes on the first left body bytes, then fails.
type limitWriter struct {
	http.ResponseWriter
	left int64
	hit  bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= l.left {
		l.left -= int64(len(p))
		return l.ResponseWriter.Write(p)
	}
	n, _ := l.ResponseWriter.Write(p[:l.left])
	l.left = 0
	l.hit = true
	l.ResponseWriter.(http.Flusher).Flush()
	return n, fmt.Errorf("transfer cut")
}
