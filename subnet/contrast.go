package subnet

import (
	"fmt"
	"math"
	"strings"

	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
)

// Variant selects the contrastive scoring.
type Variant string

// The contrastive variants (METHODS §2).
const (
	// VariantNorms: z_j = (μ+_j − μ−_j)/sqrt(v+_j + v−_j + 1e-6) from the
	// per-sample channel norms; S+ = |W|·φ(z), S− = |W|·φ(−z); top-k per
	// row on each side.
	VariantNorms Variant = "wanda"
	// VariantPooled: score_j = |μ+_j − μ−_j|/sqrt(v+_j + v−_j + 1e-6) from
	// the token-pooled mean and variance of the raw activations; p+ keeps
	// the top-k per row of |W|·score, p− the next k (the top-k of the rest).
	VariantPooled Variant = "pooled"
)

// ParseVariant parses wanda (alias: norms) or pooled.
func ParseVariant(s string) (Variant, error) {
	switch strings.ToLower(s) {
	case "", "wanda", "norms":
		return VariantNorms, nil
	case "pooled":
		return VariantPooled, nil
	}
	return "", fmt.Errorf("unknown contrastive variant %q (want wanda or pooled)", s)
}

// Phi is the function applied to the z-scores of VariantNorms.
type Phi string

// The φ functions.
const (
	ReLU     Phi = "relu"     // max(z, 0)
	Softplus Phi = "softplus" // softplus(z/2) = ln(1 + e^(z/2))
)

// ParsePhi parses relu or softplus.
func ParsePhi(s string) (Phi, error) {
	switch strings.ToLower(s) {
	case "", "relu":
		return ReLU, nil
	case "softplus":
		return Softplus, nil
	}
	return "", fmt.Errorf("unknown φ %q (want relu or softplus)", s)
}

// ContrastOptions control Contrast. Options.Method is ignored.
type ContrastOptions struct {
	Options
	Variant Variant
	Phi     Phi
}

// contrastEps is the 1e-6 under the square root of the z-score.
const contrastEps = 1e-6

// ZScores returns z_j = (μ+_j − μ−_j)/sqrt(v+_j + v−_j + 1e-6) from the
// per-sample norms of two channels' statistics.
func ZScores(pos, neg *stats.Channel) []float64 {
	mp, mn := pos.MeanNorm(), neg.MeanNorm()
	vp, vn := pos.NormVar(), neg.NormVar()
	z := make([]float64, pos.Dim)
	for j := range z {
		z[j] = (mp[j] - mn[j]) / math.Sqrt(vp[j]+vn[j]+contrastEps)
	}
	return z
}

// PooledScores returns |μ+_j − μ−_j|/sqrt(v+_j + v−_j + 1e-6) from the
// token-pooled mean and variance of the raw activations.
func PooledScores(pos, neg *stats.Channel) []float64 {
	mp, mn := pos.Mean(), neg.Mean()
	vp, vn := pos.Var(), neg.Var()
	s := make([]float64, pos.Dim)
	for j := range s {
		s[j] = math.Abs(mp[j]-mn[j]) / math.Sqrt(vp[j]+vn[j]+contrastEps)
	}
	return s
}

// pairScorer scores a row as |W_ij|·f[j], ties broken by |W_ij|·g[j].
type pairScorer struct{ f, g []float64 }

func (s pairScorer) score(w []float32, p, sec []float64) bool {
	for j, x := range w {
		a := math.Abs(float64(x))
		p[j] = a * s.f[j]
		sec[j] = a * s.g[j]
	}
	return true
}

