package sculpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/train/hfsave"
)

func shortHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// CheckKeep checks keep indices against a model configuration: one list
// per layer, the same number k of channels in each (0 < k < d_ff), each
// list strictly ascending and inside [0, d_ff).
func CheckKeep(keep [][]int, c *model.Config) error {
	if len(keep) != c.Layers {
		return fmt.Errorf("sculpt: the keep indices have %d layers, the model has %d: they were made for another model", len(keep), c.Layers)
	}
	k := -1
	for l, ks := range keep {
		if k < 0 {
			k = len(ks)
		}
		switch {
		case len(ks) != k:
			return fmt.Errorf("sculpt: layer %d keeps %d channels, layer 0 keeps %d: every layer must keep the same k", l, len(ks), k)
		case len(ks) == 0:
			return fmt.Errorf("sculpt: layer %d keeps no channel (k = 0)", l)
		case len(ks) >= c.Intermediate:
			return fmt.Errorf("sculpt: layer %d keeps %d channels, the model has %d per layer: nothing would be pruned", l, len(ks), c.Intermediate)
		}
		for i, v := range ks {
			if v < 0 || v >= c.Intermediate {
				return fmt.Errorf("sculpt: layer %d keeps channel %d, outside the model's %d FFN channels: the indices were made for another model", l, v, c.Intermediate)
			}
			if i > 0 && v <= ks[i-1] {
				return fmt.Errorf("sculpt: layer %d: channel indices must be strictly ascending (%d after %d)", l, v, ks[i-1])
			}
		}
	}
	return nil
}

// SaveKeep writes keep indices as JSON in Persona-Pruner's layout: an
// array of L arrays of k ascending channel indices.
func SaveKeep(path string, keep [][]int) error {
	var b bytes.Buffer
	b.WriteString("[\n")
	for l, ks := range keep {
		data, err := json.Marshal(ks)
		if err != nil {
			return err
		}
		b.WriteString("  ")
		b.Write(data)
		if l < len(keep)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]\n")
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(b.Bytes())
		return err
	})
}

// LoadKeep reads a keep-indices file ([L][k] JSON). When the file sits in
// a run folder (run.json beside it), the model fingerprint recorded there
// is returned too ("" otherwise).
func LoadKeep(path string) (keep [][]int, fingerprint string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("sculpt: %w", err)
	}
	if err := json.Unmarshal(data, &keep); err != nil {
		return nil, "", fmt.Errorf("sculpt: %s: not a keep-indices file (want a JSON array of per-layer arrays of channel indices): %v", path, err)
	}
	if len(keep) == 0 {
		return nil, "", fmt.Errorf("sculpt: %s: no layers", path)
	}
	rj, err := os.ReadFile(filepath.Join(filepath.Dir(path), RunFile))
	if err == nil {
		var rec struct {
			FP string `json:"model_fingerprint"`
		}
		if json.Unmarshal(rj, &rec) == nil {
			fingerprint = rec.FP
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("sculpt: %w", err)
	}
	return keep, fingerprint, nil
}

// ReadBase returns the base model that the run folder of the keep-indices
// file keepPath records in its run.json (Ref empty when there is no
// run.json beside it, or an older one without the base).
func ReadBase(keepPath string) (checkpoint.Base, error) {
	rp := filepath.Join(filepath.Dir(keepPath), RunFile)
	rj, err := os.ReadFile(rp)
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint.Base{}, nil
	}
	if err != nil {
		return checkpoint.Base{}, fmt.Errorf("sculpt: %w", err)
	}
	var rec struct {
		Base string `json:"base"`
		FP   string `json:"model_fingerprint"`
	}
	if err := json.Unmarshal(rj, &rec); err != nil {
		return checkpoint.Base{}, fmt.Errorf("sculpt: %s: malformed JSON: %v", rp, err)
	}
	return checkpoint.Base{Ref: rec.Base, Fingerprint: rec.FP, File: rp}, nil
}

