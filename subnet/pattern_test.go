package subnet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/stats"
)

func TestPatternSpec(t *testing.T) {
	opts, err := PatternSpec{Sparsity: "0.1, 0.5,", Only: "mlp", Gamma: 0.2, Workers: 3}.Patterns()
	if err != nil || len(opts) != 2 || opts[0].Sparsity != 0.1 || opts[1].Sparsity != 0.5 {
		t.Fatalf("list: %+v %v", opts, err)
	}
	if o := opts[1]; o.Targets != MLPOnly || o.Gamma != 0.2 || o.Workers != 3 {
		t.Errorf("shared fields lost: %+v", o)
	}
	opts, err = PatternSpec{Sparsity: "0.1,0.5", NM: "2:4"}.Patterns()
	if err != nil || len(opts) != 1 || opts[0].N != 2 || opts[0].M != 4 {
		t.Errorf("N:M replaces the list: %+v %v", opts, err)
	}
	opts, err = PatternSpec{Sparsity: "0.9", LayerSparsity: "0.2,0.4"}.Patterns()
	if err != nil || len(opts) != 1 || len(opts[0].LayerSparsity) != 2 || opts[0].Sparsity < 0.2999 || opts[0].Sparsity > 0.3001 {
		t.Errorf("per layer (mean 0.3): %+v %v", opts, err)
	}
	for _, c := range []struct {
		spec       PatternSpec
		field, msg string
	}{
		{PatternSpec{Sparsity: "0.5", Only: "ffnx"}, "only", "unknown target set"},
		{PatternSpec{NM: "4:2"}, "nm", "bad N:M"},
		{PatternSpec{LayerSparsity: "0.1,x"}, "layer-sparsity", `bad number "x"`},
		{PatternSpec{Sparsity: "0.5,y"}, "sparsity", `bad number "y"`},
		{PatternSpec{Sparsity: " , "}, "sparsity", "no value"},
	} {
		_, err := c.spec.Patterns()
		var se *SpecError
		if !errors.As(err, &se) || se.Field != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: %v, want %s: …%s", c.spec, err, c.field, c.msg)
		}
	}
}

// TestCollectStats collects statistics over a text file with Gram matrices
// for one layer, saves them, and reads them back.
func TestCollectStats(t *testing.T) {
	m := loadStories(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "calib.txt")
	if err := os.WriteFile(text, []byte("Once upon a time there was a cat.\nThe dog ran to the park.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stages []string
	cfg := StatsConfig{Model: m, ModelName: "stories", Calib: calib.Source{Text: text}, CalibModel: testCalibModel(m),
		GramLayers: map[int]bool{1: true}, Out: filepath.Join(dir, "st"),
		Progress: func(stage string, done, total int) {
			if len(stages) == 0 || stages[len(stages)-1] != stage {
				stages = append(stages, stage)
			}
		}}
	st, set, err := CollectStats(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Samples) != 2 || st.Manifest.Samples != 2 || st.Manifest.Model != "stories" {
		t.Errorf("samples %d, manifest %+v", len(set.Samples), st.Manifest)
	}
	if strings.Join(stages, ",") != "statistics" {
		t.Errorf("stages %q", stages)
	}
	back, err := stats.Load(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range back.Manifest.Gram {
		if !strings.HasPrefix(g, "1.") {
			t.Errorf("Gram matrix %s outside the chosen layer", g)
		}
	}
	if len(back.Manifest.Gram) == 0 {
		t.Error("no Gram matrix for layer 1")
	}
	if _, _, err := CollectStats(context.Background(), StatsConfig{Model: m, CalibModel: testCalibModel(m)}); err == nil {
		t.Error("no output folder: no error")
	}
}

func TestParseMethods(t *testing.T) {
	ms, err := ParseMethods("wanda, ,SparseGPT")
	if err != nil || len(ms) != 2 || ms[0] != Wanda || ms[1] != SparseGPT {
		t.Errorf("%v %v", ms, err)
	}
	if _, err := ParseMethods(" , "); err == nil || err.Error() != "no method" {
		t.Errorf("empty: %v", err)
	}
	if _, err := ParseMethods("wanda,obs"); err == nil || !strings.Contains(err.Error(), `"obs"`) {
		t.Errorf("unknown: %v", err)
	}
}
