package style

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

//go:embed tags.yaml
var defaultTagSet []byte

// TagSet is the pragmatic tag set: tags with prototype sentences, and the
// threshold above which a tag is on.
type TagSet struct {
	Name      string  `yaml:"name" json:"name"`
	Threshold float64 `yaml:"threshold" json:"threshold"`
	Tags      []Tag   `yaml:"tags" json:"tags"`
	// SHA256 is the hash of the file's bytes; profiles record it so that a
	// profile is never scored against another tag set.
	SHA256 string `yaml:"-" json:"sha256"`
}

// Tag is one pragmatic tag.
type Tag struct {
	Name       string   `yaml:"name" json:"name"`
	Prototypes []string `yaml:"prototypes" json:"prototypes,omitempty"`
}

// DefaultTagSet returns the built-in tag set (style/tags.yaml).
func DefaultTagSet() *TagSet {
	ts, err := ParseTagSet(defaultTagSet, "built-in tags.yaml")
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return ts
}

// DefaultTagSetYAML returns the built-in tag set file, a starting point
// for an edited one.
func DefaultTagSetYAML() []byte { return append([]byte(nil), defaultTagSet...) }

// LoadTagSet reads a tag set file; an empty path is the built-in set.
func LoadTagSet(path string) (*TagSet, error) {
	if path == "" {
		return DefaultTagSet(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTagSet(b, path)
}

// ParseTagSet parses and checks a tag set; name names the source in errors.
func ParseTagSet(b []byte, name string) (*TagSet, error) {
	var ts TagSet
	if err := yaml.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if ts.Name == "" {
		return nil, fmt.Errorf("%s: the tag set has no name", name)
	}
	if ts.Threshold == 0 {
		ts.Threshold = 0.4
	}
	if ts.Threshold <= -1 || ts.Threshold >= 1 {
		return nil, fmt.Errorf("%s: threshold %g is not a cosine in (-1, 1)", name, ts.Threshold)
	}
	if len(ts.Tags) < 2 {
		return nil, fmt.Errorf("%s: a tag set needs at least two tags (the prototypes are centred on their common mean)", name)
	}
	seen := map[string]bool{}
	for i, t := range ts.Tags {
		if t.Name == "" {
			return nil, fmt.Errorf("%s: tag %d has no name", name, i+1)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%s: tag %q appears twice", name, t.Name)
		}
		seen[t.Name] = true
		if len(t.Prototypes) == 0 {
			return nil, fmt.Errorf("%s: tag %q has no prototype sentences", name, t.Name)
		}
		for _, p := range t.Prototypes {
			if p == "" {
				return nil, fmt.Errorf("%s: tag %q has an empty prototype", name, t.Name)
			}
		}
	}
	sum := sha256.Sum256(b)
	ts.SHA256 = hex.EncodeToString(sum[:])
	return &ts, nil
}
