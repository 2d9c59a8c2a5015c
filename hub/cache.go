package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// isHex reports whether s is min to 64 lowercase hex digits.
func isHex(s string, min int) bool {
	if len(s) < min || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// commitFor finds the snapshot a revision names in a cached repository: a
// ref (refs/<rev>), a full commit, or a prefix of at least 7 hex digits that
// names exactly one snapshot. With no revision given and no refs/main (files
// fetched by commit only), a repository with exactly one snapshot answers
// with it.
func commitFor(dir, rev string, given bool) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "refs", filepath.FromSlash(rev))); err == nil {
		c := strings.TrimSpace(string(b))
		if c == "" || strings.ContainsAny(c, `/\`) || c == "." || c == ".." {
			return "", fmt.Errorf("%s: refs/%s holds no commit", dir, rev)
		}
		return c, nil
	}
	snaps, err := snapshotNames(dir)
	if err != nil {
		return "", err
	}
	if isHex(rev, 7) {
		var found []string
		for _, s := range snaps {
			if strings.HasPrefix(s, rev) {
				found = append(found, s)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			return "", fmt.Errorf("revision %s names several snapshots (%s): give more digits", rev, strings.Join(found, ", "))
		}
	}
	if !given && len(snaps) == 1 {
		return snaps[0], nil
	}
	return "", fmt.Errorf("revision %s %w", rev, ErrNotCached)
}

func snapshotNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Lookup finds a pulled model in the cache (CacheDir() when cache is "") and
// returns what opens it: the snapshot folder of a Hugging Face model, or the
// GGUF file of a GGUF repository (the one named by the reference's :TAG when
// the snapshot holds several). It never downloads; a model that is not there
// gives an error wrapping ErrNotCached that says to run masque pull.
func Lookup(cache, ref string) (string, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	if cache == "" {
		cache = CacheDir()
	}
	dir := repoDir(cache, r.Repo)
	notCached := func(what error) error {
		pull := r.Repo
		if r.Revision != "" {
			pull += "@" + r.Revision
		}
		if r.Quant != "" {
			pull += ":" + r.Quant
		}
		return fmt.Errorf("%s: %w (%s): run masque pull %s", ref, what, cache, pull)
	}
	if _, err := os.Stat(dir); err != nil {
		return "", notCached(ErrNotCached)
	}
	commit, err := commitFor(dir, r.rev(), r.Revision != "")
	if err != nil {
		if errors.Is(err, ErrNotCached) {
			return "", notCached(err)
		}
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	snap := filepath.Join(dir, "snapshots", commit)
	if _, err := os.Stat(snap); err != nil {
		return "", notCached(fmt.Errorf("snapshot %s %w", commit, ErrNotCached))
	}
	if err := checkSnapshot(snap); err != nil {
		return "", notCached(err)
	}
	p, err := openPath(snap, r.Quant)
	if err != nil {
		if errors.Is(err, ErrNotCached) {
			return "", notCached(err)
		}
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	return p, nil
}

// checkSnapshot refuses a snapshot that an interrupted or failed pull left
// unfinished: a link to a blob that is gone, a safetensors index naming a
// shard that is missing, or a model folder (config.json) with no
// .safetensors weights at all. The error wraps ErrNotCached.
func checkSnapshot(snap string) error {
	files, err := snapshotFiles(snap)
	if err != nil {
		return err
	}
	hasConfig, hasWeights := false, false
	for _, f := range files {
		p := filepath.Join(snap, filepath.FromSlash(f))
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("snapshot %s is incomplete (%s: its blob is missing): %w", filepath.Base(snap), f, ErrNotCached)
		}
		switch {
		case f == "config.json":
			hasConfig = true
		case strings.HasSuffix(f, ".safetensors"):
			hasWeights = true
		case strings.HasSuffix(f, ".safetensors.index.json"):
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var idx struct {
				WeightMap map[string]string `json:"weight_map"`
			}
			if err := json.Unmarshal(b, &idx); err != nil {
				return fmt.Errorf("%s: %v", p, err)
			}
			for _, shard := range idx.WeightMap {
				sp := filepath.Join(filepath.Dir(p), filepath.FromSlash(shard))
				if _, err := os.Stat(sp); err != nil {
					return fmt.Errorf("snapshot %s is incomplete (%s names %s, which is not there): %w", filepath.Base(snap), f, shard, ErrNotCached)
				}
			}
		}
	}
	if hasConfig && !hasWeights {
		return fmt.Errorf("snapshot %s has config.json but no .safetensors weights (an unfinished pull, or a repository masque cannot open): %w", filepath.Base(snap), ErrNotCached)
	}
	return nil
}

// openPath picks what opens a snapshot: the folder when it holds config.json
// and no quantisation is asked for, else its one GGUF model file (the first
// part of a split file).
func openPath(snap, quant string) (string, error) {
	files, err := snapshotFiles(snap)
	if err != nil {
		return "", err
	}
	if quant == "" {
		if _, err := os.Stat(filepath.Join(snap, "config.json")); err == nil {
			return snap, nil
		}
	}
	var ggufs, all []string
	for _, f := range files {
		if !isModelGGUF(f) {
			continue
		}
		all = append(all, f)
		if quant != "" && !matchesQuant(f, quant) {
			continue
		}
		if laterSplitPart(f) {
			continue // later parts of a split file: the first opens it
		}
		ggufs = append(ggufs, f)
	}
	switch {
	case len(ggufs) == 1:
		return filepath.Join(snap, filepath.FromSlash(ggufs[0])), nil
	case len(ggufs) > 1:
		return "", fmt.Errorf("the snapshot %s holds several GGUF files (%s): name one with :TAG (%s)", snap, strings.Join(ggufs, ", "), strings.Join(quantTags(ggufs), ", "))
	case quant != "":
		if len(all) == 0 {
			return "", fmt.Errorf("no GGUF file of quantisation %s: %w", quant, ErrNotCached)
		}
		return "", fmt.Errorf("no GGUF file of quantisation %s %w (it has %s)", quant, ErrNotCached, strings.Join(quantTags(all), ", "))
	}
	return snap, nil
}

// snapshotFiles lists a snapshot's files (slash-separated, relative).
func snapshotFiles(snap string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(snap, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.Contains(d.Name(), ".linking-") {
			return nil // a link still being made (or left by a crash: see linkSnapshot)
		}
		rel, _ := filepath.Rel(snap, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out, err
}

// CachedModel is one repository in the cache.
type CachedModel struct {
	Repo      string     `json:"repo"`
	Dir       string     `json:"dir"`
	Snapshots []Snapshot `json:"snapshots"`
	// Size is the bytes its blobs (and files stored in snapshots instead of
	// blobs) take on disk; Partial the bytes of unfinished downloads.
	Size     int64     `json:"size"`
	Partial  int64     `json:"partial,omitempty"`
	Modified time.Time `json:"modified"`
}

// Snapshot is one commit of a cached repository.
type Snapshot struct {
	Commit string   `json:"commit"`
	Refs   []string `json:"refs,omitempty"` // branches and tags pointing at it ("main", "v1.0")
	Files  []string `json:"files"`
	// Size is the bytes of its files; Missing names files whose blob is
	// gone (a broken link).
	Size    int64    `json:"size"`
	Missing []string `json:"missing,omitempty"`
	// Kind: "hf" (a model folder with config.json), "gguf" (GGUF files,
	// listed in GGUF) or "files".
	Kind string   `json:"kind"`
	GGUF []string `json:"gguf,omitempty"`
}

// List returns the models in the cache (CacheDir() when cache is ""),
// sorted by repository. A missing cache is an empty list.
func List(cache string) ([]CachedModel, error) {
	if cache == "" {
		cache = CacheDir()
	}
	ents, err := os.ReadDir(cache)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []CachedModel
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), "models--")
		if !ok || !e.IsDir() {
			continue
		}
		m, err := scanRepo(filepath.Join(cache, e.Name()), strings.ReplaceAll(name, "--", "/"))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Repo) < strings.ToLower(out[j].Repo) })
	return out, nil
}

// readRefs maps each commit to the refs pointing at it.
func readRefs(dir string) (map[string][]string, error) {
	refs := map[string][]string{}
	root := filepath.Join(dir, "refs")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		c := strings.TrimSpace(string(b))
		refs[c] = append(refs[c], filepath.ToSlash(rel))
		return nil
	})
	return refs, err
}

func scanRepo(dir, repo string) (CachedModel, error) {
	m := CachedModel{Repo: repo, Dir: dir}
	if st, err := os.Stat(dir); err == nil {
		m.Modified = st.ModTime()
	}
	refs, err := readRefs(dir)
	if err != nil {
		return m, err
	}
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs"))
	for _, b := range blobs {
		info, err := b.Info()
		if err != nil {
			continue
		}
		if strings.HasSuffix(b.Name(), ".incomplete") {
			m.Partial += info.Size()
		} else {
			m.Size += info.Size()
		}
		if info.ModTime().After(m.Modified) {
			m.Modified = info.ModTime()
		}
	}
	snaps, err := snapshotNames(dir)
	if err != nil {
		return m, err
	}
	for _, c := range snaps {
		s := Snapshot{Commit: c, Refs: refs[c], Kind: "files"}
		sort.Strings(s.Refs)
		snap := filepath.Join(dir, "snapshots", c)
		files, err := snapshotFiles(snap)
		if err != nil {
			return m, err
		}
		s.Files = files
		for _, f := range files {
			p := filepath.Join(snap, filepath.FromSlash(f))
			st, err := os.Stat(p)
			if err != nil {
				s.Missing = append(s.Missing, f)
				continue
			}
			s.Size += st.Size()
			if lst, err := os.Lstat(p); err == nil && lst.Mode().IsRegular() {
				m.Size += st.Size() // stored in the snapshot itself, not as a blob
			}
			if isModelGGUF(f) {
				s.GGUF = append(s.GGUF, f)
			}
		}
		if _, err := os.Stat(filepath.Join(snap, "config.json")); err == nil {
			s.Kind = "hf"
		} else if len(s.GGUF) > 0 {
			s.Kind = "gguf"
		}
		m.Snapshots = append(m.Snapshots, s)
	}
	return m, nil
}

// Removal says what Remove removed (or, for a dry run, would remove).
type Removal struct {
	Repo      string
	Dir       string
	Whole     bool     // the repository's folder went entirely
	Snapshots []string // commits
	Refs      []string
	Blobs     []string // blob names no remaining snapshot uses
	Bytes     int64    // disk space freed
	DryRun    bool
}

// Remove deletes a model from the cache (CacheDir() when cache is ""):
// "org/name" removes the repository's folder; "org/name@rev" removes the
// snapshot the revision names, the refs pointing at it, and the blobs no
// other snapshot links to (the whole folder when no snapshot is left). With
// dryRun it only reports.
func Remove(cache, ref string, dryRun bool) (*Removal, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if r.Quant != "" {
		return nil, fmt.Errorf("%s: rm takes org/name or org/name@revision, not a :TAG", ref)
	}
	if cache == "" {
		cache = CacheDir()
	}
	dir := repoDir(cache, r.Repo)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%s: %w (%s)", r.Repo, ErrNotCached, cache)
	}
	rm := &Removal{Repo: r.Repo, Dir: dir, DryRun: dryRun}
	refs, err := readRefs(dir)
	if err != nil {
		return nil, err
	}
	snaps, err := snapshotNames(dir)
	if err != nil {
		return nil, err
	}
	if r.Revision == "" {
		rm.Whole = true
		rm.Snapshots = snaps
		for _, rs := range refs {
			rm.Refs = append(rm.Refs, rs...)
		}
		sort.Strings(rm.Refs)
		rm.Bytes = diskUsage(dir)
		if !dryRun {
			if err := os.RemoveAll(dir); err != nil {
				return rm, err
			}
			os.RemoveAll(filepath.Join(cache, ".locks", filepath.Base(dir)))
		}
		return rm, nil
	}
	commit, err := commitFor(dir, r.Revision, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	rm.Snapshots = []string{commit}
	rm.Refs = append(rm.Refs, refs[commit]...)
	sort.Strings(rm.Refs)
	// Blobs the remaining snapshots use.
	keep := map[string]bool{}
	left := 0
	for _, s := range snaps {
		if s == commit {
			continue
		}
		left++
		snap := filepath.Join(dir, "snapshots", s)
		files, err := snapshotFiles(snap)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if t, err := os.Readlink(filepath.Join(snap, filepath.FromSlash(f))); err == nil {
				keep[filepath.Base(t)] = true
			}
		}
	}
	if left == 0 && len(refs)-len(refs[commit]) == 0 {
		rm.Whole = true
		rm.Bytes = diskUsage(dir)
		if !dryRun {
			if err := os.RemoveAll(dir); err != nil {
				return rm, err
			}
			os.RemoveAll(filepath.Join(cache, ".locks", filepath.Base(dir)))
		}
		return rm, nil
	}
	snapDir := filepath.Join(dir, "snapshots", commit)
	rm.Bytes += diskUsage(snapDir)
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs"))
	for _, b := range blobs {
		if keep[b.Name()] || strings.HasSuffix(b.Name(), ".incomplete") {
			continue
		}
		rm.Blobs = append(rm.Blobs, b.Name())
		if info, err := b.Info(); err == nil {
			rm.Bytes += info.Size()
		}
	}
	if dryRun {
		return rm, nil
	}
	if err := os.RemoveAll(snapDir); err != nil {
		return rm, err
	}
	for _, ref := range rm.Refs {
		if err := os.Remove(filepath.Join(dir, "refs", filepath.FromSlash(ref))); err != nil {
			return rm, err
		}
	}
	for _, b := range rm.Blobs {
		if err := os.Remove(filepath.Join(dir, "blobs", b)); err != nil {
			return rm, err
		}
	}
	return rm, nil
}

// diskUsage sums the sizes of the regular files under dir (links count nothing).
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
