package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/roleplay"
)

// synthRun builds a complete run whose item scores for metric "consistency"
// are vals[persona][question].
func synthRun(label, method string, sparsity *float64, vals map[string][]float64) *roleplay.Run {
	r := &roleplay.Run{Format: roleplay.RunFormat, Label: label, Method: method, Sparsity: sparsity, Complete: true,
		Metrics: []string{"consistency"}, Set: roleplay.SetInfo{Name: "s", Questions: 4}, Prompts: []judge.Metric{judge.Consistency},
		Judge: &roleplay.JudgeInfo{Model: "j", PromptVersion: judge.PromptVersion}}
	for _, p := range []string{"ann", "bob"} {
		r.Personas = append(r.Personas, roleplay.PersonaResult{ID: p, Description: "persona " + p})
		for i, v := range vals[p] {
			r.Items = append(r.Items, roleplay.Item{ID: fmt.Sprintf("%s/specific/%02d", p, i), Persona: p, Kind: roleplay.KindSpecific, Index: i,
				Question: "q", Answered: true, Answer: "a",
				Scores: map[string]roleplay.ItemScore{"consistency": {Score: judge.Score{Value: v, OK: true}}}})
		}
	}
	r.Aggregate()
	return r
}

func sp(v float64) *float64 { return &v }

func TestPairedBootstrap(t *testing.T) {
	a := synthRun("a", "dense", sp(0), map[string][]float64{"ann": {80, 70, 90, 60}, "bob": {50, 55, 40, 65}})
	b := synthRun("b", "x", sp(0.5), map[string][]float64{"ann": {70, 72, 70, 50}, "bob": {45, 45, 40, 60}})
	c := synthRun("c", "x", sp(0.25), map[string][]float64{"ann": {75, 65, 85, 55}, "bob": {45, 50, 35, 60}})
	tests := []struct {
		name     string
		x, y     *roleplay.Run
		mean     float64
		constant bool
	}{
		// ann: (−10 + 2 − 20 − 10)/4 = −9.5; bob: (−5 −10 + 0 −5)/4 = −5;
		// mean over personas −7.25.
		{"varying differences", a, b, -7.25, false},
		// Every difference is −5: the interval is the point.
		{"constant differences", a, c, -5, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d1 := PairedBootstrap(tc.x, tc.y, "consistency", 2000, 42, 0.95)
			d2 := PairedBootstrap(tc.x, tc.y, "consistency", 2000, 42, 0.95)
			if d1 != d2 {
				t.Fatalf("not reproducible: %+v vs %+v", d1, d2)
			}
			if math.Abs(float64(d1.Mean)-tc.mean) > 1e-12 || d1.Pairs != 8 || d1.Personas != 2 {
				t.Fatalf("%+v", d1)
			}
			if tc.constant {
				if float64(d1.Lo) != tc.mean || float64(d1.Hi) != tc.mean {
					t.Fatalf("interval %+v", d1)
				}
				return
			}
			if !(d1.Lo < d1.Mean && d1.Mean < d1.Hi) {
				t.Fatalf("interval does not bracket the estimate: %+v", d1)
			}
			// The extreme resample is all −20 for ann and all −10 for bob:
			// the interval lies within [−15, 1].
			if d1.Lo < -15 || d1.Hi > 1 {
				t.Fatalf("interval outside the possible range: %+v", d1)
			}
			d3 := PairedBootstrap(tc.x, tc.y, "consistency", 2000, 43, 0.95)
			if d3.Lo == d1.Lo && d3.Hi == d1.Hi {
				t.Fatalf("another seed gives the same interval %+v", d3)
			}
		})
	}
	// No paired scores: undefined, not zero.
	empty := synthRun("e", "x", nil, map[string][]float64{})
	if d := PairedBootstrap(a, empty, "consistency", 100, 1, 0.95); d.Mean.Valid() || d.Pairs != 0 {
		t.Fatalf("%+v", d)
	}
}

