package synth

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/model"
)

// TestSensitivityGolden checks the persona-sensitivity score against
// PyTorch with Hugging Face's hidden_states convention, where
// hidden_states[L] of an L-layer model is the output of the final norm.
// The values come from testdata/sensitivity_golden.py (float64, run with
// shared/reference/torch_ref.py on testdata/hf-tiny/qwen2, 3 layers); the
// stream leaving the last block instead gives 0.198570 for layers 1..3 and
// 0.255899 for 3..3.
func TestSensitivityGolden(t *testing.T) {
	m, err := model.LoadHF(filepath.Join("..", "testdata", "hf-tiny", "qwen2"))
	if err != nil {
		t.Fatal(err)
	}
	ck := &checkpoint.Checkpoint{Path: "hf-tiny/qwen2", Model: m}
	question := []int{40, 41, 42, 43, 44}
	prompts := [][]int{
		append([]int{1, 7, 9, 11, 13}, question...),
		append([]int{1, 8, 10, 12}, question...),
		append([]int{1, 200, 300, 400, 500, 6}, question...),
	}
	for _, tc := range []struct {
		first, last int
		want        float64
	}{
		{1, 3, 0.19994187453041112},
		{3, 3, 0.2600145850929433},
		{0, 2, 0.11327034616609677},
		{1, 24, 0.19994187453041112}, // clamped to the model's 3 layers
	} {
		sc, err := NewScorer(ck, "target", []string{"r1", "r2"}, tc.first, tc.last)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sc.score(context.Background(), func(p int) ([][]float32, error) { return sc.hiddenIDs(p, prompts[p]) })
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-tc.want) > 2e-5 {
			t.Errorf("layers %d..%d: score %.7f, want %.7f (HF hidden_states)", tc.first, tc.last, got, tc.want)
		}
	}
	// A reversed or negative range is an error, not one layer.
	for _, r := range [][2]int{{24, 5}, {3, 2}, {-1, 4}} {
		if _, err := NewScorer(ck, "target", nil, r[0], r[1]); err == nil || !strings.Contains(err.Error(), "0 ≤ first ≤ last") {
			t.Errorf("layers %d..%d: %v", r[0], r[1], err)
		}
	}
}
