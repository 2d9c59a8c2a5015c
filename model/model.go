// Package model holds masque's in-memory transformer: the weights of a
// Llama-family decoder (Llama 2/3, Qwen2/2.5/3, Mistral, SmolLM), loaders from
// Hugging Face folders and llama2.c checkpoints, and the forward pass with a
// KV cache and activation hooks.
//
// The numerical inner loops go through a kernels.Kernels, so a faster
// implementation can replace the portable one without touching this package.
package model

import (
	"fmt"
	"io"

	"github.com/masque-ai/masque/kernels"
)

// Model is a loaded decoder-only transformer.
type Model struct {
	Config Config
	Embed  *kernels.Matrix // [Vocab, Hidden]
	Layers []Layer
	Norm   []float32       // final RMSNorm weight [Hidden]
	LMHead *kernels.Matrix // [Vocab, Hidden]; == Embed when tied

	// K runs the inner loops; it defaults to kernels.Default().
	K kernels.Kernels

	rope   *ropeTable
	closer io.Closer // releases memory-mapped weights
	source string
	origin string // see Origin

	// A view made by With applies these to every sequence it runs.
	seqAdapter Adapter
	seqHooks   *Hooks

	cacheType CacheType // of the caches NewCache makes
}

// Layer holds one decoder block's weights. Biases and the q/k norms are nil
// when the architecture has none.
type Layer struct {
	AttnNorm            []float32 // input_layernorm [Hidden]
	Q, K, V, O          *kernels.Matrix
	QBias, KBias, VBias []float32
	OBias               []float32
	QNorm, KNorm        []float32 // [HeadDim] (Qwen3)
	MLPNorm             []float32 // post_attention_layernorm [Hidden]
	Gate, Up, Down      *kernels.Matrix
	GateBias, UpBias    []float32
	DownBias            []float32
}

// Proj names one of the seven linear projections of a decoder block.
type Proj int

// The projections, in the order they run.
const (
	ProjQ Proj = iota
	ProjK
	ProjV
	ProjO
	ProjGate
	ProjUp
	ProjDown
	NumProj
)

var projNames = [NumProj]string{"q", "k", "v", "o", "gate", "up", "down"}

// String returns the short name (q, k, v, o, gate, up, down).
func (p Proj) String() string {
	if p >= 0 && p < NumProj {
		return projNames[p]
	}
	return fmt.Sprintf("proj(%d)", int(p))
}

// HFName returns the Hugging Face module name, e.g. "self_attn.q_proj" or "mlp.down_proj".
func (p Proj) HFName() string {
	if p <= ProjO {
		return "self_attn." + projNames[p] + "_proj"
	}
	return "mlp." + projNames[p] + "_proj"
}

// ParseProj parses a short projection name.
func ParseProj(s string) (Proj, error) {
	for i, n := range projNames {
		if n == s {
			return Proj(i), nil
		}
	}
	return 0, fmt.Errorf("unknown projection %q (want q, k, v, o, gate, up or down)", s)
}

// Weight returns the matrix of projection p.
func (l *Layer) Weight(p Proj) *kernels.Matrix {
	return [NumProj]*kernels.Matrix{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down}[p]
}

// Bias returns the bias of projection p, or nil.
func (l *Layer) Bias(p Proj) []float32 {
	return [NumProj][]float32{l.QBias, l.KBias, l.VBias, l.OBias, l.GateBias, l.UpBias, l.DownBias}[p]
}

// ProjShape returns the [rows, cols] of projection p's weight under c.
func (c *Config) ProjShape(p Proj) (rows, cols int) {
	s := [NumProj][2]int{{c.QDim(), c.Hidden}, {c.KVDim(), c.Hidden}, {c.KVDim(), c.Hidden}, {c.Hidden, c.QDim()},
		{c.Intermediate, c.Hidden}, {c.Intermediate, c.Hidden}, {c.Hidden, c.Intermediate}}[p]
	return s[0], s[1]
}

// ProjHasBias reports whether projection p has a bias under c.
func (c *Config) ProjHasBias(p Proj) bool {
	return [NumProj]bool{c.AttnQKVBias, c.AttnQKVBias, c.AttnQKVBias, c.AttnOBias, c.MLPBias, c.MLPBias, c.MLPBias}[p]
}

// SetBias replaces the bias of projection p.
func (l *Layer) SetBias(p Proj, b []float32) {
	*[NumProj]*[]float32{&l.QBias, &l.KBias, &l.VBias, &l.OBias, &l.GateBias, &l.UpBias, &l.DownBias}[p] = b
}

