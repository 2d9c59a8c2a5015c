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
	r, err := Run(m, Options{PromptTokens: 16, GenTokens: 8, Reps: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r.PrefillTokS <= 0 || r.DecodeTokS <= 0 || len(r.DecodeRuns) != 3 {
		t.Fatalf("implausible result %+v", r)
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
