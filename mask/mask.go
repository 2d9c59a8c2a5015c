// Package mask holds masque's weight masks: which entries of each linear
// layer (q, k, v, o, gate, up, down of every decoder block) a persona
// subnetwork keeps. A Mask is bit-packed, carries the fingerprint of the model
// it was made for and is stored as a safetensors file (see FORMAT.md).
//
// Apply writes a masked copy of a model as a Hugging Face folder, Masked
// builds a masked model in memory for evaluation, Diff compares two masks
// and Fingerprint identifies a model so that a mask is never used with a
// model it was not made for.
package mask

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
)

// FormatName is the value of the "format" metadata entry of a mask file.
const FormatName = "masque-mask"

// FormatVersion is the mask file format version this package writes and reads.
const FormatVersion = 1

// Key names one linear layer: a projection of a decoder block.
type Key struct {
	Layer int
	Proj  model.Proj
}

// TensorName returns the Hugging Face name of the weight the key masks, e.g.
// "model.layers.3.mlp.up_proj.weight"; mask files use it as the tensor name.
func (k Key) TensorName() string {
	return model.HFLayerPrefix(k.Layer) + k.Proj.HFName() + ".weight"
}

// String returns "layer.proj", e.g. "3.up".
func (k Key) String() string { return strconv.Itoa(k.Layer) + "." + k.Proj.String() }

// Info describes how a mask was made. Every field is informational: Apply and
// Masked use only the bits, Gamma and the fingerprint.
type Info struct {
	Method      string            `json:"method,omitempty"`      // magnitude, wanda, sparsegpt, contrast-wanda, contrast-pooled, …
	Sparsity    float64           `json:"sparsity"`              // target share of pruned entries (uniform part)
	Granularity string            `json:"granularity,omitempty"` // row, 2:4, ffn-channels, …
	Targets     string            `json:"targets,omitempty"`     // all, mlp, attn
	Calibration string            `json:"calibration,omitempty"` // calibration set name and hash
	Model       string            `json:"model,omitempty"`       // where the model was loaded from
	Extra       map[string]string `json:"extra,omitempty"`       // anything else (contrast side, φ, per-layer sparsity, …)
}

// Mask is a set of keep-masks for a model's linear layers. Layers without an
// entry are dense (everything kept).
type Mask struct {
	// Fingerprint identifies the model the mask was made for (see Fingerprint).
	Fingerprint string
	// Layers is the model's number of decoder blocks.
	Layers int
	// Shapes holds [rows, cols] of each projection's weight (the same in
	// every block).
	Shapes [model.NumProj][2]int
	// Gamma is the soft gate: a pruned weight is multiplied by Gamma rather
	// than zeroed (W ⊙ (M + γ(1−M))). 0, the default, prunes.
	Gamma float64
	// Info describes how the mask was made.
	Info Info
	// Base opens the model the mask was made for (model.Model.Origin: a
	// built-in name, a hub id or an absolute path); "" in masks written
	// before masque recorded it.
	Base string
	// Arch is the base's model.ArchFingerprint, and Probe a sample of its
	// weights: with them a mask applies to other encodings of its base
	// (see Compat). Nil or empty in older masks, which need the exact
	// fingerprint.
	Arch  string
	Probe *model.Probe

	entries map[Key]*Bits
	file    string // the file Load read it from
}

// ProjShapes returns the [rows, cols] shape of every projection of m.
func ProjShapes(c *model.Config) [model.NumProj][2]int {
	qd, kvd := c.QDim(), c.KVDim()
	return [model.NumProj][2]int{{qd, c.Hidden}, {kvd, c.Hidden}, {kvd, c.Hidden}, {c.Hidden, qd},
		{c.Intermediate, c.Hidden}, {c.Intermediate, c.Hidden}, {c.Hidden, c.Intermediate}}
}

// New returns a dense (empty) mask for m, carrying its fingerprint and shapes.
func New(m *model.Model) *Mask {
	return &Mask{Fingerprint: m.Fingerprint(), Layers: m.Config.Layers, Shapes: ProjShapes(&m.Config), entries: map[Key]*Bits{},
		Base: m.Origin(), Arch: m.ArchFingerprint(), Probe: probe(m)}
}

// probe is m's weight probe, or nil for a model that lacks a projection
// (such a mask then needs the exact fingerprint).
func probe(m *model.Model) *model.Probe {
	p, err := m.Probe()
	if err != nil {
		return nil
	}
	return p
}

// Set stores b as the mask of k. Its shape must match the projection's.
func (mk *Mask) Set(k Key, b *Bits) error {
	if k.Layer < 0 || k.Layer >= mk.Layers || k.Proj < 0 || k.Proj >= model.NumProj {
		return fmt.Errorf("mask: no linear layer %s in a %d-layer model", k, mk.Layers)
	}
	if s := mk.Shapes[k.Proj]; b.Rows != s[0] || b.Cols != s[1] {
		return fmt.Errorf("mask: %s mask is %d×%d, the weight is %d×%d", k, b.Rows, b.Cols, s[0], s[1])
	}
	if mk.entries == nil {
		mk.entries = map[Key]*Bits{}
	}
	mk.entries[k] = b
	return nil
}

