package generate

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestRepetitionPenalty(t *testing.T) {
	logits := []float32{2, -1, 0.5, -3, 1, 0}
	tests := []struct {
		name    string
		penalty float32
		lastN   int
		history []int
		want    []float32
	}{
		{"all history", 2, 0, []int{0, 1, 1, 3, 5, 0}, []float32{1, -2, 0.5, -6, 1, 0}},
		{"window 2", 2, 2, []int{0, 1, 1, 3}, []float32{2, -2, 0.5, -6, 1, 0}},
		{"window larger than history", 1.25, 100, []int{2, 4}, []float32{2, -1, 0.4, -3, 0.8, 0}},
		{"penalty below 1 boosts", 0.5, 0, []int{0, 1}, []float32{4, -0.5, 0.5, -3, 1, 0}},
		{"off", 1, 0, []int{0, 1, 2}, logits},
		{"out of range ids ignored", 2, 0, []int{-1, 6, 100, 4}, []float32{2, -1, 0.5, -3, 0.5, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSampler(Options{RepetitionPenalty: tt.penalty, RepeatLastN: tt.lastN})
			got := slices.Clone(logits)
			if s.penalty != 0 {
				s.applyPenalty(got, tt.history)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Through Sample, greedy: id 0 is best until penalized.
	in := []float32{3, 2.5, 1}
	s := NewSampler(Options{RepetitionPenalty: 1.5})
	if got := s.Sample(in, []int{0, 0, 0}); got != 1 {
		t.Fatalf("penalized greedy chose %d, want 1", got)
	}
	if !slices.Equal(in, []float32{3, 2.5, 1}) {
		t.Fatalf("Sample modified its input: %v", in)
	}
	if got := s.Sample(in, []int{1}); got != 0 {
		t.Fatalf("greedy chose %d, want 0", got)
	}
}

func TestGreedy(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		logits []float32
		want   int
	}{
		{[]float32{1, 3, 2}, 1},
		{[]float32{5, 5, 5}, 0},
		{[]float32{1, 4, 4, 2}, 1},
		{[]float32{nan, 1, nan, 2}, 3},
		{[]float32{nan, nan}, 0},
		{[]float32{-inf, -inf, -1}, 2},
		{[]float32{1, inf, inf}, 1},
	}
	s := NewSampler(Options{})
	for _, tt := range tests {
		if got := s.Sample(tt.logits, nil); got != tt.want {
			t.Errorf("%v: got %d, want %d", tt.logits, got, tt.want)
		}
	}
}

// freqs draws n samples and returns the empirical frequencies.
func freqs(s *Sampler, logits []float32, n int) []float64 {
	f := make([]float64, len(logits))
	for i := 0; i < n; i++ {
		f[s.Sample(logits, nil)]++
	}
	for i := range f {
		f[i] /= float64(n)
	}
	return f
}

func TestSamplingDistribution(t *testing.T) {
	logits := []float32{1, 2, 0.5}
	const n = 20000
	want := softmax64(logits)
	got := freqs(NewSampler(Options{Temperature: 1, Seed: 7}), logits, n)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 0.02 {
			t.Errorf("token %d: frequency %.4f, softmax %.4f", i, got[i], want[i])
		}
	}
}

func TestFilters(t *testing.T) {
	// Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1.
	probs := []float64{0.5, 0.3, 0.15, 0.05}
	logits := make([]float32, len(probs))
	for i, p := range probs {
		logits[i] = float32(math.Log(p))
	}
	renorm := func(keep ...int) []float64 {
		out := make([]float64, len(probs))
		sum := 0.0
		for _, k := range keep {
			sum += probs[k]
		}
		for _, k := range keep {
			out[k] = probs[k] / sum
		}
		return out
	}
	tests := []struct {
		name string
		o    Options
		want []float64
	}{
		{"none", Options{}, renorm(0, 1, 2, 3)},
		{"min-p 0.2 drops < 0.1", Options{MinP: 0.2}, renorm(0, 1, 2)},
		{"min-p 0.5 drops < 0.25", Options{MinP: 0.5}, renorm(0, 1)},
		{"min-p 0.9", Options{MinP: 0.9}, renorm(0)},
		{"min-p 0.09 keeps 0.05", Options{MinP: 0.09}, renorm(0, 1, 2, 3)},
		{"top-k 2", Options{TopK: 2}, renorm(0, 1)},
		{"top-k 3", Options{TopK: 3}, renorm(0, 1, 2)},
		{"top-k larger than vocab", Options{TopK: 10}, renorm(0, 1, 2, 3)},
		{"top-p 0.45", Options{TopP: 0.45}, renorm(0)},
		{"top-p 0.7", Options{TopP: 0.7}, renorm(0, 1)},
		{"top-p 0.9", Options{TopP: 0.9}, renorm(0, 1, 2)},
		{"top-p 1 is off", Options{TopP: 1}, renorm(0, 1, 2, 3)},
		{"top-k 3 then top-p 0.85 of the rest", Options{TopK: 3, TopP: 0.85}, renorm(0, 1, 2)},
		{"top-k 3 then top-p 0.8 of the rest", Options{TopK: 3, TopP: 0.8}, renorm(0, 1)},
		{"top-p 0.9 then min-p 0.4", Options{TopP: 0.9, MinP: 0.4}, renorm(0, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.Temperature, o.Seed = 1, 11
			got := freqs(NewSampler(o), logits, 20000)
			for i := range got {
				if (tt.want[i] == 0) != (got[i] == 0) || math.Abs(got[i]-tt.want[i]) > 0.02 {
					t.Fatalf("frequencies %.4f, want %.4f", got, tt.want)
				}
			}
		})
	}
}

// TestTemperature checks that temperature reshapes the distribution.
func TestTemperature(t *testing.T) {
	logits := []float32{1, 2, 0.5}
	for _, temp := range []float32{0.5, 2} {
		scaled := make([]float32, len(logits))
		for i, x := range logits {
			scaled[i] = x / temp
		}
		want := softmax64(scaled)
		got := freqs(NewSampler(Options{Temperature: temp, Seed: 3}), logits, 20000)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 0.02 {
				t.Errorf("T=%g token %d: %.4f, want %.4f", temp, i, got[i], want[i])
			}
		}
	}
}

// TestTopPLargeVocab exercises the growing sorted prefix of top-p: with
// equal logits, top-p keeps the lowest ids.
func TestTopPLargeVocab(t *testing.T) {
	const v = 5000
	logits := make([]float32, v)
	s := NewSampler(Options{Temperature: 1, TopP: 0.9, Seed: 5})
	hi := 0
	for i := 0; i < 1000; i++ {
		hi = max(hi, s.Sample(logits, nil))
	}
	if hi >= 4500 || hi < 4400 {
		t.Fatalf("largest id drawn %d, want just below 4500", hi)
	}
	// Distinct logits: the nucleus is the best tokens whatever their ids.
	r := rand.New(rand.NewPCG(1, 2))
	perm := r.Perm(v)
	for i, p := range perm {
		logits[p] = -float32(i) * 0.001 // rank i gets logit -i/1000
	}
	s = NewSampler(Options{Temperature: 1, TopP: 0.5, Seed: 6})
	// Find how many ranks reach 0.5.
	p := softmax64(logits)
	cum, ranks := 0.0, 0
	for ranks < v && cum < 0.5 {
		cum += p[perm[ranks]]
		ranks++
	}
	allowed := map[int]bool{}
	for _, id := range perm[:min(ranks+1, v)] { // one more for rounding at the edge
		allowed[id] = true
	}
	for i := 0; i < 1000; i++ {
		if id := s.Sample(logits, nil); !allowed[id] {
			t.Fatalf("drew id %d outside the nucleus of %d", id, ranks)
		}
	}
}

func TestSelectTop(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(300)
		c := make([]cand, n)
		for i := range c {
			c[i] = cand{id: i, logit: float64(r.IntN(20))} // many ties
		}
		want := slices.Clone(c)
		slices.SortFunc(want, better)
		k := 1 + r.IntN(n)
		selectTop(c, k)
		got := slices.Clone(c[:k])
		slices.SortFunc(got, better)
		if !slices.Equal(got, want[:k]) {
			t.Fatalf("n=%d k=%d: got %v, want %v", n, k, got, want[:k])
		}
	}
}

func TestSamplerDeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	o := Options{Temperature: 0.9, TopK: 50, TopP: 0.9, MinP: 0.02, RepetitionPenalty: 1.1, RepeatLastN: 8, Seed: 123}
	a, b := NewSampler(o), NewSampler(o)
	var ha, hb []int
	for i := 0; i < 200; i++ {
		x, y := a.Sample(logits, ha), b.Sample(logits, hb)
		if x != y {
			t.Fatalf("step %d: %d vs %d", i, x, y)
		}
		ha, hb = append(ha, x), append(hb, y)
	}
}

// TestFrequencyPresencePenalty checks OpenAI's definition on greedy
// sampling: each returned id loses count×frequency + presence, the prompt
// (history) does not count.
func TestFrequencyPresencePenalty(t *testing.T) {
	logits := []float32{3, 2.6, 2.2, 0}
	// frequency 0.5: after one 0, 0 is at 2.5 < 2.6 → 1; after one 1,
	// 1 is at 2.1 → 0 (2.5) again; then 0 is at 2.0 → 2.2 wins.
	s := NewSampler(Options{FrequencyPenalty: 0.5})
	var got []int
	for range 4 {
		got = append(got, s.Sample(logits, []int{0, 0, 0, 0}))
	}
	if want := []int{0, 1, 0, 2}; !slices.Equal(got, want) {
		t.Errorf("frequency penalty: %v, want %v", got, want)
	}
	// presence 0.5: a second use costs nothing more.
	s = NewSampler(Options{PresencePenalty: 0.5})
	got = got[:0]
	for range 4 {
		got = append(got, s.Sample(logits, nil))
	}
	// 0 → (0 at 2.5) 1 → (1 at 2.1) 0 → 0 (still 2.5, beats 2.2 and 2.1)
	if want := []int{0, 1, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("presence penalty: %v, want %v", got, want)
	}
	// A negative frequency penalty keeps repeating the first pick.
	s = NewSampler(Options{FrequencyPenalty: -1})
	for i := range 3 {
		if id := s.Sample([]float32{1, 1.5}, nil); id != 1 {
			t.Fatalf("step %d: %d, want 1", i, id)
		}
	}
	if !slices.Equal(logits, []float32{3, 2.6, 2.2, 0}) {
		t.Fatalf("Sample modified its input: %v", logits)
	}
}

