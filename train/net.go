// Package train is masque's training engine: the backward pass of every
// operation of a Llama-family decoder, written out op by op next to its
// forward pass with explicit activation buffers (no autograd graph), the
// AdamW optimiser with gradient clipping, learning-rate schedules and
// gradient accumulation, LoRA adapters (package lora) and a training
// loop with checkpoints that resume exactly.
//
// A Net wraps a model.Model. Parameters chosen as trainable get float32
// master copies (the model's matrices are replaced by them, so the model
// always computes with the current weights); frozen weights stay in their
// stored type and only pass gradients through. Gradients with respect to the
// activations are always computed, so a frozen model still yields d loss/d
// FFN mask (Net.FFNMask) and d loss/d input embeddings (Options.InputGrad).
//
// Matrix products go through the model's kernels.Kernels (MatMul,
// MatMulBackInput, MatMulBackWeight), attention included.
package train

import (
	"fmt"
	"runtime"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
)

// IgnoreIndex marks a target position that does not contribute to the loss.
const IgnoreIndex = -100

// Sequence is one training example. Tokens are the input ids; Targets[i] is
// the id to predict after Tokens[:i+1], or IgnoreIndex. Each sequence runs
// on its own, at positions 0..len-1.
type Sequence struct {
	Tokens  []int
	Targets []int
}

// Param is one trainable tensor.
type Param struct {
	// Name is the Hugging Face parameter name ("model.layers.0.mlp.up_proj.weight"),
	// or the PEFT tensor name for LoRA matrices.
	Name  string
	Shape []int
	// Data holds the float32 master values, updated in place by the optimiser.
	Data []float32
	// Grad accumulates d loss/d Data.
	Grad []float32
	// Decay reports whether weight decay applies (matrices, not norms or biases).
	Decay bool

	invalidate func() // drops kernel-side caches of Data after an update
}

// Changed must be called after Data is modified in place (the optimiser
// does it): it drops any copy the kernels prepared from the old values.
func (p *Param) Changed() {
	if p.invalidate != nil {
		p.invalidate()
	}
}

// Options configure a Net.
type Options struct {
	// Full makes the model's parameters trainable (full fine-tuning);
	// Select, if set, narrows them down by Hugging Face name.
	Full   bool
	Select func(name string) bool
	// Adapter, if set, adds trainable LoRA adapters to the frozen (or
	// trainable) base. Its A and B slices are the trained values.
	Adapter *lora.Adapter
	// Recompute keeps only each layer's input during the forward pass and
	// recomputes the layer's activations in the backward pass (activation
	// checkpointing): memory O(layers·tokens·hidden) instead of
	// O(layers·tokens·(hidden+d_ff)), for about a third more compute.
	Recompute bool
	// InputGrad keeps d loss/d input embeddings after each backward pass
	// (see Net.InputGrad).
	InputGrad bool
	// Threads bounds the goroutines of the engine's own loops (attention,
	// norms, softmax); ≤ 0 means GOMAXPROCS. Matrix products use the
	// kernels' own threads.
	Threads int
	// Kernels overrides the model's kernels (by default the model's, with
	// kernels.ExactBF16: products with frozen BF16 weights stay float32).
	Kernels kernels.Kernels
}

type layerParams struct {
	attnNorm, mlpNorm, qNorm, kNorm *Param
	w, b                            [model.NumProj]*Param
	loraA, loraB                    [model.NumProj]*Param
}

// Net is a model prepared for training.
type Net struct {
	// Model is the wrapped model; trainable matrices have been replaced by
	// F32 master copies, so it always computes with the current weights.
	Model *model.Model
	// K runs the matrix products.
	K kernels.Kernels
	// Adapter is the LoRA adapter being trained (nil if none).
	Adapter *lora.Adapter

	// FFNMask, if FFNMask[l] is non-nil ([Intermediate]), multiplies layer
	// l's FFN intermediate activations silu(gate)·up by it in the forward
	// pass, and the backward pass accumulates d loss/d mask into
	// FFNMaskGrad[l].
	FFNMask     [][]float32
	FFNMaskGrad [][]float32

	// InputGrad holds d loss/d input embeddings of the last backward pass
	// when Options.InputGrad is set: one row of Hidden values per token,
	// sequence after sequence (see InputGradOf).
	InputGrad []float32

	// Training enables LoRA dropout.
	Training bool
	// Seed and Counter drive the dropout masks: each ForwardBackward uses
	// Counter and then increments it, so a run restored with the same Seed
	// and Counter draws the same masks.
	Seed, Counter uint64

	cfg       model.Config
	opt       Options
	threads   int
	params    []*Param
	embed     *Param // nil when frozen
	head      *Param // == embed when tied
	norm      *Param
	layers    []layerParams
	inputRows []int // start row of each sequence in InputGrad

	ws workspace
}

