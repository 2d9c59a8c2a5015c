package model

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/masque-ai/masque/gguf"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/safetensors"
)

// GGUF architecture names masque reads and writes. Mistral is stored as
// "llama", as llama.cpp does.
var ggufArch = map[string]string{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

// LoadGGUF loads a GGUF file (llama, qwen2 or qwen3 architecture) with its
// tensors memory-mapped in their stored types. llama-architecture files keep
// q and k rows in llama.cpp's interleaved rotary order; the loader puts them
// back in rotate-half order.
func LoadGGUF(path string) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	m, err := buildGGUF(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	m.closer = f
	m.source = path
	return m, nil
}

// GGUFConfig reads the model configuration from a GGUF file's metadata.
func GGUFConfig(f *gguf.File) (*Config, error) {
	arch, ok := f.String("general.architecture")
	if !ok {
		return nil, fmt.Errorf("no general.architecture in the metadata")
	}
	hfArch, ok := ggufArch[arch]
	if !ok {
		return nil, fmt.Errorf("GGUF architecture %q is not supported (llama, qwen2 and qwen3 are)", arch)
	}
	geti := func(key string, def int, required bool) (int, error) {
		v, ok := f.Uint(arch + "." + key)
		if !ok {
			if required {
				return 0, fmt.Errorf("metadata key %s.%s is missing", arch, key)
			}
			return def, nil
		}
		if v > 1<<30 {
			return 0, fmt.Errorf("metadata key %s.%s = %d is implausible", arch, key, v)
		}
		return int(v), nil
	}
	c := &Config{Arch: hfArch, ModelType: arch, BOS: -1, TorchDType: "gguf"}
	var err error
	for _, x := range []struct {
		p        *int
		key      string
		def      int
		required bool
	}{
		{&c.Hidden, "embedding_length", 0, true}, {&c.Intermediate, "feed_forward_length", 0, true},
		{&c.Layers, "block_count", 0, true}, {&c.Heads, "attention.head_count", 0, true},
		{&c.MaxSeq, "context_length", 4096, false},
	} {
		if *x.p, err = geti(x.key, x.def, x.required); err != nil {
			return nil, err
		}
	}
	if c.KVHeads, err = geti("attention.head_count_kv", c.Heads, false); err != nil {
		return nil, err
	}
	hd := 0
	if c.Heads > 0 {
		hd = c.Hidden / c.Heads
	}
	if c.HeadDim, err = geti("attention.key_length", hd, false); err != nil {
		return nil, err
	}
	c.NormEps = 1e-5
	if v, ok := f.Float(arch + ".attention.layer_norm_rms_epsilon"); ok {
		c.NormEps = float32(v)
	}
	c.RopeTheta = 10000
	if v, ok := f.Float(arch + ".rope.freq_base"); ok {
		c.RopeTheta = v
	}
	if t, ok := f.String(arch + ".rope.scaling.type"); ok && t != "none" {
		if t != "linear" {
			return nil, fmt.Errorf("rope scaling type %q is not supported", t)
		}
		c.Rope.Type = "linear"
		c.Rope.Factor, _ = f.Float(arch + ".rope.scaling.factor")
	}
	if v, ok := f.Uint(arch + ".attention.sliding_window"); ok {
		c.SlidingWindow = int(v)
	}
	if v, ok := f.Uint("tokenizer.ggml.bos_token_id"); ok {
		c.BOS = int(v)
	}
	if v, ok := f.Uint("tokenizer.ggml.eos_token_id"); ok {
		c.EOS = append(c.EOS, int(v))
	}
	if v, ok := f.Uint("tokenizer.ggml.eot_token_id"); ok && !c.IsEOS(int(v)) {
		c.EOS = append(c.EOS, int(v))
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, fmt.Errorf("tensor token_embd.weight is missing")
	}
	if len(emb.Shape) != 2 {
		return nil, fmt.Errorf("token_embd.weight has %d dimensions, want 2", len(emb.Shape))
	}
	c.Vocab = emb.Shape[1]
	_, hasOut := f.Tensor("output.weight")
	c.Tied = !hasOut
	_, c.AttnQKVBias = f.Tensor("blk.0.attn_q.bias")
	_, c.AttnOBias = f.Tensor("blk.0.attn_output.bias")
	_, c.MLPBias = f.Tensor("blk.0.ffn_up.bias")
	_, c.QKNorm = f.Tensor("blk.0.attn_q_norm.weight")
	if rf, ok := f.Tensor("rope_freqs.weight"); ok {
		v, err := rf.Dequantize()
		if err != nil {
			return nil, err
		}
		c.Rope.FreqFactors = v
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func buildGGUF(f *gguf.File) (*Model, error) {
	cfg, err := GGUFConfig(f)
	if err != nil {
		return nil, err
	}
	interleaved := cfg.ModelType == "llama" // llama.cpp's LLAMA rope pairs adjacent dimensions
	matrix := func(name string, rows, cols int) (*kernels.Matrix, error) {
		t, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("tensor %s is missing", name)
		}
		if len(t.Shape) != 2 || t.Shape[0] != cols || t.Shape[1] != rows {
			return nil, fmt.Errorf("tensor %s has GGUF shape %v, want [%d %d]", name, t.Shape, cols, rows)
		}
		data := t.Data
		if t.Type == quant.F32 && len(data) > 0 && uintptrOf(data)%4 != 0 {
			data = append([]byte(nil), data...)
		}
		return kernels.NewMatrix(t.Type, rows, cols, data)
	}
	vector := func(name string, n int) ([]float32, error) {
		t, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("tensor %s is missing", name)
		}
		if t.Elements() != n {
			return nil, fmt.Errorf("tensor %s has %d elements, want %d", name, t.Elements(), n)
		}
		return t.Dequantize()
	}
	m := &Model{Config: *cfg}
	if m.Embed, err = matrix("token_embd.weight", cfg.Vocab, cfg.Hidden); err != nil {
		return nil, err
	}
	if m.Norm, err = vector("output_norm.weight", cfg.Hidden); err != nil {
		return nil, err
	}
	if cfg.Tied {
		m.LMHead = m.Embed
	} else if m.LMHead, err = matrix("output.weight", cfg.Vocab, cfg.Hidden); err != nil {
		return nil, err
	}
	m.Layers = make([]Layer, cfg.Layers)
	for l := range m.Layers {
		ly := &m.Layers[l]
		pre := fmt.Sprintf("blk.%d.", l)
		for p := Proj(0); p < NumProj; p++ {
			rows, cols := cfg.ProjShape(p)
			w, err := matrix(pre+ggufProj[p]+".weight", rows, cols)
			if err != nil {
				return nil, err
			}
			var b []float32
			if cfg.ProjHasBias(p) {
				if b, err = vector(pre+ggufProj[p]+".bias", rows); err != nil {
					return nil, err
				}
			}
			if interleaved && (p == ProjQ || p == ProjK) {
				heads := cfg.Heads
				if p == ProjK {
					heads = cfg.KVHeads
				}
				w = permuteRows(w, heads, cfg.HeadDim, false)
				if b != nil {
					b = permuteRope(b, heads, cfg.HeadDim, 1)
				}
			}
			ly.SetWeight(p, w)
			if b != nil {
				ly.SetBias(p, b)
			}
		}
		if ly.AttnNorm, err = vector(pre+"attn_norm.weight", cfg.Hidden); err != nil {
			return nil, err
		}
		if ly.MLPNorm, err = vector(pre+"ffn_norm.weight", cfg.Hidden); err != nil {
			return nil, err
		}
		if cfg.QKNorm {
			if ly.QNorm, err = vector(pre+"attn_q_norm.weight", cfg.HeadDim); err != nil {
				return nil, err
			}
			if ly.KNorm, err = vector(pre+"attn_k_norm.weight", cfg.HeadDim); err != nil {
				return nil, err
			}
		}
	}
	if err := m.init(); err != nil {
		return nil, err
	}
	return m, nil
}

var ggufProj = [NumProj]string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

// permuteRows reorders whole rows of a q or k matrix (any dtype) between
// rotary layouts: toInterleaved=false maps interleaved (2i, 2i+1) to
// rotate-half (i, i+D/2); true maps back.
func permuteRows(w *kernels.Matrix, heads, headDim int, toInterleaved bool) *kernels.Matrix {
	rb := w.RowBytes()
	out := make([]byte, len(w.Data))
	half := headDim / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			inter0, inter1 := h*headDim+2*i, h*headDim+2*i+1
			half0, half1 := h*headDim+i, h*headDim+half+i
			if toInterleaved {
				inter0, inter1, half0, half1 = half0, half1, inter0, inter1
			}
			copy(out[half0*rb:(half0+1)*rb], w.Data[inter0*rb:(inter0+1)*rb])
			copy(out[half1*rb:(half1+1)*rb], w.Data[inter1*rb:(inter1+1)*rb])
		}
	}
	m, _ := kernels.NewMatrix(w.Type, w.Rows, w.Cols, out)
	return m
}

