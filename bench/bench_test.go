package bench

import (
	"github.com/masque-ai/masque/kernels"
	"testing"

	"github.com/masque-ai/masque/model"
)

func TestRun(t *testing.T) {
	m, err := model.LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(m, Options{PromptTokens: 16, GenTokens: 8, Reps: 3, BandwidthBytes: 32 << 20, BandwidthReps: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.PrefillTokS <= 0 || r.DecodeTokS <= 0 || len(r.DecodeRuns) != 3 {
		t.Fatalf("implausible result %+v", r)
	}
	// The bound and the fractions are what their definitions say.
	if r.Bandwidth == nil || r.Bandwidth.Threads != r.Threads || len(r.Bandwidth.RunsGBs) != 2 || r.Bandwidth.BufferBytes != 32<<20 {
		t.Fatalf("bandwidth %+v (threads %d)", r.Bandwidth, r.Threads)
	}
	if want := r.Bandwidth.BestGBs * 1e9 / float64(r.WeightBytesPerToken); r.BoundTokS != want {
		t.Errorf("bound %g tok/s, want best GB/s ÷ bytes per token = %g", r.BoundTokS, want)
	}
	if r.DecodeOfBound != r.DecodeTokS/r.BoundTokS || len(r.DecodeOfBoundRuns) != 3 || r.DecodeOfBoundRuns[1] != r.DecodeRuns[1]/r.BoundTokS {
		t.Errorf("decode of bound %g %v for decode %g %v, bound %g", r.DecodeOfBound, r.DecodeOfBoundRuns, r.DecodeTokS, r.DecodeRuns, r.BoundTokS)
	}
	if r, err := Run(m, Options{PromptTokens: 4, GenTokens: 2, Reps: 1, NoBandwidth: true}); err != nil || r.Bandwidth != nil || r.BoundTokS != 0 || r.WeightBytesPerToken == 0 {
		t.Errorf("NoBandwidth: %+v, %v", r, err)
	}
	if !r.BF16Rounded {
		t.Error("the default kernels should report rounded bf16 activations")
	}
	m.K = kernels.ExactBF16(m.K)
	if r, err := Run(m, Options{PromptTokens: 4, GenTokens: 2, Reps: 1}); err != nil || r.BF16Rounded {
		t.Errorf("ExactBF16 kernels: %+v, %v", r, err)
	}
	if _, err := Run(m, Options{PromptTokens: 0}); err == nil {
		t.Fatal("empty prompt accepted")
	}
	if _, err := Run(m, Options{PromptTokens: 600, GenTokens: 1}); err == nil {
		t.Fatal("prompt longer than the context accepted")
	}
}

// WeightBytesPerToken against counts by hand of the fixtures' tensors.
func TestWeightBytesPerToken(t *testing.T) {
	// tiny-llama-q4_0.gguf (testdata/gguf/README.md): 2 layers, hidden 64,
	// 4 heads and 2 KV heads of 16, FFN 128, vocab 512, every matrix Q4_0
	// (18 bytes per 32 weights), norms float32, no biases.
	m, err := model.LoadGGUF("../testdata/gguf/tiny-llama-q4_0.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	row64, row128 := int64(2*18), int64(4*18) // a Q4_0 row of 64 and of 128 weights
	layer := 64*row64 +                       // q: 64 rows of 64
		2*32*row64 + // k, v: 32 rows each
		64*row64 + // o
		2*128*row64 + // gate, up: 128 rows of 64
		64*row128 + // down: 64 rows of 128
		2*64*4 // attention and MLP norms
	want := 2*layer + 64*4 + // final norm
		512*row64 + // LM head
		row64 // one embedding row
	if got := WeightBytesPerToken(m); got != want {
		t.Errorf("tiny-llama-q4_0: %d bytes per token, counted %d", got, want)
	}

	// stories260K (llama2.c, float32): 5 layers, dim 64, 8 heads and 4 KV
	// heads of 8, FFN 172, vocab 512, the classifier tied to the embeddings.
	s, err := model.LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	layer = 4 * (64*64 + 2*32*64 + 64*64 + 3*172*64 + 2*64)
	want = 5*layer + 4*64 + 4*512*64 + 4*64
	if got := WeightBytesPerToken(s); got != want {
		t.Errorf("stories260K: %d bytes per token, counted %d", got, want)
	}
}

// MeasureBandwidth gives a positive, physically plausible figure (no
// timing is asserted beyond that: the machine may be busy).
func TestMeasureBandwidth(t *testing.T) {
	b, err := MeasureBandwidth(BandwidthOptions{Bytes: 64 << 20, Threads: 2, Reps: 3})
	if err != nil {
		t.Fatal(err)
	}
	if b.BufferBytes != 64<<20 || b.Threads != 2 || len(b.RunsGBs) != 3 {
		t.Fatalf("result %+v", b)
	}
	// Between a floppy-era 0.05 GB/s and 10 TB/s (more than any CPU socket).
	if b.BestGBs < 0.05 || b.BestGBs > 1e4 || b.MedianGBs > b.BestGBs || b.MedianGBs <= 0 {
		t.Errorf("implausible bandwidth: best %g GB/s, median %g", b.BestGBs, b.MedianGBs)
	}
	if d := DefaultBandwidthBytes(); d < 256<<20 || d < 8*b.LLCBytes && d < 2<<30 {
		t.Errorf("default buffer %d bytes for a last-level cache of %d", d, b.LLCBytes)
	}
	if _, err := MeasureBandwidth(BandwidthOptions{Bytes: 8, Threads: 4}); err == nil {
		t.Error("a buffer smaller than one iteration per thread accepted")
	}
	if got := sumWords([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}); got != 136 {
		t.Errorf("sumWords = %d, want 136", got)
	}
}