// SetWeight replaces the matrix of projection p.
func (l *Layer) SetWeight(p Proj, w *kernels.Matrix) {
	*[NumProj]**kernels.Matrix{&l.Q, &l.K, &l.V, &l.O, &l.Gate, &l.Up, &l.Down}[p] = w
}

// Close releases the memory-mapped files behind the weights. The model must
// not be used afterwards.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	err := m.closer.Close()
	m.closer = nil
	return err
}

// Source is the path the model was loaded from.
func (m *Model) Source() string { return m.source }

// Origin is how the model can be opened again, as artifacts made on it (masks,
// LoRA adapters, statistics, sculpt runs) record their base: a built-in name,
// a hub id (org/name[@rev]) or an absolute path. checkpoint.Open sets it; it
// is Source() when nothing set it.
func (m *Model) Origin() string {
	if m.origin != "" {
		return m.origin
	}
	return m.source
}

// SetOrigin sets what Origin returns.
func (m *Model) SetOrigin(ref string) { m.origin = ref }

// NumParams counts the parameters (a tied head counts once).
func (m *Model) NumParams() int64 {
	c := &m.Config
	n := int64(m.Embed.Rows * m.Embed.Cols)
	if m.LMHead != m.Embed {
		n += int64(m.LMHead.Rows * m.LMHead.Cols)
	}
	n += int64(len(m.Norm))
	for i := range m.Layers {
		l := &m.Layers[i]
		n += int64(len(l.AttnNorm) + len(l.MLPNorm) + len(l.QNorm) + len(l.KNorm))
		for p := Proj(0); p < NumProj; p++ {
			w := l.Weight(p)
			n += int64(w.Rows*w.Cols + len(l.Bias(p)))
		}
	}
	_ = c
	return n
}

// init finishes construction: kernels, RoPE table, shape checks.
func (m *Model) init() error {
	if m.K == nil {
		m.K = kernels.Default()
	}
	c := &m.Config
	check := func(what string, w *kernels.Matrix, rows, cols int) error {
		if w == nil {
			return fmt.Errorf("%s is missing", what)
		}
		if w.Rows != rows || w.Cols != cols {
			return fmt.Errorf("%s has shape [%d %d], want [%d %d]", what, w.Rows, w.Cols, rows, cols)
		}
		return nil
	}
	vec := func(what string, v []float32, n int) error {
		if v != nil && len(v) != n {
			return fmt.Errorf("%s has %d elements, want %d", what, len(v), n)
		}
		return nil
	}
	if err := check("embed_tokens", m.Embed, c.Vocab, c.Hidden); err != nil {
		return err
	}
	if err := check("lm_head", m.LMHead, c.Vocab, c.Hidden); err != nil {
		return err
	}
	if err := vec("norm", m.Norm, c.Hidden); err != nil {
		return err
	}
	if len(m.Layers) != c.Layers {
		return fmt.Errorf("%d layers loaded, config says %d", len(m.Layers), c.Layers)
	}
	for i := range m.Layers {
		l := &m.Layers[i]
		for p := Proj(0); p < NumProj; p++ {
			what := fmt.Sprintf("layer %d %s", i, p.HFName())
			rows, cols := c.ProjShape(p)
			if err := check(what, l.Weight(p), rows, cols); err != nil {
				return err
			}
			if err := vec(what+" bias", l.Bias(p), rows); err != nil {
				return err
			}
		}
		for _, v := range []struct {
			name string
			v    []float32
			n    int
		}{{"input_layernorm", l.AttnNorm, c.Hidden}, {"post_attention_layernorm", l.MLPNorm, c.Hidden}, {"q_norm", l.QNorm, c.HeadDim}, {"k_norm", l.KNorm, c.HeadDim}} {
			if err := vec(fmt.Sprintf("layer %d %s", i, v.name), v.v, v.n); err != nil {
				return err
			}
		}
		if l.AttnNorm == nil || l.MLPNorm == nil {
			return fmt.Errorf("layer %d: norm weights missing", i)
		}
	}
	m.rope = newRopeTable(c)
	return nil
}

// New assembles a model from weights already in memory (used by loaders,
// training and tests). It checks every shape against cfg.
func New(cfg Config, embed *kernels.Matrix, layers []Layer, norm []float32, lmHead *kernels.Matrix) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if lmHead == nil && cfg.Tied {
		lmHead = embed
	}
	m := &Model{Config: cfg, Embed: embed, Layers: layers, Norm: norm, LMHead: lmHead}
	if err := m.init(); err != nil {
		return nil, err
	}
	return m, nil
}
