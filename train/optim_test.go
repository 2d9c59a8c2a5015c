package train

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/masque-ai/masque/safetensors"
)

// TestAdamW compares three AdamW steps with a float64 transcription of
// torch.optim.AdamW, for a decayed and an undecayed parameter.
func TestAdamW(t *testing.T) {
	w := &Param{Name: "w", Shape: []int{3}, Data: []float32{0.5, -1, 2}, Grad: make([]float32, 3), Decay: true}
	b := &Param{Name: "b", Shape: []int{2}, Data: []float32{0.1, 0.2}, Grad: make([]float32, 2)}
	grads := [][]float32{{0.1, -0.2, 0.3, 1, -1}, {0.05, 0.5, -0.3, 0, 2}, {-0.1, 0.1, 0.2, 0.3, -0.4}}
	lrs := []float64{1e-2, 5e-3, 1e-3}
	const b1, b2, eps, wd = 0.9, 0.95, 1e-8, 0.1
	opt := NewAdamW([]*Param{w, b}, b1, b2, eps, wd)

	ref := []float64{0.5, -1, 2, 0.1, 0.2}
	decay := []bool{true, true, true, false, false}
	m, v := make([]float64, 5), make([]float64, 5)
	for s, g := range grads {
		copy(w.Grad, g[:3])
		copy(b.Grad, g[3:])
		opt.Update(lrs[s])
		tt := float64(s + 1)
		for i := range ref {
			if decay[i] {
				ref[i] *= 1 - lrs[s]*wd
			}
			gi := float64(g[i])
			m[i] = b1*m[i] + (1-b1)*gi
			v[i] = b2*v[i] + (1-b2)*gi*gi
			mh := m[i] / (1 - math.Pow(b1, tt))
			vh := v[i] / (1 - math.Pow(b2, tt))
			ref[i] -= lrs[s] * mh / (math.Sqrt(vh) + eps)
		}
	}
	got := append(append([]float32(nil), w.Data...), b.Data...)
	for i := range ref {
		if math.Abs(float64(got[i])-ref[i]) > 1e-6 {
			t.Errorf("param %d = %.8f, reference %.8f", i, got[i], ref[i])
		}
	}

	// The state round-trips through safetensors.
	path := filepath.Join(t.TempDir(), "opt.safetensors")
	if err := safetensors.Write(path, opt.StateTensors(), nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opt2 := NewAdamW([]*Param{w, b}, b1, b2, eps, wd)
	if err := opt2.LoadState(f); err != nil {
		t.Fatal(err)
	}
	for i := range opt.m {
		if !slices.Equal(opt.m[i], opt2.m[i]) || !slices.Equal(opt.v[i], opt2.v[i]) {
			t.Errorf("moments of param %d differ after loading", i)
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      float64
		wantNorm float64
		scaled   bool
	}{{"clipped", 1, 5, true}, {"under", 10, 5, false}, {"off", 0, 5, false}} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Param{Grad: []float32{3}}
			q := &Param{Grad: []float32{0, 4}}
			n := ClipGradNorm([]*Param{p, q}, tc.max)
			if math.Abs(n-tc.wantNorm) > 1e-9 {
				t.Errorf("norm %g, want %g", n, tc.wantNorm)
			}
			after := GradNorm([]*Param{p, q})
			if tc.scaled && math.Abs(after-tc.max) > 1e-5 {
				t.Errorf("norm after clipping %g, want %g", after, tc.max)
			}
			if !tc.scaled && after != tc.wantNorm {
				t.Errorf("norm changed to %g", after)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		s    Schedule
		step int
		want float64
	}{
		{Schedule{Kind: "constant"}, 0, 1},
		{Schedule{Kind: "constant", Warmup: 4, Total: 10}, 0, 0.25},
		{Schedule{Kind: "constant", Warmup: 4, Total: 10}, 3, 1},
		{Schedule{Kind: "constant", Warmup: 4, Total: 10}, 9, 1},
		{Schedule{Kind: "linear", Total: 11}, 0, 1},
		{Schedule{Kind: "linear", Total: 11}, 5, 0.5},
		{Schedule{Kind: "linear", Total: 11}, 10, 0}, // the last step reaches the final rate
		{Schedule{Kind: "linear", Total: 11, MinRatio: 0.2}, 10, 0.2},
		{Schedule{Kind: "linear", Warmup: 2, Total: 13}, 7, 0.5},
		{Schedule{Kind: "cosine", Total: 11}, 0, 1},
		{Schedule{Kind: "cosine", Total: 11}, 5, 0.5},
		{Schedule{Kind: "cosine", Total: 11}, 10, 0},
		{Schedule{Kind: "cosine", Total: 11, MinRatio: 0.1}, 5, 0.55},
		{Schedule{Kind: "cosine", Warmup: 3, Total: 20, MinRatio: 0.1}, 3, 1},    // first step after the warm-up: the peak
		{Schedule{Kind: "cosine", Warmup: 3, Total: 20, MinRatio: 0.1}, 19, 0.1}, // last step: the final rate
		{Schedule{Kind: "cosine", Warmup: 3, Total: 20, MinRatio: 0.1}, 25, 0.1}, // beyond (an extended run): stays there
		{Schedule{Kind: "cosine", Warmup: 9, Total: 10, MinRatio: 0.1}, 9, 1},    // a single step after the warm-up
		{Schedule{Kind: "cosine", Warmup: 10, Total: 10}, 20, 1},
	} {
		if got := tc.s.LR(1, tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%+v step %d: lr %g, want %g", tc.s, tc.step, got, tc.want)
		}
	}
	// The last step is exactly at the final rate (not 1 ulp off), for
	// every decay and the rates pretrain and finetune use.
	for _, kind := range []string{"linear", "cosine"} {
		for _, c := range []struct{ lr, final float64 }{{3e-3, 3e-4}, {1e-2, 1e-3}, {2e-4, 2e-5}, {7e-4, 0}} {
			s := Schedule{Kind: kind, Warmup: 3, Total: 50, MinRatio: c.final / c.lr}
			if got := s.LR(c.lr, 49); got != c.final {
				t.Errorf("%s %g→%g: last step at %v, want exactly %v", kind, c.lr, c.final, got, c.final)
			}
		}
	}
	if _, err := ParseSchedule("exponential"); err == nil {
		t.Errorf("ParseSchedule accepted an unknown kind")
	}
}

// TestBatches: packing respects the token budget, covers every sequence
// once per epoch, and depends only on (seed, epoch).
func TestBatches(t *testing.T) {
	var seqs []Sequence
	for i := 0; i < 30; i++ {
		n := 1 + i%7
		seqs = append(seqs, Sequence{Tokens: make([]int, n), Targets: []int{i}})
	}
	seqs = append(seqs, Sequence{Tokens: make([]int, 50), Targets: []int{99}}) // longer than the budget
	bs := Batches(seqs, 12, 1, 0)
	seen := map[int]int{}
	for _, b := range bs {
		tok := 0
		for _, s := range b {
			tok += len(s.Tokens)
			seen[s.Targets[0]]++
		}
		if tok > 12 && len(b) > 1 {
			t.Errorf("batch of %d sequences has %d tokens, budget 12", len(b), tok)
		}
	}
	if len(seen) != len(seqs) {
		t.Errorf("%d distinct sequences in an epoch, want %d", len(seen), len(seqs))
	}
	again := Batches(seqs, 12, 1, 0)
	other := Batches(seqs, 12, 1, 1)
	same := func(a, b [][]Sequence) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if len(a[i]) != len(b[i]) || a[i][0].Targets[0] != b[i][0].Targets[0] {
				return false
			}
		}
		return true
	}
	if !same(bs, again) {
		t.Errorf("same seed and epoch gave different batches")
	}
	if same(bs, other) {
		t.Errorf("another epoch gave the same order")
	}
}

