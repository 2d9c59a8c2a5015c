package model

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/masque-ai/masque/quant"
)

// A per-weight artifact (a mask, a LoRA adapter) records its base model's
// Fingerprint (its exact weights and encoding), its ArchFingerprint (its
// layout) and a Probe (a sample of its weights' values). The last two let
// an artifact made on a Hugging Face folder apply to that folder's GGUF
// conversions and quantisations, whose fingerprints differ: same layout,
// and weights that differ from the probe by no more than their encoding
// explains (Probe.Compare).

// Probe is a sample of a model's projection weights, decoded to float32:
// ProbeRows evenly spaced rows × ProbeCols evenly spaced columns of each
// projection of each layer, layer by layer in projection order.
type Probe struct {
	// Type is the coarsest storage type of the sampled matrices (f32,
	// bf16, q8_0, …): how far the sample itself may be from the
	// unquantised weights.
	Type   string
	Values []float32
}

// ProbeRows and ProbeCols are the rows and columns sampled per matrix; a
// probe holds at most Layers × NumProj × ProbeRows × ProbeCols values.
const ProbeRows, ProbeCols = 4, 16

// probePositions returns the sampled rows and columns of a rows×cols matrix.
func probePositions(rows, cols int) (rs, cs []int) {
	for i, n := 0, min(ProbeRows, rows); i < n; i++ {
		rs = append(rs, (2*i+1)*rows/(2*n))
	}
	for j, n := 0, min(ProbeCols, cols); j < n; j++ {
		cs = append(cs, (2*j+1)*cols/(2*n))
	}
	return rs, cs
}