func TestRecoveredShare(t *testing.T) {
	// The Persona-Pruner headline: dense 83.35, Persona-Pruner 81.20,
	// LLM-Pruner 48.43 → 1 − 2.15/34.92 = 93.84%.
	one := func(v float64) map[string][]float64 { return map[string][]float64{"ann": {v}, "bob": {v}} }
	runs := func() []*roleplay.Run {
		return []*roleplay.Run{
			synthRun("dense", "dense", sp(0), one(83.35)),
			synthRun("pp-25", "persona-pruner", sp(0.25), one(81.20)),
			synthRun("llmp-25", "llm-pruner", sp(0.25), one(48.43)),
			synthRun("pp-50", "persona-pruner", sp(0.5), one(52.82)),
			synthRun("llmp-50", "llm-pruner", sp(0.5), one(25.61)),
		}
	}
	tests := []struct {
		baseline string
		want     map[string]float64 // run → share
	}{
		{"llm-pruner", map[string]float64{"pp-25": 1 - 2.15/34.92, "pp-50": 1 - (83.35-52.82)/(83.35-25.61)}},
		{"llmp-50", map[string]float64{"pp-25": 1 - 2.15/(83.35-25.61), "pp-50": 1 - (83.35-52.82)/(83.35-25.61), "llmp-25": 1 - 34.92/(83.35-25.61)}},
	}
	for _, tc := range tests {
		c, err := Compare(runs(), Options{Baseline: tc.baseline, Seed: 1, Resamples: 200})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Recovered) != len(tc.want) {
			t.Fatalf("%s: %+v", tc.baseline, c.Recovered)
		}
		for _, r := range c.Recovered {
			if math.Abs(float64(r.Share)-tc.want[r.Run]) > 1e-9 {
				t.Errorf("%s: %s recovered %v, want %v", tc.baseline, r.Run, r.Share, tc.want[r.Run])
			}
		}
	}
	c, _ := Compare(runs(), Options{Baseline: "llm-pruner", Resamples: 10})
	if got := float64(c.Recovered[0].Share); math.Abs(got-0.93843) > 1e-5 {
		t.Fatalf("headline figure %v", got)
	}
}

// TestRecoveredUsesPairedItems: with items missing from a run, the
// recovered share is computed from the same paired items as "Δ vs dense",
// so DropRun is exactly minus the run's difference from the dense run.
func TestRecoveredUsesPairedItems(t *testing.T) {
	dense := synthRun("dense", "dense", sp(0), map[string][]float64{"ann": {80, 90, 100, 60}, "bob": {50, 70, 40, 60}})
	pp := synthRun("pp", "pp", sp(0.5), map[string][]float64{"ann": {78, 88}, "bob": {48, 68, 38, 58}}) // ann's last two missing
	base := synthRun("base", "base", sp(0.5), map[string][]float64{"ann": {70, 80, 90, 50}, "bob": {40, 60, 30, 50}})
	c, err := Compare([]*roleplay.Run{dense, pp, base}, Options{Baseline: "base", Resamples: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Recovered) != 1 {
		t.Fatalf("%+v", c.Recovered)
	}
	r := c.Recovered[0]
	// Paired: every pp score is 2 below dense, every base score 10 below:
	// share 1 − 2/10 = 0.8. Run means would give a drop of 70 − 68.75.
	if math.Abs(float64(r.DropRun)-2) > 1e-12 || math.Abs(float64(r.DropBaseline)-10) > 1e-12 || math.Abs(float64(r.Share)-0.8) > 1e-12 {
		t.Fatalf("%+v", r)
	}
	for _, d := range c.Diffs {
		if d.B == "pp" && float64(d.Mean) != -float64(r.DropRun) {
			t.Fatalf("Δ vs dense %v disagrees with the drop %v", d.Mean, r.DropRun)
		}
	}
}

func TestCompareErrorsAndWarnings(t *testing.T) {
	a := synthRun("a", "dense", sp(0), map[string][]float64{"ann": {80}})
	b := synthRun("b", "x", sp(0.5), map[string][]float64{"ann": {70}})
	b.Complete, b.Error = false, "judge unreachable"
	tests := []struct {
		name   string
		runs   []*roleplay.Run
		o      Options
		errHas string
	}{
		{"no runs", nil, Options{}, "no runs"},
		{"unknown dense", []*roleplay.Run{a, b}, Options{Dense: "zzz"}, `no run labelled "zzz"`},
		{"unknown baseline", []*roleplay.Run{a, b}, Options{Baseline: "zzz"}, `none has method "zzz"`},
		{"unknown metric", []*roleplay.Run{a, b}, Options{Metric: "charm"}, `no run has metric "charm"`},
	}
	for _, tc := range tests {
		if _, err := Compare(tc.runs, tc.o); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	c, err := Compare([]*roleplay.Run{a, b}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "incomplete") {
		t.Fatalf("warnings %q", c.Warnings)
	}
}

func TestHTMLSelfContainedAndWellFormed(t *testing.T) {
	runs := []*roleplay.Run{
		synthRun("dense <&>", "dense", sp(0), map[string][]float64{"ann": {80, 90}, "bob": {60, 70}}),
		synthRun("wanda-50", "wanda", sp(0.5), map[string][]float64{"ann": {70, 60}, "bob": {40, 50}}),
		synthRun("wanda-25", "wanda", sp(0.25), map[string][]float64{"ann": {75, 85}, "bob": {55, 65}}),
		synthRun("no-sparsity", "lora", nil, map[string][]float64{"ann": {85, 95}, "bob": {65, 75}}),
	}
	c, err := Compare(runs, Options{Seed: 7, Resamples: 300})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"<svg", "polyline", "dense &lt;&amp;&gt;", judge.PromptVersion, "REFUSAL", "style scores: none", "Differences from"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "dense <&>") {
		t.Error("a label is not escaped")
	}
	if regexp.MustCompile(`(?i)(src|href)\s*=|<script|@import|url\(`).MatchString(page) {
		t.Error("the page refers to external resources or scripts")
	}
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1)
	if len(svgs) != 3 {
		t.Fatalf("%d plots, want 3", len(svgs))
	}
	for _, s := range svgs {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			_, err := d.Token()
			if err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("malformed SVG: %v", err)
				}
				break
			}
		}
	}
}