// TestBadSequences: malformed batches are errors, not panics.
func TestBadSequences(t *testing.T) {
	m, err := loadTiny(t, "llama")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(m, Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		seqs []Sequence
	}{
		{"empty batch", nil},
		{"empty sequence", []Sequence{{}}},
		{"length mismatch", []Sequence{{Tokens: []int{1, 2}, Targets: []int{2}}}},
		{"token out of range", []Sequence{{Tokens: []int{1, 512}, Targets: []int{2, 3}}}},
		{"negative token", []Sequence{{Tokens: []int{-1}, Targets: []int{2}}}},
		{"target out of range", []Sequence{{Tokens: []int{1}, Targets: []int{-5}}}},
		{"longer than context", []Sequence{{Tokens: make([]int, 513), Targets: make([]int, 513)}}},
	} {
		if _, err := n.ForwardBackward(tc.seqs, 0); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
		if _, err := n.Loss(tc.seqs); err == nil {
			t.Errorf("%s: Loss gave no error", tc.name)
		}
	}
	// All targets ignored: loss 0, no NaN.
	r, err := n.ForwardBackward([]Sequence{{Tokens: []int{1, 2}, Targets: []int{IgnoreIndex, IgnoreIndex}}}, 0)
	if err != nil || r.Count != 0 || r.Mean() != 0 {
		t.Errorf("all-ignored batch: %+v, %v", r, err)
	}
}
