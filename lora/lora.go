// Package lora holds low-rank adapters (LoRA) for the seven projections of
// a decoder block: their weights, saving and loading in the PEFT format
// (adapter_model.safetensors + adapter_config.json), and merging into a
// model (W + scale·B·A) for inference or export.
//
// An adapted projection computes y = W·x + b + scale·B·A·dropout(x), with A
// [rank, in], B [out, rank] and scale = alpha/rank (alpha/√rank with
// rsLoRA). The training engine (package train) runs the forward and
// backward passes; this package owns the data.
package lora

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
)

// Config describes an adapter.
type Config struct {
	Rank    int          // r
	Alpha   float64      // lora_alpha
	Dropout float64      // lora_dropout, applied to the adapter's input while training
	Targets []model.Proj // adapted projections (the same in every layer)
	// Layers restricts the adapted layers (nil: all).
	Layers []int
	// RSLoRA selects the rank-stabilised scale alpha/√r instead of alpha/r.
	RSLoRA bool
	// BaseModel is recorded as base_model_name_or_path: how to open the
	// model the adapter was made for (New sets the model's Origin: a
	// built-in name, a hub id or an absolute path).
	BaseModel string
	// BaseFingerprint is that model's model.Fingerprint, recorded as
	// masque_base_fingerprint ("" when unknown, as in PEFT's adapters).
	BaseFingerprint string
	// BaseArch is that model's model.ArchFingerprint and BaseProbe a
	// sample of its weights (model.Probe), recorded as masque_base_arch and
	// masque_base_probe: with them the adapter applies to other encodings
	// of its base and is refused on other models (see Adapter.Compat).
	// Empty in PEFT's adapters and in masque's older ones.
	BaseArch  string
	BaseProbe *model.Probe
}

// Pair is the adapter of one projection of one layer.
type Pair struct {
	Layer   int
	Proj    model.Proj
	In, Out int
	A       []float32 // [Rank, In] row-major (lora_A.weight)
	B       []float32 // [Out, Rank] row-major (lora_B.weight)

	am, bm *kernels.Matrix
}

// MatA returns A as an F32 matrix [Rank, In] sharing A's memory.
func (p *Pair) MatA(rank int) *kernels.Matrix {
	if p.am == nil || len(p.am.F32()) == 0 || &p.am.F32()[0] != &p.A[0] {
		p.am = kernels.FromF32(rank, p.In, p.A)
	}
	return p.am
}

// MatB returns B as an F32 matrix [Out, Rank] sharing B's memory.
func (p *Pair) MatB(rank int) *kernels.Matrix {
	if p.bm == nil || len(p.bm.F32()) == 0 || &p.bm.F32()[0] != &p.B[0] {
		p.bm = kernels.FromF32(p.Out, rank, p.B)
	}
	return p.bm
}

// Invalidate drops any kernel-prepared copy of A and B; call it after
// changing their values in place.
func (p *Pair) Invalidate() {
	if p.am != nil {
		p.am.Prepared = nil
	}
	if p.bm != nil {
		p.bm.Prepared = nil
	}
}

// Adapter is a set of LoRA pairs over a model's layers.
type Adapter struct {
	Config Config
	// Pairs[l][p] is the adapter of projection p in layer l (nil if none).
	Pairs [][model.NumProj]*Pair

	dir string // the folder Load read it from
}

// Scale is the factor applied to B·A: alpha/r, or alpha/√r with rsLoRA.
func (a *Adapter) Scale() float32 {
	if a.Config.Rank <= 0 {
		return 0
	}
	if a.Config.RSLoRA {
		return float32(a.Config.Alpha / math.Sqrt(float64(a.Config.Rank)))
	}
	return float32(a.Config.Alpha / float64(a.Config.Rank))
}

// Pair returns the adapter of projection p in layer l, or nil.
func (a *Adapter) Pair(l int, p model.Proj) *Pair {
	if a == nil || l < 0 || l >= len(a.Pairs) || p < 0 || p >= model.NumProj {
		return nil
	}
	return a.Pairs[l][p]
}

// All returns every pair, layer by layer, in projection order.
func (a *Adapter) All() []*Pair {
	var out []*Pair
	for l := range a.Pairs {
		for p := model.Proj(0); p < model.NumProj; p++ {
			if pr := a.Pairs[l][p]; pr != nil {
				out = append(out, pr)
			}
		}
	}
	return out
}

