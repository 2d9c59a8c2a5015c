package lora

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/randmodel"
)

// openEncodings writes the random model of seed as a BF16 Hugging Face
// folder, converts it to GGUF f16 and q8_0 with masque's writer, and
// returns the three models opened (the folder's first).
func openEncodings(t *testing.T, dir string, seed uint64) []*model.Model {
	t.Helper()
	cfg := randmodel.Presets["tiny"]
	cfg.Intermediate = 128 // whole q8_0 blocks in every row
	hf := filepath.Join(dir, "hf")
	if err := randmodel.Write(hf, cfg, seed, 0.05, quant.BF16); err != nil {
		t.Fatal(err)
	}
	m, err := model.LoadHF(hf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	out := []*model.Model{m}
	for _, typ := range []quant.DType{quant.F16, quant.Q8_0} {
		p := filepath.Join(dir, "model-"+typ.String()+".gguf")
		if err := model.SaveGGUF(p, m, model.GGUFOptions{Type: typ}); err != nil {
			t.Fatal(err)
		}
		g, err := model.LoadGGUF(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		out = append(out, g)
	}
	return out
}

// TestCompat: an adapter saved on a model applies to that model and to its
// GGUF conversions (with a warning for quantised weights), and is refused
// on another model of the same shape; without a probe, the old warning.
func TestCompat(t *testing.T) {
	dir := t.TempDir()
	a := openEncodings(t, filepath.Join(dir, "a"), 1)
	b := openEncodings(t, filepath.Join(dir, "b"), 2)
	base, f16, q8 := a[0], a[1], a[2]
	base.SetOrigin("/models/a")
	ad, err := New(base, Config{Rank: 2, Alpha: 4, Targets: []model.Proj{model.ProjQ, model.ProjDown}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(dir, "adapter")
	if err := ad.Save(saved, nil); err != nil {
		t.Fatal(err)
	}
	// The probe and arch are extra masque_* keys; PEFT's keys are as before.
	raw, _ := os.ReadFile(filepath.Join(saved, ConfigFile))
	var keys map[string]any
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	if keys["masque_base_arch"] != base.ArchFingerprint() || keys["masque_base_probe"] == nil ||
		keys["base_model_name_or_path"] != "/models/a" || keys["peft_type"] != "LORA" {
		t.Fatalf("adapter_config.json: %s", raw)
	}
	ad, err = Load(saved)
	if err != nil {
		t.Fatal(err)
	}
	if ad.Config.BaseArch != base.ArchFingerprint() || ad.Config.BaseProbe == nil || ad.Config.BaseProbe.Type != "bf16" {
		t.Fatalf("loaded arch %q, probe %+v", ad.Config.BaseArch, ad.Config.BaseProbe)
	}

	// (a) its own base, (b) its f16 conversion: fine, no warning.
	for _, m := range []*model.Model{base, f16} {
		if w, err := ad.Compat(m); err != nil || w != "" {
			t.Errorf("%s: %q, %v", m.Source(), w, err)
		}
	}
	// Its q8_0 quantisation: fine, with a warning naming the type.
	if w, err := ad.Compat(q8); err != nil || !strings.Contains(w, "quantised to q8_0") || !strings.Contains(w, saved) || !strings.Contains(w, "/models/a") {
		t.Errorf("q8_0: %q, %v", w, err)
	}
	// (c) Another random model of the same shape, in every encoding: refused.
	for _, m := range b {
		_, err := ad.Compat(m)
		if err == nil || !strings.Contains(err.Error(), "another model") || !strings.Contains(err.Error(), saved) ||
			!strings.Contains(err.Error(), "/models/a") || !strings.Contains(err.Error(), m.Source()) {
			t.Errorf("another model %s: %v", m.Source(), err)
		}
	}
	// Another architecture: refused, saying so.
	other, err := model.Load("../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := ad.Compat(other); err == nil || !strings.Contains(err.Error(), "architecture") {
		t.Errorf("another architecture: %v", err)
	}

	// Without the probe (an older masque adapter): a warning on another
	// fingerprint, never an error.
	var pc map[string]json.RawMessage
	json.Unmarshal(raw, &pc)
	delete(pc, "masque_base_probe")
	delete(pc, "masque_base_arch")
	old := filepath.Join(dir, "old")
	writeAdapter(t, saved, old, pc)
	ad, err = Load(old)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := ad.Compat(base); err != nil || w != "" {
		t.Errorf("old adapter on its base: %q, %v", w, err)
	}
	for _, m := range []*model.Model{f16, b[0]} {
		if w, err := ad.Compat(m); err != nil || !strings.Contains(w, "another encoding of that model, or another model") || !strings.Contains(w, old) {
			t.Errorf("old adapter on %s: %q, %v", m.Source(), w, err)
		}
	}
	// Without a fingerprint either (PEFT's adapters): nothing to say.
	delete(pc, "masque_base_fingerprint")
	peft := filepath.Join(dir, "peft")
	writeAdapter(t, saved, peft, pc)
	if ad, err = Load(peft); err != nil {
		t.Fatal(err)
	}
	if w, err := ad.Compat(b[0]); err != nil || w != "" {
		t.Errorf("PEFT adapter: %q, %v", w, err)
	}
	// A damaged probe is an error naming the file.
	pc["masque_base_fingerprint"], _ = json.Marshal(base.Fingerprint())
	pc["masque_base_arch"], _ = json.Marshal(base.ArchFingerprint())
	pc["masque_base_probe"] = json.RawMessage(`{"type":"bf16","rows":4,"cols":16,"values":"%%"}`)
	bad := filepath.Join(dir, "bad")
	writeAdapter(t, saved, bad, pc)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, ConfigFile)) || !strings.Contains(err.Error(), "masque_base_probe") {
		t.Errorf("damaged probe: %v", err)
	}
}

// writeAdapter writes config as dir's adapter_config.json, with the
// weights of the adapter folder from.
func writeAdapter(t *testing.T, from, dir string, config map[string]json.RawMessage) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	w, err := os.ReadFile(filepath.Join(from, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(config)
	if err := os.WriteFile(filepath.Join(dir, WeightsFile), w, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), j, 0o644); err != nil {
		t.Fatal(err)
	}
}