// SetChannels stores the mask of FFN projection p (gate, up or down) of
// layer l that keeps the intermediate channels c with keep[c] set and
// prunes the others whole: rows of gate_proj and up_proj, columns of
// down_proj (structured FFN pruning).
func (mk *Mask) SetChannels(l int, p model.Proj, keep []bool) error {
	if p != model.ProjGate && p != model.ProjUp && p != model.ProjDown {
		return fmt.Errorf("mask: %s is not an FFN projection", p.HFName())
	}
	s := mk.Shapes[p]
	ch := s[0] // gate and up: a channel is a row
	if p == model.ProjDown {
		ch = s[1] // down: a column
	}
	if len(keep) != ch {
		return fmt.Errorf("mask: %d channel flags for %d FFN channels", len(keep), ch)
	}
	b := NewBits(s[0], s[1])
	for c, kp := range keep {
		if kp {
			continue
		}
		if p == model.ProjDown {
			for r := 0; r < s[0]; r++ {
				b.Set(r, c, false)
			}
		} else {
			for j := 0; j < s[1]; j++ {
				b.Set(c, j, false)
			}
		}
	}
	return mk.Set(Key{Layer: l, Proj: p}, b)
}

// Get returns the mask of k, or nil when k is dense.
func (mk *Mask) Get(k Key) *Bits { return mk.entries[k] }

// Delete makes k dense again.
func (mk *Mask) Delete(k Key) { delete(mk.entries, k) }

// Keys returns the keys that have a mask, by layer then projection.
func (mk *Mask) Keys() []Key {
	ks := slices.Collect(maps.Keys(mk.entries))
	slices.SortFunc(ks, func(a, b Key) int {
		if a.Layer != b.Layer {
			return a.Layer - b.Layer
		}
		return int(a.Proj) - int(b.Proj)
	})
	return ks
}

// Bits returns the mask of k, or a new all-keep mask when k is dense.
func (mk *Mask) Bits(k Key) *Bits {
	if b := mk.entries[k]; b != nil {
		return b
	}
	s := mk.Shapes[k.Proj]
	return NewBits(s[0], s[1])
}

// Entries returns the number of weights in all linear layers of the model.
func (mk *Mask) Entries() int64 {
	var n int64
	for _, s := range mk.Shapes {
		n += int64(s[0]) * int64(s[1])
	}
	return n * int64(mk.Layers)
}

// Kept returns the number of kept weights over all linear layers.
func (mk *Mask) Kept() int64 {
	n := mk.Entries()
	for _, b := range mk.entries {
		n -= int64(b.Rows*b.Cols) - b.Count()
	}
	return n
}

// Density returns the share of kept weights over all linear layers.
func (mk *Mask) Density() float64 {
	if mk.Entries() == 0 {
		return 1
	}
	return float64(mk.Kept()) / float64(mk.Entries())
}

// Check returns an error unless mk applies to m: m is the model it was
// made for, or that model in another encoding (see Compat, whose warning
// Check drops).
func (mk *Mask) Check(m *model.Model) error {
	_, err := mk.Compat(m)
	return err
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}

// metadata keys of a mask file.
const (
	metaFormat      = "format"
	metaVersion     = "version"
	metaFingerprint = "fingerprint"
	metaLayers      = "layers"
	metaShapes      = "shapes"
	metaGamma       = "gamma"
	metaInfo        = "info"
	metaBase        = "base"  // Mask.Base
	metaArch        = "arch"  // Mask.Arch
	metaProbe       = "probe" // Mask.Probe: JSON {type, rows, cols, values (base64 float32)}
)

// Save writes the mask to path as a safetensors file (see FORMAT.md),
// replacing any existing file atomically; missing parent folders are
// created (0755, less the umask).
func (mk *Mask) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("mask: creating the folder of %s: %w", path, err)
	}
	shapes := map[string][2]int{}
	for p := model.Proj(0); p < model.NumProj; p++ {
		shapes[p.String()] = mk.Shapes[p]
	}
	sj, _ := json.Marshal(shapes)
	ij, err := json.Marshal(mk.Info)
	if err != nil {
		return fmt.Errorf("mask: %v", err)
	}
	meta := map[string]string{
		metaFormat: FormatName, metaVersion: strconv.Itoa(FormatVersion), metaFingerprint: mk.Fingerprint,
		metaLayers: strconv.Itoa(mk.Layers), metaShapes: string(sj), metaGamma: strconv.FormatFloat(mk.Gamma, 'g', -1, 64),
		metaInfo: string(ij),
	}
	if mk.Base != "" {
		meta[metaBase] = mk.Base
	}
	if mk.Arch != "" && mk.Probe != nil {
		meta[metaArch] = mk.Arch
		pj, err := json.Marshal(mk.Probe)
		if err != nil {
			return fmt.Errorf("mask: %v", err)
		}
		meta[metaProbe] = string(pj)
	}
	var ts []safetensors.WriteTensor
	for _, k := range mk.Keys() {
		b := mk.entries[k]
		ts = append(ts, safetensors.WriteTensor{Name: k.TensorName(), DType: "U8", Shape: []int{b.Rows, b.Stride()}, Data: b.Data})
	}
	if err := safetensors.Write(path, ts, meta); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	return nil
}

