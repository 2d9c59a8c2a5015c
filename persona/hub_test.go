package persona

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/hub"
	"github.com/masque-ai/masque/hub/hubtest"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

// TestRegistryHubModel: a registry's model: org/name[@rev] names a model
// pulled from the hub, as --model does; one that is not pulled is an error
// naming the registry file and the id; writing the registry back keeps
// the id.
func TestRegistryHubModel(t *testing.T) {
	td, _ := filepath.Abs("../testdata")
	h := hubtest.New(t)
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	files := map[string][]byte{}
	for _, n := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(td, "hf-tiny/llama", n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
	}
	h.Commit("org/tiny", "main", files)
	if _, err := hub.Run(context.Background(), hub.Config{Model: hub.Ref{Repo: "org/tiny"}, Cache: cache, Endpoint: h.URL, Token: "-"}); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	dir := t.TempDir()
	reg := filepath.Join(dir, "personas.yaml")
	write := func(body string) {
		if err := os.WriteFile(reg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("personas:\n  - name: tiny\n    model: org/tiny\n  - name: pinned\n    model: org/tiny@main\n")
	specs, err := LoadRegistry(reg)
	if err != nil {
		t.Fatal(err)
	}
	if specs[0].Model != "org/tiny" || specs[0].Kind() != KindModel {
		t.Fatalf("model %q, kind %s", specs[0].Model, specs[0].Kind())
	}
	for _, s := range specs {
		o, err := Open(s, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if o.Checkpoint.Ref != s.Model || !strings.Contains(o.Checkpoint.Path, filepath.Join(cache, "models--org--tiny", "snapshots")) {
			t.Errorf("%s: opened %s (ref %s)", s.Name, o.Checkpoint.Path, o.Checkpoint.Ref)
		}
		o.Close()
	}
	if err := SaveRegistry(reg, specs); err != nil {
		t.Fatal(err)
	}
	again, err := LoadRegistry(reg)
	if err != nil || again[0].Model != "org/tiny" || again[1].Model != "org/tiny@main" {
		t.Fatalf("written back: %+v, %v", again, err)
	}

	// Not pulled: an error naming the registry and the id.
	write("personas:\n  - name: absent\n    model: org/absent\n")
	_, err = LoadRegistry(reg)
	if err == nil || !strings.Contains(err.Error(), reg) || !strings.Contains(err.Error(), "org/absent") || !strings.Contains(err.Error(), "masque pull") {
		t.Fatalf("not pulled: %v", err)
	}

	// A folder of that name beside the registry is a path, as before.
	if err := os.MkdirAll(filepath.Join(dir, "org", "absent"), 0o755); err != nil {
		t.Fatal(err)
	}
	specs, err = LoadRegistry(reg)
	if err != nil || specs[0].Model != filepath.Join(dir, "org", "absent") {
		t.Fatalf("local folder: %+v, %v", specs, err)
	}
}

// TestBases: the bases that a registry's masks and adapters record, which
// serve opens when it is given no --model; older files record none.
func TestBases(t *testing.T) {
	dir := t.TempDir()
	m := loadTiny(t, "llama")
	m.SetOrigin("/models/tiny")
	mk := filepath.Join(dir, "m.mask.safetensors")
	if err := mask.New(m).Save(mk); err != nil {
		t.Fatal(err)
	}
	ad, err := lora.New(m, lora.Config{Rank: 2, Alpha: 2, Targets: []model.Proj{model.ProjV}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	lo := filepath.Join(dir, "lora")
	if err := ad.Save(lo, nil); err != nil {
		t.Fatal(err)
	}
	bs, err := Bases([]Spec{{Name: "a", Mask: mk}, {Name: "b"}, {Name: "c", LoRA: lo}})
	if err != nil || len(bs) != 2 {
		t.Fatalf("Bases = %+v, %v", bs, err)
	}
	fp := m.Fingerprint()
	if bs[0] != (checkpoint.Base{Ref: "/models/tiny", Fingerprint: fp, File: mk}) ||
		bs[1] != (checkpoint.Base{Ref: "/models/tiny", Fingerprint: fp, File: filepath.Join(lo, "adapter_config.json")}) {
		t.Fatalf("Bases = %+v", bs)
	}
	if _, err := Bases([]Spec{{Name: "x", Mask: filepath.Join(dir, "absent.safetensors")}}); err == nil || !strings.Contains(err.Error(), "persona x") {
		t.Fatalf("a missing mask: %v", err)
	}
}