// NumParams counts the adapter's parameters.
func (a *Adapter) NumParams() int64 {
	var n int64
	for _, p := range a.All() {
		n += int64(len(p.A) + len(p.B))
	}
	return n
}

// TensorName returns the PEFT tensor name of the A (which="A") or B matrix of
// projection p in layer l, e.g.
// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight".
func TensorName(l int, p model.Proj, which string) string {
	return "base_model.model." + model.HFLayerPrefix(l) + p.HFName() + ".lora_" + which + ".weight"
}

// projDims returns [out, in] of projection p.
func projDims(c *model.Config, p model.Proj) (out, in int) {
	switch p {
	case model.ProjQ:
		return c.QDim(), c.Hidden
	case model.ProjK, model.ProjV:
		return c.KVDim(), c.Hidden
	case model.ProjO:
		return c.Hidden, c.QDim()
	case model.ProjGate, model.ProjUp:
		return c.Intermediate, c.Hidden
	}
	return c.Hidden, c.Intermediate
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Rank <= 0 || c.Rank > 65536:
		return fmt.Errorf("LoRA rank %d must be between 1 and 65536", c.Rank)
	case !(c.Alpha > 0) || math.IsInf(c.Alpha, 0):
		return fmt.Errorf("LoRA alpha %g must be positive", c.Alpha)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("LoRA dropout %g must be in [0, 1)", c.Dropout)
	case len(c.Targets) == 0:
		return fmt.Errorf("LoRA needs at least one target projection")
	}
	for _, p := range c.Targets {
		if p < 0 || p >= model.NumProj {
			return fmt.Errorf("LoRA target %v is not a projection", p)
		}
	}
	return nil
}

// New makes an adapter for m initialised as PEFT does: A uniform in
// ±1/√in (Kaiming-uniform with a=√5), B zero, so the adapted model starts
// out equal to the base model. seed fixes A.
func New(m *model.Model, c Config, seed uint64) (*Adapter, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := &m.Config
	for _, l := range c.Layers {
		if l < 0 || l >= cfg.Layers {
			return nil, fmt.Errorf("LoRA layer %d outside the model's %d layers", l, cfg.Layers)
		}
	}
	c.Targets = sortedUnique(c.Targets)
	if c.BaseModel == "" {
		c.BaseModel = m.Origin()
		if c.BaseFingerprint == "" {
			c.BaseFingerprint = m.Fingerprint()
			c.BaseArch = m.ArchFingerprint()
			c.BaseProbe, _ = m.Probe() // nil when a layer lacks a projection
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c6f7261))
	a := &Adapter{Config: c, Pairs: make([][model.NumProj]*Pair, cfg.Layers)}
	for l := 0; l < cfg.Layers; l++ {
		if c.Layers != nil && !slices.Contains(c.Layers, l) {
			continue
		}
		for _, p := range c.Targets {
			out, in := projDims(cfg, p)
			pr := &Pair{Layer: l, Proj: p, In: in, Out: out, A: make([]float32, c.Rank*in), B: make([]float32, out*c.Rank)}
			bound := 1 / math.Sqrt(float64(in))
			for i := range pr.A {
				pr.A[i] = float32((2*rng.Float64() - 1) * bound)
			}
			a.Pairs[l][p] = pr
		}
	}
	return a, nil
}

func sortedUnique(ps []model.Proj) []model.Proj {
	out := slices.Clone(ps)
	slices.Sort(out)
	return slices.Compact(out)
}

// Check reports whether the adapter fits model m (layer count and shapes).
func (a *Adapter) Check(m *model.Model) error {
	cfg := &m.Config
	if len(a.Pairs) > cfg.Layers {
		return fmt.Errorf("LoRA adapter has %d layers, the model %d", len(a.Pairs), cfg.Layers)
	}
	for _, p := range a.All() {
		out, in := projDims(cfg, p.Proj)
		if p.Out != out || p.In != in {
			return fmt.Errorf("LoRA adapter of layer %d %s is [%d←%d], the model's projection is [%d←%d]", p.Layer, p.Proj.HFName(), p.Out, p.In, out, in)
		}
		if len(p.A) != a.Config.Rank*in || len(p.B) != out*a.Config.Rank {
			return fmt.Errorf("LoRA adapter of layer %d %s: A or B has the wrong size for rank %d", p.Layer, p.Proj.HFName(), a.Config.Rank)
		}
	}
	return nil
}

