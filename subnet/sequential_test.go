package subnet

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
)

// sequentialReference is SparseGPTSequential as it was before the model
// could be run a layer at a time (masque up to commit 9a868b4): for every
// layer l it builds a model of the first l+1 blocks (0..l−1 already pruned
// and updated) and runs every sample through it from the embeddings to
// collect block l's Gram matrices: L(L+1)/2 layer passes per sample. It is
// kept here, unchanged in substance, as the reference the layer-at-a-time
// implementation must match bit for bit.
func sequentialReference(m *model.Model, samples [][]int, o Options) (*Result, error) {
	o.Method = SparseGPT
	if err := o.validate(&m.Config); err != nil {
		return nil, err
	}
	mk := newMask(m, &o, SparseGPT)
	res := &Result{Mask: mk, Weights: mask.Weights{}}
	work := make([]model.Layer, len(m.Layers))
	copy(work, m.Layers)
	for l := 0; l < m.Config.Layers; l++ {
		var need [stats.NumInputs]bool
		for p := model.Proj(0); p < model.NumProj; p++ {
			if o.Targets.Has(p) {
				need[stats.InputOf(p)] = true
			}
		}
		cfg := m.Config
		cfg.Layers = l + 1
		view, err := model.New(cfg, m.Embed, work[:l+1], m.Norm, m.LMHead)
		if err != nil {
			return nil, err
		}
		view.K = m.K
		layer := l
		col := stats.NewCollector(view, stats.Options{Inputs: need, Workers: o.Workers,
			Layer: func(i int) bool { return i == layer },
			Gram:  func(i int, _ stats.Input) bool { return i == layer }})
		for _, s := range samples {
			if err := col.AddSample(s); err != nil {
				return nil, err
			}
		}
		st := col.Stats(stats.Manifest{ModelFingerprint: mk.Fingerprint})
		for p := model.Proj(0); p < model.NumProj; p++ {
			if !o.Targets.Has(p) {
				continue
			}
			k := mask.Key{Layer: l, Proj: p}
			if err := sparseGPTKey(m, k, st.Channel(l, p).Gram, &o, res); err != nil {
				return nil, err
			}
			work[l].SetWeight(p, kernels.FromF32(mk.Shapes[p][0], mk.Shapes[p][1], res.Weights[k]))
		}
	}
	return res, nil
}

// TestSparseGPTSequentialMatchesReference checks that the layer-at-a-time
// SparseGPTSequential gives bit-identical masks and updated weights to the
// reference (whole-prefix reruns), on a llama2.c model and on a Qwen2-shaped
// one (biases, grouped-query attention), all projections and a subset.
func TestSparseGPTSequentialMatchesReference(t *testing.T) {
	stories := loadStories(t)
	qwen, err := model.LoadHF("../testdata/hf-tiny/qwen2")
	if err != nil {
		t.Fatal(err)
	}
	defer qwen.Close()
	cases := []struct {
		name    string
		m       *model.Model
		samples [][]int
		o       Options
	}{
		{"stories260K all", stories, storiesSamples(t)[:4], Options{Sparsity: 0.5, Targets: AllLinear, Workers: 2}},
		{"qwen2 mlp 2:4", qwen, randomTokens(5, qwen.Config.Vocab, 11), Options{N: 2, M: 4, Targets: MLPOnly, Workers: 2}},
		{"qwen2 all", qwen, randomTokens(3, qwen.Config.Vocab, 12), Options{Sparsity: 0.6, Targets: AllLinear, Workers: 1}},
		{"qwen2 attn", qwen, randomTokens(3, qwen.Config.Vocab, 13), Options{Sparsity: 0.4, Targets: AttnOnly, Workers: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := sequentialReference(c.m, c.samples, c.o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := SparseGPTSequential(context.Background(), c.m, c.samples, stats.Calibration{Name: "t"}, c.o, nil)
			if err != nil {
				t.Fatal(err)
			}
			wk, gk := want.Mask.Keys(), got.Mask.Keys()
			if len(wk) == 0 || fmt.Sprint(wk) != fmt.Sprint(gk) {
				t.Fatalf("keys %v, want %v", gk, wk)
			}
			for _, k := range wk {
				if !bytes.Equal(got.Mask.Get(k).Data, want.Mask.Get(k).Data) {
					t.Fatalf("%v: masks differ", k)
				}
				if !slices.Equal(got.Weights[k], want.Weights[k]) {
					t.Fatalf("%v: updated weights differ", k)
				}
			}
		})
	}
}

// randomTokens returns n token sequences of 6 to 24 tokens.
func randomTokens(n, vocab int, seed uint64) [][]int {
	r := rand.New(rand.NewPCG(seed, 3))
	out := make([][]int, n)
	for i := range out {
		out[i] = make([]int, 6+r.IntN(19))
		for j := range out[i] {
			out[i][j] = r.IntN(vocab)
		}
	}
	return out
}
