package mask

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/safetensors"
)

// A mask records its base model three ways: Base (how to open it again),
// Fingerprint (its exact weights and encoding) and Arch plus Probe (its
// layout and a sample of its weights' values). The last two let a mask made
// on a Hugging Face folder apply to that folder's GGUF conversions and
// quantisations, whose fingerprints differ: same layout, and weights that
// differ from the probe by no more than their encoding explains.

// Probe is a sample of the base model's projection weights, decoded to
// float32: probeRows evenly spaced rows × probeCols evenly spaced columns
// of each projection of each layer, layer by layer in projection order.
type Probe struct {
	// Type is the coarsest storage type of the sampled matrices (f32,
	// bf16, q8_0, …): how far the sample itself may be from the
	// unquantised weights.
	Type   string
	Values []float32
}

const probeRows, probeCols = 4, 16

// probePositions returns the sampled rows and columns of a rows×cols matrix.
func probePositions(rows, cols int) (rs, cs []int) {
	for i, n := 0, min(probeRows, rows); i < n; i++ {
		rs = append(rs, (2*i+1)*rows/(2*n))
	}
	for j, n := 0, min(probeCols, cols); j < n; j++ {
		cs = append(cs, (2*j+1)*cols/(2*n))
	}
	return rs, cs
}

// sample decodes the probe positions of every projection of m, per
// matrix, and returns the coarsest storage type among them.
func sample(m *model.Model) ([][]float32, quant.DType, error) {
	var out [][]float32
	coarse := quant.F32
	for l := range m.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			w := m.Layers[l].Weight(p)
			if w == nil {
				return nil, 0, fmt.Errorf("layer %d has no %s", l, p.HFName())
			}
			if len(out) == 0 || tolerance(w.Type) > tolerance(coarse) {
				coarse = w.Type
			}
			rs, cs := probePositions(w.Rows, w.Cols)
			row := make([]float32, w.Cols)
			vals := make([]float32, 0, len(rs)*len(cs))
			for _, r := range rs {
				if err := quant.DequantizeRow(w.Type, w.RowData(r), row); err != nil {
					return nil, 0, fmt.Errorf("layer %d %s: %v", l, p.HFName(), err)
				}
				for _, c := range cs {
					vals = append(vals, row[c])
				}
			}
			out = append(out, vals)
		}
	}
	return out, coarse, nil
}

// tolerance is the relative RMS difference that storing weights as t may
// cause: 1% for the float types, and for block-quantised types a bound
// that grows as their bits per weight shrink (about 2.4% for q8_0, 23%
// for 4-bit types, capped at 60%). Weights of two different models differ
// by 100% or more.
func tolerance(t quant.DType) float64 {
	switch t {
	case quant.F32, quant.F16, quant.BF16:
		return 0.01
	}
	bpw := float64(t.BlockBytes()*8) / float64(max(t.BlockElems(), 1))
	return min(0.6, 0.01+2.5*math.Pow(2, -(bpw-1)))
}

func probeOf(m *model.Model) *Probe {
	per, coarse, err := sample(m)
	if err != nil {
		return nil
	}
	p := &Probe{Type: coarse.String()}
	for _, v := range per {
		p.Values = append(p.Values, v...)
	}
	return p
}

type probeJSON struct {
	Type   string `json:"type"`
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
	Values string `json:"values"` // base64 of little-endian float32s
}

func (p *Probe) marshal() string {
	b := make([]byte, 4*len(p.Values))
	for i, v := range p.Values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	j, _ := json.Marshal(probeJSON{Type: p.Type, Rows: probeRows, Cols: probeCols, Values: base64.StdEncoding.EncodeToString(b)})
	return string(j)
}

func parseProbe(s string) (*Probe, error) {
	var pj probeJSON
	if err := json.Unmarshal([]byte(s), &pj); err != nil {
		return nil, err
	}
	if pj.Rows != probeRows || pj.Cols != probeCols {
		return nil, fmt.Errorf("a %d×%d probe (this masque samples %d×%d)", pj.Rows, pj.Cols, probeRows, probeCols)
	}
	if _, err := quant.ParseDType(pj.Type); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(pj.Values)
	if err != nil || len(b)%4 != 0 {
		return nil, fmt.Errorf("bad values")
	}
	p := &Probe{Type: pj.Type, Values: make([]float32, len(b)/4)}
	for i := range p.Values {
		p.Values[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if f := float64(p.Values[i]); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("a value is not finite")
		}
	}
	return p, nil
}

