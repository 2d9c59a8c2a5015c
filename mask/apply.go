package mask

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/safetensors"
)

// Weights replaces whole projection matrices (row-major float32, rows×cols
// of the projection), for example with the updated weights SparseGPT
// produces. Replaced matrices are stored in the model's own element type and
// then masked.
type Weights map[Key][]float32

// Masked returns a model that computes with W ⊙ (M + γ(1−M)) in place of
// every masked matrix W of m (and with w[k] in place of W where w has an
// entry). Only the affected matrices are copied, in their own element type
// (F32, F16 or BF16; block-quantised weights cannot be masked exactly and are
// an error); everything else is shared with m, which must stay open while
// the result is used. The mask must have been made for m.
func Masked(m *model.Model, mk *Mask, w Weights) (*model.Model, error) {
	if err := mk.Check(m); err != nil {
		return nil, err
	}
	layers := make([]model.Layer, len(m.Layers))
	copy(layers, m.Layers)
	for _, k := range unionKeys(mk, w) {
		orig := m.Layers[k.Layer].Weight(k.Proj)
		nw, err := maskedMatrix(orig, mk.Get(k), mk.Gamma, w[k])
		if err != nil {
			return nil, fmt.Errorf("mask: layer %d %s: %v", k.Layer, k.Proj.HFName(), err)
		}
		layers[k.Layer].SetWeight(k.Proj, nw)
	}
	out, err := model.New(m.Config, m.Embed, layers, m.Norm, m.LMHead)
	if err != nil {
		return nil, err
	}
	out.K = m.K
	return out, nil
}

func unionKeys(mk *Mask, w Weights) []Key {
	ks := mk.Keys()
	seen := map[Key]bool{}
	for _, k := range ks {
		seen[k] = true
	}
	for k := range w {
		if !seen[k] {
			ks = append(ks, k)
		}
	}
	return ks
}

// maskedMatrix returns a copy of w (or of repl, stored in w's type) with the
// pruned entries of b multiplied by gamma. b may be nil (no masking).
func maskedMatrix(w *kernels.Matrix, b *Bits, gamma float64, repl []float32) (*kernels.Matrix, error) {
	data, err := maskedBytes(w.Type, w.Rows, w.Cols, w.Data, b, gamma, repl)
	if err != nil {
		return nil, err
	}
	if w.Type == quant.F32 {
		v := make([]float32, w.Rows*w.Cols)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		return kernels.FromF32(w.Rows, w.Cols, v), nil
	}
	return kernels.NewMatrix(w.Type, w.Rows, w.Cols, data)
}

