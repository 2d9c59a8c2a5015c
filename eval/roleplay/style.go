package roleplay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/style"
)

// Style metric names (package style, METHODS.md §3).
const (
	// MetricStyle is the answer's style similarity to its persona's style
	// profile, in [0, 1] (style.Scorer.Parts).
	MetricStyle = "style"
	// MetricSemantic is the cosine of the embeddings of the answer and the
	// reference answer (items with a reference).
	MetricSemantic = "semantic"
	// MetricVSS is style when semantic > the gate, else 0.
	MetricVSS = "vss"
	// MetricStyleH is the harmonic mean of semantic and style.
	MetricStyleH = "style_h"
)

// StyleConfig scores the style of the answers against style profiles.
type StyleConfig struct {
	// Scorer holds the profiles: every persona of the set must be a
	// character of them (by id). Its embedder (the profiles' own) gives
	// the pragmatic part and semantic fidelity; without one only style
	// (lexical and syntactic) is scored.
	Scorer *style.Scorer
	// Gate is the semantic fidelity above which style counts in VSS
	// (≤ 0: style.SemanticGate).
	Gate float64
}

// isStyleMetric reports whether name is one of the style metrics (no judge
// is asked for them).
func isStyleMetric(name string) bool {
	return name == MetricStyle || name == MetricSemantic || name == MetricVSS || name == MetricStyleH
}

// checkStyle refuses a profile set that lacks a persona of the set, and a
// profile with a pragmatic part scored without its embedder.
func checkStyle(sc *StyleConfig, set *Set) error {
	if sc.Scorer == nil || sc.Scorer.Set == nil {
		return errors.New("roleplay: the style config has no scorer")
	}
	ps := sc.Scorer.Set
	if ps.Pragmatic != nil && sc.Scorer.Embedder == nil {
		return fmt.Errorf("roleplay: the style profiles have a pragmatic part (embedder %s): score them with that embedder", ps.Pragmatic.Embedder)
	}
	var missing []string
	for _, p := range set.Personas {
		if _, err := ps.Character(p.ID); err != nil {
			missing = append(missing, p.ID)
		}
	}
	if len(missing) > 0 {
		var have []string
		for _, c := range ps.Characters {
			have = append(have, c.Name)
		}
		return fmt.Errorf("roleplay: the style profiles have no character for persona %s (they have: %s)", strings.Join(missing, ", "), strings.Join(have, ", "))
	}
	return nil
}

// styleMetrics are the style metric names of a run with (hasRef) or
// without reference answers.
func styleMetrics(sc *StyleConfig, hasRef bool) []string {
	if hasRef && sc.Scorer.Embedder != nil {
		return []string{MetricStyle, MetricSemantic, MetricVSS, MetricStyleH}
	}
	return []string{MetricStyle}
}

// styleNote describes the style metrics of a run.
func styleNote(sc *StyleConfig, metrics []string) string {
	emb := "no embedder: lexical and syntactic parts"
	if p := sc.Scorer.Set.Pragmatic; p != nil {
		emb = "embedder " + p.Embedder + ", tag set " + p.TagSet
	}
	s := "style: the answer's similarity to its persona's style profile (mean of the lexical, syntactic and pragmatic similarities, package style; " + emb + ")"
	if slices.Contains(metrics, MetricSemantic) {
		s += fmt.Sprintf("; semantic: embedding cosine of answer and reference; vss: style if semantic > %g, else 0; style_h: harmonic mean of semantic and style", gate(sc))
	}
	return s
}

func gate(sc *StyleConfig) float64 {
	if sc.Gate > 0 {
		return sc.Gate
	}
	return style.SemanticGate
}

// scoreStyle adds the style metrics to every answered item. A text the
// scorer cannot read (empty, or not in the profiles' language) is a
// failed score with the reason, not an error of the run.
func scoreStyle(ctx context.Context, sc *StyleConfig, r *Run) error {
	sel := func(v float64) ItemScore {
		return ItemScore{Score: judge.Score{Value: v, OK: !math.IsNaN(v), Method: "style"}}
	}
	for i := range r.Items {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := &r.Items[i]
		if !it.Answered {
			continue
		}
		p, err := sc.Scorer.Set.Character(it.Persona)
		if err != nil {
			return err
		}
		ref := it.Reference != "" && sc.Scorer.Embedder != nil
		fail := func(err error) {
			names := []string{MetricStyle}
			if ref {
				names = styleMetrics(sc, true)
			}
			for _, n := range names {
				it.Scores[n] = ItemScore{Score: judge.Score{Method: "style", Reason: err.Error()}}
			}
		}
		if !ref {
			f, err := sc.Scorer.Features(ctx, it.Answer)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fail(err)
				continue
			}
			it.Scores[MetricStyle] = sel(sc.Scorer.Parts(f, p).Style)
			continue
		}
		s, err := sc.Scorer.ScorePair(ctx, p, it.Reference, it.Answer, gate(sc))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fail(err)
			continue
		}
		it.Scores[MetricStyle] = sel(s.Style)
		it.Scores[MetricSemantic] = sel(s.Semantic)
		it.Scores[MetricVSS] = sel(s.VSS)
		it.Scores[MetricStyleH] = sel(s.H)
	}
	return nil
}
