package hub_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/masque-ai/masque/hub"
	"github.com/masque-ai/masque/hub/hubtest"
)

// noise returns n deterministic pseudo-random bytes.
func noise(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// hfRepo is a small Hugging Face model repository: two LFS files (weights in
// safetensors and PyTorch form) and small git files.
func hfRepo() map[string][]byte {
	return map[string][]byte{
		"config.json":             []byte(`{"model_type":"llama"}`),
		"tokenizer_config.json":   []byte(`{"bos_token":"<s>"}`),
		"model.safetensors":       noise(300_000, 1),
		"pytorch_model.bin":       noise(5_000, 2),
		"onnx/model.onnx":         noise(4_000, 3),
		"README.md":               []byte("# tiny\n"),
		"sub dir/notes+extra.txt": []byte("a file with spaces and plus in its path"),
	}
}

func pull(t *testing.T, h *hubtest.Hub, cache, ref string, mod func(*hub.Config)) (*hub.Result, error) {
	t.Helper()
	r, err := hub.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hub.Config{Model: r, Cache: cache, Endpoint: h.URL}
	if mod != nil {
		mod(&cfg)
	}
	return hub.Run(context.Background(), cfg)
}

// noToken keeps the developer's own token (HF_TOKEN, ~/.cache/huggingface/token)
// out of the tests.
func noToken(t *testing.T) {
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HUGGING_FACE_HUB_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", filepath.Join(t.TempDir(), "no-token"))
}

func countCDN(reqs []hubtest.Request) (cdn, gets int) {
	for _, r := range reqs {
		if r.CDN {
			cdn++
		}
		if r.Method == "GET" && !strings.HasPrefix(r.Path, "/api/") {
			gets++
		}
	}
	return
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d published", path, len(got), len(want))
	}
}

// tinyHub is a test hub publishing hfRepo as org/tiny@main, with the
// developer's own token kept out; it returns the hub, the files and the
// commit.
func tinyHub(t *testing.T) (*hubtest.Hub, map[string][]byte, string) {
	t.Helper()
	noToken(t)
	h := hubtest.New(t)
	files := hfRepo()
	return h, files, h.Commit("org/tiny", "main", files)
}

// cdnRanges are the Range headers of the CDN requests among reqs.
func cdnRanges(reqs []hubtest.Request) []string {
	var out []string
	for _, r := range reqs {
		if r.CDN {
			out = append(out, r.Range)
		}
	}
	return out
}

// wantErr fails the test unless err is an error that says each of wants.
func wantErr(t *testing.T, what string, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%s: error %q does not say %q", what, err, w)
		}
	}
}

