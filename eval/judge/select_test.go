package judge

import (
	"strings"
	"testing"
)

func TestSelect(t *testing.T) {
	ps, ok := PromptSetByName("standard")
	if !ok {
		t.Fatal("no standard prompt set")
	}
	names := func(ms []Metric) string {
		var n []string
		for _, m := range ms {
			n = append(n, m.Name)
		}
		return strings.Join(n, ",")
	}
	ms, err := ps.Select([]string{"pp", " consistency", "none", ""})
	if err != nil || names(ms) != ps.Consistency.Name+","+ps.Coherence.Name {
		t.Errorf("pp: %q, %v", names(ms), err)
	}
	ms, err = ps.Select([]string{"gym", "pp"})
	if err != nil || len(ms) != len(ps.Gym)+2 {
		t.Errorf("gym,pp: %q, %v", names(ms), err)
	}
	if ms, err := ps.Select(nil); err != nil || len(ms) != 0 {
		t.Errorf("nothing: %v %v", ms, err)
	}
	if _, err := ps.Select([]string{"vibes"}); err == nil || !strings.Contains(err.Error(), `unknown "vibes"`) || !strings.Contains(err.Error(), "gym_toxicity_control") {
		t.Errorf("unknown metric: %v", err)
	}
}