// Compat says whether the adapter can be applied to m. It can when m is
// the model it was made for (the recorded BaseFingerprint), or the same
// checkpoint in another encoding: a GGUF conversion or quantisation, with
// the same architecture and tensor layout (BaseArch) and weights that
// differ from the adapter's probe of its base (BaseProbe) by no more than
// the two encodings explain (model.Probe.Compare). For quantised weights
// the first result is a warning to show (the adapter was trained on other
// values). Another model is an error naming the adapter's folder, its base
// and the model.
//
// An adapter that records no probe (PEFT's, or masque's older ones) cannot
// tell another encoding from another model: it gets a warning when it
// records a fingerprint and m's differs, and never an error. Shapes are
// checked by Check (and Merge), not here.
func (a *Adapter) Compat(m *model.Model) (warning string, err error) {
	c := &a.Config
	if c.BaseFingerprint == "" {
		return "", nil
	}
	fp := m.Fingerprint()
	if fp == c.BaseFingerprint {
		return "", nil
	}
	if c.BaseProbe == nil || c.BaseArch == "" {
		return fmt.Sprintf("the LoRA adapter %s was made on %s (fingerprint %.16s…); model %s has fingerprint %.16s…: another encoding of that model, or another model",
			a.name(), c.BaseModel, c.BaseFingerprint, m.Source(), fp), nil
	}
	another := func(why string) error {
		return fmt.Errorf("LoRA adapter %s was made for another model: %s (fingerprint %.16s…), not %s (fingerprint %.16s…)%s",
			a.name(), c.BaseModel, c.BaseFingerprint, m.Source(), fp, why)
	}
	why, pm, err := c.BaseProbe.Judge(m, c.BaseArch, "the adapter's sample of its base")
	if err != nil {
		return "", fmt.Errorf("LoRA adapter %s: model %s: %v", a.name(), m.Source(), err)
	}
	if why != "" {
		return "", another(why)
	}
	if len(pm.Quantised) > 0 {
		return fmt.Sprintf("the LoRA adapter %s was made on %s; %s holds the same checkpoint with weights quantised to %s (%.2g%% from the adapter's sample), so the adapter is applied to slightly different weights than it was trained on",
			a.name(), c.BaseModel, m.Source(), strings.Join(pm.Quantised, ", "), 100*pm.Rel), nil
	}
	return "", nil
}

// name is the adapter's folder, or "in memory" for one not loaded from a
// folder.
func (a *Adapter) name() string {
	if a.dir != "" {
		return a.dir
	}
	return "(in memory)"
}

// Delta returns scale·B·A ([Out, In], row-major) of pair p, computed with k.
func (a *Adapter) Delta(k kernels.Kernels, p *Pair) []float32 {
	d := make([]float32, p.Out*p.In)
	// d[o,c] = Σ_r B[o,r]·A[r,c]: the input-gradient product with B as dy.
	k.MatMulBackInput(d, p.B, p.MatA(a.Config.Rank), p.Out)
	s := a.Scale()
	for i := range d {
		d[i] *= s
	}
	return d
}

// Merge folds the adapter into m: every adapted projection W becomes the
// F32 matrix W + scale·B·A (W decoded from whatever type it is stored in,
// block-quantised included; the base matrices are not modified, so
// memory-mapped weights stay intact). After Merge, m computes what the base model with the
// adapter computes, and can be used for generation or saved.
func (a *Adapter) Merge(m *model.Model) error {
	if err := a.Check(m); err != nil {
		return err
	}
	k := m.K
	if k == nil {
		k = kernels.Default()
	}
	for _, p := range a.All() {
		ly := &m.Layers[p.Layer]
		w := ly.Weight(p.Proj)
		v := w.Float32s() // any stored type, block-quantised ones included
		if len(v) != p.Out*p.In {
			return fmt.Errorf("cannot merge LoRA into layer %d %s: weight has %d values, want %d", p.Layer, p.Proj.HFName(), len(v), p.Out*p.In)
		}
		d := a.Delta(k, p)
		for i := range v {
			v[i] += d[i]
		}
		ly.SetWeight(p.Proj, kernels.FromF32(w.Rows, w.Cols, v))
	}
	return nil
}

// Merged returns a copy of m (sharing m's unadapted weights) with the
// adapter merged; m itself is left unchanged.
func (a *Adapter) Merged(m *model.Model) (*model.Model, error) {
	layers := slices.Clone(m.Layers)
	var head *kernels.Matrix
	if m.LMHead != m.Embed {
		head = m.LMHead
	}
	c, err := model.New(m.Config, m.Embed, layers, m.Norm, head)
	if err != nil {
		return nil, err
	}
	c.K = m.K
	if err := a.Merge(c); err != nil {
		return nil, err
	}
	return c, nil
}