// New prepares m for training. Trainable matrices are converted to float32
// master copies that replace the model's (memory-mapped weights are never
// written to; block-quantised weights are dequantised); vectors are copied
// too. Frozen matrices stay as they are, in any type the kernels handle.
func New(m *model.Model, o Options) (*Net, error) {
	if m == nil {
		return nil, fmt.Errorf("train: no model")
	}
	n := &Net{Model: m, K: o.Kernels, Adapter: o.Adapter, cfg: m.Config, opt: o, threads: o.Threads}
	if n.K == nil {
		n.K = m.K
		if n.K == nil {
			n.K = kernels.Default()
		}
		// Training keeps BF16 products in float32 (frozen BF16 weights):
		// the backward pass is the exact derivative of that.
		n.K = kernels.ExactBF16(n.K)
	}
	if n.threads <= 0 {
		n.threads = runtime.GOMAXPROCS(0)
	}
	c := &n.cfg
	n.layers = make([]layerParams, c.Layers)
	want := func(name string) bool { return o.Full && (o.Select == nil || o.Select(name)) }
	tied := m.LMHead == m.Embed

	matParam := func(name string, w **kernels.Matrix) (*Param, error) {
		src := *w
		data := src.Float32s() // F16/BF16 widen exactly; block-quantised types are dequantised
		if len(data) != src.Rows*src.Cols {
			return nil, fmt.Errorf("train: %s: cannot decode its %s weights", name, src.Type)
		}
		mat := kernels.FromF32(src.Rows, src.Cols, data)
		*w = mat
		p := &Param{Name: name, Shape: []int{src.Rows, src.Cols}, Data: data, Grad: make([]float32, len(data)), Decay: true,
			invalidate: func() { mat.Prepared = nil }}
		n.params = append(n.params, p)
		return p, nil
	}
	vecParam := func(name string, v *[]float32, decay bool) *Param {
		if *v == nil || !want(name) {
			return nil
		}
		data := append([]float32(nil), (*v)...)
		*v = data
		p := &Param{Name: name, Shape: []int{len(data)}, Data: data, Grad: make([]float32, len(data)), Decay: decay}
		n.params = append(n.params, p)
		return p
	}
	var err error
	if want("model.embed_tokens.weight") {
		if n.embed, err = matParam("model.embed_tokens.weight", &m.Embed); err != nil {
			return nil, err
		}
		if tied {
			m.LMHead = m.Embed
			n.head = n.embed
		}
	}
	for l := range m.Layers {
		ly, lp := &m.Layers[l], &n.layers[l]
		pre := model.HFLayerPrefix(l)
		lp.attnNorm = vecParam(pre+"input_layernorm.weight", &ly.AttnNorm, false)
		for p := model.Proj(0); p < model.NumProj; p++ {
			name := pre + p.HFName() + ".weight"
			if want(name) {
				w := ly.Weight(p)
				if lp.w[p], err = matParam(name, &w); err != nil {
					return nil, err
				}
				ly.SetWeight(p, w)
			}
			biases := [model.NumProj]*[]float32{&ly.QBias, &ly.KBias, &ly.VBias, &ly.OBias, &ly.GateBias, &ly.UpBias, &ly.DownBias}
			lp.b[p] = vecParam(pre+p.HFName()+".bias", biases[p], false)
		}
		lp.qNorm = vecParam(pre+"self_attn.q_norm.weight", &ly.QNorm, false)
		lp.kNorm = vecParam(pre+"self_attn.k_norm.weight", &ly.KNorm, false)
		lp.mlpNorm = vecParam(pre+"post_attention_layernorm.weight", &ly.MLPNorm, false)
	}
	n.norm = vecParam("model.norm.weight", &m.Norm, false)
	if !tied && want("lm_head.weight") {
		if n.head, err = matParam("lm_head.weight", &m.LMHead); err != nil {
			return nil, err
		}
	}
	if a := o.Adapter; a != nil {
		if err := a.Check(m); err != nil {
			return nil, fmt.Errorf("train: %v", err)
		}
		r := a.Config.Rank
		for _, pr := range a.All() {
			pr := pr
			lp := &n.layers[pr.Layer]
			lp.loraA[pr.Proj] = &Param{Name: lora.TensorName(pr.Layer, pr.Proj, "A"), Shape: []int{r, pr.In}, Data: pr.A,
				Grad: make([]float32, len(pr.A)), Decay: true, invalidate: pr.Invalidate}
			lp.loraB[pr.Proj] = &Param{Name: lora.TensorName(pr.Layer, pr.Proj, "B"), Shape: []int{pr.Out, r}, Data: pr.B,
				Grad: make([]float32, len(pr.B)), Decay: true, invalidate: pr.Invalidate}
			n.params = append(n.params, lp.loraA[pr.Proj], lp.loraB[pr.Proj])
		}
	}
	n.FFNMask = make([][]float32, c.Layers)
	n.FFNMaskGrad = make([][]float32, c.Layers)
	return n, nil
}

// Params returns the trainable parameters (master weights and gradients),
// in a fixed order: embeddings, layer by layer, final norm, head, then the
// LoRA matrices.
func (n *Net) Params() []*Param { return n.params }

// Param returns the trainable parameter with the given name, or nil.
func (n *Net) Param(name string) *Param {
	for _, p := range n.params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// NumTrainable counts the trainable parameters.
func (n *Net) NumTrainable() int64 {
	var s int64
	for _, p := range n.params {
		s += int64(len(p.Data))
	}
	return s
}

// ZeroGrad clears every parameter gradient and the FFN-mask gradients.
func (n *Net) ZeroGrad() {
	for _, p := range n.params {
		clear(p.Grad)
	}
	for _, g := range n.FFNMaskGrad {
		clear(g)
	}
}

// InputGradOf returns the rows of InputGrad that belong to sequence i of the
// last backward pass ([len(Tokens)·Hidden]).
func (n *Net) InputGradOf(i int) []float32 {
	if n.InputGrad == nil || i < 0 || i+1 >= len(n.inputRows) {
		return nil
	}
	H := n.cfg.Hidden
	return n.InputGrad[n.inputRows[i]*H : n.inputRows[i+1]*H]
}

// Changed tells the net that every trainable tensor may have been modified
// (after loading weights into Data, for instance).
func (n *Net) Changed() {
	for _, p := range n.params {
		p.Changed()
	}
}
