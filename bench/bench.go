// Package bench measures inference speed the way llama.cpp's tools do:
// prompt processing (one batched forward pass over N random prompt tokens)
// and decoding (M single-token steps with a greedy argmax), as medians over
// repetitions after a warm-up, plus the process's peak resident memory,
// and the bound that memory bandwidth sets on decoding (see Bandwidth).
package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
)

// Options configure Run.
type Options struct {
	PromptTokens int    // tokens in the timed prefill
	GenTokens    int    // timed single-token decode steps
	Reps         int    // repetitions (the median is reported)
	Threads      int    // kernel threads (0: leave as is)
	Seed         uint64 // for the random prompt

	NoBandwidth    bool  // skip the memory-bandwidth measurement
	BandwidthBytes int64 // its buffer (0: DefaultBandwidthBytes)
	BandwidthReps  int   // its passes (0: 10)
}

// Result is what Run measured.
type Result struct {
	Model          string    `json:"model"`
	Kernels        string    `json:"kernels"`
	BF16Rounded    bool      `json:"bf16_activations_rounded"` // see kernels.ExactBF16
	Threads        int       `json:"threads"`
	PromptTokens   int       `json:"prompt_tokens"`
	GenTokens      int       `json:"gen_tokens"`
	Reps           int       `json:"reps"`
	PrefillTokS    float64   `json:"prefill_tok_s"`
	DecodeTokS     float64   `json:"decode_tok_s"`
	PrefillRuns    []float64 `json:"prefill_tok_s_runs"`
	DecodeRuns     []float64 `json:"decode_tok_s_runs"`
	PeakRSSBytes   int64     `json:"peak_rss_bytes"`
	CurrentRSS     int64     `json:"rss_bytes"`
	ParamCount     int64     `json:"parameters"`
	WeightType     string    `json:"weight_type"`
	CacheType      string    `json:"cache_type"` // of the KV cache (model.Model.SetCacheType)
	DecodeMsPerTok float64   `json:"decode_ms_per_token"`

	// WeightBytesPerToken is what one decode step reads of the weights
	// (see the function of that name).
	WeightBytesPerToken int64 `json:"weight_bytes_per_token"`
	// Bandwidth is the memory read bandwidth with the same thread count
	// (nil with Options.NoBandwidth); BoundTokS = its best GB/s ÷
	// WeightBytesPerToken, the most tokens/s decoding could reach; the
	// decode figures as fractions of it are DecodeOfBound (the median)
	// and DecodeOfBoundRuns (each run).
	Bandwidth         *Bandwidth `json:"bandwidth,omitempty"`
	BoundTokS         float64    `json:"bandwidth_bound_tok_s,omitempty"`
	DecodeOfBound     float64    `json:"decode_of_bound,omitempty"`
	DecodeOfBoundRuns []float64  `json:"decode_of_bound_runs,omitempty"`
}

// Run benchmarks m.
func Run(m *model.Model, o Options) (*Result, error) {
	if o.PromptTokens <= 0 || o.GenTokens < 0 {
		return nil, fmt.Errorf("bench: need a positive prompt length")
	}
	if n := o.PromptTokens + o.GenTokens; m.Config.MaxSeq > 0 && n > m.Config.MaxSeq {
		return nil, fmt.Errorf("bench: %d prompt + %d generated tokens exceed the model's context of %d", o.PromptTokens, o.GenTokens, m.Config.MaxSeq)
	}
	if o.Reps <= 0 {
		o.Reps = 3
	}
	if o.Threads > 0 {
		kernels.SetThreads(o.Threads)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	prompt := make([]int, o.PromptTokens)
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.Vocab)
	}
	cache := m.NewCache(o.PromptTokens + o.GenTokens + 1)
	one := func() (pre, dec float64, err error) {
		cache.Reset()
		t0 := time.Now()
		logits, err := m.Forward(cache, prompt, false)
		if err != nil {
			return 0, 0, err
		}
		pre = float64(o.PromptTokens) / time.Since(t0).Seconds()
		t1 := time.Now()
		for i := 0; i < o.GenTokens; i++ {
			next := argmax(logits)
			if logits, err = m.Forward(cache, []int{next}, false); err != nil {
				return 0, 0, err
			}
		}
		if o.GenTokens > 0 {
			dec = float64(o.GenTokens) / time.Since(t1).Seconds()
		}
		return pre, dec, nil
	}
	if _, _, err := one(); err != nil { // warm-up: page in the weights, size the caches
		return nil, err
	}
	r := &Result{Model: m.Source(), Kernels: m.K.Name(), BF16Rounded: kernels.RoundsBF16(m.K), Threads: kernels.Threads(), PromptTokens: o.PromptTokens,
		GenTokens: o.GenTokens, Reps: o.Reps, ParamCount: m.NumParams(), WeightType: m.Layers[0].Q.Type.String(),
		CacheType: m.CacheType().String(), WeightBytesPerToken: WeightBytesPerToken(m)}
	for i := 0; i < o.Reps; i++ {
		p, d, err := one()
		if err != nil {
			return nil, err
		}
		r.PrefillRuns = append(r.PrefillRuns, p)
		r.DecodeRuns = append(r.DecodeRuns, d)
	}
	r.PrefillTokS, r.DecodeTokS = Median(r.PrefillRuns), Median(r.DecodeRuns)
	if r.DecodeTokS > 0 {
		r.DecodeMsPerTok = 1000 / r.DecodeTokS
	}
	r.PeakRSSBytes, r.CurrentRSS = rss() // before the bandwidth buffer
	if !o.NoBandwidth {
		bw, err := MeasureBandwidth(BandwidthOptions{Bytes: o.BandwidthBytes, Threads: r.Threads, Reps: o.BandwidthReps})
		if err != nil {
			return nil, err
		}
		r.Bandwidth = bw
		if r.WeightBytesPerToken > 0 {
			r.BoundTokS = bw.BestGBs * 1e9 / float64(r.WeightBytesPerToken)
		}
		if r.BoundTokS > 0 && o.GenTokens > 0 {
			r.DecodeOfBound = r.DecodeTokS / r.BoundTokS
			for _, d := range r.DecodeRuns {
				r.DecodeOfBoundRuns = append(r.DecodeOfBoundRuns, d/r.BoundTokS)
			}
		}
	}
	return r, nil
}

func argmax(v []float32) int {
	b := 0
	for i, x := range v {
		if x > v[b] {
			b = i
		}
	}
	return b
}

// Median is the middle value of v (the mean of the two middle ones for an
// even count; 0 for none); v is not changed.
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
