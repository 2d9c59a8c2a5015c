package bench

import (
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
	if _, err := Run(m, Options{PromptTokens: 0}); err == nil {
		t.Fatal("empty prompt accepted")
	}
	if _, err := Run(m, Options{PromptTokens: 600, GenTokens: 1}); err == nil {
		t.Fatal("prompt longer than the context accepted")
	}
}