// Slice returns the smaller model that keeps only the channels keep[l] of
// every layer's FFN: rows of gate_proj and up_proj (and their biases),
// columns of down_proj; intermediate_size becomes k. Attention, norms,
// embeddings and head are shared with m. The sliced FFN matrices are F32.
func Slice(m *model.Model, keep [][]int) (*model.Model, error) {
	if err := CheckKeep(keep, &m.Config); err != nil {
		return nil, err
	}
	k := len(keep[0])
	cfg := m.Config
	cfg.Intermediate = k
	layers := slices.Clone(m.Layers)
	for l := range layers {
		ly := &layers[l]
		ks := keep[l]
		rows := func(w *kernels.Matrix) *kernels.Matrix {
			out := make([]float32, k*w.Cols)
			row := make([]float32, w.Cols)
			for i, r := range ks {
				if err := quant.DequantizeRow(w.Type, w.RowData(r), row); err != nil {
					panic(err) // the model's own rows always decode
				}
				copy(out[i*w.Cols:], row)
			}
			return kernels.FromF32(k, w.Cols, out)
		}
		pick := func(v []float32) []float32 {
			if v == nil {
				return nil
			}
			out := make([]float32, k)
			for i, r := range ks {
				out[i] = v[r]
			}
			return out
		}
		ly.Gate, ly.Up = rows(ly.Gate), rows(ly.Up)
		ly.GateBias, ly.UpBias = pick(ly.GateBias), pick(ly.UpBias)
		d := ly.Down
		full := d.Float32s()
		out := make([]float32, d.Rows*k)
		for r := 0; r < d.Rows; r++ {
			src := full[r*d.Cols : (r+1)*d.Cols]
			dst := out[r*k : (r+1)*k]
			for i, c := range ks {
				dst[i] = src[c]
			}
		}
		ly.Down = kernels.FromF32(d.Rows, k, out)
	}
	head := m.LMHead
	if head == m.Embed {
		head = nil
	}
	sm, err := model.New(cfg, m.Embed, layers, m.Norm, head)
	if err != nil {
		return nil, err
	}
	sm.K = m.K
	return sm, nil
}

// DropLayers returns the model without the decoder blocks listed in drop
// (depth pruning); the other blocks, the embeddings and the head are shared.
func DropLayers(m *model.Model, drop []int) (*model.Model, error) {
	gone := map[int]bool{}
	for _, l := range drop {
		if l < 0 || l >= m.Config.Layers {
			return nil, fmt.Errorf("sculpt: layer %d does not exist (the model has %d)", l, m.Config.Layers)
		}
		gone[l] = true
	}
	if len(gone) >= m.Config.Layers {
		return nil, fmt.Errorf("sculpt: dropping %d of %d layers leaves none", len(gone), m.Config.Layers)
	}
	var layers []model.Layer
	for l := range m.Layers {
		if !gone[l] {
			layers = append(layers, m.Layers[l])
		}
	}
	cfg := m.Config
	cfg.Layers = len(layers)
	head := m.LMHead
	if head == m.Embed {
		head = nil
	}
	sm, err := model.New(cfg, m.Embed, layers, m.Norm, head)
	if err != nil {
		return nil, err
	}
	sm.K = m.K
	return sm, nil
}

// PrunedParams is the parameter count of m with k FFN channels per layer.
func PrunedParams(m *model.Model, k int) int64 {
	c := &m.Config
	per := int64(3 * c.Hidden)
	if c.MLPBias {
		per += 2 // a gate and an up bias per channel
	}
	return m.NumParams() - int64(c.Layers)*int64(c.Intermediate-k)*per
}

// ExportOptions tune Export.
type ExportOptions struct {
	// DType of the Hugging Face folder (f32, bf16, f16; empty: the model's
	// torch_dtype). GGUFType is the GGUF matrices' type (empty: F32 for an
	// F32 model, else F16 or BF16 as the model's).
	DType, GGUFType string
	// NoGGUF skips model.gguf.
	NoGGUF bool
}

// ExportInfo describes what Export wrote.
type ExportInfo struct {
	Model        string `json:"model"`
	GGUF         string `json:"gguf,omitempty"`
	GGUFSkipped  string `json:"gguf_skipped,omitempty"`
	Keep         string `json:"keep_indices"`
	Intermediate int    `json:"intermediate_size"`
	Params       int64  `json:"params"`
	DenseParams  int64  `json:"params_dense"`
}

// Export writes the smaller model of keep to dir: dir/model (a Hugging Face
// folder with intermediate_size = k, the tokenizer files copied; for a
// llama2.c model also its tokenizer.bin, which checkpoint.Open reads
// there), dir/model.gguf (when the architecture and tokenizer allow it; the
// reason is recorded otherwise) and dir/keep_indices.json.
func Export(ck *checkpoint.Checkpoint, keep [][]int, dir string, o ExportOptions) (*ExportInfo, error) {
	m := ck.Model
	sm, err := Slice(m, keep)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	info := &ExportInfo{Model: filepath.Join(dir, ModelDir), Keep: filepath.Join(dir, KeepFile), Intermediate: len(keep[0]),
		Params: sm.NumParams(), DenseParams: m.NumParams()}
	if err := SaveModel(ck, sm, info.Model, o); err != nil {
		return nil, err
	}
	if !o.NoGGUF {
		path := filepath.Join(dir, GGUFFile)
		if err := SaveGGUF(ck, sm, path, o.GGUFType); err != nil {
			info.GGUFSkipped = err.Error()
		} else {
			info.GGUF = path
		}
	}
	if err := SaveKeep(info.Keep, keep); err != nil {
		return nil, err
	}
	return info, nil
}

