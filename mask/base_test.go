package mask

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/randmodel"
)

// encodings writes the random model of seed as a BF16 Hugging Face folder
// and converts it to GGUF (f16, q8_0 and q4_0) with masque's writer; it
// returns the folder and the files by type.
func encodings(t *testing.T, dir string, seed uint64) (string, map[string]string) {
	t.Helper()
	cfg := randmodel.Presets["tiny"]
	cfg.Intermediate = 128 // whole q8_0/q4_0 blocks in every row
	hf := filepath.Join(dir, "hf")
	if err := randmodel.Write(hf, cfg, seed, 0.05, quant.BF16); err != nil {
		t.Fatal(err)
	}
	m, err := model.LoadHF(hf)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	files := map[string]string{}
	for _, typ := range []quant.DType{quant.F16, quant.Q8_0, quant.Q4_0} {
		p := filepath.Join(dir, "model-"+typ.String()+".gguf")
		if err := model.SaveGGUF(p, m, model.GGUFOptions{Type: typ}); err != nil {
			t.Fatal(err)
		}
		files[typ.String()] = p
	}
	return hf, files
}

func TestMaskAppliesToOtherEncodingsOfItsBase(t *testing.T) {
	dir := t.TempDir()
	hf, files := encodings(t, filepath.Join(dir, "a"), 1)
	_, other := encodings(t, filepath.Join(dir, "b"), 2)

	base, err := model.LoadHF(hf)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	base.SetOrigin("/models/a")
	mk := New(base)
	b := NewBits(mk.Shapes[model.ProjUp][0], mk.Shapes[model.ProjUp][1])
	b.Set(3, 5, false)
	if err := mk.Set(Key{1, model.ProjUp}, b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a.mask.safetensors")
	if err := mk.Save(path); err != nil {
		t.Fatal(err)
	}
	mk, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if mk.Base != "/models/a" || mk.Probe == nil || mk.Probe.Type != base.Layers[0].Q.Type.String() || mk.Arch != base.ArchFingerprint() {
		t.Fatalf("recorded base %q, probe %+v, arch %q", mk.Base, mk.Probe.Type, mk.Arch)
	}
	rb, err := ReadBase(path)
	if err != nil || rb.Ref != "/models/a" || rb.Fingerprint != base.Fingerprint() || rb.File != path {
		t.Fatalf("ReadBase = %+v, %v", rb, err)
	}
	if w, err := mk.Compat(base); err != nil || w != "" {
		t.Fatalf("its own base: %q, %v", w, err)
	}

	for typ, p := range files {
		m, err := model.LoadGGUF(p)
		if err != nil {
			t.Fatal(err)
		}
		if m.Fingerprint() == base.Fingerprint() {
			t.Fatalf("%s: the fingerprint does not tell the encodings apart", typ)
		}
		w, err := mk.Compat(m)
		if err != nil {
			t.Errorf("%s conversion of the mask's base refused: %v", typ, err)
		}
		switch quantised := typ != "f16"; {
		case quantised && !(strings.Contains(w, "quantised") && strings.Contains(w, typ) && strings.Contains(w, path)):
			t.Errorf("%s: warning %q does not say the weights are quantised", typ, w)
		case !quantised && w != "":
			t.Errorf("%s: unexpected warning %q", typ, w)
		}
		m.Close()

		// The same shapes, other weights: another model.
		o, err := model.LoadGGUF(other[typ])
		if err != nil {
			t.Fatal(err)
		}
		_, err = mk.Compat(o)
		if err == nil || !strings.Contains(err.Error(), "another model") || !strings.Contains(err.Error(), path) ||
			!strings.Contains(err.Error(), other[typ]) || !strings.Contains(err.Error(), "/models/a") {
			t.Errorf("%s of another model: %v", typ, err)
		}
		if err := mk.Check(o); err == nil {
			t.Errorf("%s of another model: Check accepted it", typ)
		}
		o.Close()
	}

	// A mask without the probe (written before masque recorded it) still
	// loads, and needs the exact fingerprint.
	mk.Probe, mk.Arch, mk.Base = nil, "", ""
	old := filepath.Join(dir, "old.mask.safetensors")
	if err := mk.Save(old); err != nil {
		t.Fatal(err)
	}
	mk, err = Load(old)
	if err != nil {
		t.Fatal(err)
	}
	if rb, err := ReadBase(old); err != nil || rb.Ref != "" {
		t.Fatalf("old mask: ReadBase = %+v, %v", rb, err)
	}
	if err := mk.Check(base); err != nil {
		t.Fatal(err)
	}
	m, err := model.LoadGGUF(files["f16"])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := mk.Check(m); err == nil || !strings.Contains(err.Error(), "another model") {
		t.Fatalf("a mask without a probe accepted another encoding: %v", err)
	}
}
