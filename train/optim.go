package train

import (
	"fmt"
	"math"
	"runtime"
	"strings"

	"github.com/masque-ai/masque/safetensors"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), as
// PyTorch's torch.optim.AdamW computes it:
//
//	p ← p − lr·wd·p            (only for parameters with Decay)
//	m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//	p ← p − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// Steps is the number of updates made so far (t of the bias correction).
	Steps int64

	params []*Param
	m, v   [][]float32
}

// NewAdamW makes an optimiser for params with PyTorch's defaults for any
// zero field of the result: β1 0.9, β2 0.999, ε 1e-8 (weight decay stays as
// given).
func NewAdamW(params []*Param, beta1, beta2, eps, weightDecay float64) *AdamW {
	if beta1 == 0 {
		beta1 = 0.9
	}
	if beta2 == 0 {
		beta2 = 0.999
	}
	if eps == 0 {
		eps = 1e-8
	}
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay, params: params}
	for _, p := range params {
		o.m = append(o.m, make([]float32, len(p.Data)))
		o.v = append(o.v, make([]float32, len(p.Data)))
	}
	return o
}

// Update applies one step with learning rate lr, using the gradients in
// each Param.Grad, and tells each parameter it changed.
func (o *AdamW) Update(lr float64) {
	o.Steps++
	t := float64(o.Steps)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2 := 1 - math.Pow(o.Beta2, t)
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	stepSize := float32(lr / bc1)
	invBC2 := float32(1 / math.Sqrt(bc2))
	eps := float32(o.Eps)
	for i, p := range o.params {
		m, v := o.m[i], o.v[i]
		decay := float32(1)
		if p.Decay && o.WeightDecay != 0 {
			decay = float32(1 - lr*o.WeightDecay)
		}
		parRows(runtime.GOMAXPROCS(0), len(p.Data), 1, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				g := p.Grad[j]
				m[j] = b1*m[j] + (1-b1)*g
				v[j] = b2*v[j] + (1-b2)*g*g
				denom := float32(math.Sqrt(float64(v[j])))*invBC2 + eps
				p.Data[j] = p.Data[j]*decay - stepSize*m[j]/denom
			}
		})
		p.Changed()
	}
}

// GradNorm returns the global L2 norm of the gradients of params.
func GradNorm(params []*Param) float64 {
	var s float64
	for _, p := range params {
		for _, g := range p.Grad {
			s += float64(g) * float64(g)
		}
	}
	return math.Sqrt(s)
}

// ClipGradNorm scales all gradients so that their global L2 norm is at most
// maxNorm (no-op for maxNorm ≤ 0) and returns the norm before clipping.
func ClipGradNorm(params []*Param, maxNorm float64) float64 {
	norm := GradNorm(params)
	if maxNorm > 0 && norm > maxNorm {
		s := float32(maxNorm / (norm + 1e-6))
		for _, p := range params {
			scaleBy(p.Grad, s)
		}
	}
	return norm
}

// Schedule is a learning-rate schedule with linear warm-up.
type Schedule struct {
	// Kind is "constant", "linear" (decay to MinRatio·LR) or "cosine"
	// (half cosine down to MinRatio·LR): the decay starts at the peak on
	// the first step after the warm-up and reaches MinRatio·LR exactly on
	// the last step of the run (0-based step Total−1).
	Kind string
	// Warmup steps ramp the rate linearly: step s (0-based) uses
	// LR·(s+1)/Warmup.
	Warmup int
	// Total is the number of optimiser steps of the run.
	Total int
	// MinRatio is the final rate as a fraction of LR (linear, cosine).
	MinRatio float64
}

// ParseSchedule checks a schedule kind name.
func ParseSchedule(kind string) (string, error) {
	switch k := strings.ToLower(kind); k {
	case "constant", "linear", "cosine":
		return k, nil
	case "":
		return "constant", nil
	}
	return "", fmt.Errorf("unknown learning-rate schedule %q (want constant, linear or cosine)", kind)
}

// LR returns the learning rate of 0-based step for base rate lr.
func (s Schedule) LR(lr float64, step int) float64 {
	if s.Warmup > 0 && step < s.Warmup {
		return lr * float64(step+1) / float64(s.Warmup)
	}
	decay := s.Total - s.Warmup // steps after the warm-up
	if decay <= 1 {
		return lr
	}
	prog := float64(step-s.Warmup) / float64(decay-1)
	if prog >= 1 && (s.Kind == "linear" || s.Kind == "cosine") {
		return lr * s.MinRatio // exactly the final rate (1−(1−r) need not be r in floating point)
	}
	prog = math.Max(0, prog)
	switch s.Kind {
	case "linear":
		return lr * (1 - (1-s.MinRatio)*prog)
	case "cosine":
		return lr * (s.MinRatio + (1-s.MinRatio)*0.5*(1+math.Cos(math.Pi*prog)))
	}
	return lr
}

// StateTensors returns the optimiser moments as safetensors tensors
// ("adam_m.{name}", "adam_v.{name}").
func (o *AdamW) StateTensors() []safetensors.WriteTensor {
	var out []safetensors.WriteTensor
	for i, p := range o.params {
		out = append(out,
			safetensors.WriteTensor{Name: "adam_m." + p.Name, DType: "F32", Shape: p.Shape, Data: safetensors.F32Bytes(o.m[i])},
			safetensors.WriteTensor{Name: "adam_v." + p.Name, DType: "F32", Shape: p.Shape, Data: safetensors.F32Bytes(o.v[i])})
	}
	return out
}

// LoadState restores the moments from a file written with StateTensors.
func (o *AdamW) LoadState(f *safetensors.File) error {
	for i, p := range o.params {
		for _, which := range []struct {
			prefix string
			dst    []float32
		}{{"adam_m.", o.m[i]}, {"adam_v.", o.v[i]}} {
			t, ok := f.Tensor(which.prefix + p.Name)
			if !ok {
				return fmt.Errorf("%s: optimiser state for %s is missing", f.Path(), p.Name)
			}
			v, err := t.Float32s()
			if err != nil {
				return err
			}
			if len(v) != len(which.dst) {
				return fmt.Errorf("%s: optimiser state for %s has %d values, want %d", f.Path(), p.Name, len(v), len(which.dst))
			}
			copy(which.dst, v)
		}
	}
	return nil
}