func TestLogitBias(t *testing.T) {
	logits := []float32{3, 2, 1}
	s := NewSampler(Options{LogitBias: map[int]float32{0: -100, 2: 1.5, 7: 100, -1: 5}})
	if id := s.Sample(logits, nil); id != 2 {
		t.Fatalf("greedy with bias: %d, want 2", id)
	}
	// At temperature 1, a -100 bias makes a token practically impossible.
	s = NewSampler(Options{Temperature: 1, Seed: 3, LogitBias: map[int]float32{0: -100}})
	for range 2000 {
		if s.Sample(logits, nil) == 0 {
			t.Fatal("a token biased by -100 was sampled")
		}
	}
}

func TestSampleMasked(t *testing.T) {
	logits := []float32{3, 2, 1, 0}
	allowed := []bool{false, false, true, true}
	s := NewSampler(Options{})
	if id := s.SampleMasked(logits, nil, allowed); id != 2 {
		t.Fatalf("greedy masked: %d, want 2", id)
	}
	s = NewSampler(Options{Temperature: 2, Seed: 1})
	seen := map[int]int{}
	for range 1000 {
		seen[s.SampleMasked(logits, nil, allowed)]++
	}
	if seen[0]+seen[1] != 0 || seen[2] == 0 || seen[3] == 0 {
		t.Fatalf("masked draws %v", seen)
	}
	// Every allowed logit unusable: the allowed id with the best raw logit.
	inf := float32(math.Inf(-1))
	if id := NewSampler(Options{Temperature: 1}).SampleMasked([]float32{1, inf, inf}, nil, []bool{false, true, true}); id != 1 {
		t.Fatalf("all -Inf: %d, want 1", id)
	}
	if id := s.SampleMasked(logits, nil, make([]bool, 4)); id != -1 {
		t.Fatalf("nothing allowed: %d, want -1", id)
	}
}