// sample decodes the probe positions of every projection of m, per
// matrix, and returns the coarsest storage type among them.
func (m *Model) sample() ([][]float32, quant.DType, error) {
	var out [][]float32
	coarse := quant.F32
	for l := range m.Layers {
		for p := Proj(0); p < NumProj; p++ {
			w := m.Layers[l].Weight(p)
			if w == nil {
				return nil, 0, fmt.Errorf("layer %d has no %s", l, p.HFName())
			}
			if len(out) == 0 || ProbeTolerance(w.Type) > ProbeTolerance(coarse) {
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

// ProbeTolerance is the relative RMS difference that storing weights as t
// may cause: 1% for the float types, and for block-quantised types a bound
// that grows as their bits per weight shrink (about 2.4% for q8_0, 23% for
// 4-bit types, capped at 60%). Weights of two different models differ by
// 100% or more.
func ProbeTolerance(t quant.DType) float64 {
	switch t {
	case quant.F32, quant.F16, quant.BF16:
		return 0.01
	}
	bpw := float64(t.BlockBytes()*8) / float64(max(t.BlockElems(), 1))
	return min(0.6, 0.01+2.5*math.Pow(2, -(bpw-1)))
}

// Probe samples m's projection weights. It fails only when a layer lacks
// a projection.
func (m *Model) Probe() (*Probe, error) {
	per, coarse, err := m.sample()
	if err != nil {
		return nil, err
	}
	p := &Probe{Type: coarse.String()}
	for _, v := range per {
		p.Values = append(p.Values, v...)
	}
	return p, nil
}

// ProbeMatch is how a model's weights compare with a probe (Probe.Compare).
type ProbeMatch struct {
	// Fits is false when the model's sample has another number of values
	// than the probe; the other fields are then zero.
	Fits bool
	// Rel is the relative RMS difference between the model's sample and
	// the probe, over all matrices; Tol the difference the two encodings
	// explain (the largest ProbeTolerance of the probe's type and the
	// model's quantised types).
	Rel, Tol float64
	// Quantised lists the block-quantised storage types of the model's
	// projections ("q8_0", …), in the order first met.
	Quantised []string
	// Within says whether the model holds the probed weights in another
	// encoding: Rel ≤ Tol, and no single matrix more than 3 tolerances off
	// (one matrix, from few values, may be further off than the average).
	Within bool
}

// Compare samples m as Probe does and compares the sample with p. An
// error means m could not be sampled (a layer lacks a projection).
func (p *Probe) Compare(m *Model) (ProbeMatch, error) {
	per, _, err := m.sample()
	if err != nil {
		return ProbeMatch{}, err
	}
	n := 0
	for _, v := range per {
		n += len(v)
	}
	if n != len(p.Values) {
		return ProbeMatch{}, nil
	}
	recorded, _ := quant.ParseDType(p.Type)
	var num, den, worst float64
	var quantised []string
	i, k := 0, 0
	for l := range m.Layers {
		for pr := Proj(0); pr < NumProj; pr++ {
			w := m.Layers[l].Weight(pr)
			tol := max(ProbeTolerance(recorded), ProbeTolerance(w.Type))
			if w.Type.Quantized() && !slices.Contains(quantised, w.Type.String()) {
				quantised = append(quantised, w.Type.String())
			}
			var a, b float64
			for _, got := range per[k] {
				want := float64(p.Values[i])
				d := float64(got) - want
				a += d * d
				b += want * want
				i++
			}
			k++
			num += a
			den += b
			if b > 0 {
				if r := math.Sqrt(a/b) / tol; r > worst {
					worst = r
				}
			}
		}
	}
	r := ProbeMatch{Fits: true, Quantised: quantised, Tol: ProbeTolerance(recorded)}
	if den > 0 {
		r.Rel = math.Sqrt(num / den)
	}
	for _, q := range quantised {
		t, _ := quant.ParseDType(q)
		r.Tol = max(r.Tol, ProbeTolerance(t))
	}
	r.Within = den > 0 && r.Rel <= r.Tol && worst <= 3
	return r, nil
}

// Judge says whether m is the base this probe (and the architecture
// fingerprint arch) was recorded from, in another encoding: why is "" when
// it is (pm then says how far its weights are and which types are
// quantised), else the reason it is another model, worded to follow "was
// made for another model: …": "; the architecture or tensor layout
// differs", "; its weight probe does not fit this model", or the measured
// difference from sample (what the artifact calls its probe, e.g. "the
// mask's sample"). An error means m could not be sampled.
func (p *Probe) Judge(m *Model, arch, sample string) (why string, pm ProbeMatch, err error) {
	if m.ArchFingerprint() != arch {
		return "; the architecture or tensor layout differs", pm, nil
	}
	if pm, err = p.Compare(m); err != nil {
		return "", pm, err
	}
	switch {
	case !pm.Fits:
		return "; its weight probe does not fit this model", pm, nil
	case !pm.Within:
		return fmt.Sprintf("; same architecture, but its weights differ from %s by %.3g%% (an encoding of the same checkpoint would be within %.3g%%)", sample, 100*pm.Rel, 100*pm.Tol), pm, nil
	}
	return "", pm, nil
}

// probeJSON is a probe's JSON encoding, as masks' metadata and LoRA
// adapters' configurations record it.
type probeJSON struct {
	Type   string `json:"type"`
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
	Values string `json:"values"` // base64 of little-endian float32s
}

// MarshalJSON encodes p as {"type", "rows", "cols", "values"}, values the
// base64 of its little-endian float32s.
func (p *Probe) MarshalJSON() ([]byte, error) {
	b := make([]byte, 4*len(p.Values))
	for i, v := range p.Values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return json.Marshal(probeJSON{Type: p.Type, Rows: ProbeRows, Cols: ProbeCols, Values: base64.StdEncoding.EncodeToString(b)})
}

// UnmarshalJSON decodes what MarshalJSON writes. A probe of another sample
// size, an unknown type, malformed values or a value that is not finite
// is an error.
func (p *Probe) UnmarshalJSON(data []byte) error {
	var pj probeJSON
	if err := json.Unmarshal(data, &pj); err != nil {
		return err
	}
	if pj.Rows != ProbeRows || pj.Cols != ProbeCols {
		return fmt.Errorf("a %d×%d probe (this masque samples %d×%d)", pj.Rows, pj.Cols, ProbeRows, ProbeCols)
	}
	if _, err := quant.ParseDType(pj.Type); err != nil {
		return err
	}
	b, err := base64.StdEncoding.DecodeString(pj.Values)
	if err != nil || len(b)%4 != 0 {
		return fmt.Errorf("bad values")
	}
	vals := make([]float32, len(b)/4)
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if f := float64(vals[i]); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("a value is not finite")
		}
	}
	*p = Probe{Type: pj.Type, Values: vals}
	return nil
}
