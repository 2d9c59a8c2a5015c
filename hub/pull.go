package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masque-ai/masque/internal/atomicfile"
)

// Config says what Run fetches.
type Config struct {
	// Model is the repository, its revision (default main) and, for a GGUF
	// repository, the quantisation whose GGUF files to fetch.
	Model Ref
	// Files names files to fetch; Include adds those matching shell
	// patterns (fnmatch: '*' crosses '/', "dir/" means all under dir);
	// Exclude drops matches of Include or of the default selection. With
	// none of Files, Include and Model.Quant, the default selection is the
	// whole revision, except (unless All) the other frameworks' weights and
	// GGUF conversions of a repository that holds safetensors; a GGUF
	// repository with several GGUF files needs a quantisation or a pattern.
	Files, Include, Exclude []string
	All                     bool

	// Cache is the hub cache folder (default CacheDir()); Endpoint the hub
	// (default Endpoint()); Token a bearer token (default Token()), sent
	// only to the endpoint's host, never to the CDN it redirects to.
	Cache, Endpoint, Token string
	// Concurrency is how many files download at once (default 4).
	Concurrency int
	// Retries is how many times a file's transfer is resumed after a
	// network failure before Run gives up on it (default 5).
	Retries int
	// StallTimeout is how long a request may wait for the server's answer,
	// or a transfer for its next bytes, before it counts as a network
	// failure and is resumed (default 60 s).
	StallTimeout time.Duration
	Client       *http.Client
	// Progress, when set, is called (never concurrently) as bytes arrive.
	Progress func(Progress)
}

// Progress reports a download's advance.
type Progress struct {
	File             string // the file that advanced
	FilesDone, Files int    // files to fetch (not counting those already cached)
	Bytes, Total     int64  // bytes on disk of the files to fetch, resumed parts included; Total is -1 while unknown
}

// Result says what Run did.
type Result struct {
	Repo     string `json:"repo"`
	Revision string `json:"revision"`
	Commit   string `json:"commit"`
	Snapshot string `json:"snapshot"` // the snapshot folder
	// Path is what --model org/name[@rev][:TAG] opens: the folder, or the
	// GGUF file.
	Path  string       `json:"path"`
	Files []FileResult `json:"files"`
	// Skipped are files of the revision the default selection left out.
	Skipped []string `json:"skipped,omitempty"`
	// Downloaded is bytes transferred by this run; Cached bytes found in
	// the cache (linked, not fetched).
	Downloaded int64 `json:"downloaded_bytes"`
	Cached     int64 `json:"cached_bytes"`
}

// Size is the total size of r.Files: what the snapshot holds of the
// selection, downloaded or found in the cache.
func (r *Result) Size() int64 {
	var n int64
	for _, f := range r.Files {
		n += f.Size
	}
	return n
}

// FileResult is one fetched or found file.
type FileResult struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Etag    string `json:"etag"`              // the blob's name: sha256 for LFS files, git sha1 otherwise
	Cached  bool   `json:"cached"`            // already in the cache
	Resumed int64  `json:"resumed,omitempty"` // bytes of an earlier interrupted download that were kept
}

// hubError is an answer from the hub that retrying will not change.
type hubError struct{ msg string }

func (e *hubError) Error() string { return e.msg }

