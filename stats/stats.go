// Package stats collects activation statistics of a model's linear layers
// over a calibration set: for the input of every projection (q, k, v, o,
// gate, up, down of every decoder block), the L2 norm of each input channel
// over each sample's tokens (kept per sample, so that means and variances
// across samples are available), the token-pooled mean and variance of the
// raw activations, and optionally the Gram matrix XᵀX (for SparseGPT).
//
// q, k and v read the same input (the normalised residual stream), and so
// do gate and up; their statistics are collected once and shared, so Stats
// holds four inputs per block (attn_in, o_in, mlp_in, down_in).
//
// Statistics are saved as a safetensors file plus a JSON manifest that
// records the model fingerprint (model.Model.Fingerprint), the calibration set and
// the sample and token counts, and can be loaded back.
package stats

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
)

// Input names one of the four distinct linear-layer inputs of a block.
type Input int

// The inputs of a decoder block.
const (
	AttnIn    Input = iota // input of q, k and v: RMSNorm(residual)
	OIn                    // input of o: the attention output
	MLPIn                  // input of gate and up: RMSNorm(residual)
	DownIn                 // input of down: silu(gate)·up
	NumInputs              // number of inputs
)

var inputNames = [NumInputs]string{"attn_in", "o_in", "mlp_in", "down_in"}

// String returns attn_in, o_in, mlp_in or down_in.
func (i Input) String() string {
	if i >= 0 && i < NumInputs {
		return inputNames[i]
	}
	return fmt.Sprintf("input(%d)", int(i))
}

// ParseInput parses a name printed by Input.String.
func ParseInput(s string) (Input, error) {
	for i, n := range inputNames {
		if n == s {
			return Input(i), nil
		}
	}
	return 0, fmt.Errorf("unknown input %q (want attn_in, o_in, mlp_in or down_in)", s)
}

// InputOf returns the input projection p reads.
func InputOf(p model.Proj) Input {
	switch p {
	case model.ProjQ, model.ProjK, model.ProjV:
		return AttnIn
	case model.ProjO:
		return OIn
	case model.ProjGate, model.ProjUp:
		return MLPIn
	}
	return DownIn
}

// InputDims returns the width of each input for a model configuration.
func InputDims(c *model.Config) [NumInputs]int {
	return [NumInputs]int{c.Hidden, c.QDim(), c.Hidden, c.Intermediate}
}

// Channel holds the statistics of one linear-layer input of width Dim.
type Channel struct {
	Dim     int
	Samples int       // number of samples seen
	Norms   []float32 // [Samples × Dim]: ‖X_j‖₂ over each sample's tokens
	Sum     []float64 // [Dim]: Σ over all tokens of x_j
	SumSq   []float64 // [Dim]: Σ over all tokens of x_j²
	Tokens  int64     // number of tokens seen
	// Gram is XᵀX over all tokens ([Dim × Dim], row-major, symmetric), or
	// nil when it was not collected.
	Gram []float64

	cur     []float64 // Σ x² of the current sample
	curSum  []float64 // Σ x of the current sample
	gramUp  bool      // Gram holds only the upper triangle (while collecting)
	scratch []float64
}

func newChannel(dim int, gram bool) *Channel {
	c := &Channel{Dim: dim, Sum: make([]float64, dim), SumSq: make([]float64, dim), cur: make([]float64, dim), curSum: make([]float64, dim)}
	if gram {
		c.Gram = make([]float64, dim*dim)
		c.gramUp = true
	}
	return c
}

// Norm returns the per-channel norms of sample s (a view).
func (c *Channel) Norm(s int) []float32 { return c.Norms[s*c.Dim : (s+1)*c.Dim] }

// MeanNorm returns A[j], the mean over samples of the per-sample L2 norm of
// channel j (the activation statistic of Wanda-style scores).
func (c *Channel) MeanNorm() []float64 {
	out := make([]float64, c.Dim)
	if c.Samples == 0 {
		return out
	}
	for s := 0; s < c.Samples; s++ {
		for j, v := range c.Norm(s) {
			out[j] += float64(v)
		}
	}
	for j := range out {
		out[j] /= float64(c.Samples)
	}
	return out
}

// NormVar returns the variance over samples of the per-sample norms of each
// channel, with Bessel's correction (divided by Samples−1; 0 for fewer than
// two samples).
func (c *Channel) NormVar() []float64 {
	out := make([]float64, c.Dim)
	if c.Samples < 2 {
		return out
	}
	mu := c.MeanNorm()
	for s := 0; s < c.Samples; s++ {
		for j, v := range c.Norm(s) {
			d := float64(v) - mu[j]
			out[j] += d * d
		}
	}
	for j := range out {
		out[j] /= float64(c.Samples - 1)
	}
	return out
}

// Mean returns the mean of each channel's raw activation over all tokens.
func (c *Channel) Mean() []float64 {
	out := make([]float64, c.Dim)
	if c.Tokens == 0 {
		return out
	}
	for j, s := range c.Sum {
		out[j] = s / float64(c.Tokens)
	}
	return out
}