// GGUFOptions tune SaveGGUF.
type GGUFOptions struct {
	// Recipe is a llama.cpp file type ("Q4_K_M", "Q5_K_S", "Q8_0", "F16",
	// …; see gguf.ParseFileType): the per-tensor types llama-quantize
	// would choose, fallbacks included. Empty means the recipe of Type
	// (q4_k means Q4_K_M, as in llama-quantize).
	Recipe string
	// Type of the matrices when Recipe is empty: F32, F16, BF16, Q8_0,
	// Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K. Norms and biases are
	// always F32.
	Type quant.DType
	// Name is general.name.
	Name string
	// Extra metadata (tokenizer.*, chat template, …) appended after the
	// model's own keys.
	Extra []gguf.KV
	// Plan, if not nil, receives the type chosen for every matrix, in
	// file order.
	Plan *[]gguf.Choice
}

// FileType returns the llama.cpp recipe o asks for.
func (o GGUFOptions) FileType() (gguf.FileType, error) {
	if o.Recipe != "" {
		return gguf.ParseFileType(o.Recipe)
	}
	return gguf.FileTypeOf(o.Type)
}

// SaveGGUF writes m as a GGUF v3 file that llama.cpp and ollama load:
// architecture llama (also for Mistral), qwen2 or qwen3, with llama.cpp's
// tensor names, q/k rows permuted for its interleaved rotary order where the
// architecture needs it, and llama3 rope scaling stored as rope_freqs.
// The file is written to a temporary name and renamed when complete.
func SaveGGUF(path string, m *Model, o GGUFOptions) error {
	c := m.Config
	var arch string
	switch c.Arch {
	case "LlamaForCausalLM", "MistralForCausalLM", "llama2.c":
		arch = "llama"
	case "Qwen2ForCausalLM":
		arch = "qwen2"
	case "Qwen3ForCausalLM":
		arch = "qwen3"
	default:
		return fmt.Errorf("writing %s: architecture %s has no GGUF mapping", path, c.Arch)
	}
	if arch == "qwen2" && (c.AttnOBias || c.MLPBias || c.QKNorm) || arch == "llama" && c.QKNorm {
		return fmt.Errorf("writing %s: this %s variant has no llama.cpp equivalent", path, c.Arch)
	}
	if c.SlidingWindow > 0 {
		return fmt.Errorf("writing %s: sliding-window attention has no llama.cpp equivalent in the %s architecture", path, arch)
	}
	ft, err := o.FileType()
	if err != nil {
		return fmt.Errorf("writing %s: %v", path, err)
	}
	if err := ft.Writable(); err != nil {
		return fmt.Errorf("writing %s: %v", path, err)
	}
	name := o.Name
	if name == "" {
		name = "masque model"
	}
	meta := []gguf.KV{
		{Key: "general.architecture", Value: arch},
		{Key: "general.name", Value: name},
		{Key: "general.file_type", Value: uint32(ft)},
		{Key: "general.quantization_version", Value: uint32(2)},
		{Key: arch + ".context_length", Value: uint32(max(c.MaxSeq, 1))},
		{Key: arch + ".embedding_length", Value: uint32(c.Hidden)},
		{Key: arch + ".feed_forward_length", Value: uint32(c.Intermediate)},
		{Key: arch + ".block_count", Value: uint32(c.Layers)},
		{Key: arch + ".attention.head_count", Value: uint32(c.Heads)},
		{Key: arch + ".attention.head_count_kv", Value: uint32(c.KVHeads)},
		{Key: arch + ".attention.key_length", Value: uint32(c.HeadDim)},
		{Key: arch + ".attention.value_length", Value: uint32(c.HeadDim)},
		{Key: arch + ".attention.layer_norm_rms_epsilon", Value: c.NormEps},
		{Key: arch + ".rope.freq_base", Value: float32(c.RopeTheta)},
		{Key: arch + ".rope.dimension_count", Value: uint32(c.HeadDim)},
		{Key: arch + ".vocab_size", Value: uint32(c.Vocab)},
	}
	if c.Rope.Type == "linear" {
		meta = append(meta, gguf.KV{Key: arch + ".rope.scaling.type", Value: "linear"}, gguf.KV{Key: arch + ".rope.scaling.factor", Value: float32(c.Rope.Factor)})
	}
	meta = append(meta, o.Extra...)

	// The tensors in file order; matrices are planned first, then encoded.
	type entry struct {
		name  string
		w     *kernels.Matrix // nil for a vector
		v     []float32
		perm  int
		index int // into the plan
	}
	var es []entry
	var pts []gguf.PlanTensor
	mat := func(name string, w *kernels.Matrix, permHeads int) {
		es = append(es, entry{name: name, w: w, perm: permHeads, index: len(pts)})
		pts = append(pts, gguf.PlanTensor{Name: name, Rows: w.Rows, Cols: w.Cols})
	}
	vec := func(name string, v []float32) { es = append(es, entry{name: name, v: v}) }
	mat("token_embd.weight", m.Embed, 0)
	if f := ropeFreqFactors(&c); f != nil {
		vec("rope_freqs.weight", f)
	}
	for l := range m.Layers {
		ly := &m.Layers[l]
		pre := fmt.Sprintf("blk.%d.", l)
		vec(pre+"attn_norm.weight", ly.AttnNorm)
		for p := Proj(0); p < NumProj; p++ {
			perm := 0
			if arch == "llama" && p == ProjQ {
				perm = c.Heads
			} else if arch == "llama" && p == ProjK {
				perm = c.KVHeads
			}
			mat(pre+ggufProj[p]+".weight", ly.Weight(p), perm)
			if b := ly.Bias(p); b != nil {
				if perm > 0 {
					b = permuteRopeInverse(b, perm, c.HeadDim)
				}
				vec(pre+ggufProj[p]+".bias", b)
			}
		}
		if ly.QNorm != nil {
			vec(pre+"attn_q_norm.weight", ly.QNorm)
			vec(pre+"attn_k_norm.weight", ly.KNorm)
		}
		vec(pre+"ffn_norm.weight", ly.MLPNorm)
	}
	vec("output_norm.weight", m.Norm)
	if m.LMHead != m.Embed {
		mat("output.weight", m.LMHead, 0)
	}
	plan, err := ft.Plan(pts, gguf.PlanModel{Layers: c.Layers, Heads: c.Heads, KVHeads: c.KVHeads})
	if err != nil {
		return fmt.Errorf("writing %s: %v", path, err)
	}
	if o.Plan != nil {
		*o.Plan = plan
	}
	for _, c := range plan {
		if !c.Type.Encodable() {
			return fmt.Errorf("writing %s: the %s recipe gives tensor %s (rows of %d) %s, as llama.cpp's fallback for %s, and masque does not write %s",
				path, ft, c.Name, c.Cols, c.Type, c.Wanted, c.Type)
		}
	}
	ts := make([]gguf.WriteTensor, 0, len(es))
	for _, e := range es {
		if e.w == nil {
			ts = append(ts, gguf.WriteTensor{Name: e.name, Shape: []int{len(e.v)}, Type: quant.F32, Data: safetensors.F32Bytes(e.v)})
			continue
		}
		w, t := e.w, plan[e.index].Type
		data := w.Data
		if w.Type != t {
			var err error
			if data, err = convertRows(w, t); err != nil {
				return fmt.Errorf("writing %s: tensor %s: %v", path, e.name, err)
			}
		}
		out, _ := kernels.NewMatrix(t, w.Rows, w.Cols, data)
		if e.perm > 0 {
			out = permuteRows(out, e.perm, c.HeadDim, true)
		}
		ts = append(ts, gguf.WriteTensor{Name: e.name, Shape: []int{w.Cols, w.Rows}, Type: t, Data: out.Data})
	}
	return gguf.Write(path, meta, ts)
}