type sibling struct {
	Name   string `json:"rfilename"`
	Size   *int64 `json:"size"`
	BlobID string `json:"blobId"`
	LFS    *struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"lfs"`
}

type repoInfo struct {
	SHA      string    `json:"sha"`
	Siblings []sibling `json:"siblings"`
}

type puller struct {
	cfg        Config
	client     *http.Client
	noRedirect *http.Client
	tokenFrom  string
	dir        string // the repository's cache folder
	locks      string

	mu       sync.Mutex
	progress Progress
}

// Run fetches a revision's files into the cache, reusing what is already
// there (from an earlier pull or from huggingface_hub), resuming interrupted
// downloads from their .incomplete files, and checking each file against its
// hash (sha256 for LFS files, git blob sha1 for others). The ref of a branch
// or tag is updated only when every file arrived. When ctx ends, unfinished
// files are left as .incomplete blobs for the next run to resume.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if _, err := ParseRef(cfg.Model.Repo); err != nil || cfg.Model.Repo == "" {
		return nil, fmt.Errorf("pull: %q is not a hub model id (org/name)", cfg.Model.Repo)
	}
	if cfg.Model.Quant != "" && (len(cfg.Files) > 0 || len(cfg.Include) > 0) {
		return nil, fmt.Errorf("pull %s: give a quantisation tag or files and patterns, not both", cfg.Model)
	}
	if cfg.Cache == "" {
		cfg.Cache = CacheDir()
	}
	if Offline() {
		return offline(cfg)
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = Endpoint()
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	p := &puller{cfg: cfg}
	if cfg.Token == "" {
		p.cfg.Token, p.tokenFrom = Token()
	} else {
		p.tokenFrom = "the given token"
	}
	if p.cfg.Concurrency <= 0 {
		p.cfg.Concurrency = 4
	}
	if p.cfg.Retries <= 0 {
		p.cfg.Retries = 5
	}
	if p.cfg.StallTimeout <= 0 {
		p.cfg.StallTimeout = 60 * time.Second
	}
	p.client = cfg.Client
	if p.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = p.cfg.StallTimeout
		p.client = &http.Client{Transport: tr}
	}
	nr := *p.client
	nr.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p.noRedirect = &nr
	p.dir = repoDir(cfg.Cache, cfg.Model.Repo)
	p.locks = filepath.Join(cfg.Cache, ".locks", filepath.Base(p.dir))

	rev := cfg.Model.rev()
	info, err := p.revisionInfo(ctx, rev)
	if err != nil {
		return nil, err
	}
	commit := info.SHA
	if commit == "" || !filepath.IsLocal(commit) || strings.ContainsAny(commit, `/\`) {
		return nil, fmt.Errorf("pull %s: the hub named no usable commit for revision %s (%q)", cfg.Model.Repo, rev, commit)
	}
	sel, skipped, err := selectFiles(info, p.cfg)
	if err != nil {
		return nil, err
	}
	res := &Result{Repo: cfg.Model.Repo, Revision: rev, Commit: commit, Skipped: skipped,
		Snapshot: filepath.Join(p.dir, "snapshots", commit)}

	// Plan: what the cache already holds is linked, the rest fetched.
	type job struct {
		sib  sibling
		res  *FileResult
		snap string
	}
	var jobs []*job
	res.Files = make([]FileResult, len(sel))
	var total int64
	for i, s := range sel {
		fr := &res.Files[i]
		fr.Name, fr.Size, fr.Etag = s.Name, listedSize(s), listedEtag(s)
		snap := filepath.Join(res.Snapshot, filepath.FromSlash(s.Name))
		if st, err := os.Stat(snap); err == nil && st.Mode().IsRegular() && (fr.Size < 0 || st.Size() == fr.Size) {
			fr.Cached, fr.Size = true, st.Size()
			if t, err := os.Readlink(snap); err == nil {
				fr.Etag = filepath.Base(t)
			}
			res.Cached += st.Size()
			continue
		}
		if fr.Etag != "" {
			if ok, err := p.linkCached(fr, snap); err != nil {
				return nil, err
			} else if ok {
				res.Cached += fr.Size
				continue
			}
		}
		jobs = append(jobs, &job{sib: s, res: fr, snap: snap})
		if total >= 0 && fr.Size >= 0 {
			total += fr.Size
		} else {
			total = -1
		}
	}
	p.progress = Progress{Files: len(jobs), Total: total}

	work := make(chan *job)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	for w := 0; w < min(p.cfg.Concurrency, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if err := p.fetch(ctx, commit, j.res, j.snap); err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case work <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	for _, f := range res.Files {
		if !f.Cached {
			res.Downloaded += max(f.Size-f.Resumed, 0)
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("pull %s interrupted: unfinished files are kept in %s; run the same pull again to resume: %w", cfg.Model, filepath.Join(p.dir, "blobs"), ctx.Err())
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return res, fmt.Errorf("pull %s@%s: %d of %d files failed: %w", cfg.Model.Repo, commit[:min(len(commit), 12)], len(errs), len(sel), errors.Join(errs...))
	}
	if rev != commit {
		ref := filepath.Join(p.dir, "refs", filepath.FromSlash(rev))
		if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
			return res, err
		}
		if err := atomicfile.WriteFile(ref, func(w io.Writer) error { _, err := io.WriteString(w, commit); return err }); err != nil {
			return res, err
		}
	}
	res.Path = res.Snapshot
	if pth, err := openPath(res.Snapshot, cfg.Model.Quant); err == nil {
		res.Path = pth
	}
	return res, nil
}

// Offline reports whether $HF_HUB_OFFLINE asks, as it does huggingface_hub,
// that the hub not be contacted.
func Offline() bool {
	switch strings.ToUpper(strings.TrimSpace(os.Getenv("HF_HUB_OFFLINE"))) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// offline answers a pull from the cache alone: what is there, or an error.
func offline(cfg Config) (*Result, error) {
	path, err := Lookup(cfg.Cache, cfg.Model.String())
	if err != nil {
		return nil, fmt.Errorf("HF_HUB_OFFLINE is set, so the hub is not contacted, and %w", err)
	}
	snap := path
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		snap = filepath.Dir(path)
		for filepath.Base(filepath.Dir(snap)) != "snapshots" && filepath.Dir(snap) != snap {
			snap = filepath.Dir(snap)
		}
	}
	res := &Result{Repo: cfg.Model.Repo, Revision: cfg.Model.rev(), Commit: filepath.Base(snap), Snapshot: snap, Path: path}
	files, err := snapshotFiles(snap)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(snap, filepath.FromSlash(f)))
		if err != nil {
			continue
		}
		fr := FileResult{Name: f, Size: st.Size(), Cached: true}
		if t, err := os.Readlink(filepath.Join(snap, filepath.FromSlash(f))); err == nil {
			fr.Etag = filepath.Base(t)
		}
		res.Files = append(res.Files, fr)
		res.Cached += st.Size()
	}
	return res, nil
}

func listedSize(s sibling) int64 {
	if s.LFS != nil {
		return s.LFS.Size
	}
	if s.Size != nil {
		return *s.Size
	}
	return -1
}

func listedEtag(s sibling) string {
	if s.LFS != nil && isHex(s.LFS.SHA256, 64) {
		return s.LFS.SHA256
	}
	if isHex(s.BlobID, 40) {
		return s.BlobID
	}
	return ""
}

// selectFiles applies Config's selection rules to a revision's listing.
func selectFiles(info *repoInfo, cfg Config) (sel []sibling, skipped []string, err error) {
	byName := map[string]sibling{}
	var names []string
	for _, s := range info.Siblings {
		if s.Name == "" || strings.Contains(s.Name, `\`) || !filepath.IsLocal(filepath.FromSlash(s.Name)) {
			return nil, nil, fmt.Errorf("pull %s: the hub lists an unsafe file name %q", cfg.Model.Repo, s.Name)
		}
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	where := cfg.Model.Repo + "@" + cfg.Model.rev()
	exclude, err := compileGlobs(cfg.Exclude)
	if err != nil {
		return nil, nil, err
	}
	chosen := map[string]bool{}
	switch {
	case cfg.Model.Quant != "":
		for _, n := range names {
			if matchesQuant(n, cfg.Model.Quant) && !exclude.match(n) {
				chosen[n] = true
			}
		}
		if len(chosen) == 0 {
			tags := quantTags(names)
			if len(tags) == 0 {
				return nil, nil, fmt.Errorf("pull %s: it has no GGUF files, so no quantisation :%s to choose", where, cfg.Model.Quant)
			}
			return nil, nil, fmt.Errorf("pull %s: no GGUF file of quantisation %s (it has %s)", where, cfg.Model.Quant, strings.Join(tags, ", "))
		}
	case len(cfg.Files) > 0 || len(cfg.Include) > 0:
		for _, f := range cfg.Files {
			f = strings.TrimPrefix(filepath.ToSlash(f), "./")
			if _, ok := byName[f]; !ok {
				return nil, nil, fmt.Errorf("pull %s: no file %q in the repository", where, f)
			}
			chosen[f] = true
		}
		include, err := compileGlobs(cfg.Include)
		if err != nil {
			return nil, nil, err
		}
		for _, n := range names {
			if include.match(n) && !exclude.match(n) {
				chosen[n] = true
			}
		}
		if len(chosen) == 0 {
			return nil, nil, fmt.Errorf("pull %s: --include %s matches no file (it has %s)", where, strings.Join(cfg.Include, " "), strings.Join(names, ", "))
		}
	default:
		var skip globs
		hasST, ggufs := false, 0
		for _, n := range names {
			hasST = hasST || strings.HasSuffix(n, ".safetensors")
			if isModelGGUF(n) && !laterSplitPart(n) {
				ggufs++
			}
		}
		if !cfg.All {
			if hasST {
				skip, _ = compileGlobs(foreignWeights)
			} else if ggufs > 1 {
				tags := quantTags(names)
				ex := "Q4_K_M"
				if len(tags) > 0 && !containsFold(tags, ex) {
					ex = tags[0]
				}
				return nil, nil, fmt.Errorf("pull %s: it holds %d GGUF files; choose one quantisation: masque pull %s:%s (it has %s), or name files or --include patterns",
					where, ggufs, cfg.Model.Repo, ex, strings.Join(tags, ", "))
			}
		}
		for _, n := range names {
			switch {
			case exclude.match(n):
			case skip.match(n):
				skipped = append(skipped, n)
			default:
				chosen[n] = true
			}
		}
		if len(chosen) == 0 {
			return nil, nil, fmt.Errorf("pull %s: nothing to fetch: every file is excluded (it has %s)", where, strings.Join(names, ", "))
		}
	}
	for _, n := range names {
		if chosen[n] {
			sel = append(sel, byName[n])
		}
	}
	return sel, skipped, nil
}

func containsFold(xs []string, s string) bool {
	for _, x := range xs {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// request builds a request, with the token when it goes to the endpoint's host.
func (p *puller) request(ctx context.Context, method, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "masque (huggingface_hub-compatible)")
	if p.cfg.Token != "" && p.onEndpoint(req.URL) {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	return req, nil
}

// answerError turns an unsuccessful hub answer into an error that says what
// to do about it.
func (p *puller) answerError(resp *http.Response, what string) error {
	code, msg := resp.Header.Get("X-Error-Code"), resp.Header.Get("X-Error-Message")
	if msg == "" && resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		var j struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &j) == nil && j.Error != "" {
			msg = j.Error
		} else if !strings.Contains(resp.Header.Get("Content-Type"), "html") {
			msg = strings.TrimSpace(string(b))
		}
	}
	repo := p.cfg.Model.Repo
	page := p.cfg.Endpoint + "/" + repo
	tokenHint := "set HF_TOKEN (or run huggingface-cli login) to a token that can read it"
	var s string
	switch {
	case code == "GatedRepo" && p.cfg.Token == "":
		s = fmt.Sprintf("%s is gated: accept its terms at %s, then %s", repo, page, tokenHint)
	case code == "GatedRepo":
		s = fmt.Sprintf("%s is gated and the token from %s has no access to it: accept its terms at %s", repo, p.tokenFrom, page)
	case code == "RepoNotFound" || (resp.StatusCode == 401 && code == ""):
		if p.cfg.Token == "" {
			s = fmt.Sprintf("%s: no such model at %s, or it is private or gated: check the name, or %s", repo, p.cfg.Endpoint, tokenHint)
		} else {
			s = fmt.Sprintf("%s: no such model at %s, or the token from %s cannot read it", repo, p.cfg.Endpoint, p.tokenFrom)
		}
	case code == "RevisionNotFound":
		s = fmt.Sprintf("%s has no revision %q", repo, p.cfg.Model.rev())
	case code == "EntryNotFound":
		s = fmt.Sprintf("%s: %s: no such file at this revision", repo, what)
	case resp.StatusCode == 403:
		s = fmt.Sprintf("%s: %s: access refused (403); %s", repo, what, tokenHint)
	case resp.StatusCode == 404:
		s = fmt.Sprintf("%s: %s: not found (404)", repo, what)
	default:
		s = fmt.Sprintf("%s: %s: %s", repo, what, resp.Status)
	}
	if msg != "" && code != "GatedRepo" {
		s += " (hub: " + msg + ")"
	}
	return &hubError{s}
}

func (p *puller) revisionInfo(ctx context.Context, rev string) (*repoInfo, error) {
	u := p.cfg.Endpoint + "/api/models/" + p.cfg.Model.Repo + "/revision/" + url.PathEscape(rev) + "?blobs=true"
	req, err := p.request(ctx, http.MethodGet, u)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pull %s: cannot reach the hub: %w", p.cfg.Model.Repo, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, p.answerError(resp, "listing revision "+rev)
	}
	var info repoInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("pull %s: the hub's listing of %s does not parse: %v", p.cfg.Model.Repo, rev, err)
	}
	return &info, nil
}

// meta is what a HEAD on a file's resolve URL says.
type meta struct {
	etag, commit, location string
	size                   int64
}

func normalizeEtag(e string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(e), "W/"), `"`)
}

