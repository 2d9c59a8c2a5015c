package persona

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

func TestOpen(t *testing.T) {
	m := loadTiny(t, "qwen2")
	dir := t.TempDir()
	mk := mask.New(m)
	w := m.Layers[0].Weight(model.ProjQ)
	mk.Set(mask.Key{Layer: 0, Proj: model.ProjQ}, randomBits(rand.New(rand.NewPCG(3, 4)), w.Rows, w.Cols, 0.5))
	mk.Info = mask.Info{Method: "wanda", Sparsity: 0.5, Granularity: "row", Targets: "attn"}
	if err := mk.Save(filepath.Join(dir, "q.safetensors")); err != nil {
		t.Fatal(err)
	}

	base, err := Open(Spec{Name: "plain", SystemPrompt: "You are plain."}, m, "")
	if err != nil {
		t.Fatal(err)
	}
	if base.Overlay != nil || base.Adapter() != nil || base.Hooks() != nil || base.Bytes() != 0 || base.Checkpoint != nil {
		t.Errorf("a base persona carries %+v", base)
	}

	// Inside a root, paths are relative and resolved.
	op, err := Open(Spec{Name: "masked", Mask: "q.safetensors"}, m, dir)
	if err != nil {
		t.Fatal(err)
	}
	if op.Adapter() == nil || op.Bytes() == 0 {
		t.Errorf("masked persona: adapter %v, %d bytes", op.Adapter(), op.Bytes())
	}
	// The mask's metadata and the share it prunes (one projection of one
	// layer, half of it: a small share of all the linear weights).
	if got, want := op.Mask, (&MaskSummary{Method: "wanda", Granularity: "row", Targets: "attn", TargetSparsity: 0.5, Sparsity: 1 - mk.Density()}); got == nil || *got != *want || want.Sparsity <= 0 || want.Sparsity >= 0.5 {
		t.Errorf("mask summary %+v, want %+v", got, want)
	}
	if base.Mask != nil {
		t.Errorf("a base persona has a mask summary %+v", base.Mask)
	}
	if want, _ := filepath.EvalSymlinks(filepath.Join(dir, "q.safetensors")); op.Spec.Mask != want {
		t.Errorf("mask path %q, want %q", op.Spec.Mask, want)
	}

	// Paths that leave the root are refused, and so are absolute paths.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../x", filepath.Join(outside, "x"), "link", "missing"} {
		if _, err := Open(Spec{Name: "bad", Mask: p}, m, dir); err == nil {
			t.Errorf("mask path %q inside root %s was accepted", p, dir)
		}
	}
	// Without a root, the path is used as it is; a bad file is an error
	// naming it.
	if _, err := Open(Spec{Name: "bad", Mask: filepath.Join(outside, "x")}, m, ""); err == nil || !strings.Contains(err.Error(), "x") {
		t.Errorf("an empty mask file: %v", err)
	}
	if _, err := Open(Spec{Name: "bad/name"}, m, ""); err == nil {
		t.Error("an invalid spec was opened")
	}
	if _, err := Open(Spec{Name: "card", Card: "c.png"}, m, ""); err == nil {
		t.Error("a spec naming a card was opened")
	}
}