func TestPullFreshThenNoop(t *testing.T) {
	h, files, commit := tinyHub(t)
	cache := t.TempDir()

	res, err := pull(t, h, cache, "org/tiny", nil)
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--org--tiny")
	snap := filepath.Join(repoDir, "snapshots", commit)
	if res.Commit != commit || res.Snapshot != snap || res.Path != snap {
		t.Fatalf("result %+v, want commit %s at %s", res, commit, snap)
	}
	// Default selection: safetensors present, so other frameworks' weights are skipped.
	if !slices.Equal(res.Skipped, []string{"onnx/model.onnx", "pytorch_model.bin"}) {
		t.Fatalf("skipped %v", res.Skipped)
	}
	for name, b := range files {
		p := filepath.Join(snap, filepath.FromSlash(name))
		if slices.Contains(res.Skipped, name) {
			if _, err := os.Lstat(p); err == nil {
				t.Fatalf("%s was fetched although skipped", name)
			}
			continue
		}
		checkFile(t, p, b)
		// A relative symlink to blobs/<etag>, as huggingface_hub makes.
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("%s is not a symlink: %v", name, err)
		}
		if filepath.IsAbs(target) || filepath.Base(target) != h.Etag(b) {
			t.Fatalf("%s links to %s, want ../../blobs/%s", name, target, h.Etag(b))
		}
		checkFile(t, filepath.Join(repoDir, "blobs", h.Etag(b)), b)
	}
	ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	if err != nil || string(ref) != commit {
		t.Fatalf("refs/main = %q (%v), want %s", ref, err, commit)
	}
	if res.Downloaded != int64(len(files["model.safetensors"])+len(files["config.json"])+len(files["tokenizer_config.json"])+len(files["README.md"])+len(files["sub dir/notes+extra.txt"])) {
		t.Fatalf("downloaded %d bytes", res.Downloaded)
	}
	reqs := h.Requests()
	for _, r := range reqs {
		if r.CDN && r.Path != "/blobs/"+hubtest.SHA256(files["model.safetensors"]) {
			t.Fatalf("unexpected CDN request %+v", r)
		}
	}
	if cdn, _ := countCDN(reqs); cdn != 1 {
		t.Fatalf("%d CDN requests, want 1 (the LFS file, through the redirect)", cdn)
	}
	ents, _ := os.ReadDir(filepath.Join(repoDir, "blobs"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".incomplete") {
			t.Fatalf("left %s", e.Name())
		}
	}

	// A second pull transfers nothing.
	res2, err := pull(t, h, cache, "org/tiny", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Downloaded != 0 || res2.Cached != res.Downloaded {
		t.Fatalf("second pull: downloaded %d, cached %d", res2.Downloaded, res2.Cached)
	}
	for _, f := range res2.Files {
		if !f.Cached {
			t.Fatalf("second pull fetched %s", f.Name)
		}
	}
	if cdn, gets := countCDN(h.Requests()); cdn != 0 || gets != 0 {
		t.Fatalf("second pull: %d CDN requests, %d file GETs", cdn, gets)
	}

	// Lookup finds the snapshot, by branch, by commit and by commit prefix.
	for _, ref := range []string{"org/tiny", "org/tiny@main", "org/tiny@" + commit, "org/tiny@" + commit[:10]} {
		p, err := hub.Lookup(cache, ref)
		if err != nil || p != snap {
			t.Fatalf("Lookup(%s) = %s, %v; want %s", ref, p, err, snap)
		}
	}
	if _, err := hub.Lookup(cache, "org/other"); !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "masque pull org/other") {
		t.Fatalf("Lookup of an absent model: %v", err)
	}
	if _, err := hub.Lookup(cache, "org/tiny@v2"); !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "masque pull org/tiny@v2") {
		t.Fatalf("Lookup of an absent revision: %v", err)
	}
}

// TestPullProgress checks the Progress callback's contract: calls never
// overlap, bytes only grow, and the last call has every file done and
// every byte of the fetched files; a run that fetches nothing reports no
// progress. Result.Size is the selection's size, fetched or cached.
func TestPullProgress(t *testing.T) {
	h, files, _ := tinyHub(t)
	cache := t.TempDir()
	var calls, inside int
	var last hub.Progress
	track := func(c *hub.Config) {
		c.Progress = func(p hub.Progress) {
			inside++
			if inside > 1 {
				t.Error("Progress called concurrently")
			}
			calls++
			if p.Bytes < last.Bytes || p.FilesDone < last.FilesDone {
				t.Errorf("progress went back: %+v after %+v", p, last)
			}
			last = p
			inside--
		}
	}
	res, err := pull(t, h, cache, "org/tiny", track)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, f := range res.Files {
		want += int64(len(files[f.Name]))
	}
	if calls == 0 || last.Files != len(res.Files) || last.FilesDone != last.Files || last.Bytes != want || last.Total != want {
		t.Fatalf("%d calls, last %+v; want %d files, %d bytes", calls, last, len(res.Files), want)
	}
	if res.Size() != want || res.Downloaded != want {
		t.Fatalf("Size %d, downloaded %d; want %d", res.Size(), res.Downloaded, want)
	}
	calls = 0
	res, err = pull(t, h, cache, "org/tiny", track)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 0 || res.Size() != want || res.Cached != want {
		t.Fatalf("a pull with all in the cache: %d progress calls, size %d, cached %d; want 0, %d, %d", calls, res.Size(), res.Cached, want, want)
	}
}

func TestPullNewCommitReusesBlobs(t *testing.T) {
	h, files, c1 := tinyHub(t)
	cache := t.TempDir()
	if _, err := pull(t, h, cache, "org/tiny", nil); err != nil {
		t.Fatal(err)
	}
	h.Requests()
	files["config.json"] = []byte(`{"model_type":"llama","changed":true}`)
	c2 := h.Commit("org/tiny", "main", files)
	res, err := pull(t, h, cache, "org/tiny", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != c2 || res.Downloaded != int64(len(files["config.json"])) {
		t.Fatalf("commit %s (want %s), downloaded %d", res.Commit, c2, res.Downloaded)
	}
	if cdn, _ := countCDN(h.Requests()); cdn != 0 {
		t.Fatal("the unchanged LFS file was fetched again")
	}
	// Both snapshots remain; the old one can still be opened by commit.
	if p, err := hub.Lookup(cache, "org/tiny@"+c1); err != nil || filepath.Base(p) != c1 {
		t.Fatalf("old snapshot: %s %v", p, err)
	}
	// Removing the old snapshot keeps the shared blob.
	rm, err := hub.Remove(cache, "org/tiny@"+c1, false)
	if err != nil {
		t.Fatal(err)
	}
	if rm.Whole || len(rm.Blobs) != 1 || rm.Blobs[0] != hubtest.GitSHA1([]byte(`{"model_type":"llama"}`)) {
		t.Fatalf("removal %+v", rm)
	}
	p, err := hub.Lookup(cache, "org/tiny")
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(p, "model.safetensors"), files["model.safetensors"])
	checkFile(t, filepath.Join(p, "config.json"), files["config.json"])
}