// peftConfig is adapter_config.json as PEFT writes it.
type peftConfig struct {
	AlphaPattern          map[string]any  `json:"alpha_pattern"`
	AutoMapping           any             `json:"auto_mapping"`
	BaseModelNameOrPath   string          `json:"base_model_name_or_path"`
	Bias                  string          `json:"bias"`
	FanInFanOut           bool            `json:"fan_in_fan_out"`
	InferenceMode         bool            `json:"inference_mode"`
	InitLoraWeights       bool            `json:"init_lora_weights"`
	LayersPattern         any             `json:"layers_pattern"`
	LayersToTransform     []int           `json:"layers_to_transform"`
	LoraAlpha             float64         `json:"lora_alpha"`
	LoraDropout           float64         `json:"lora_dropout"`
	ModulesToSave         any             `json:"modules_to_save"`
	PeftType              string          `json:"peft_type"`
	R                     int             `json:"r"`
	RankPattern           map[string]any  `json:"rank_pattern"`
	Revision              any             `json:"revision"`
	TargetModules         any             `json:"target_modules"`
	TaskType              string          `json:"task_type"`
	UseDora               bool            `json:"use_dora"`
	UseRslora             bool            `json:"use_rslora"`
	ProducedBy            string          `json:"masque_version,omitempty"`
	BaseFingerprint       string          `json:"masque_base_fingerprint,omitempty"`
	BaseArch              string          `json:"masque_base_arch,omitempty"`
	BaseProbe             json.RawMessage `json:"masque_base_probe,omitempty"` // a model.Probe
	MasqueTrainingSummary map[string]any  `json:"masque_training,omitempty"`
}

// moduleName returns PEFT's target module name of p ("q_proj", …).
func moduleName(p model.Proj) string { return p.String() + "_proj" }

// ParseTargets parses a comma-separated list of projections: short names
// (q,k,v,o,gate,up,down), module names (q_proj, …) or "all".
func ParseTargets(s string) ([]model.Proj, error) {
	var out []model.Proj
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "":
			continue
		case "all", "all-linear":
			for p := model.Proj(0); p < model.NumProj; p++ {
				out = append(out, p)
			}
			continue
		}
		p, err := model.ParseProj(strings.TrimSuffix(f, "_proj"))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no LoRA targets in %q", s)
	}
	return sortedUnique(out), nil
}

var tensorRE = regexp.MustCompile(`^(?:base_model\.model\.)?model\.layers\.([0-9]+)\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj\.lora_(A|B)(?:\.[A-Za-z0-9_]+)?\.weight$`)

// parseTensorName splits a PEFT tensor name into layer, projection and A/B.
func parseTensorName(name string) (int, model.Proj, string, bool) {
	m := tensorRE.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, "", false
	}
	l, err := strconv.Atoi(m[1])
	if err != nil || l > 1<<16 {
		return 0, 0, "", false
	}
	p, err := model.ParseProj(m[3])
	if err != nil || (p <= model.ProjO) != (m[2] == "self_attn") {
		return 0, 0, "", false
	}
	return l, p, m[4], true
}

func marshalConfig(c Config, extra map[string]any) ([]byte, error) {
	mods := make([]string, len(c.Targets))
	for i, p := range c.Targets {
		mods[i] = moduleName(p)
	}
	pc := peftConfig{
		AlphaPattern: map[string]any{}, BaseModelNameOrPath: c.BaseModel, Bias: "none", InferenceMode: true,
		InitLoraWeights: true, LayersToTransform: c.Layers, LoraAlpha: c.Alpha, LoraDropout: c.Dropout, PeftType: "LORA",
		R: c.Rank, RankPattern: map[string]any{}, TargetModules: mods, TaskType: "CAUSAL_LM", UseRslora: c.RSLoRA,
		ProducedBy: "masque", BaseFingerprint: c.BaseFingerprint, MasqueTrainingSummary: extra,
	}
	if c.BaseArch != "" && c.BaseProbe != nil {
		pj, err := json.Marshal(c.BaseProbe)
		if err != nil {
			return nil, err
		}
		pc.BaseArch, pc.BaseProbe = c.BaseArch, pj
	}
	out, err := json.MarshalIndent(pc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