// Var returns the variance of each channel's raw activation over all tokens
// (population variance: divided by the token count).
func (c *Channel) Var() []float64 {
	out := make([]float64, c.Dim)
	if c.Tokens == 0 {
		return out
	}
	n := float64(c.Tokens)
	for j := range out {
		m := c.Sum[j] / n
		out[j] = max(c.SumSq[j]/n-m*m, 0)
	}
	return out
}

// add accumulates rows×Dim activations of the current sample.
func (c *Channel) add(k kernels.Kernels, x []float32, rows int, workers int) {
	d := c.Dim
	cur, cs := c.cur, c.curSum
	for t := 0; t < rows; t++ {
		row := x[t*d : (t+1)*d]
		cur := cur[:len(row)]
		cs := cs[:len(row)]
		for j, v := range row {
			f := float64(v)
			cs[j] += f
			cur[j] += f * f
		}
	}
	c.Tokens += int64(rows)
	if c.Gram != nil {
		c.addGram(k, x, rows, workers)
	}
}

// addGram accumulates the upper triangle of XᵀX in float64
// (kernels.AddGram: the same bits on every CPU), its rows split between
// workers in parts of equal area.
func (c *Channel) addGram(k kernels.Kernels, x []float32, rows, workers int) {
	d := c.Dim
	if cap(c.scratch) < rows*d {
		c.scratch = make([]float64, rows*d)
	}
	X := c.scratch[:rows*d]
	for i, v := range x[:rows*d] {
		X[i] = float64(v)
	}
	if workers <= 1 || d < 64 {
		kernels.AddGram(k, c.Gram, X, rows, d, 0, d)
		return
	}
	// Row i has d−i entries: part w ends where the rows before it hold
	// (w+1)/workers of the triangle.
	bound := func(w int) int {
		if w >= workers {
			return d
		}
		f := float64(w) / float64(workers)
		return min(d, int(float64(d)*(1-math.Sqrt(1-f))))
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := bound(w), bound(w+1)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			kernels.AddGram(k, c.Gram, X, rows, d, lo, hi)
		}()
	}
	wg.Wait()
}

// endSample turns the current sample's sums into its norm row.
func (c *Channel) endSample() {
	for j, v := range c.cur {
		c.Norms = append(c.Norms, float32(math.Sqrt(v)))
		c.SumSq[j] += v
		c.Sum[j] += c.curSum[j]
	}
	clear(c.cur)
	clear(c.curSum)
	c.Samples++
}

// finish mirrors the Gram's upper triangle into the lower one.
func (c *Channel) finish() {
	if c.Gram == nil || !c.gramUp {
		return
	}
	d := c.Dim
	for i := 0; i < d; i++ {
		for j := i + 1; j < d; j++ {
			c.Gram[j*d+i] = c.Gram[i*d+j]
		}
	}
	c.gramUp = false
	c.scratch = nil
}

// Stats is the collected statistics of a model over a calibration set.
type Stats struct {
	Manifest Manifest
	// In holds, per decoder block, the statistics of each input (nil for an
	// input that was not collected).
	In [][NumInputs]*Channel
}

// Channel returns the statistics of the input of projection p in layer l
// (nil if not collected).
func (s *Stats) Channel(l int, p model.Proj) *Channel {
	if l < 0 || l >= len(s.In) {
		return nil
	}
	return s.In[l][InputOf(p)]
}

// Options tune a Collector.
type Options struct {
	// Inputs selects the inputs to collect; the zero value collects all four.
	Inputs [NumInputs]bool
	// Gram, if set, says for which layer inputs to accumulate XᵀX. Gram
	// matrices take Dim²·8 bytes each; collect them a few layers at a time
	// for large models.
	Gram func(layer int, in Input) bool
	// Layer, if set, restricts collection to the layers it accepts.
	Layer func(layer int) bool
	// Workers is the number of goroutines for Gram accumulation (≤ 0:
	// GOMAXPROCS).
	Workers int
}

// Collector accumulates statistics from forward passes through its Hooks.
// Feed each calibration sample between BeginSample and EndSample (one or
// several forward passes over a cache), or use AddSample. A Collector is not
// safe for concurrent use.
type Collector struct {
	m        *model.Model
	opt      Options
	ch       [][NumInputs]*Channel
	inSample bool
	shared   [][NumInputs]*float32 // data pointer of the last q / gate input, to check sharing
	err      error
	hooks    *model.Hooks
	samples  int
	tokens   int64
	first    int // the layer whose q input counts the tokens: the first one collected
}