// Compat says whether mk can be applied to m. It can when m is the model
// the mask was made for (same fingerprint and shapes), or the same
// checkpoint in another encoding: a GGUF conversion or quantisation, with
// the same architecture, tensor names and shapes, and weights that differ
// from the mask's probe of its base by no more than the two encodings
// explain. For quantised weights the second result is a warning to show
// (the mask's choices were made on other values). Anything else is an
// error naming the mask file, its base and the model.
func (mk *Mask) Compat(m *model.Model) (warning string, err error) {
	fp := m.Fingerprint()
	another := func(why string) error {
		return fmt.Errorf("mask: %s was made for another model: %s (fingerprint %s), not %s (fingerprint %s)%s", mk.name(), mk.baseName(), short(mk.Fingerprint), m.Source(), short(fp), why)
	}
	if mk.Layers != m.Config.Layers || mk.Shapes != ProjShapes(&m.Config) {
		if fp == mk.Fingerprint {
			return "", fmt.Errorf("mask: %s: its layer shapes do not match model %s", mk.name(), m.Source())
		}
		return "", another("; the layer shapes differ")
	}
	if fp == mk.Fingerprint {
		return "", nil
	}
	if mk.Probe == nil || mk.Arch == "" {
		return "", another("")
	}
	if m.ArchFingerprint() != mk.Arch {
		return "", another("; the architecture or tensor layout differs")
	}
	per, _, err := sample(m)
	if err != nil {
		return "", fmt.Errorf("mask: model %s: %v", m.Source(), err)
	}
	n := 0
	for _, v := range per {
		n += len(v)
	}
	if n != len(mk.Probe.Values) {
		return "", another("; its weight probe does not fit this model")
	}
	recorded, _ := quant.ParseDType(mk.Probe.Type)
	var num, den, worst float64
	var quantised []string
	i := 0
	k := 0
	for l := range m.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			w := m.Layers[l].Weight(p)
			tol := max(tolerance(recorded), tolerance(w.Type))
			if w.Type.Quantized() && !slices.Contains(quantised, w.Type.String()) {
				quantised = append(quantised, w.Type.String())
			}
			var a, b float64
			for _, got := range per[k] {
				want := float64(mk.Probe.Values[i])
				d := float64(got) - want
				a += d * d
				b += want * want
				i++
			}
			k++
			num += a
			den += b
			if b > 0 {
				// A single matrix may be further off than the average,
				// from only probeRows×probeCols values: allow 3 tolerances.
				if r := math.Sqrt(a/b) / tol; r > worst {
					worst = r
				}
			}
		}
	}
	rel := 0.0
	if den > 0 {
		rel = math.Sqrt(num / den)
	}
	tol := tolerance(recorded)
	for _, q := range quantised {
		t, _ := quant.ParseDType(q)
		tol = max(tol, tolerance(t))
	}
	if den == 0 || rel > tol || worst > 3 {
		return "", another(fmt.Sprintf("; same architecture, but its weights differ from the mask's sample by %.3g%% (an encoding of the same checkpoint would be within %.3g%%)", 100*rel, 100*tol))
	}
	if len(quantised) > 0 {
		return fmt.Sprintf("mask %s was made on %s; %s holds the same checkpoint with weights quantised to %s (%.2g%% from the mask's sample), so the mask is applied to slightly different weights than it was chosen on",
			mk.name(), mk.baseName(), m.Source(), strings.Join(quantised, ", "), 100*rel), nil
	}
	return "", nil
}

// name is the mask's file, or "this mask" for one not loaded from a file.
func (mk *Mask) name() string {
	if mk.file != "" {
		return mk.file
	}
	return "this mask"
}

// baseName is the recorded base, or what Info says, or "its base".
func (mk *Mask) baseName() string {
	switch {
	case mk.Base != "":
		return mk.Base
	case mk.Info.Model != "":
		return mk.Info.Model
	}
	return "its base model"
}

// ReadBase returns the base model the mask file at path records (its
// metadata only is read). A mask written before masque recorded the base
// gives an empty Ref.
func ReadBase(path string) (checkpoint.Base, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return checkpoint.Base{}, fmt.Errorf("mask: %w", err)
	}
	defer f.Close()
	meta := f.Metadata()
	if meta[metaFormat] != FormatName {
		return checkpoint.Base{}, fmt.Errorf("mask: %s: not a masque mask file (metadata format is %q, want %q)", path, meta[metaFormat], FormatName)
	}
	return checkpoint.Base{Ref: meta[metaBase], Fingerprint: meta[metaFingerprint], File: path}, nil
}