func (p *puller) resolveURL(commit, name string) string {
	parts := strings.Split(name, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return p.cfg.Endpoint + "/" + p.cfg.Model.Repo + "/resolve/" + url.PathEscape(commit) + "/" + strings.Join(parts, "/")
}

// head asks for a file's metadata, following redirects within the hub (a
// renamed repository) but not to the CDN, whose URL becomes the location.
func (p *puller) head(ctx context.Context, commit, name string) (meta, error) {
	u := p.resolveURL(commit, name)
	for hop := 0; hop < 10; hop++ {
		req, err := p.request(ctx, http.MethodHead, u)
		if err != nil {
			return meta{}, err
		}
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := p.noRedirect.Do(req)
		if err != nil {
			return meta{}, err
		}
		resp.Body.Close()
		m := meta{
			etag:     normalizeEtag(resp.Header.Get("X-Linked-Etag")),
			commit:   resp.Header.Get("X-Repo-Commit"),
			location: u,
			size:     -1,
		}
		if m.etag == "" {
			m.etag = normalizeEtag(resp.Header.Get("ETag"))
		}
		if n, err := strconv.ParseInt(resp.Header.Get("X-Linked-Size"), 10, 64); err == nil {
			m.size = n
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.Header.Get("Location") == "" {
				return meta{}, fmt.Errorf("%s: redirect without a usable Location", name)
			}
			next := req.URL.ResolveReference(loc)
			if loc.Host == "" {
				u = next.String()
				continue
			}
			m.location = next.String()
		case resp.StatusCode == http.StatusOK:
			if m.size < 0 {
				m.size = resp.ContentLength
			}
		case resp.StatusCode == 429 || resp.StatusCode >= 500:
			return meta{}, fmt.Errorf("%s: %s", name, resp.Status)
		default:
			return meta{}, p.answerError(resp, name)
		}
		if m.etag == "" {
			return meta{}, &hubError{fmt.Sprintf("%s: %s: the server sent no ETag, so the file cannot be cached (is %s a Hugging Face hub?)", p.cfg.Model.Repo, name, p.cfg.Endpoint)}
		}
		if strings.ContainsAny(m.etag, `/\`) || !filepath.IsLocal(m.etag) {
			return meta{}, &hubError{fmt.Sprintf("%s: %s: unusable ETag %q", p.cfg.Model.Repo, name, m.etag)}
		}
		return m, nil
	}
	return meta{}, &hubError{fmt.Sprintf("%s: %s: too many redirects", p.cfg.Model.Repo, name)}
}

// linkCached links the snapshot file to an existing complete blob.
func (p *puller) linkCached(fr *FileResult, snap string) (bool, error) {
	blob := filepath.Join(p.dir, "blobs", fr.Etag)
	st, err := os.Stat(blob)
	if err != nil || !st.Mode().IsRegular() || (fr.Size >= 0 && st.Size() != fr.Size) {
		return false, nil
	}
	if err := linkSnapshot(blob, snap); err != nil {
		return false, err
	}
	fr.Cached, fr.Size = true, st.Size()
	return true, nil
}

// linkSeq numbers linkSnapshot's temporary names within the process.
var linkSeq atomic.Int64

// linkSnapshot points the snapshot path at the blob with a relative symlink,
// as huggingface_hub does (a hard link or a copy where symlinks fail).
func linkSnapshot(blob, snap string) error {
	if err := os.MkdirAll(filepath.Dir(snap), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(snap), blob)
	if err != nil {
		return err
	}
	// A name of its own: concurrent pulls of one snapshot link the same
	// files, and a shared temporary name let one rename away the other's.
	tmp := fmt.Sprintf("%s.linking-%d-%d", snap, os.Getpid(), linkSeq.Add(1))
	if err := os.Symlink(rel, tmp); err != nil {
		if err := os.Link(blob, tmp); err != nil {
			if err := atomicfile.WriteFile(tmp, func(w io.Writer) error {
				f, err := os.Open(blob)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(w, f)
				return err
			}); err != nil {
				return fmt.Errorf("linking %s: %w", snap, err)
			}
		}
	}
	if err := os.Rename(tmp, snap); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("linking %s: %w", snap, err)
	}
	return nil
}

func (p *puller) advance(fr *FileResult, delta int64, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.progress.Bytes += delta
	p.progress.File = fr.Name
	if done {
		p.progress.FilesDone++
	}
	if p.cfg.Progress != nil {
		p.cfg.Progress(p.progress)
	}
}

func (p *puller) addBytes(delta int64) {
	p.mu.Lock()
	p.progress.Bytes += delta
	if p.cfg.Progress != nil && delta != 0 {
		p.cfg.Progress(p.progress)
	}
	p.mu.Unlock()
}

// onEndpoint reports whether u goes to the hub itself (not its CDN).
func (p *puller) onEndpoint(u *url.URL) bool {
	e, err := url.Parse(p.cfg.Endpoint)
	return err == nil && u != nil && e.Host == u.Host
}

func (p *puller) growTotal(delta int64) {
	p.mu.Lock()
	if p.progress.Total >= 0 {
		p.progress.Total += delta
	}
	p.mu.Unlock()
}

// staleURL is a CDN refusal that a fresh HEAD (a newly signed URL) may cure.
type staleURL struct{ status string }

func (e *staleURL) Error() string { return "the download URL was refused: " + e.status }

// fetch brings one file into the cache.
func (p *puller) fetch(ctx context.Context, commit string, fr *FileResult, snap string) error {
	m, err := p.head(ctx, commit, fr.Name)
	for try := 1; err != nil && ctx.Err() == nil && !isHubError(err) && try <= p.cfg.Retries; try++ {
		if !sleepCtx(ctx, backoff(try)) {
			break
		}
		m, err = p.head(ctx, commit, fr.Name)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if fr.Size < 0 && m.size >= 0 {
		p.growTotal(m.size)
	}
	if m.size >= 0 {
		if fr.Size >= 0 && fr.Size != m.size {
			p.growTotal(m.size - fr.Size)
		}
		fr.Size = m.size
	}
	fr.Etag = m.etag
	if ok, err := p.linkCached(fr, snap); err != nil || ok {
		if ok {
			p.advance(fr, fr.Size, true)
		}
		return err
	}
	unlock, err := lockFile(ctx, filepath.Join(p.locks, fr.Etag+".lock"))
	if err != nil {
		return fmt.Errorf("%s: locking: %w", fr.Name, err)
	}
	defer unlock()
	if ok, err := p.linkCached(fr, snap); err != nil || ok { // another process finished it meanwhile
		if ok {
			p.advance(fr, fr.Size, true)
		}
		return err
	}
	blob := filepath.Join(p.dir, "blobs", fr.Etag)
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return err
	}
	if err := p.download(ctx, commit, fr, m.location, blob); err != nil {
		return err
	}
	return linkSnapshot(blob, snap)
}

func isHubError(err error) bool {
	var h *hubError
	return errors.As(err, &h)
}

func backoff(try int) time.Duration {
	return min(time.Duration(1<<min(try-1, 5))*200*time.Millisecond, 5*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// download fills blob+".incomplete" from u, resuming what an earlier run
// left, checks it and renames it to blob.
func (p *puller) download(ctx context.Context, commit string, fr *FileResult, u, blob string) error {
	inc := blob + ".incomplete"
	have := int64(0)
	if st, err := os.Stat(inc); err == nil {
		have = st.Size()
		if fr.Size >= 0 && have > fr.Size {
			have = 0
			os.Remove(inc)
		}
		fr.Resumed = have
	}
	p.advance(fr, have, false)
	failures, corrupt := 0, 0
	for {
		if fr.Size < 0 || have < fr.Size {
			n, err := p.get(ctx, fr, u, inc, have)
			if n > have {
				failures = 0 // it advanced: count only failures in a row
			}
			have = n
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if isHubError(err) {
					return err
				}
				failures++
				if failures > p.cfg.Retries {
					return fmt.Errorf("%s: %v; %d bytes kept in %s: run again to resume", fr.Name, err, have, inc)
				}
				if !sleepCtx(ctx, backoff(failures)) {
					return ctx.Err()
				}
				var stale *staleURL
				if errors.As(err, &stale) {
					if m, herr := p.head(ctx, commit, fr.Name); herr == nil && m.etag == fr.Etag {
						u = m.location
					}
				}
				continue
			}
		}
		if err := verify(inc, fr.Size, fr.Etag); err != nil {
			os.Remove(inc)
			p.advance(fr, -have, false)
			have, fr.Resumed = 0, 0
			corrupt++
			if corrupt >= 2 {
				return &hubError{fmt.Sprintf("%s: %v, on two downloads in a row: the hub, a mirror (HF_ENDPOINT) or a proxy is corrupting it", fr.Name, err)}
			}
			continue
		}
		if fr.Size < 0 {
			fr.Size = have
		}
		if err := os.Rename(inc, blob); err != nil {
			return err
		}
		p.advance(fr, 0, true)
		return nil
	}
}

// get appends u's bytes from offset have to the file inc and returns its new
// length. A server that ignores the Range restarts the file.
func (p *puller) get(ctx context.Context, fr *FileResult, u, inc string, have int64) (int64, error) {
	p.mu.Lock()
	p.progress.File = fr.Name
	p.mu.Unlock()
	// A watchdog ends the request when no bytes come for StallTimeout.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	watchdog := time.AfterFunc(p.cfg.StallTimeout, func() { stalled.Store(true); cancel() })
	defer watchdog.Stop()
	req, err := p.request(rctx, http.MethodGet, u)
	if err != nil {
		return have, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if stalled.Load() && ctx.Err() == nil {
			err = fmt.Errorf("no answer for %v", p.cfg.StallTimeout)
		}
		return have, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		p.addBytes(-have) // the whole file: start over
		have = 0
	case resp.StatusCode == http.StatusPartialContent:
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != have {
			os.Remove(inc)
			p.addBytes(-have)
			return 0, fmt.Errorf("the server answered range %d- with %q", have, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		os.Remove(inc)
		p.addBytes(-have)
		return 0, fmt.Errorf("the server refused to resume at byte %d", have)
	case resp.StatusCode == 429 || resp.StatusCode >= 500:
		return have, fmt.Errorf("%s", resp.Status)
	case (resp.StatusCode == 401 || resp.StatusCode == 403 || resp.StatusCode == 410) && !p.onEndpoint(resp.Request.URL):
		return have, &staleURL{resp.Status}
	default:
		return have, p.answerError(resp, "downloading")
	}
	flag := os.O_WRONLY | os.O_CREATE
	if have == 0 {
		flag |= os.O_TRUNC
	} else {
		flag |= os.O_APPEND
	}
	f, err := os.OpenFile(inc, flag, 0o644)
	if err != nil {
		return have, err
	}
	buf := make([]byte, 256<<10)
	var werr error
	for {
		n, rerr := resp.Body.Read(buf)
		watchdog.Reset(p.cfg.StallTimeout)
		if n > 0 {
			if _, werr = f.Write(buf[:n]); werr != nil {
				break
			}
			have += int64(n)
			p.addBytes(int64(n))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			werr = rerr
			break
		}
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil && stalled.Load() && ctx.Err() == nil {
		werr = fmt.Errorf("no data for %v", p.cfg.StallTimeout)
	}
	return have, werr
}

// verify checks a downloaded file's size and, where the etag is a hash,
// its contents: sha256 (an LFS file's etag) or git's blob sha1.
func verify(path string, size int64, etag string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if size >= 0 && st.Size() != size {
		return fmt.Errorf("got %d bytes, want %d", st.Size(), size)
	}
	var h hash.Hash
	kind := ""
	switch {
	case len(etag) == 64 && isHex(etag, 64):
		h, kind = sha256.New(), "sha256"
	case len(etag) == 40 && isHex(etag, 40):
		h, kind = sha1.New(), "git blob sha1"
		fmt.Fprintf(h, "blob %d\x00", st.Size())
	default:
		return nil // not a content hash: the size is all there is to check
	}
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != etag {
		return fmt.Errorf("the downloaded bytes' %s is %s, the hub's is %s", kind, got, etag)
	}
	return nil
}
