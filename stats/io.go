package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/internal/filehash"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
)

// File names inside a statistics folder.
const (
	ManifestFile = "manifest.json"     // the JSON manifest
	TensorFile   = "stats.safetensors" // the statistics tensors
)

// FormatName is the manifest's "format" value.
const FormatName = "masque-stats"

// FormatVersion is the statistics format version.
const FormatVersion = 1

// Manifest is the JSON description saved beside the statistics tensors.
type Manifest struct {
	Format           string `json:"format"`
	Version          int    `json:"version"`
	ModelFingerprint string `json:"model_fingerprint"`
	Model            string `json:"model,omitempty"`
	// Base opens the model again (model.Model.Origin: a built-in name, a
	// hub id or an absolute path); absent in older folders.
	Base        string         `json:"base,omitempty"`
	Calibration calib.Record   `json:"calibration"`
	Samples     int            `json:"samples"`
	Tokens      int64          `json:"tokens"`
	Layers      int            `json:"layers"`
	Dims        map[string]int `json:"dims"`   // input name → width
	Inputs      []string       `json:"inputs"` // collected inputs
	// CollectedLayers lists the layers that have statistics when not all do.
	CollectedLayers []int    `json:"collected_layers,omitempty"`
	Gram            []string `json:"gram,omitempty"`
	Created         string   `json:"created,omitempty"`
	TensorSHA256    string   `json:"tensor_sha256,omitempty"`
}

func (man *Manifest) fill(m *model.Model, ch [][NumInputs]*Channel) {
	man.Format, man.Version = FormatName, FormatVersion
	if man.ModelFingerprint == "" {
		man.ModelFingerprint = m.Fingerprint()
	}
	if man.Model == "" {
		man.Model = m.Source()
	}
	if man.Base == "" {
		man.Base = m.Origin()
	}
	if man.Created == "" {
		man.Created = time.Now().UTC().Format(time.RFC3339)
	}
	dims := InputDims(&m.Config)
	man.Dims = map[string]int{}
	man.Inputs = nil
	man.Gram = nil
	man.CollectedLayers = nil
	var have [NumInputs]bool
	all := true
	for l := range ch {
		any := false
		for i, c := range ch[l] {
			if c != nil {
				have[i], any = true, true
			}
		}
		if any {
			man.CollectedLayers = append(man.CollectedLayers, l)
		} else {
			all = false
		}
	}
	if all {
		man.CollectedLayers = nil
	}
	for i := Input(0); i < NumInputs; i++ {
		man.Dims[i.String()] = dims[i]
		if have[i] {
			man.Inputs = append(man.Inputs, i.String())
		}
	}
	for l := range ch {
		for i, c := range ch[l] {
			if c != nil && c.Gram != nil {
				man.Gram = append(man.Gram, fmt.Sprintf("%d.%s", l, Input(i)))
			}
		}
	}
}

// Check returns an error unless s was collected on m (same fingerprint).
func (s *Stats) Check(m *model.Model) error {
	if fp := m.Fingerprint(); fp != s.Manifest.ModelFingerprint {
		return fmt.Errorf("stats: these statistics were collected on another model (fingerprint %.16s…, model %s has %.16s…)", s.Manifest.ModelFingerprint, m.Source(), fp)
	}
	return nil
}

func tensorName(l int, in Input, what string) string {
	return fmt.Sprintf("layers.%d.%s.%s", l, in, what)
}

// Save writes the statistics into the folder dir (created if needed):
// stats.safetensors with, for every collected input of every layer,
// layers.L.INPUT.norms (F32 [samples, dim]), .sum and .sumsq (F64 [dim]) and
// .gram (F64 [dim, dim], when collected), and manifest.json. Both files are
// written atomically, the manifest last (it records the tensor file's hash).
func (s *Stats) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	var ts []safetensors.WriteTensor
	for l := range s.In {
		for i, c := range s.In[l] {
			if c == nil {
				continue
			}
			in := Input(i)
			c.finish()
			ts = append(ts,
				safetensors.WriteTensor{Name: tensorName(l, in, "norms"), DType: "F32", Shape: []int{c.Samples, c.Dim}, Data: safetensors.F32Bytes(c.Norms)},
				safetensors.WriteTensor{Name: tensorName(l, in, "sum"), DType: "F64", Shape: []int{c.Dim}, Data: safetensors.F64Bytes(c.Sum)},
				safetensors.WriteTensor{Name: tensorName(l, in, "sumsq"), DType: "F64", Shape: []int{c.Dim}, Data: safetensors.F64Bytes(c.SumSq)})
			if c.Gram != nil {
				ts = append(ts, safetensors.WriteTensor{Name: tensorName(l, in, "gram"), DType: "F64", Shape: []int{c.Dim, c.Dim}, Data: safetensors.F64Bytes(c.Gram)})
			}
		}
	}
	tp := filepath.Join(dir, TensorFile)
	if err := safetensors.Write(tp, ts, map[string]string{"format": FormatName}); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	sum, err := filehash.SHA256(tp)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	man := s.Manifest
	man.TensorSHA256 = sum
	data, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	err = atomicfile.WriteFile(filepath.Join(dir, ManifestFile), func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	s.Manifest = man
	return nil
}