// NewCollector prepares to collect statistics of m.
func NewCollector(m *model.Model, o Options) *Collector {
	if o.Inputs == ([NumInputs]bool{}) {
		o.Inputs = [NumInputs]bool{true, true, true, true}
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	c := &Collector{m: m, opt: o, ch: make([][NumInputs]*Channel, m.Config.Layers), shared: make([][NumInputs]*float32, m.Config.Layers)}
	dims := InputDims(&m.Config)
	c.first = -1
	for l := range c.ch {
		if o.Layer != nil && !o.Layer(l) {
			continue
		}
		if c.first < 0 {
			c.first = l
		}
		for i := Input(0); i < NumInputs; i++ {
			if o.Inputs[i] {
				c.ch[l][i] = newChannel(dims[i], o.Gram != nil && o.Gram(l, i))
			}
		}
	}
	c.first = max(c.first, 0)
	c.hooks = &model.Hooks{LinearInput: c.linearInput}
	return c
}

// Hooks returns the hooks to pass to model.ForwardHooks.
func (c *Collector) Hooks() *model.Hooks { return c.hooks }

func (c *Collector) linearInput(l int, p model.Proj, x []float32, rows, cols int) {
	if c.err != nil {
		return
	}
	if !c.inSample {
		c.err = fmt.Errorf("stats: forward pass outside BeginSample/EndSample")
		return
	}
	in := InputOf(p)
	if rows > 0 && len(x) > 0 {
		ptr := &x[0]
		switch p {
		case model.ProjQ, model.ProjGate:
			c.shared[l][in] = ptr
		case model.ProjK, model.ProjV, model.ProjUp:
			// These read the same activations as q (or gate); check it.
			if c.shared[l][in] != ptr {
				c.err = fmt.Errorf("stats: layer %d %s does not share its input with %s; cannot collect shared statistics", l, p, map[Input]string{AttnIn: "q", MLPIn: "gate"}[in])
			}
			return
		}
	}
	if l == c.first && p == model.ProjQ {
		c.tokens += int64(rows)
	}
	ch := c.ch[l][in]
	if ch == nil {
		return
	}
	if cols != ch.Dim {
		c.err = fmt.Errorf("stats: layer %d %s input has %d channels, want %d", l, p, cols, ch.Dim)
		return
	}
	ch.add(c.m.K, x, rows, c.opt.Workers)
}

// BeginSample starts a calibration sample.
func (c *Collector) BeginSample() { c.inSample = true }

// EndSample closes the current sample: its per-channel norms are recorded.
func (c *Collector) EndSample() {
	if !c.inSample {
		return
	}
	c.inSample = false
	for l := range c.ch {
		for _, ch := range c.ch[l] {
			if ch != nil {
				ch.endSample()
			}
		}
	}
	c.samples++
}

// Err returns the first error met by the hooks.
func (c *Collector) Err() error { return c.err }

// AddSample runs one forward pass over tokens (a whole sample) on a fresh
// cache and records its statistics.
func (c *Collector) AddSample(tokens []int) error {
	if len(tokens) == 0 {
		return fmt.Errorf("stats: empty sample")
	}
	c.BeginSample()
	_, err := c.m.ForwardHooks(c.m.NewCache(len(tokens)), tokens, false, c.hooks)
	if err != nil {
		c.inSample = false
		return err
	}
	c.EndSample()
	return c.err
}

// Samples returns the number of samples recorded.
func (c *Collector) Samples() int { return c.samples }

// Tokens returns the number of tokens recorded.
func (c *Collector) Tokens() int64 { return c.tokens }

// Stats finishes collection and returns the statistics; man is completed
// with the counts, layer count, input widths and the model fingerprint
// fields the caller left empty. The Collector must not be used afterwards.
func (c *Collector) Stats(man Manifest) *Stats {
	for l := range c.ch {
		for _, ch := range c.ch[l] {
			if ch != nil {
				ch.finish()
			}
		}
	}
	man.Samples = c.samples
	man.Tokens = c.tokens
	man.Layers = c.m.Config.Layers
	man.fill(c.m, c.ch)
	return &Stats{Manifest: man, In: c.ch}
}

// Collect runs every sample (token ids, already truncated) through m on a
// fresh cache and returns the statistics, with calib recorded in the
// manifest. progress, if set, is called after each sample. It stops with
// ctx's error when ctx is cancelled between samples.
func Collect(ctx context.Context, m *model.Model, samples [][]int, rec calib.Record, o Options, progress func(done, total int)) (*Stats, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("stats: no calibration samples")
	}
	col := NewCollector(m, o)
	for i, s := range samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := col.AddSample(s); err != nil {
			return nil, fmt.Errorf("stats: calibration sample %d: %w", i+1, err)
		}
		if progress != nil {
			progress(i+1, len(samples))
		}
	}
	return col.Stats(Manifest{Calibration: rec}), nil
}

// ParseLayers parses a set of layers of a model with n layers: "" or "all"
// (every layer), or a comma-separated list of layers and ranges such as
// 0-3,7.
func ParseLayers(s string, n int) (map[int]bool, error) {
	out := map[int]bool{}
	if s == "" || s == "all" {
		for l := 0; l < n; l++ {
			out[l] = true
		}
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		lo, err := strconv.Atoi(a)
		hi := lo
		if err == nil && isRange {
			hi, err = strconv.Atoi(b)
		}
		if err != nil || lo < 0 || hi < lo || hi >= n {
			return nil, fmt.Errorf("bad layer range %q (the model has layers 0-%d)", part, n-1)
		}
		for l := lo; l <= hi; l++ {
			out[l] = true
		}
	}
	return out, nil
}