// TestPullResumesInterruptedTransfer: across runs (within one, see
// TestPullRecovers), the transfer stalls, the run is cancelled, the partial
// blob stays as .incomplete, and the next run asks only for the rest.
func TestPullResumesInterruptedTransfer(t *testing.T) {
	h, files, _ := tinyHub(t)
	big := files["model.safetensors"]
	cache2 := t.TempDir()
	h.StallAfter(big, 120_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, _ := hub.ParseRef("org/tiny")
	cfg := hub.Config{Model: r, Cache: cache2, Endpoint: h.URL, Include: []string{"*.safetensors"},
		Progress: func(p hub.Progress) {
			if p.Bytes >= 120_000 {
				cancel()
			}
		}}
	if _, err := hub.Run(ctx, cfg); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("cancelled run: %v", err)
	}
	inc := filepath.Join(cache2, "models--org--tiny", "blobs", hubtest.SHA256(big)+".incomplete")
	st, err := os.Stat(inc)
	if err != nil || st.Size() != 120_000 {
		t.Fatalf("partial download: %v %v", st, err)
	}
	h.Requests()
	cfg.Progress = nil
	res, err := hub.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.Files[0].Resumed != 120_000 || res.Downloaded != int64(len(big)-120_000) {
		t.Fatalf("resumed run: %+v, downloaded %d", res.Files, res.Downloaded)
	}
	if got := cdnRanges(h.Requests()); !slices.Equal(got, []string{"bytes=120000-"}) {
		t.Fatalf("resumed run's CDN ranges %q", got)
	}
	checkFile(t, filepath.Join(res.Snapshot, "model.safetensors"), big)
	if _, err := os.Stat(inc); err == nil {
		t.Fatal(".incomplete left behind")
	}
}

