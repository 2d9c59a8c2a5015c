package persona

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/randmodel"
)

// TestMaskOverQuantisedEncoding: a mask made on a Hugging Face folder runs
// over that folder's Q8_0 GGUF conversion (written by masque): Open
// accepts it with a warning, and the masked logits are those of the masked
// folder up to the quantisation's error, far from the unmasked ones. A
// LoRA adapter made on the folder is accepted over the conversion too; both
// are refused over another model.
func TestMaskOverQuantisedEncoding(t *testing.T) {
	dir := t.TempDir()
	cfg := randmodel.Presets["tiny"]
	cfg.Intermediate = 128
	hfDir := filepath.Join(dir, "hf")
	if err := randmodel.Write(hfDir, cfg, 7, 0.08, quant.BF16); err != nil {
		t.Fatal(err)
	}
	hf, err := model.LoadHF(hfDir)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	q8Path := filepath.Join(dir, "q8.gguf")
	if err := model.SaveGGUF(q8Path, hf, model.GGUFOptions{Type: quant.Q8_0}); err != nil {
		t.Fatal(err)
	}
	q8, err := model.LoadGGUF(q8Path)
	if err != nil {
		t.Fatal(err)
	}
	defer q8.Close()
	if q8.Layers[0].Up.Type != quant.Q8_0 {
		t.Fatalf("the conversion is %s, want q8_0", q8.Layers[0].Up.Type)
	}
	mk := unstructured(hf, rand.New(rand.NewPCG(3, 4)), 0.5)
	mpath := filepath.Join(dir, "m.mask.safetensors")
	if err := mk.Save(mpath); err != nil {
		t.Fatal(err)
	}
	o, err := Open(Spec{Name: "p", Mask: mpath}, q8, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.Warning, "q8_0") {
		t.Errorf("warning %q", o.Warning)
	}
	ref, err := MaskedModel(hf, mk)
	if err != nil {
		t.Fatal(err)
	}
	toks := []int{1, 50, 300, 7, 99, 12}
	want, err := ref.Forward(ref.NewCache(16), toks, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.Model(q8).Forward(q8.NewCache(16), toks, true)
	if err != nil {
		t.Fatal(err)
	}
	dense, err := q8.Forward(q8.NewCache(16), toks, true)
	if err != nil {
		t.Fatal(err)
	}
	dq, dd := maxRelDiff(got, want), maxRelDiff(dense, want)
	if dq > 0.05 || dd < 4*dq {
		t.Errorf("masked q8_0 logits differ from the masked folder's by %g, the unmasked q8_0 ones by %g", dq, dd)
	}

	// Another model of the same shape is refused, naming the files.
	other := filepath.Join(dir, "other")
	if err := randmodel.Write(other, cfg, 8, 0.08, quant.BF16); err != nil {
		t.Fatal(err)
	}
	om, err := model.LoadHF(other)
	if err != nil {
		t.Fatal(err)
	}
	defer om.Close()
	if _, err := Open(Spec{Name: "p", Mask: mpath}, om, ""); err == nil || !strings.Contains(err.Error(), mpath) || !strings.Contains(err.Error(), other) {
		t.Errorf("a mask over another model: %v", err)
	}

	// So is a LoRA adapter made on the folder: accepted over its Q8_0
	// conversion with a warning, refused over the other model.
	ad, err := lora.New(hf, lora.Config{Rank: 2, Alpha: 4, Targets: []model.Proj{model.ProjV}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	lpath := filepath.Join(dir, "lora")
	if err := ad.Save(lpath, nil); err != nil {
		t.Fatal(err)
	}
	if o, err := Open(Spec{Name: "p", LoRA: lpath}, q8, ""); err != nil || !strings.Contains(o.Warning, "q8_0") || !strings.Contains(o.Warning, lpath) {
		t.Errorf("a LoRA adapter over the q8_0 conversion of its base: %v", err)
	}
	if _, err := Open(Spec{Name: "p", LoRA: lpath}, om, ""); err == nil || !strings.Contains(err.Error(), lpath) || !strings.Contains(err.Error(), other) {
		t.Errorf("a LoRA adapter over another model: %v", err)
	}
}