// readManifest reads and checks the manifest of the statistics folder
// path (or of path, its manifest.json).
func readManifest(path string) (dir, mp string, man Manifest, err error) {
	dir = path
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir = filepath.Dir(path)
	} else if err != nil {
		return "", "", man, fmt.Errorf("stats: %w", err)
	}
	mp = filepath.Join(dir, ManifestFile)
	raw, err := os.ReadFile(mp)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", "", man, fmt.Errorf("stats: %s: no %s: not a statistics folder", dir, ManifestFile)
		}
		return "", "", man, fmt.Errorf("stats: %w", err)
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		return "", "", man, fmt.Errorf("stats: %s: malformed JSON: %v", mp, err)
	}
	if man.Format != FormatName || man.Version != FormatVersion {
		return "", "", man, fmt.Errorf("stats: %s: not a masque statistics manifest (format %q version %d, want %q %d)", mp, man.Format, man.Version, FormatName, FormatVersion)
	}
	if man.Layers <= 0 || man.Layers > 4096 || man.Samples < 0 || man.Tokens < 0 || man.ModelFingerprint == "" {
		return "", "", man, fmt.Errorf("stats: %s: implausible manifest (layers %d, samples %d, tokens %d, fingerprint %q)", mp, man.Layers, man.Samples, man.Tokens, man.ModelFingerprint)
	}
	return dir, mp, man, nil
}

// ReadBase returns the base model the statistics folder path (or its
// manifest.json) records; only the manifest is read. A folder written
// before masque recorded the base gives an empty Ref.
func ReadBase(path string) (checkpoint.Base, error) {
	_, mp, man, err := readManifest(path)
	if err != nil {
		return checkpoint.Base{}, err
	}
	return checkpoint.Base{Ref: man.Base, Fingerprint: man.ModelFingerprint, File: mp}, nil
}

// SpecBase is ReadBase for a spec that may name a statistics folder or
// something else (a text file of samples, as masque subnet contrast takes):
// what is not a folder holding manifest.json records no base.
func SpecBase(spec string) (checkpoint.Base, error) {
	if st, err := os.Stat(filepath.Join(spec, ManifestFile)); err != nil || st.IsDir() {
		return checkpoint.Base{}, nil
	}
	return ReadBase(spec)
}

// Load reads statistics saved by Save. path is the folder or its
// manifest.json. Every problem is an error naming the file.
func Load(path string) (*Stats, error) {
	dir, mp, man, err := readManifest(path)
	if err != nil {
		return nil, err
	}
	tp := filepath.Join(dir, TensorFile)
	if man.TensorSHA256 != "" {
		sum, err := filehash.SHA256(tp)
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		if sum != man.TensorSHA256 {
			return nil, fmt.Errorf("stats: %s does not match %s (the file was changed or comes from another run)", tp, mp)
		}
	}
	f, err := safetensors.Open(tp)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer f.Close()
	gram := map[string]bool{}
	for _, g := range man.Gram {
		gram[g] = true
	}
	s := &Stats{Manifest: man, In: make([][NumInputs]*Channel, man.Layers)}
	for _, name := range man.Inputs {
		in, err := ParseInput(name)
		if err != nil {
			return nil, fmt.Errorf("stats: %s: %v", mp, err)
		}
		dim := man.Dims[name]
		if dim <= 0 || dim > 1<<22 {
			return nil, fmt.Errorf("stats: %s: bad width %d for %s", mp, dim, name)
		}
		for l := 0; l < man.Layers; l++ {
			if man.CollectedLayers != nil && !slices.Contains(man.CollectedLayers, l) {
				continue
			}
			get := func(what, dtype string, shape ...int) ([]byte, error) {
				tn := tensorName(l, in, what)
				t, ok := f.Tensor(tn)
				if !ok {
					return nil, fmt.Errorf("stats: %s: tensor %s is missing", tp, tn)
				}
				if t.DType != dtype || len(t.Shape) != len(shape) {
					return nil, fmt.Errorf("stats: %s: tensor %s is %s %v, want %s %v", tp, tn, t.DType, t.Shape, dtype, shape)
				}
				for i := range shape {
					if t.Shape[i] != shape[i] {
						return nil, fmt.Errorf("stats: %s: tensor %s is %s %v, want %s %v", tp, tn, t.DType, t.Shape, dtype, shape)
					}
				}
				return t.Data, nil
			}
			c := &Channel{Dim: dim, Samples: man.Samples, Tokens: man.Tokens}
			b, err := get("norms", "F32", man.Samples, dim)
			if err != nil {
				return nil, err
			}
			if c.Norms, err = safetensors.DecodeFloat32s("F32", b); err != nil {
				return nil, fmt.Errorf("stats: %s: %v", tp, err)
			}
			if b, err = get("sum", "F64", dim); err != nil {
				return nil, err
			}
			c.Sum = decodeF64(b)
			if b, err = get("sumsq", "F64", dim); err != nil {
				return nil, err
			}
			c.SumSq = decodeF64(b)
			if gram[fmt.Sprintf("%d.%s", l, in)] {
				if b, err = get("gram", "F64", dim, dim); err != nil {
					return nil, err
				}
				c.Gram = decodeF64(b)
			}
			s.In[l][in] = c
		}
	}
	return s, nil
}
