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