// Contrast builds the masks of an opposing persona pair p+ (statistics pos)
// and p− (neg), e.g. extrovert/introvert.
//
// VariantNorms with φ = ReLU keeps, in every row, the top k of
// S+ = |W|·ReLU(z) for p+ (and of |W|·ReLU(−z) for p−). ReLU leaves many
// scores at 0; masque breaks those ties in the order that follows from the
// scores themselves: channels with no contrastive evidence (z = 0) before
// channels that drive the opposite persona (ranked by how little they do,
// i.e. by −S−), and among equal scores by the Wanda score |W|·Ā of the
// averaged statistics Ā = (μ+ + μ−)/2. Equivalently, entries are ranked by
// |W|·z, then |W|·Ā. Consequence: when the two calibration sets differ only
// in some channels, and as many of them favour each side, the two masks
// differ exactly in those channels. With φ = softplus(·/2) the scores are
// strictly positive and ties fall back to |W|·Ā only.
//
// VariantPooled keeps the top k of |W|·score for p+ and the next k for p−
// (when 2k exceeds the row, p− gets only the rest: it is sparser).
//
// N:M patterns and structured FFN channels apply per group and per
// channel the same way.
func Contrast(m *model.Model, pos, neg *stats.Stats, o ContrastOptions) (posMask, negMask *mask.Mask, err error) {
	if err := o.validate(&m.Config); err != nil {
		return nil, nil, err
	}
	if pos == nil || neg == nil {
		return nil, nil, fmt.Errorf("subnet: contrastive masks need statistics of both personas")
	}
	if err := pos.Check(m); err != nil {
		return nil, nil, fmt.Errorf("positive persona: %w", err)
	}
	if err := neg.Check(m); err != nil {
		return nil, nil, fmt.Errorf("negative persona: %w", err)
	}
	if o.Variant == "" {
		o.Variant = VariantNorms
	}
	if o.Phi == "" {
		o.Phi = ReLU
	}
	if o.Variant == VariantNorms && (pos.Manifest.Samples < 2 || neg.Manifest.Samples < 2) {
		return nil, nil, fmt.Errorf("subnet: the z-score needs at least 2 samples per persona (have %d and %d)", pos.Manifest.Samples, neg.Manifest.Samples)
	}
	channels := func(l int, p model.Proj) (*stats.Channel, *stats.Channel, error) {
		a, b := pos.Channel(l, p), neg.Channel(l, p)
		if a == nil || b == nil {
			return nil, nil, fmt.Errorf("subnet: the statistics lack layer %d %s input (%s)", l, p, stats.InputOf(p))
		}
		return a, b, nil
	}
	type cacheKey struct {
		l  int
		in stats.Input
	}
	cache := map[cacheKey][2]pairScorer{}
	sides := func(l int, p model.Proj) ([2]pairScorer, error) {
		ck := cacheKey{l, stats.InputOf(p)}
		if s, ok := cache[ck]; ok {
			return s, nil
		}
		a, b, err := channels(l, p)
		if err != nil {
			return [2]pairScorer{}, err
		}
		ma, mb := a.MeanNorm(), b.MeanNorm()
		avg := make([]float64, a.Dim)
		for j := range avg {
			avg[j] = (ma[j] + mb[j]) / 2
		}
		var s [2]pairScorer
		switch o.Variant {
		case VariantPooled:
			sc := PooledScores(a, b)
			s = [2]pairScorer{{sc, avg}, {sc, avg}}
		default:
			z := ZScores(a, b)
			fp, fn := make([]float64, len(z)), make([]float64, len(z))
			for j, v := range z {
				if o.Phi == Softplus {
					fp[j], fn[j] = softplus(v/2), softplus(-v/2)
				} else { // ReLU with the tie-breaking order: rank by z
					fp[j], fn[j] = v, -v
				}
			}
			s = [2]pairScorer{{fp, avg}, {fn, avg}}
		}
		cache[ck] = s
		return s, nil
	}
	method := "contrast-" + string(o.Variant)
	if o.Variant == VariantNorms {
		method = "contrast-wanda"
	}
	var out [2]*mask.Mask
	for side := 0; side < 2; side++ {
		mk := newMask(m, &o.Options, Method(method))
		if mk.Info.Extra == nil {
			mk.Info.Extra = map[string]string{}
		}
		mk.Info.Extra["side"] = [2]string{"pos", "neg"}[side]
		mk.Info.Extra["variant"] = string(o.Variant)
		if o.Variant == VariantNorms {
			mk.Info.Extra["phi"] = string(o.Phi)
		}
		mk.Info.Calibration = "pos: " + calibString(pos) + "; neg: " + calibString(neg)
		scorer := func(l int, p model.Proj) (colScorer, error) {
			s, err := sides(l, p)
			if err != nil {
				return nil, err
			}
			if o.Variant == VariantPooled {
				return s[0], nil
			}
			return s[side], nil
		}
		offset := 0
		if o.Variant == VariantPooled {
			offset = side
		}
		opt := o.Options
		if opt.Progress != nil {
			base, prog := side, opt.Progress
			opt.Progress = func(done, total int) { prog(base*total+done, 2*total) }
		}
		if err := buildMasks(m, mk, &opt, scorer, offset); err != nil {
			return nil, nil, err
		}
		out[side] = mk
	}
	return out[0], out[1], nil
}

func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}
