package sculpt

import (
	"strings"
	"testing"

	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
)

// TestKeepMaskComputesSlice: the keep indices applied as a mask over the
// base (per sequence, and as a masked copy) compute the sliced model's
// logits, and the mask keeps exactly the kept channels' rows and columns.
func TestKeepMaskComputesSlice(t *testing.T) {
	ck := openBuiltin(t)
	m := ck.Model
	ff := m.Config.Intermediate
	k := ff * 3 / 5
	keep := make([][]int, m.Config.Layers)
	for l := range keep {
		for c := 0; c < ff; c++ {
			if (c+37*l)%ff < k { // a different window of k channels per layer
				keep[l] = append(keep[l], c)
			}
		}
	}
	mk, err := KeepMask(m, keep, mask.Info{Method: "persona-pruner"})
	if err != nil {
		t.Fatal(err)
	}
	if mk.Info.Granularity != "ffn-channels" || mk.Info.Method != "persona-pruner" {
		t.Errorf("info %+v", mk.Info)
	}
	if want := 1 - float64(k)/float64(ff); mk.Info.Sparsity != want {
		t.Errorf("sparsity %g, want %g", mk.Info.Sparsity, want)
	}
	// Gate and up keep whole rows, down whole columns, of the kept channels.
	h := m.Config.Hidden
	if got, want := mk.Kept(), int64(m.Config.Layers)*int64(3*k*h)+attnEntries(mk); got != want {
		t.Errorf("kept %d entries, want %d", got, want)
	}
	toks := []int{1, 200, 31, 400, 77, 5, 301, 12}
	sm, err := Slice(m, keep)
	if err != nil {
		t.Fatal(err)
	}
	want, err := sm.Forward(sm.NewCache(len(toks)), toks, true)
	if err != nil {
		t.Fatal(err)
	}
	view, err := persona.MaskedModel(m, mk)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := mask.Masked(m, mk, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, mm := range map[string]*model.Model{"per-sequence view": view, "masked copy": copied} {
		got, err := mm.Forward(mm.NewCache(len(toks)), toks, true)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(got, want); d > 1e-3 {
			t.Errorf("%s: logits differ from the sliced model's by %g", name, d)
		}
	}
	// Keep indices made for another model are refused.
	bad := [][]int{{0, 1}}
	if _, err := KeepMask(m, bad, mask.Info{}); err == nil || !strings.Contains(err.Error(), "layers") {
		t.Errorf("keep indices of another model: err = %v", err)
	}
}

// attnEntries counts the entries of the projections a KeepMask leaves
// dense (attention), which Kept counts as kept.
func attnEntries(mk *mask.Mask) int64 {
	var n int64
	for _, p := range []model.Proj{model.ProjQ, model.ProjK, model.ProjV, model.ProjO} {
		n += int64(mk.Shapes[p][0]) * int64(mk.Shapes[p][1])
	}
	return n * int64(mk.Layers)
}