// SaveModel writes sm (derived from ck's model) as a Hugging Face folder
// with ck's tokenizer files (tokenizer.bin for a llama2.c model).
func SaveModel(ck *checkpoint.Checkpoint, sm *model.Model, dir string, o ExportOptions) error {
	src := ck.Path
	if st, err := os.Stat(src); err != nil || !st.IsDir() {
		src = ""
	}
	if err := hfsave.Save(sm, dir, hfsave.Options{DType: o.DType, SourceDir: src}); err != nil {
		return err
	}
	tok, err := llama2cTokenizer(ck)
	if err != nil || tok == nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "tokenizer.bin"), func(w io.Writer) error {
		_, err := w.Write(tok)
		return err
	})
}

// llama2cTokenizer returns the tokenizer.bin of a llama2.c checkpoint (nil
// for other models).
func llama2cTokenizer(ck *checkpoint.Checkpoint) ([]byte, error) {
	switch {
	case ck.Path == builtin.Stories:
		return builtin.Tokenizer, nil
	case strings.EqualFold(filepath.Ext(ck.Path), ".bin"):
		b, err := os.ReadFile(filepath.Join(filepath.Dir(ck.Path), "tokenizer.bin"))
		if err != nil {
			return nil, fmt.Errorf("sculpt: the llama2.c tokenizer to export: %w", err)
		}
		return b, nil
	}
	return nil, nil
}

// SaveGGUF writes sm with ck's tokenizer and chat template as a GGUF file.
func SaveGGUF(ck *checkpoint.Checkpoint, sm *model.Model, path, typ string) error {
	t := quant.FromTorchDType(ck.Model.Config.TorchDType)
	if typ != "" {
		var err error
		if t, err = quant.ParseDTypeOf(typ, quant.F32, quant.F16, quant.BF16, quant.Q8_0); err != nil {
			return fmt.Errorf("sculpt: GGUF type: %w", err)
		}
	}
	cp := *ck
	cp.Model = sm
	return cp.SaveGGUF(path, t)
}

func fingerprintOf(m *model.Model) string { return m.Fingerprint() }

// ExportKeep applies a keep-indices file to ck's model and exports the
// smaller model to dir. A file from a run folder whose recorded fingerprint
// is not the model's, or whose shape does not fit it, is refused.
func ExportKeep(ck *checkpoint.Checkpoint, keepPath, dir string, o ExportOptions) (*ExportInfo, error) {
	keep, fp, err := LoadKeep(keepPath)
	if err != nil {
		return nil, err
	}
	if fp != "" {
		if got := ck.Model.Fingerprint(); got != fp {
			return nil, fmt.Errorf("sculpt: %s was made for another model (fingerprint %.16s… in %s, model %s has %.16s…)",
				keepPath, fp, filepath.Join(filepath.Dir(keepPath), RunFile), ck.Path, got)
		}
	}
	if err := CheckKeep(keep, &ck.Model.Config); err != nil {
		return nil, fmt.Errorf("%v (%s, model %s)", err, keepPath, ck.Path)
	}
	return Export(ck, keep, dir, o)
}

// KeepMask returns keep indices as a weight mask over m's own FFN
// matrices (granularity ffn-channels): rows of gate_proj and up_proj and
// columns of down_proj whose channel is not kept are pruned. Applied per
// sequence (persona.MaskedModel) it computes what Slice's smaller model
// computes, on the unchanged base, so that a Persona-Pruner mask can be
// served, compared and overlapped like the training-free masks of subnet.
func KeepMask(m *model.Model, keep [][]int, info mask.Info) (*mask.Mask, error) {
	if err := CheckKeep(keep, &m.Config); err != nil {
		return nil, err
	}
	mk := mask.New(m)
	mk.Info = info
	if mk.Info.Granularity == "" {
		mk.Info.Granularity = "ffn-channels"
	}
	if mk.Info.Targets == "" {
		mk.Info.Targets = "mlp"
	}
	ff := m.Config.Intermediate
	if mk.Info.Sparsity == 0 {
		mk.Info.Sparsity = 1 - float64(len(keep[0]))/float64(ff)
	}
	kept := make([]bool, ff)
	for l, ks := range keep {
		clear(kept)
		for _, c := range ks {
			kept[c] = true
		}
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			if err := mk.SetChannels(l, p, kept); err != nil {
				return nil, err
			}
		}
	}
	return mk, nil
}
