package hfsave

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
)

// SaveLlama2C writes m as a llama2.c checkpoint (the legacy version-0
// format model.LoadLlama2C reads: a 7×int32 header, then float32 arrays),
// atomically. Only models llama2.c can express are accepted: no biases, no
// q/k norm, default RoPE with θ = 10000, no sliding window, head_dim =
// hidden/heads. The q and k rows are permuted back from the rotate-half
// layout to llama2.c's interleaved one.
func SaveLlama2C(m *model.Model, path string) error {
	c := &m.Config
	switch {
	case c.AttnQKVBias || c.AttnOBias || c.MLPBias:
		return fmt.Errorf("saving %s: llama2.c checkpoints have no biases", path)
	case c.QKNorm:
		return fmt.Errorf("saving %s: llama2.c checkpoints have no q/k norm", path)
	case c.RopeTheta != 10000 || (c.Rope.Type != "" && c.Rope.Type != "default") || len(c.Rope.FreqFactors) > 0:
		return fmt.Errorf("saving %s: llama2.c checkpoints need default RoPE with theta 10000", path)
	case c.SlidingWindow > 0:
		return fmt.Errorf("saving %s: llama2.c checkpoints have no sliding window", path)
	case c.HeadDim*c.Heads != c.Hidden:
		return fmt.Errorf("saving %s: llama2.c checkpoints need head_dim = hidden/heads", path)
	}
	seq := c.MaxSeq
	if seq <= 0 {
		seq = 2048
	}
	shared := m.LMHead == m.Embed
	vocab := int32(c.Vocab)
	if !shared {
		vocab = -vocab
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		for _, v := range []int32{int32(c.Hidden), int32(c.Intermediate), int32(c.Layers), int32(c.Heads), int32(c.KVHeads), vocab, int32(seq)} {
			binary.Write(bw, binary.LittleEndian, v)
		}
		var buf [4]byte
		put := func(v []float32) {
			for _, x := range v {
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(x))
				bw.Write(buf[:])
			}
		}
		perLayer := func(f func(ly *model.Layer) []float32) {
			for l := range m.Layers {
				put(f(&m.Layers[l]))
			}
		}
		mat := func(w *kernels.Matrix) []float32 { return w.Float32s() }
		put(mat(m.Embed))
		perLayer(func(ly *model.Layer) []float32 { return ly.AttnNorm })
		perLayer(func(ly *model.Layer) []float32 { return unpermuteRope(mat(ly.Q), c.Heads, c.HeadDim, c.Hidden) })
		perLayer(func(ly *model.Layer) []float32 { return unpermuteRope(mat(ly.K), c.KVHeads, c.HeadDim, c.Hidden) })
		perLayer(func(ly *model.Layer) []float32 { return mat(ly.V) })
		perLayer(func(ly *model.Layer) []float32 { return mat(ly.O) })
		perLayer(func(ly *model.Layer) []float32 { return ly.MLPNorm })
		perLayer(func(ly *model.Layer) []float32 { return mat(ly.Gate) })
		perLayer(func(ly *model.Layer) []float32 { return mat(ly.Down) })
		perLayer(func(ly *model.Layer) []float32 { return mat(ly.Up) })
		put(m.Norm)
		// Legacy freq_cis_real and freq_cis_imag tables [seq][head_dim/2].
		half := c.HeadDim / 2
		re, im := make([]float32, seq*half), make([]float32, seq*half)
		for p := 0; p < seq; p++ {
			for i := 0; i < half; i++ {
				// As llama2.c computed them, in float32.
				f := float32(p) * float32(1/math.Pow(10000, float64(float32(2*i)/float32(c.HeadDim))))
				re[p*half+i], im[p*half+i] = float32(math.Cos(float64(f))), float32(math.Sin(float64(f)))
			}
		}
		put(re)
		put(im)
		if !shared {
			put(mat(m.LMHead))
		}
		return bw.Flush()
	})
}

// unpermuteRope undoes model's permuteRope: row h·D+i goes back to h·D+2i
// and row h·D+D/2+i to h·D+2i+1.
func unpermuteRope(w []float32, heads, D, cols int) []float32 {
	out := make([]float32, len(w))
	half := D / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			copy(out[(h*D+2*i)*cols:(h*D+2*i+1)*cols], w[(h*D+i)*cols:])
			copy(out[(h*D+2*i+1)*cols:(h*D+2*i+2)*cols], w[(h*D+half+i)*cols:])
		}
	}
	return out
}
