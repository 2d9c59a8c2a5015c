package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
)

// errClosed is returned for use of a closed Set.
var errClosed = errors.New("safetensors: set is closed")

// Standard file names of a Hugging Face checkpoint folder.
const (
	indexName  = "model.safetensors.index.json"
	singleName = "model.safetensors"
)

// shardPattern matches the conventional shard names model-00001-of-00003.safetensors.
var shardPattern = regexp.MustCompile(`^model-([0-9]+)-of-([0-9]+)\.safetensors$`)

// Set is one model's weights, stored in one safetensors file or sharded over
// several. Like File, its methods may be called concurrently except Close,
// and tensor data must not be used after Close.
type Set struct {
	dir   string
	files []*File
	where map[string]*File // tensor name → file holding it
	names []string
}

// OpenDir opens the model weights in folder dir. It uses, in this order:
//
//  1. model.safetensors.index.json: the shard files named in its
//     "weight_map"; the Set holds exactly the tensors listed there, and each
//     must be present in the shard the index names;
//  2. model.safetensors;
//  3. model-NNNNN-of-MMMMM.safetensors: all M shards must be present and no
//     tensor may appear in two of them.
//
// Other *.safetensors files in the folder (golden.safetensors,
// adapter_model.safetensors, …) are never opened.
func OpenDir(dir string) (*Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("safetensors: %s is not a directory", dir)
	}
	indexPath := filepath.Join(dir, indexName)
	if _, err := os.Stat(indexPath); err == nil {
		return openIndexed(dir, indexPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	single := filepath.Join(dir, singleName)
	if _, err := os.Stat(single); err == nil {
		return openShards(dir, []string{single})
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	shards, err := findShards(dir)
	if err != nil {
		return nil, err
	}
	return openShards(dir, shards)
}

// openIndexed opens the shards named by the index at indexPath.
func openIndexed(dir, indexPath string) (*Set, error) {
	raw, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("safetensors: %s: malformed index: %v", indexPath, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors: %s: malformed index: no weight_map entries", indexPath)
	}
	var shardNames []string
	for name, shard := range index.WeightMap {
		if !filepath.IsLocal(filepath.FromSlash(shard)) {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: invalid shard file name %q", indexPath, name, shard)
		}
		if !slices.Contains(shardNames, shard) {
			shardNames = append(shardNames, shard)
		}
	}
	slices.Sort(shardNames)
	s := &Set{dir: dir, where: make(map[string]*File, len(index.WeightMap))}
	byShard := make(map[string]*File, len(shardNames))
	for _, shard := range shardNames {
		p := filepath.Join(dir, filepath.FromSlash(shard))
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			s.Close()
			return nil, fmt.Errorf("safetensors: %s: shard file %s is missing", indexPath, p)
		}
		f, err := Open(p)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
		byShard[shard] = f
	}
	for name, shard := range index.WeightMap {
		f := byShard[shard]
		if _, ok := f.tensors[name]; !ok {
			s.Close()
			return nil, fmt.Errorf("safetensors: %s: tensor %q is listed in the weight_map but absent from shard %s", indexPath, name, f.path)
		}
		s.where[name] = f
	}
	s.collectNames()
	return s, nil
}

// findShards returns the complete, ordered list of model-N-of-M shards in dir.
func findShards(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	total := -1
	byIndex := map[int]string{}
	for _, e := range ents {
		m := shardPattern.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		i, err1 := strconv.Atoi(m[1])
		n, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
			return nil, fmt.Errorf("safetensors: %s: bad shard file name %s", dir, e.Name())
		}
		if total != -1 && n != total {
			return nil, fmt.Errorf("safetensors: %s: shard files disagree on the shard count (%d and %d)", dir, total, n)
		}
		total = n
		if prev, dup := byIndex[i]; dup {
			return nil, fmt.Errorf("safetensors: %s: shard %d appears twice (%s and %s)", dir, i, prev, e.Name())
		}
		byIndex[i] = e.Name()
	}
	if total == -1 {
		return nil, fmt.Errorf("safetensors: %s: no model weights found (want %s, %s or model-*-of-*.safetensors)", dir, indexName, singleName)
	}
	paths := make([]string, 0, total)
	for i := 1; i <= total; i++ {
		name, ok := byIndex[i]
		if !ok {
			return nil, fmt.Errorf("safetensors: %s: shard %d of %d is missing", dir, i, total)
		}
		paths = append(paths, filepath.Join(dir, name))
	}
	return paths, nil
}

// openShards opens the given files and indexes all their tensors, which must
// have distinct names.
func openShards(dir string, paths []string) (*Set, error) {
	s := &Set{dir: dir, where: make(map[string]*File)}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
		for _, name := range f.names {
			if prev, dup := s.where[name]; dup {
				s.Close()
				return nil, fmt.Errorf("safetensors: %s: tensor %q appears in both %s and %s", dir, name, prev.path, f.path)
			}
			s.where[name] = f
		}
	}
	s.collectNames()
	return s, nil
}

// collectNames lists the set's tensors in storage order: file by file, by
// offset within each file.
func (s *Set) collectNames() {
	s.names = make([]string, 0, len(s.where))
	for _, f := range s.files {
		for _, name := range f.names {
			if s.where[name] == f {
				s.names = append(s.names, name)
			}
		}
	}
}

// Dir returns the folder the set was opened from.
func (s *Set) Dir() string { return s.dir }

// Tensor returns the named tensor, or an error naming the tensor and the
// folder if the set has no such tensor.
func (s *Set) Tensor(name string) (*Tensor, error) {
	if s.where == nil {
		return nil, errClosed
	}
	f, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: tensor %q not found in %s", name, s.dir)
	}
	t, _ := f.Tensor(name)
	return t, nil
}

// Has reports whether the set holds the named tensor.
func (s *Set) Has(name string) bool {
	_, ok := s.where[name]
	return ok
}

// Names returns all tensor names in storage order (shard by shard, by data
// offset within a shard).
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Metadata returns the "__metadata__" of the first file of the set (for a
// sharded checkpoint, shards normally carry the same metadata).
func (s *Set) Metadata() map[string]string {
	if len(s.files) == 0 {
		return map[string]string{}
	}
	return s.files[0].Metadata()
}

// Close closes every file of the set, releasing their mappings, and returns
// the first error. Tensor data from the set must not be used afterwards.
func (s *Set) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.files, s.where, s.names = nil, nil, nil
	return first
}