var tensorNameRE = regexp.MustCompile(`^model\.layers\.([0-9]+)\.(self_attn|mlp)\.([a-z]+)_proj\.weight$`)

// Load reads a mask file written by Save. Every problem (missing file, not
// a safetensors file, not a mask, wrong shapes, bad tensor names) is an
// error naming the file.
func Load(path string) (*Mask, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mask: %w", err)
	}
	defer f.Close()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("mask: %s: %s", path, fmt.Sprintf(format, a...))
	}
	meta := f.Metadata()
	if meta[metaFormat] != FormatName {
		return nil, bad("not a masque mask file (metadata format is %q, want %q)", meta[metaFormat], FormatName)
	}
	if v, err := strconv.Atoi(meta[metaVersion]); err != nil || v != FormatVersion {
		return nil, bad("unsupported mask format version %q (this masque reads %d)", meta[metaVersion], FormatVersion)
	}
	mk := &Mask{Fingerprint: meta[metaFingerprint], Base: meta[metaBase], Arch: meta[metaArch], entries: map[Key]*Bits{}, file: path}
	if mk.Fingerprint == "" {
		return nil, bad("no model fingerprint in the metadata")
	}
	if mk.Layers, err = strconv.Atoi(meta[metaLayers]); err != nil || mk.Layers <= 0 || mk.Layers > 4096 {
		return nil, bad("bad layer count %q", meta[metaLayers])
	}
	var shapes map[string][2]int
	if err := json.Unmarshal([]byte(meta[metaShapes]), &shapes); err != nil {
		return nil, bad("bad shapes metadata: %v", err)
	}
	for p := model.Proj(0); p < model.NumProj; p++ {
		s, ok := shapes[p.String()]
		if !ok || s[0] <= 0 || s[1] <= 0 || s[0] > 1<<22 || s[1] > 1<<22 {
			return nil, bad("shapes metadata lacks a valid shape for %s", p)
		}
		mk.Shapes[p] = s
	}
	if g := meta[metaGamma]; g != "" {
		if mk.Gamma, err = strconv.ParseFloat(g, 64); err != nil || math.IsNaN(mk.Gamma) || math.IsInf(mk.Gamma, 0) {
			return nil, bad("bad gamma %q", g)
		}
	}
	if s := meta[metaInfo]; s != "" {
		if err := json.Unmarshal([]byte(s), &mk.Info); err != nil {
			return nil, bad("bad info metadata: %v", err)
		}
	}
	if s := meta[metaProbe]; s != "" && mk.Arch != "" {
		mk.Probe = new(model.Probe)
		if err := json.Unmarshal([]byte(s), mk.Probe); err != nil {
			return nil, bad("bad probe metadata: %v", err)
		}
		if want := mk.Layers * int(model.NumProj); len(mk.Probe.Values) > want*model.ProbeRows*model.ProbeCols {
			return nil, bad("probe metadata holds %d values, more than %d layers can have", len(mk.Probe.Values), mk.Layers)
		}
	}
	for _, name := range f.Names() {
		t, _ := f.Tensor(name)
		m := tensorNameRE.FindStringSubmatch(name)
		if m == nil {
			return nil, bad("unexpected tensor %q (want model.layers.N.<module>_proj.weight)", name)
		}
		l, _ := strconv.Atoi(m[1])
		p, err := model.ParseProj(m[3])
		if err != nil || p.HFName() != m[2]+"."+m[3]+"_proj" {
			return nil, bad("unexpected tensor %q", name)
		}
		if l >= mk.Layers {
			return nil, bad("tensor %q is beyond the %d layers", name, mk.Layers)
		}
		s := mk.Shapes[p]
		b := &Bits{Rows: s[0], Cols: s[1]}
		if t.DType != "U8" || len(t.Shape) != 2 || t.Shape[0] != s[0] || t.Shape[1] != b.Stride() {
			return nil, bad("tensor %q is %s %v, want U8 [%d %d]", name, t.DType, t.Shape, s[0], b.Stride())
		}
		b.Data = append([]byte(nil), t.Data...)
		if err := b.check(); err != nil {
			return nil, bad("tensor %q: %v", name, err)
		}
		mk.entries[Key{l, p}] = b
	}
	return mk, nil
}

// Exists reports whether path names an existing file (used by callers that
// refuse to overwrite).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
