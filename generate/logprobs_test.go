package generate

import (
	"math"
	"testing"
)

func TestLogProb(t *testing.T) {
	for _, tc := range []struct {
		logits []float32
		id     int
		want   float64
	}{
		{[]float32{0, 0, 0, 0}, 2, -math.Log(4)},
		{[]float32{1000, 0}, 0, -math.Log1p(math.Exp(-1000))},
		{[]float32{1, 2, 3}, 0, 1 - (3 + math.Log(math.Exp(-2)+math.Exp(-1)+1))},
		{[]float32{float32(math.NaN()), 0, 0}, 1, -math.Log(2)},
	} {
		if got := LogProb(tc.logits, tc.id); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LogProb(%v, %d) = %g, want %g", tc.logits, tc.id, got, tc.want)
		}
	}
}
