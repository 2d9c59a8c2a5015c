package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadtestScenarioCLI runs `masque loadtest --scenario` on an
// in-process server (builtin:stories260K): two sessions of two turns, the
// JSON report; and refuses the uniform mode's flags with a scenario.
func TestLoadtestScenarioCLI(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "personas.yaml"), []byte("personas:\n  - name: sailor\n    description: A sailor.\n"), 0o644)
	path := filepath.Join(dir, "s.yaml")
	os.WriteFile(path, []byte(`registry: personas.yaml
personas: [{name: sailor, kind: prompt}, {name: base}]
sessions: 2
conversation: {turns: 2, texts: ["Tell me a story.", "And then?"], max_tokens: 6}
think_time: {dist: uniform, min: 10ms, max: 30ms}
conversations: 1
`), 0o644)
	code, out, errs := run(t, "", "loadtest", "--scenario", path, "--no-baseline", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep struct {
		Turns, Errors, Sessions int
		Baseline                *struct{}
		PerPersona              []struct{ Name, Kind string } `json:"per_persona"`
		TTFT                    struct {
			P99 float64 `json:"p99_ms"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Turns != 4 || rep.Errors != 0 || rep.Sessions != 2 || rep.Baseline != nil || len(rep.PerPersona) != 2 || rep.PerPersona[1].Kind != "prompt" || rep.TTFT.P99 <= 0 {
		t.Fatalf("report %+v\n%s", rep, out)
	}
	// --think-time replaces the scenario's think time (0: none; the turns
	// drew 10–30 ms above), and applies to scenarios only.
	for _, tc := range []struct {
		flag     string
		min, max float64
	}{{"0", 0, 0}, {"40ms", 0.04, 0.04}} {
		code, out, errs = run(t, "", "loadtest", "--scenario", path, "--no-baseline", "--json", "--think-time", tc.flag)
		var r struct {
			Turns int
			Think float64 `json:"think_mean_s"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Turns != 4 || r.Think < tc.min || r.Think > tc.max+1e-9 {
			t.Errorf("--think-time %s: exit %d, think time %g s over %d turns (%s)", tc.flag, code, r.Think, r.Turns, errs)
		}
	}
	code, _, errs = run(t, "", "loadtest", "--scenario", path, "--think-time", "-1s")
	if code == 0 || !strings.Contains(errs, "--think-time -1s is outside") {
		t.Errorf("negative think time: exit %d: %s", code, errs)
	}
	code, _, errs = run(t, "", "loadtest", "--think-time", "0")
	if code == 0 || !strings.Contains(errs, "--think-time apply to --scenario only") {
		t.Errorf("--think-time without a scenario: exit %d: %s", code, errs)
	}
	code, _, errs = run(t, "", "loadtest", "--scenario", path, "--concurrency", "4")
	if code == 0 || !strings.Contains(errs, "--concurrency does not apply to --scenario") {
		t.Errorf("exit %d: %s", code, errs)
	}
	os.WriteFile(path, []byte("registry: personas.yaml\npersonas: [{name: sailor}]\nsessions: 1\nconversation: {turns: 1}\nconversations: 1\n"), 0o644)
	code, _, errs = run(t, "", "loadtest", "--scenario", path)
	if code == 0 || !strings.Contains(errs, "s.yaml: personas[0]: persona sailor has no turns") {
		t.Errorf("exit %d: %s", code, errs)
	}
}