// TestPullCorruptBytes: bytes corrupted every time (a small git file too)
// give an error naming the file and the hashes, and nothing of it is left
// in the cache. (Corrupted once, see TestPullRecovers.)
func TestPullCorruptBytes(t *testing.T) {
	h, files, _ := tinyHub(t)
	big := files["model.safetensors"]
	cache := t.TempDir()
	h.Corrupt(big, 100)
	cfgJSON := files["tokenizer_config.json"]
	h.Corrupt(cfgJSON, 100)
	res, err := pull(t, h, cache, "org/tiny", nil)
	wantErr(t, "corrupt bytes", err, "model.safetensors", "sha256", hubtest.SHA256(big), "tokenizer_config.json", "git blob sha1", "2 of 5 files failed")
	blobs := filepath.Join(cache, "models--org--tiny", "blobs")
	for _, name := range []string{hubtest.SHA256(big), hubtest.SHA256(big) + ".incomplete", hubtest.GitSHA1(cfgJSON)} {
		if _, err := os.Stat(filepath.Join(blobs, name)); err == nil {
			t.Fatalf("corrupt blob %s left in the cache", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(res.Snapshot, "model.safetensors")); err == nil {
		t.Fatal("snapshot links a corrupt file")
	}
	if _, err := os.Stat(filepath.Join(cache, "models--org--tiny", "refs", "main")); err == nil {
		t.Fatal("refs/main written for an incomplete pull")
	}
	if _, err := hub.Lookup(cache, "org/tiny"); !errors.Is(err, hub.ErrNotCached) {
		t.Fatalf("Lookup after a failed pull: %v", err)
	}
}

// pythonCache lays out a cache as huggingface_hub's snapshot_download leaves
// it, without masque.
func pythonCache(t *testing.T, cache, repo, commit string, files map[string][]byte, etag func([]byte) string) {
	t.Helper()
	dir := filepath.Join(cache, "models--"+strings.ReplaceAll(repo, "/", "--"))
	for name, b := range files {
		blob := filepath.Join(dir, "blobs", etag(b))
		os.MkdirAll(filepath.Dir(blob), 0o755)
		if err := os.WriteFile(blob, b, 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "snapshots", commit, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(link), 0o755)
		rel, _ := filepath.Rel(filepath.Dir(link), blob)
		if err := os.Symlink(rel, link); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "refs"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "refs", "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPullReusesPythonCache(t *testing.T) {
	h, files, commit := tinyHub(t)
	cache := t.TempDir()
	sel := map[string][]byte{}
	for _, n := range []string{"config.json", "tokenizer_config.json", "model.safetensors", "README.md", "sub dir/notes+extra.txt"} {
		sel[n] = files[n]
	}
	pythonCache(t, cache, "org/tiny", commit, sel, h.Etag)
	// Found without the network at all.
	p, err := hub.Lookup(cache, "org/tiny")
	if err != nil || filepath.Base(p) != commit {
		t.Fatalf("Lookup of a Python-made cache: %s %v", p, err)
	}
	res, err := pull(t, h, cache, "org/tiny", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Downloaded != 0 {
		t.Fatalf("downloaded %d bytes that the cache held", res.Downloaded)
	}
	if cdn, gets := countCDN(h.Requests()); cdn != 0 || gets != 0 {
		t.Fatalf("%d CDN requests, %d file GETs", cdn, gets)
	}

	// Blobs of another snapshot (an older commit pulled by Python) are
	// linked, not fetched.
	cache = t.TempDir()
	pythonCache(t, cache, "org/tiny", strings.Repeat("ab", 20), sel, h.Etag)
	res, err = pull(t, h, cache, "org/tiny", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Downloaded != 0 || res.Commit != commit {
		t.Fatalf("downloaded %d bytes, commit %s", res.Downloaded, res.Commit)
	}
	checkFile(t, filepath.Join(res.Snapshot, "model.safetensors"), files["model.safetensors"])
	if cdn, _ := countCDN(h.Requests()); cdn != 0 {
		t.Fatal("a blob the cache held was fetched")
	}
}

func TestPullGated(t *testing.T) {
	noToken(t)
	h := hubtest.New(t)
	files := hfRepo()
	h.Commit("org/gated", "main", files)
	h.Gate("org/gated")
	cache := t.TempDir()

	_, err := pull(t, h, cache, "org/gated", nil)
	wantErr(t, "no token", err, "gated", "HF_TOKEN", h.URL+"/org/gated")
	t.Setenv("HF_TOKEN", "hf_wrong")
	_, err = pull(t, h, cache, "org/gated", nil)
	wantErr(t, "wrong token", err, "gated", "token from HF_TOKEN has no access")
	if strings.Contains(err.Error(), "hf_wrong") {
		t.Fatal("the token is printed")
	}
	t.Setenv("HF_TOKEN", h.Token)
	h.Requests()
	res, err := pull(t, h, cache, "org/gated", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(res.Snapshot, "model.safetensors"), files["model.safetensors"])
	for _, r := range h.Requests() {
		if r.CDN && r.Auth != "" {
			t.Fatalf("the token went to the CDN: %+v", r)
		}
		if !r.CDN && r.Auth != "Bearer "+h.Token {
			t.Fatalf("a hub request without the token: %+v", r)
		}
	}

	// The token file huggingface-cli login writes.
	t.Setenv("HF_TOKEN", "")
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte(h.Token+"\n"), 0o600)
	t.Setenv("HF_TOKEN_PATH", tokFile)
	if _, err := pull(t, h, t.TempDir(), "org/gated", nil); err != nil {
		t.Fatalf("token file: %v", err)
	}
}

func TestPullErrors(t *testing.T) {
	h, _, _ := tinyHub(t)
	cache := t.TempDir()
	cases := []struct {
		ref  string
		mod  func(*hub.Config)
		want []string
	}{
		{"org/missing", nil, []string{"org/missing", "no such model", "HF_TOKEN"}},
		{"org/tiny@v9", nil, []string{"no revision", "v9"}},
		{"org/tiny", func(c *hub.Config) { c.Files = []string{"nope.json"} }, []string{"no file", "nope.json"}},
		{"org/tiny", func(c *hub.Config) { c.Include = []string{"*.gguf"} }, []string{"matches no file", "*.gguf"}},
		{"org/tiny:Q4_K_M", nil, []string{"no GGUF files"}},
		{"org/tiny", func(c *hub.Config) { c.Endpoint = "http://127.0.0.1:1" }, []string{"cannot reach the hub"}},
	}
	for _, c := range cases {
		_, err := pull(t, h, cache, c.ref, c.mod)
		wantErr(t, c.ref, err, c.want...)
	}
	// With a token, an unknown repository is a 404 that says the token cannot see it.
	t.Setenv("HF_TOKEN", "hf_someone")
	_, err := pull(t, h, cache, "org/missing", nil)
	wantErr(t, "404 with a token", err, "token from HF_TOKEN cannot read it")
}

func TestPullFilters(t *testing.T) {
	h, files, _ := tinyHub(t)
	names := func(res *hub.Result) []string {
		var out []string
		for _, f := range res.Files {
			out = append(out, f.Name)
		}
		return out
	}
	cases := []struct {
		mod  func(*hub.Config)
		want []string
	}{
		{func(c *hub.Config) { c.Include = []string{"*.json"} }, []string{"config.json", "tokenizer_config.json"}},
		{func(c *hub.Config) { c.Include = []string{"onnx/"} }, []string{"onnx/model.onnx"}},
		{func(c *hub.Config) { c.Include = []string{"*"}; c.Exclude = []string{"*.bin", "onnx/*", "*.md"} },
			[]string{"config.json", "model.safetensors", "sub dir/notes+extra.txt", "tokenizer_config.json"}},
		{func(c *hub.Config) { c.Files = []string{"README.md"}; c.Include = []string{"*.bin"} }, []string{"README.md", "pytorch_model.bin"}},
		{func(c *hub.Config) { c.All = true }, []string{"README.md", "config.json", "model.safetensors", "onnx/model.onnx", "pytorch_model.bin", "sub dir/notes+extra.txt", "tokenizer_config.json"}},
	}
	for i, c := range cases {
		cache := t.TempDir()
		res, err := pull(t, h, cache, "org/tiny", c.mod)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(res); !slices.Equal(got, c.want) {
			t.Fatalf("case %d: fetched %v, want %v", i, got, c.want)
		}
		for _, n := range c.want {
			checkFile(t, filepath.Join(res.Snapshot, filepath.FromSlash(n)), files[n])
		}
		ents, _ := os.ReadDir(filepath.Join(cache, "models--org--tiny", "blobs"))
		if len(ents) != len(c.want) {
			t.Fatalf("case %d: %d blobs for %d files", i, len(ents), len(c.want))
		}
	}
}

func TestPullGGUF(t *testing.T) {
	noToken(t)
	h := hubtest.New(t)
	files := map[string][]byte{
		"README.md":                         []byte("# GGUF conversions\n"),
		"SmolLM2-135M-Instruct-Q4_K_M.gguf": noise(20_000, 4),
		"SmolLM2-135M-Instruct-Q4_K_S.gguf": noise(19_000, 5),
		"SmolLM2-135M-Instruct-Q8_0.gguf":   noise(30_000, 6),
		"mmproj-f16.gguf":                   noise(2_000, 7),
	}
	h.Commit("bart/SmolLM2-GGUF", "main", files)
	cache := t.TempDir()
	_, err := pull(t, h, cache, "bart/SmolLM2-GGUF", nil)
	wantErr(t, "pulling a GGUF repo without a tag", err, "masque pull bart/SmolLM2-GGUF:Q4_K_M", "Q4_K_M, Q4_K_S, Q8_0")
	res, err := pull(t, h, cache, "bart/SmolLM2-GGUF:q4_k_m", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.Files[0].Name != "SmolLM2-135M-Instruct-Q4_K_M.gguf" {
		t.Fatalf("fetched %+v", res.Files)
	}
	want := filepath.Join(res.Snapshot, "SmolLM2-135M-Instruct-Q4_K_M.gguf")
	if res.Path != want {
		t.Fatalf("path %s, want %s", res.Path, want)
	}
	if p, err := hub.Lookup(cache, "bart/SmolLM2-GGUF"); err != nil || p != want {
		t.Fatalf("Lookup without a tag (one GGUF pulled): %s %v", p, err)
	}
	if _, err := hub.Lookup(cache, "bart/SmolLM2-GGUF:Q8_0"); !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "masque pull bart/SmolLM2-GGUF:Q8_0") {
		t.Fatalf("Lookup of an unpulled tag: %v", err)
	}
	// A second quantisation into the same snapshot: now the tag is needed.
	if _, err := pull(t, h, cache, "bart/SmolLM2-GGUF:Q8_0", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Lookup(cache, "bart/SmolLM2-GGUF"); err == nil || !strings.Contains(err.Error(), ":TAG") {
		t.Fatalf("Lookup with two GGUF files and no tag: %v", err)
	}
	if p, err := hub.Lookup(cache, "bart/SmolLM2-GGUF:Q8_0"); err != nil || filepath.Base(p) != "SmolLM2-135M-Instruct-Q8_0.gguf" {
		t.Fatalf("Lookup :Q8_0: %s %v", p, err)
	}
	// One file by name, as huggingface-cli download REPO FILE.
	res, err = pull(t, h, t.TempDir(), "bart/SmolLM2-GGUF", func(c *hub.Config) { c.Files = []string{"SmolLM2-135M-Instruct-Q4_K_S.gguf"} })
	if err != nil || filepath.Base(res.Path) != "SmolLM2-135M-Instruct-Q4_K_S.gguf" || len(res.Files) != 1 {
		t.Fatalf("one file by name: %+v %v", res, err)
	}
	checkFile(t, res.Path, files["SmolLM2-135M-Instruct-Q4_K_S.gguf"])
	// "Q4_K" is not a whole tag of any file.
	_, err = pull(t, h, cache, "bart/SmolLM2-GGUF:Q4_K", nil)
	wantErr(t, "partial tag", err, "no GGUF file of quantisation Q4_K")
	models, err := hub.List(cache)
	if err != nil || len(models) != 1 || len(models[0].Snapshots) != 1 {
		t.Fatalf("List: %+v %v", models, err)
	}
	s := models[0].Snapshots[0]
	if s.Kind != "gguf" || len(s.GGUF) != 2 || s.Size != int64(len(files["SmolLM2-135M-Instruct-Q4_K_M.gguf"])+len(files["SmolLM2-135M-Instruct-Q8_0.gguf"])) {
		t.Fatalf("List snapshot %+v", s)
	}
}

func TestPullRevisionAndRename(t *testing.T) {
	h, files, c1 := tinyHub(t)
	h.Tag("org/tiny", "v1.0", c1)
	files["config.json"] = []byte(`{"v":2}`)
	c2 := h.Commit("org/tiny", "main", files)
	cache := t.TempDir()
	res, err := pull(t, h, cache, "org/tiny@v1.0", func(c *hub.Config) { c.Include = []string{"config.json", "*.safetensors"} })
	if err != nil || res.Commit != c1 {
		t.Fatalf("@v1.0: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(cache, "models--org--tiny", "refs", "v1.0")); string(b) != c1 {
		t.Fatalf("refs/v1.0 = %q", b)
	}
	// A pull by commit writes no ref.
	res, err = pull(t, h, cache, "org/tiny@"+c2, func(c *hub.Config) { c.Include = []string{"config.json", "*.safetensors"} })
	if err != nil || res.Commit != c2 {
		t.Fatalf("@commit: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(cache, "models--org--tiny", "refs", "main")); err == nil {
		t.Fatal("a pull by commit wrote refs/main")
	}
	checkFile(t, filepath.Join(res.Snapshot, "config.json"), []byte(`{"v":2}`))
	if p, _ := hub.Lookup(cache, "org/tiny@v1.0"); filepath.Base(p) != c1 {
		t.Fatalf("Lookup @v1.0 = %s", p)
	}

	// A renamed repository: the hub redirects, the cache keeps the name asked for.
	h.Rename("org/tiny", "org/tiny-renamed")
	res, err = pull(t, h, t.TempDir(), "org/tiny", func(c *hub.Config) { c.Include = []string{"model.safetensors"} })
	if err == nil {
		checkFile(t, filepath.Join(res.Snapshot, "model.safetensors"), files["model.safetensors"])
	} else {
		t.Fatalf("renamed repository: %v", err)
	}
}

func TestListAndRemove(t *testing.T) {
	h, files, commit := tinyHub(t)
	cache := t.TempDir()
	if _, err := pull(t, h, cache, "org/tiny", nil); err != nil {
		t.Fatal(err)
	}
	// An unfinished download counts as partial.
	h.Commit("org/other", "main", map[string][]byte{"model.gguf": noise(50_000, 9)})
	h.StallAfter(noise(50_000, 9), 10_000)
	ctx, cancel := context.WithCancel(context.Background())
	r, _ := hub.ParseRef("org/other")
	hub.Run(ctx, hub.Config{Model: r, Cache: cache, Endpoint: h.URL, Progress: func(p hub.Progress) {
		if p.Bytes >= 10_000 {
			cancel()
		}
	}})
	models, err := hub.List(cache)
	if err != nil || len(models) != 2 {
		t.Fatalf("List: %+v %v", models, err)
	}
	m := models[1]
	if m.Repo != "org/tiny" || len(m.Snapshots) != 1 || m.Snapshots[0].Commit != commit || !slices.Equal(m.Snapshots[0].Refs, []string{"main"}) || m.Snapshots[0].Kind != "hf" {
		t.Fatalf("List entry %+v", m)
	}
	var want int64
	for _, n := range []string{"config.json", "tokenizer_config.json", "model.safetensors", "README.md", "sub dir/notes+extra.txt"} {
		want += int64(len(files[n]))
	}
	if m.Size != want || m.Snapshots[0].Size != want {
		t.Fatalf("sizes %d, %d; want %d", m.Size, m.Snapshots[0].Size, want)
	}
	if models[0].Repo != "org/other" || models[0].Partial != 10_000 || len(models[0].Snapshots) != 0 {
		t.Fatalf("partial entry %+v", models[0])
	}
	// Dry run removes nothing.
	rm, err := hub.Remove(cache, "org/tiny", true)
	if err != nil || !rm.Whole || rm.Bytes != want+int64(len(commit)) { // blobs and refs/main
		t.Fatalf("dry run %+v %v (want %d bytes)", rm, err, want)
	}
	if _, err := hub.Lookup(cache, "org/tiny"); err != nil {
		t.Fatal("dry run removed the model")
	}
	if _, err := hub.Remove(cache, "org/tiny", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cache, "models--org--tiny")); err == nil {
		t.Fatal("the folder is still there")
	}
	if _, err := hub.Remove(cache, "org/tiny", false); !errors.Is(err, hub.ErrNotCached) {
		t.Fatalf("removing twice: %v", err)
	}
}

func TestCacheDirAndEndpoint(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HF_HOME", "/tmp/hfhome")
	if d := hub.CacheDir(); d != "/tmp/hfhome/hub" {
		t.Fatalf("HF_HOME: %s", d)
	}
	t.Setenv("HF_HOME", "")
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	if d := hub.CacheDir(); d != "/tmp/xdg/huggingface/hub" {
		t.Fatalf("XDG_CACHE_HOME: %s", d)
	}
	t.Setenv("HF_HUB_CACHE", "/tmp/hubcache")
	if d := hub.CacheDir(); d != "/tmp/hubcache" {
		t.Fatalf("HF_HUB_CACHE: %s", d)
	}
	t.Setenv("HF_ENDPOINT", "https://hf-mirror.example/")
	if e := hub.Endpoint(); e != "https://hf-mirror.example" {
		t.Fatalf("HF_ENDPOINT: %s", e)
	}
}

func TestParseRef(t *testing.T) {
	good := map[string]hub.Ref{
		"Qwen/Qwen2.5-0.5B-Instruct":                  {Repo: "Qwen/Qwen2.5-0.5B-Instruct"},
		"org/name@v1.0":                               {Repo: "org/name", Revision: "v1.0"},
		"bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M": {Repo: "bartowski/SmolLM2-135M-Instruct-GGUF", Quant: "Q4_K_M"},
		"org/name@refs/pr/1:Q8_0":                     {Repo: "org/name", Revision: "refs/pr/1", Quant: "Q8_0"},
	}
	for s, want := range good {
		got, err := hub.ParseRef(s)
		if err != nil || got != want {
			t.Fatalf("ParseRef(%q) = %+v, %v", s, got, err)
		}
		if got.String() != s {
			t.Fatalf("String() = %q, want %q", got.String(), s)
		}
	}
	for _, s := range []string{"name", "./org/name", "/abs/path", "org/name/extra", "org/na--me", "org/name@", "org/name:", "model.gguf", "../x/y", "org/name@../x"} {
		if _, err := hub.ParseRef(s); err == nil {
			t.Fatalf("ParseRef(%q) accepted", s)
		}
	}
}

// TestPullConcurrent runs two pulls of the same model into one cache at
// once: the per-blob lock (the one huggingface_hub takes) lets one write each
// blob, and both end with the complete snapshot.
func TestPullConcurrent(t *testing.T) {
	h, files, _ := tinyHub(t)
	cache := t.TempDir()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := pull(t, h, cache, "org/tiny", nil)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	p, err := hub.Lookup(cache, "org/tiny")
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(p, "model.safetensors"), files["model.safetensors"])
	if _, err := os.Stat(filepath.Join(cache, ".locks", "models--org--tiny", hubtest.SHA256(files["model.safetensors"])+".lock")); err != nil {
		t.Fatalf("no lock file where huggingface_hub keeps it: %v", err)
	}
}

// TestPullRecovers: faults a pull gets over within one run, each ending
// with the published bytes.
func TestPullRecovers(t *testing.T) {
	cases := []struct {
		name  string
		fault func(h *hubtest.Hub, big, small []byte)
		mod   func(*hub.Config)
		check func(t *testing.T, reqs []hubtest.Request)
	}{
		{"connection dropped", // after 100 kB: resumed with a Range request
			func(h *hubtest.Hub, big, _ []byte) { h.CutAfter(big, 100_000) }, nil,
			func(t *testing.T, reqs []hubtest.Request) {
				ranges := cdnRanges(reqs)
				if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
					t.Fatalf("CDN requests' ranges %q: want a whole GET then a resumed one", ranges)
				}
			}},
		{"corrupted once", // detected, fetched again
			func(h *hubtest.Hub, big, _ []byte) { h.Corrupt(big, 1) }, nil, nil},
		{"stalled", // no bytes without closing the connection: given up after StallTimeout, resumed where it stopped
			func(h *hubtest.Hub, big, _ []byte) { h.StallAfter(big, 100_000) },
			func(c *hub.Config) {
				c.Include = []string{"*.safetensors"}
				c.StallTimeout = 300 * time.Millisecond
			},
			func(t *testing.T, reqs []hubtest.Request) {
				if ranges := cdnRanges(reqs); !slices.Equal(ranges, []string{"", "bytes=100000-"}) {
					t.Fatalf("CDN ranges %q: want the whole file, then the rest from byte 100000", ranges)
				}
			}},
		{"refused and overloaded", // a refused CDN URL (403, an expired signature) through a fresh HEAD; an overloaded hub (503) retried with backoff
			func(h *hubtest.Hub, big, small []byte) { h.Fail(big, 403, 1); h.Fail(small, 503, 2) },
			func(c *hub.Config) { c.Include = []string{"config.json", "*.safetensors"} },
			func(t *testing.T, reqs []hubtest.Request) {
				heads := 0
				for _, r := range reqs {
					if r.Method == "HEAD" && strings.HasSuffix(r.Path, "/model.safetensors") {
						heads++
					}
				}
				if heads != 2 {
					t.Fatalf("%d HEADs of the LFS file, want 2 (a fresh URL after the 403)", heads)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, files, _ := tinyHub(t)
			c.fault(h, files["model.safetensors"], files["config.json"])
			res, err := pull(t, h, t.TempDir(), "org/tiny", c.mod)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Files) == 0 {
				t.Fatal("no files pulled")
			}
			for _, f := range res.Files {
				checkFile(t, filepath.Join(res.Snapshot, filepath.FromSlash(f.Name)), files[f.Name])
			}
			if c.check != nil {
				c.check(t, h.Requests())
			}
		})
	}
}

// TestPullRetries: a failure that outlasts the retries is reported.
func TestPullRetries(t *testing.T) {
	h, files, _ := tinyHub(t)
	h.Fail(files["config.json"], 429, 100)
	_, err := pull(t, h, t.TempDir(), "org/tiny", func(c *hub.Config) { c.Include = []string{"config.json"}; c.Retries = 2 })
	wantErr(t, "persistent 429", err, "config.json", "429", "run again")
}

// TestPullOffline: with HF_HUB_OFFLINE set, a pull answers from the cache
// and never contacts the hub.
func TestPullOffline(t *testing.T) {
	h, _, commit := tinyHub(t)
	cache := t.TempDir()
	t.Setenv("HF_HUB_OFFLINE", "1")
	_, err := pull(t, h, cache, "org/tiny", nil)
	wantErr(t, "offline, not cached", err, "HF_HUB_OFFLINE", "masque pull org/tiny")
	t.Setenv("HF_HUB_OFFLINE", "")
	if _, err := pull(t, h, cache, "org/tiny", nil); err != nil {
		t.Fatal(err)
	}
	h.Requests()
	t.Setenv("HF_HUB_OFFLINE", "true")
	res, err := pull(t, h, cache, "org/tiny", nil)
	if err != nil || res.Commit != commit || res.Downloaded != 0 || len(res.Files) != 5 {
		t.Fatalf("offline, cached: %+v %v", res, err)
	}
	if n := len(h.Requests()); n != 0 {
		t.Fatalf("%d requests while offline", n)
	}
}
