package train

import (
	"math/rand/v2"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
)

// randomModel builds a Llama model with N(0, std²) weights and unit norms.
func randomModel(t testing.TB, cfg model.Config, seed uint64) *model.Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	mat := func(r, c int, std float64) *kernels.Matrix {
		v := make([]float32, r*c)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * std)
		}
		return kernels.FromF32(r, c, v)
	}
	vec := func(n int, base, jitter float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(base + jitter*(2*rng.Float64()-1))
		}
		return v
	}
	H, qd, kvd, ff := cfg.Hidden, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	layers := make([]model.Layer, cfg.Layers)
	for l := range layers {
		ly := &layers[l]
		ly.AttnNorm, ly.MLPNorm = vec(H, 1, 0.1), vec(H, 1, 0.1)
		ly.Q, ly.K, ly.V, ly.O = mat(qd, H, 0.1), mat(kvd, H, 0.1), mat(kvd, H, 0.05), mat(H, qd, 0.05)
		ly.Gate, ly.Up, ly.Down = mat(ff, H, 0.05), mat(ff, H, 0.05), mat(H, ff, 0.05)
		if cfg.AttnQKVBias {
			ly.QBias, ly.KBias, ly.VBias = vec(qd, 0, 0.05), vec(kvd, 0, 0.05), vec(kvd, 0, 0.05)
		}
		if cfg.AttnOBias {
			ly.OBias = vec(H, 0, 0.05)
		}
		if cfg.MLPBias {
			ly.GateBias, ly.UpBias, ly.DownBias = vec(ff, 0, 0.05), vec(ff, 0, 0.05), vec(H, 0, 0.05)
		}
		if cfg.QKNorm {
			ly.QNorm, ly.KNorm = vec(cfg.HeadDim, 1, 0.1), vec(cfg.HeadDim, 1, 0.1)
		}
	}
	embed := mat(cfg.Vocab, H, 0.5)
	var head *kernels.Matrix
	if !cfg.Tied {
		head = mat(cfg.Vocab, H, 0.05)
	}
	m, err := model.New(cfg, embed, layers, vec(H, 1, 0.1), head)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// benchConfig is the ~20M-parameter Llama of the training benchmark.
func benchConfig() model.Config {
	return model.Config{Arch: "LlamaForCausalLM", ModelType: "llama", Hidden: 512, Intermediate: 1376, Layers: 8, Heads: 8, KVHeads: 8,
		HeadDim: 64, Vocab: 8192, MaxSeq: 2048, NormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: []int{2}}
}

// BenchmarkTrainStep times one forward+backward pass (all parameters
// trainable, F32) over a 256-token sequence of the ~20M-parameter Llama
// (hidden 512, 8 layers, 8 heads, vocabulary 8192, d_ff 1376) and reports
// tokens/s. Compare with train/bench/torch_bench.py (docs/BENCHMARKS.md).
func BenchmarkTrainStep(b *testing.B) {
	cfg := benchConfig()
	m := randomModel(b, cfg, 1)
	n, err := New(m, Options{Full: true})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	ids := make([]int, 257)
	for i := range ids {
		ids[i] = rng.IntN(cfg.Vocab)
	}
	seq := []Sequence{{Tokens: ids[:256], Targets: ids[1:]}}
	if _, err := n.ForwardBackward(seq, 0); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := n.ForwardBackward(seq, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(256*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func defaultKernels() kernels.Kernels { return kernels.Default() }