// maskedBytes returns new little-endian data of type t (F32, F16 or BF16):
// src (or repl, converted) with every entry that b prunes multiplied by
// gamma. Pruning with gamma 0 writes exact zeros, so no value is re-rounded.
func maskedBytes(t quant.DType, rows, cols int, src []byte, b *Bits, gamma float64, repl []float32) ([]byte, error) {
	var size int
	switch t {
	case quant.F32:
		size = 4
	case quant.F16, quant.BF16:
		size = 2
	default:
		return nil, fmt.Errorf("weights of type %s cannot be masked (only F32, F16 and BF16 can)", t)
	}
	if b != nil && (b.Rows != rows || b.Cols != cols) {
		return nil, fmt.Errorf("mask is %d×%d, weight is %d×%d", b.Rows, b.Cols, rows, cols)
	}
	out := make([]byte, rows*cols*size)
	if repl != nil {
		if len(repl) != rows*cols {
			return nil, fmt.Errorf("replacement weights have %d values, want %d×%d", len(repl), rows, cols)
		}
		for r := 0; r < rows; r++ {
			if err := quant.QuantizeRow(t, repl[r*cols:(r+1)*cols], out[r*cols*size:(r+1)*cols*size]); err != nil {
				return nil, err
			}
		}
	} else {
		if len(src) != len(out) {
			return nil, fmt.Errorf("weight data has %d bytes, want %d", len(src), len(out))
		}
		copy(out, src)
	}
	if b == nil {
		return out, nil
	}
	g := float32(gamma)
	for r := 0; r < rows; r++ {
		row := b.Row(r)
		for c := 0; c < cols; c++ {
			if row[c>>3]>>(c&7)&1 != 0 {
				continue
			}
			p := out[(r*cols+c)*size:]
			switch {
			case g == 0:
				clear(p[:size])
			case t == quant.F32:
				v := math.Float32frombits(binary.LittleEndian.Uint32(p))
				binary.LittleEndian.PutUint32(p, math.Float32bits(v*g))
			case t == quant.F16:
				v := quant.F16ToF32(binary.LittleEndian.Uint16(p))
				binary.LittleEndian.PutUint16(p, quant.F32ToF16(v*g))
			default:
				v := quant.BF16ToF32(binary.LittleEndian.Uint16(p))
				binary.LittleEndian.PutUint16(p, quant.F32ToBF16(v*g))
			}
		}
	}
	return out, nil
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Overwrite allows replacing an existing output folder.
	Overwrite bool
	// Weights replaces matrices before masking (e.g. SparseGPT's updates).
	Weights Weights
	// Files are extra files written into the output folder (name → contents),
	// e.g. the tokenizer of a model that was not loaded from a folder.
	Files map[string][]byte
	// Progress, if set, is called after each tensor file is written.
	Progress func(done, total int)
}

// ProvenanceFile is the name of the JSON file Apply writes into the output
// folder to record which mask produced it.
const ProvenanceFile = "masque_mask.json"

// Apply writes the masked model m ⊙ mk to the folder out as a Hugging Face
// checkpoint. When m was loaded from a Hugging Face folder, the output has
// the same files: every safetensors file is rewritten with the same tensor
// names, order, types and metadata, only the masked matrices changed, and
// every other file (config.json, tokenizer files, the shard index, …) is
// copied. Otherwise (a llama2.c checkpoint, the built-in model) a
// LlamaForCausalLM folder is written from the weights in memory.
//
// The folder appears atomically: it is assembled beside out and renamed into
// place, so a failure leaves no partial output (and an existing folder,
// replaced only with o.Overwrite, stays as it was).
func Apply(m *model.Model, mk *Mask, out string, o ApplyOptions) (err error) {
	if err := mk.Check(m); err != nil {
		return err
	}
	for k, v := range o.Weights {
		if s := mk.Shapes[k.Proj]; len(v) != s[0]*s[1] || k.Layer < 0 || k.Layer >= mk.Layers {
			return fmt.Errorf("mask: replacement weights for %s have the wrong size", k)
		}
	}
	if exists(out) && !o.Overwrite {
		return fmt.Errorf("mask: output %s already exists (choose another path or allow overwriting)", out)
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	atomicfile.CleanStale(out) // what killed applies left (reported; only old ones)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	// MkdirTemp makes 0700 folders; the model folder gets the mode any
	// new folder gets (0755 less the umask): make it again with Mkdir.
	if err = os.Remove(tmp); err == nil {
		err = os.Mkdir(tmp, 0o755)
	}
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	src := m.Source()
	if st, e := os.Stat(filepath.Join(src, "config.json")); src != "" && e == nil && st.Mode().IsRegular() {
		err = rewriteFolder(m, mk, src, tmp, o)
	} else {
		err = exportFolder(m, mk, tmp, o)
	}
	if err != nil {
		return err
	}
	for name, data := range o.Files {
		if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
			return fmt.Errorf("mask: bad extra file name %q", name)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			return fmt.Errorf("mask: %w", err)
		}
	}
	prov := map[string]any{
		"mask_fingerprint": mk.Fingerprint, "base_model": src, "gamma": mk.Gamma, "density": mk.Density(),
		"info": mk.Info, "updated_weights": len(o.Weights) > 0,
	}
	pj, _ := json.MarshalIndent(prov, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, ProvenanceFile), append(pj, '\n'), 0o644); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	if err := syncTree(tmp); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	return replaceDir(tmp, out)
}