func TestWriteSampleForLooking(t *testing.T) {
	out := os.Getenv("MASQUE_REPORT_SAMPLE")
	if out == "" {
		t.Skip("set MASQUE_REPORT_SAMPLE=FILE.html to write a sample page")
	}
	runs := []*roleplay.Run{
		synthRun("dense", "dense", sp(0), map[string][]float64{"ann": {80, 90}, "bob": {60, 70}}),
		synthRun("wanda-50", "wanda", sp(0.5), map[string][]float64{"ann": {70, 60}, "bob": {40, 50}}),
		synthRun("wanda-25", "wanda", sp(0.25), map[string][]float64{"ann": {75, 85}, "bob": {55, 65}}),
		synthRun("pp-25", "persona-pruner", sp(0.25), map[string][]float64{"ann": {79, 88}, "bob": {60, 66}}),
		synthRun("pp-50", "persona-pruner", sp(0.5), map[string][]float64{"ann": {75, 80}, "bob": {52, 60}}),
	}
	c, err := Compare(runs, Options{Seed: 7, Resamples: 300, Baseline: "wanda"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save("", out); err != nil {
		t.Fatal(err)
	}
}

func TestMissingMetricIsUndefined(t *testing.T) {
	a := synthRun("a", "dense", sp(0), map[string][]float64{"ann": {80}})
	b := &roleplay.Run{Format: roleplay.RunFormat, Label: "b", Method: "x", Sparsity: sp(0.5), Complete: true,
		Personas: []roleplay.PersonaResult{{ID: "ann"}}}
	b.Aggregate()
	c, err := Compare([]*roleplay.Run{a, b}, Options{Baseline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Runs[1].Summary["consistency"].Mean.Valid() || c.Runs[1].PerPersona["ann"]["consistency"].Valid() {
		t.Fatalf("a missing metric reads as a number: %+v", c.Runs[1])
	}
	if len(c.Recovered) != 0 {
		t.Fatalf("recovered share from a missing metric: %+v", c.Recovered)
	}
}
