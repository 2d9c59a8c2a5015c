package judge

import (
	"fmt"
	"strings"
)

// Select turns metric selectors into the set's metrics, each once, in the
// order given: "pp" (or "persona-pruner": consistency and coherence), "gym"
// (or "personagym": the five PersonaGym rubric tasks), "none" (nothing), or
// a metric's name.
func (p *PromptSet) Select(names []string) ([]Metric, error) {
	var out []Metric
	add := func(m Metric) {
		for _, x := range out {
			if x.Name == m.Name {
				return
			}
		}
		out = append(out, m)
	}
	for _, n := range names {
		switch n = strings.TrimSpace(n); n {
		case "", "none":
		case "pp", "persona-pruner":
			add(p.Consistency)
			add(p.Coherence)
		case "gym", "personagym":
			for _, m := range p.Gym {
				add(m)
			}
		default:
			found := false
			for _, m := range p.Metrics() {
				if m.Name == n {
					add(m)
					found = true
				}
			}
			if !found {
				var all []string
				for _, m := range p.Metrics() {
					all = append(all, m.Name)
				}
				return nil, fmt.Errorf("unknown %q (want pp, gym, none or a metric: %s)", n, strings.Join(all, ", "))
			}
		}
	}
	return out, nil
}