// replaceDir renames tmp to out, moving an existing out aside first.
func replaceDir(tmp, out string) error {
	var old string
	if exists(out) {
		old = tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("mask: replacing %s: %w", out, err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		return fmt.Errorf("mask: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

func syncTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range append(ents, nil) {
		p := dir
		if e != nil {
			p = filepath.Join(dir, e.Name())
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		f.Sync()
		f.Close()
	}
	return nil
}

// rewriteFolder writes the masked safetensors files of the Hugging Face
// folder src into dst and copies its other files.
func rewriteFolder(m *model.Model, mk *Mask, src, dst string, o ApplyOptions) error {
	set, err := safetensors.OpenDir(src)
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	defer set.Close()
	var files []string
	seen := map[string]bool{}
	for _, name := range set.Names() {
		t, err := set.Tensor(name)
		if err != nil {
			return fmt.Errorf("mask: %w", err)
		}
		if !seen[t.File] {
			seen[t.File] = true
			files = append(files, t.File)
		}
	}
	byName := map[string]Key{}
	for l := 0; l < mk.Layers; l++ {
		for p := model.Proj(0); p < model.NumProj; p++ {
			k := Key{l, p}
			if mk.Get(k) != nil || o.Weights[k] != nil {
				byName[k.TensorName()] = k
			}
		}
	}
	done := 0
	for _, path := range files {
		if err := rewriteFile(path, filepath.Join(dst, filepath.Base(path)), mk, o.Weights, byName); err != nil {
			return err
		}
		done++
		if o.Progress != nil {
			o.Progress(done, len(files))
		}
	}
	for name := range byName {
		if !set.Has(name) {
			return fmt.Errorf("mask: %s has no tensor %s", src, name)
		}
	}
	// Copy every other regular file: config, tokenizer, index, generation config, …
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".safetensors") || n == ProvenanceFile || !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
			return err
		}
	}
	return nil
}

func rewriteFile(path, dst string, mk *Mask, w Weights, byName map[string]Key) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	defer f.Close()
	var ts []safetensors.WriteTensor
	for _, name := range f.Names() {
		t, _ := f.Tensor(name)
		data := t.Data
		if k, ok := byName[name]; ok {
			dt, err := t.Type()
			if err != nil {
				return fmt.Errorf("mask: %w", err)
			}
			s := mk.Shapes[k.Proj]
			if len(t.Shape) != 2 || t.Shape[0] != s[0] || t.Shape[1] != s[1] {
				return fmt.Errorf("mask: %s: tensor %s has shape %v, the mask expects [%d %d]", path, name, t.Shape, s[0], s[1])
			}
			if data, err = maskedBytes(dt, s[0], s[1], t.Data, mk.Get(k), mk.Gamma, w[k]); err != nil {
				return fmt.Errorf("mask: %s: tensor %s: %v", path, name, err)
			}
		}
		ts = append(ts, safetensors.WriteTensor{Name: name, DType: t.DType, Shape: t.Shape, Data: data})
	}
	if err := safetensors.Write(dst, ts, f.Metadata()); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("mask: copying %s: %w", src, err)
	}
	return out.Close()
}

// exportFolder writes m (masked) with model.SaveHF, in the element type of
// its embeddings (F32 for block-quantised models).
func exportFolder(m *model.Model, mk *Mask, dst string, o ApplyOptions) error {
	mm, err := Masked(m, mk, o.Weights)
	if err != nil {
		return err
	}
	dt := m.Embed.Type
	if dt.Quantized() {
		dt = quant.F32
	}
	if err := model.SaveHF(dst, mm, model.SaveOptions{DType: dt}); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	if o.Progress != nil {
		o.Progress(1, 1)
	}
	return nil
}
