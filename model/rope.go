package model

import "math"

// ropeTable holds the inverse frequencies of rotary position embeddings, in
// the rotate-half convention of Hugging Face (dimension i pairs with i+D/2).
type ropeTable struct {
	invFreq []float64 // [HeadDim/2]
}

func newRopeTable(c *Config) *ropeTable {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		// As in Hugging Face: computed in float32.
		e := float32(2*i) / float32(c.HeadDim)
		f := float32(1 / math.Pow(c.RopeTheta, float64(e)))
		inv[i] = float64(f)
	}
	switch c.Rope.Type {
	case "linear":
		for i := range inv {
			inv[i] = float64(float32(inv[i] / c.Rope.Factor))
		}
	case "llama3":
		r := c.Rope
		orig := float64(r.OriginalMaxPositions)
		lowWav := orig / r.LowFreqFactor
		highWav := orig / r.HighFreqFactor
		for i, f := range inv {
			f32 := float32(f)
			wav := 2 * math.Pi / float64(f32)
			var out float32
			switch {
			case wav < highWav:
				out = f32
			case wav > lowWav:
				out = f32 / float32(r.Factor)
			default:
				smooth := float32((orig/wav - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor))
				out = (1-smooth)*f32/float32(r.Factor) + smooth*f32
			}
			inv[i] = float64(out)
		}
	}
	for i, f := range c.Rope.FreqFactors {
		inv[i] = float64(float32(inv[i]) / f)
	}
	return &ropeTable{invFreq: inv}
}

// cosSin fills cos and sin ([len(invFreq)] each) for position pos.
func (r *ropeTable) cosSin(pos int, cos, sin []float32) {
	for i, f := range r.invFreq {
		s, c := math.Sincos(float64(pos) * f)
		cos[i], sin[i] = float32(c), float32(s)
	}
}

// applyRope rotates nHeads consecutive heads of x (each headDim long) in place.
func applyRope(x []float32, nHeads, headDim int, cos, sin []float32) {
	half := headDim / 2
	for h := 0; h < nHeads; h++ {
		v := x[h*headDim : (h+1)*headDim]
		for i := 0; i < half; i++ {
			a, b := v[i], v[i+half]
			v[i] = a*cos[i] - b*sin[i]
			v[i+half] = b*cos[i] + a*sin[i]
		}
	}
}
