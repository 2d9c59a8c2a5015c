package persona

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/ppl"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

// unstructured prunes each entry of every projection with probability p.
func unstructured(m *model.Model, rng *rand.Rand, p float64) *mask.Mask {
	mk := mask.New(m)
	for l := range m.Layers {
		for pr := model.Proj(0); pr < model.NumProj; pr++ {
			w := m.Layers[l].Weight(pr)
			mk.Set(mask.Key{Layer: l, Proj: pr}, randomBits(rng, w.Rows, w.Cols, p))
		}
	}
	return mk
}

// TestMaskedModelMatchesMaskedCopy: a mask applied per sequence
// (MaskedModel, what eval and the subnet study run) computes what the
// masked copy (mask.Masked, what `masque mask apply` exports) computes: the
// same logits bit for bit over float32 weights (FFN channels and
// unstructured masks, on every kernel level), the same up to bf16 rounding
// over BF16 weights, and the same greedy tokens and perplexities through
// generate and eval/ppl, which take the view like any model.
// FingerprintMasked names the masked copy's weights.
func TestMaskedModelMatchesMaskedCopy(t *testing.T) {
	ck, err := checkpoint.Open(builtin.Stories, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tiny := loadTiny(t, "qwen2")
	vck, err := checkpoint.Open(builtin.Voices, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vck.Close()
	ffn := []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown}
	tests := []struct {
		name string
		m    *model.Model
		mask func(m *model.Model) *mask.Mask
		tol  float64 // relative difference allowed in logits and perplexity; 0: bit for bit
	}{
		{"stories ffn channels", ck.Model, func(m *model.Model) *mask.Mask {
			return channelMask(t, m, func(l, c int) bool { return (3*c+l)%5 == 0 }, ffn)
		}, 0},
		{"stories unstructured", ck.Model, func(m *model.Model) *mask.Mask { return unstructured(m, rand.New(rand.NewPCG(5, 6)), 0.3) }, 0},
		// BF16 weights: the masked product (kernels.MatMulMasked) blocks
		// its sums differently from the plain one (a few 1e-6 apart), and
		// rounding the activations to bf16 (the default) can turn that
		// into one bf16 step: equal up to that rounding.
		{"voices (bf16) unstructured", vck.Model, func(m *model.Model) *mask.Mask { return unstructured(m, rand.New(rand.NewPCG(9, 10)), 0.5) }, 1e-2},
		{"qwen2 ffn channels", tiny, func(m *model.Model) *mask.Mask {
			return channelMask(t, m, func(l, c int) bool { return c%3 == 1 }, ffn)
		}, 0},
		{"qwen2 unstructured with biases", tiny, func(m *model.Model) *mask.Mask { return unstructured(m, rand.New(rand.NewPCG(7, 8)), 0.5) }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mk := tc.mask(tc.m)
			copyM, err := mask.Masked(tc.m, mk, nil)
			if err != nil {
				t.Fatal(err)
			}
			view, err := MaskedModel(tc.m, mk)
			if err != nil {
				t.Fatal(err)
			}
			if view.SeqAdapter() == nil && view.SeqHooks() == nil {
				t.Fatal("the view applies nothing")
			}
			fp, err := mask.FingerprintMasked(tc.m, mk)
			if err != nil {
				t.Fatal(err)
			}
			if want := copyM.Fingerprint(); fp != want {
				t.Errorf("FingerprintMasked %s, the masked copy's %s", fp, want)
			}
			if view.Fingerprint() != tc.m.Fingerprint() {
				t.Error("the view's own weights differ from the base's")
			}

			toks := []int{1, 17, 42, 99, 3, 250, 7, 8, 30, 31}
			want, err := copyM.Forward(copyM.NewCache(64), toks, true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := view.Forward(view.NewCache(64), toks, true)
			if err != nil {
				t.Fatal(err)
			}
			base, err := tc.m.Forward(tc.m.NewCache(64), toks, true)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(got, want); d > tc.tol {
				t.Errorf("logits differ from the masked copy's by %g (allowed: %g)", d, tc.tol)
			}
			if maxRelDiff(base, want) < 1e-3 {
				t.Fatal("the mask changes nothing: the test cannot fail")
			}

			// Greedy decoding through generate.
			o := generate.Options{MaxTokens: 24, Temperature: 0, IgnoreEOS: true}
			rw, err := generate.Generate(context.Background(), copyM, nil, toks[:4], o, nil)
			if err != nil {
				t.Fatal(err)
			}
			rg, err := generate.Generate(context.Background(), view, nil, toks[:4], o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rg.IDs, rw.IDs) {
				t.Errorf("greedy tokens %v, the masked copy's %v", rg.IDs, rw.IDs)
			}

			// Perplexity through eval/ppl.
			samples := []ppl.Sample{{IDs: toks}, {IDs: append(slices.Clone(toks[3:]), rw.IDs...)}}
			pw, err := ppl.Evaluate(context.Background(), copyM, "x", samples, nil)
			if err != nil {
				t.Fatal(err)
			}
			pg, err := ppl.Evaluate(context.Background(), view, "x", samples, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := math.Abs(pg.PPL/pw.PPL - 1); d > tc.tol/10 {
				t.Errorf("perplexity %v, the masked copy's %v", pg.PPL, pw.PPL)
			}
		})
	}
}

// TestViewHooks: a view's hooks combine with a caller's (each field from
// whichever sets it), a conflict is an error, and sequences of a batch that
// bring their own adapter keep it.
func TestViewHooks(t *testing.T) {
	m := loadTiny(t, "qwen2")
	mk := channelMask(t, m, func(l, c int) bool { return c%2 == 0 }, []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown})
	view, err := MaskedModel(m, mk)
	if err != nil {
		t.Fatal(err)
	}
	toks := []int{5, 6, 7}
	want, err := view.Forward(view.NewCache(8), toks, false)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	got, err := view.ForwardHooks(view.NewCache(8), toks, false, &model.Hooks{LinearInput: func(int, model.Proj, []float32, int, int) { seen++ }})
	if err != nil {
		t.Fatal(err)
	}
	if seen == 0 || maxRelDiff(got, want) != 0 {
		t.Errorf("with a caller's LinearInput hook: %d calls, logits differ by %g", seen, maxRelDiff(got, want))
	}
	if _, err := view.ForwardHooks(view.NewCache(8), toks, false, &model.Hooks{FFNMask: func(int) []float32 { return nil }}); err == nil {
		t.Error("two FFN masks were accepted")
	}
	// A batch through the view: a sequence without hooks gets the view's.
	out, err := view.ForwardBatch([]model.BatchSeq{{Cache: view.NewCache(8), Tokens: toks}})
	if err != nil {
		t.Fatal(err)
	}
	if maxRelDiff(out[0], want) != 0 {
		t.Error("ForwardBatch on the view does not apply the mask")
	}
}

// TestPremask: a masked view whose masked rows were made once
// (MaskedModel under PremaskBudget) gives the logits of one that masks as
// it goes, bit for bit, over BF16 (builtin:voices) and float32 weights, in
// a prompt pass and in decoding steps; over the budget nothing is made.
func TestPremask(t *testing.T) {
	vck, err := checkpoint.Open(builtin.Voices, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vck.Close()
	for _, m := range []*model.Model{vck.Model, loadTiny(t, "qwen2")} {
		mk := unstructured(m, rand.New(rand.NewPCG(21, 22)), 0.4)
		asGo, err := MaskOverlay(m, mk)
		if err != nil {
			t.Fatal(err)
		}
		if n := asGo.Premask(1000); n != 0 {
			t.Errorf("%d bytes spent over a budget of 1000", n)
		}
		pre, err := MaskOverlay(m, mk)
		if err != nil {
			t.Fatal(err)
		}
		before := pre.Bytes()
		spent := pre.Premask(PremaskBudget)
		if spent == 0 || pre.Bytes() != before+spent {
			t.Fatalf("%d bytes spent, overlay %d → %d bytes", spent, before, pre.Bytes())
		}
		if again := pre.Premask(PremaskBudget); again != 0 {
			t.Errorf("premasking twice spent %d more bytes", again)
		}
		toks := make([]int, 40)
		for i := range toks {
			toks[i] = 1 + (i*37)%(m.Config.Vocab-1)
		}
		a, b := asGo.Model(), pre.Model()
		ca, cb := a.NewCache(64), b.NewCache(64)
		for step, part := range [][]int{toks[:30], toks[30:31], toks[31:]} {
			la, err := a.Forward(ca, part, true)
			if err != nil {
				t.Fatal(err)
			}
			lb, err := b.Forward(cb, part, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(la, lb) {
				t.Errorf("%s, pass %d: premasked logits differ from masking as it goes", m.Config.Arch, step)
			}
		}
	}
}