// ropeFreqFactors returns the per-frequency divisors that express c's rope
// scaling relative to plain RoPE with the same theta (nil when there are none).
func ropeFreqFactors(c *Config) []float32 {
	if c.Rope.Type != "llama3" && c.Rope.FreqFactors == nil {
		return nil
	}
	plain := *c
	plain.Rope = RopeScaling{}
	base := newRopeTable(&plain).invFreq
	scaled := newRopeTable(c).invFreq
	f := make([]float32, len(base))
	for i := range f {
		f[i] = float32(base[i] / scaled[i])
	}
	return f
}

// permuteRopeInverse maps a rotate-half vector (one value per row) back to
// interleaved order.
func permuteRopeInverse(v []float32, heads, headDim int) []float32 {
	out := make([]float32, len(v))
	half := headDim / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			out[h*headDim+2*i] = v[h*headDim+i]
			out[h*headDim+2*i+1] = v[h*headDim+half+i]
		}
	}
	return out
}

func mustRowBytes(t quant.DType, n int) int {
	b, err := t.RowBytes(n)
	if err != nil {
		panic(err)
	}
	return b
}

// GGUFArchName returns the GGUF architecture name m is saved under.
func GGUFArchName(arch string) string {
	switch arch {
	case "Qwen2ForCausalLM":
		return "qwen2"
	case "Qwen3ForCausalLM":
		return "qwen3"
	}
	return "llama"
}

// convertRows re-encodes every row of w as type t, spreading rows over all
// cores (the k-quant searches are slow).
func convertRows(w *kernels.Matrix, t quant.DType) ([]byte, error) {
	rb := mustRowBytes(t, w.Cols)
	data := make([]byte, w.Rows*rb)
	workers := min(runtime.GOMAXPROCS(0), max(1, w.Rows/16))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			row := make([]float32, w.Cols)
			for r := g; r < w.Rows; r += workers {
				if err := quant.DequantizeRow(w.Type, w.RowData(r), row); err != nil {
					errs[g] = err
					return
				}
				if err := quant.QuantizeRow(t, row, data[r*rb:(r+1)*rb]); err != nil {
					errs[g] = err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}
