package sculpt

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	ck := openBuiltin(t)
	out := t.TempDir()
	cfg := CompareConfig{Checkpoint: ck, Corpus: corpusDir, Persona: "scripture", Ratio: 0.5, Out: out,
		Learn:        Config{Steps: 2, BatchTokens: 512, Seed: 1, CalibSamples: 4, EvalEvery: -1, Threads: 2},
		CalibSamples: 4, FidelityLimit: 1, FidelityMaxTokens: 6, NoExport: true,
		Methods: []string{MethodGlobal, MethodMagnitude, MethodWandaGeneric, MethodDepthAngular}}
	res, err := Compare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, CompareFile))
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(data, &js); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"persona", "ratio", "dense", "methods", "drop_avoided_vs_best_baseline"} {
		if _, ok := js[key]; !ok {
			t.Errorf("compare.json lacks %q", key)
		}
	}
	dense := js["dense"].(map[string]any)
	if dense["ppl"] == nil || dense["fidelity"] == nil {
		t.Errorf("dense: %v", dense)
	}
	methods := js["methods"].(map[string]any)
	if len(methods) != 5 {
		t.Fatalf("%d methods: %v", len(methods), methods)
	}
	pp := PrunedParams(ck.Model, res.K)
	for name, v := range methods {
		f := v.(map[string]any)
		if f["ppl"] == nil || f["fidelity"] == nil || f["params"] == nil {
			t.Errorf("%s: %v", name, f)
		}
		params := int64(f["params"].(float64))
		switch name {
		case MethodDepth, MethodDepthAngular:
			if params > pp {
				t.Errorf("%s keeps %d parameters, more than %d", name, params, pp)
			}
		default:
			if params != pp {
				t.Errorf("%s keeps %d parameters, want %d", name, params, pp)
			}
		}
	}
	if res.BestBaseline == "" || res.BestBaseline == MethodPersonaPruner {
		t.Errorf("best baseline %q", res.BestBaseline)
	}
	// A second call reads the finished runs back: the same figures.
	res2, err := Compare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range res.Methods {
		if res2.Methods[name].PPL != f.PPL {
			t.Errorf("%s: ppl %v then %v", name, f.PPL, res2.Methods[name].PPL)
		}
	}

	// GlobalRun: another comparison uses the finished global mask instead
	// of learning its own: the same model, so the same perplexity.
	gc := cfg
	gc.Out, gc.Methods, gc.NoFidelity = t.TempDir(), []string{MethodGlobal}, true
	gc.GlobalRun = filepath.Join(out, MethodGlobal)
	res3, err := Compare(context.Background(), gc)
	if err != nil {
		t.Fatal(err)
	}
	if g := res3.Methods[MethodGlobal]; g.PPL != res.Methods[MethodGlobal].PPL || g.Dir != gc.GlobalRun {
		t.Errorf("global from %s: ppl %v dir %s, want ppl %v", gc.GlobalRun, g.PPL, g.Dir, res.Methods[MethodGlobal].PPL)
	}
	if _, err := os.Stat(filepath.Join(gc.Out, MethodGlobal)); err == nil {
		t.Errorf("a global mask was learned in %s although GlobalRun was given", gc.Out)
	}
	// A run that is not a global mask, or of another ratio, is refused by name.
	gc.Out, gc.GlobalRun = t.TempDir(), filepath.Join(out, MethodPersonaPruner)
	if _, err := Compare(context.Background(), gc); err == nil || !strings.Contains(err.Error(), "not a global mask") {
		t.Errorf("persona-pruner run as GlobalRun: %v", err)
	}
	gc.GlobalRun, gc.Ratio = filepath.Join(out, MethodGlobal), 0.25
	if _, err := Compare(context.Background(), gc); err == nil || !strings.Contains(err.Error(), "ratio") {
		t.Errorf("global run of ratio 0.5 used at 0.25: %v", err)
	}
}

// TestCompareRecover: with Recover, the recovered Persona-Pruner model is
// measured as its own row, which is no baseline.
func TestCompareRecover(t *testing.T) {
	ck := openBuiltin(t)
	out := t.TempDir()
	cfg := CompareConfig{Checkpoint: ck, Corpus: corpusDir, Persona: "gloss", Ratio: 0.5, Out: out,
		Learn:        Config{Steps: 2, BatchTokens: 512, Seed: 1, CalibSamples: 4, EvalEvery: -1, Threads: 2, Export: ExportOptions{NoGGUF: true}},
		CalibSamples: 4, NoFidelity: true, Methods: []string{MethodMagnitude},
		Recover: &RecoverConfig{Mode: RecoverLoRA, Steps: 4, LR: 3e-3}}
	res, err := Compare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	pp, rec := res.Methods[MethodPersonaPruner], res.Methods[MethodRecovered]
	if rec == nil || rec.Params != pp.Params || !(rec.PPL < pp.PPL) {
		t.Fatalf("recovered %+v, persona-pruner %+v", rec, pp)
	}
	if res.BestBaseline != MethodMagnitude || res.Definitions[MethodRecovered] == "" {
		t.Errorf("best baseline %q, definitions %v", res.BestBaseline, res.Definitions)
	}
	html, _ := os.ReadFile(filepath.Join(out, "compare.html"))
	if !strings.Contains(string(html), "recovery</td>") {
		t.Error("compare.html lacks the recovered row")
	}
	cfg.NoExport = true
	if _, err := Compare(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "no export") {
		t.Errorf("recovery without export: %v", err)
	}
}
