package subnet

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/masque-ai/masque/data/calib"
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
			got, err := SparseGPTSequential(context.Background(), c.m, c.samples, calib.Record{Name: "t"}, c.o, nil)
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

// TestSparseGPTWholeBlock checks the two mask selections on a case worked
// by hand: with H = I the inverse Hessian is diagonal, so the saliency is
// w²·(1+λ) and no error is spread: SparseGPT is magnitude pruning and the
// kept weights are unchanged. At ρ = 0.5 over one block of 4 columns, the
// per-row selection prunes the two smallest of each row; the whole-block
// threshold prunes the four smallest of the block, all in row 0.
func TestSparseGPTWholeBlock(t *testing.T) {
	w := []float32{1, 2, 3, 4, 10, 20, 30, 40}
	H := []float64{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}
	for _, c := range []struct {
		whole bool
		want  []float32
	}{
		{false, []float32{0, 0, 3, 4, 0, 0, 30, 40}},
		{true, []float32{0, 0, 0, 0, 10, 20, 30, 40}},
	} {
		got, bits, err := SparseGPTMatrix(w, 2, 4, H, SparseGPTOptions{Sparsity: 0.5, BlockSize: 4, WholeBlock: c.whole, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("whole block %v: %v, want %v", c.whole, got, c.want)
		}
		for i, v := range c.want {
			if bits.Get(i/4, i%4) != (v != 0) {
				t.Errorf("whole block %v: mask entry %d is %v", c.whole, i, bits.Get(i/4, i%4))
			}
		}
	}
	// Two blocks of 2: each block prunes 2·1 entries (the same total as per
	// row), the smallest of each block: 1 and 2, then 3 and 4.
	got, _, err := SparseGPTMatrix(w, 2, 4, H, SparseGPTOptions{Sparsity: 0.5, BlockSize: 2, WholeBlock: true, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{0, 0, 0, 0, 10, 20, 30, 40}; !slices.Equal(got, want) {
		t.Errorf("two blocks: %v, want %v", got, want)
	}
	if _, _, err := SparseGPTMatrix(w, 2, 4, H, SparseGPTOptions{N: 2, M: 4, WholeBlock: true}); err == nil {
		t.Error("whole-block threshold with 2:4 accepted")
	}
}

// TestSparseGPTSettingsRecorded checks that the mask metadata records
// SparseGPT's block size, dampening and selection, that the whole-block
// threshold keeps the total while rows differ, and that the settings are
// refused for other methods.
func TestSparseGPTSettingsRecorded(t *testing.T) {
	m := loadStories(t)
	samples := storiesSamples(t)[:2]
	o := Options{Sparsity: 0.5, Targets: MLPOnly, Workers: 2, Damp: 0.05, BlockSize: 16, WholeBlock: true}
	res, err := SparseGPTSequential(context.Background(), m, samples, calib.Record{Name: "t"}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := res.Mask.Info.Extra
	if x["sparsegpt_damp"] != "0.05" || x["sparsegpt_block"] != "16" || x["sparsegpt_select"] != "block" {
		t.Fatalf("metadata %v", x)
	}
	row := Options{Sparsity: 0.5, Targets: MLPOnly, Workers: 2, Damp: 0.05, BlockSize: 16}
	ref, err := SparseGPTSequential(context.Background(), m, samples, calib.Record{Name: "t"}, row, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Mask.Info.Extra["sparsegpt_select"] != "row" {
		t.Fatalf("metadata %v", ref.Mask.Info.Extra)
	}
	uneven := false
	for _, k := range res.Mask.Keys() {
		a, b := res.Mask.Get(k), ref.Mask.Get(k)
		if a.Count() != b.Count() {
			t.Fatalf("%v: whole-block keeps %d, per-row %d", k, a.Count(), b.Count())
		}
		for r := 0; r < a.Rows; r++ {
			if a.RowCount(r) != b.RowCount(0) {
				uneven = true
			}
		}
	}
	if !uneven {
		t.Error("the whole-block threshold kept the same count in every row")
	}
	for _, bad := range []Options{{Method: Wanda, Sparsity: 0.5, BlockSize: 16}, {Method: SparseGPT, N: 2, M: 4, WholeBlock: true}} {
		if err := bad.Validate(&m.Config); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
