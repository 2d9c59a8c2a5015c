package report

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/roleplay"
)

// PairItem is one question's pairwise outcome.
type PairItem struct {
	ID      string `json:"id"`
	Persona string `json:"persona"`
	judge.PairOutcome
}

// PairwiseResult is run B against run A, judged pairwise in both orders.
type PairwiseResult struct {
	A             string `json:"a"`
	B             string `json:"b"`
	JudgeModel    string `json:"judge_model"`
	PromptVersion string `json:"prompt_version"`
	// Prompt is the pairwise prompt template used.
	Prompt string `json:"prompt"`
	// Items compared (answered in both runs); WinsA, WinsB, Ties and
	// Invalid split them by judge.PairOutcome.Winner.
	Items   int `json:"items"`
	WinsA   int `json:"wins_a"`
	WinsB   int `json:"wins_b"`
	Ties    int `json:"ties"`
	Invalid int `json:"invalid"`
	// Consistent counts items whose two orders agreed.
	Consistent int `json:"consistent"`
	// WinRateB is B's win rate against A: (WinsB + Ties/2) / (WinsA +
	// WinsB + Ties); null when nothing was readable.
	WinRateB Num        `json:"win_rate_b"`
	Outcomes []PairItem `json:"outcomes"`
}

// Pairwise has j compare the answers of runs a and b question by question
// (matched by item ID), each pair asked in both orders, with up to
// concurrency requests at once. On an error the outcomes so far are
// returned with it (the judge's cache keeps them for a rerun).
func Pairwise(ctx context.Context, j *judge.Judge, a, b *roleplay.Run, concurrency int, progress func(done, total int)) (*PairwiseResult, error) {
	ps := j.PromptSet()
	res := &PairwiseResult{A: a.Label, B: b.Label, JudgeModel: j.Model, PromptVersion: ps.Version, Prompt: ps.Pairwise}
	desc := map[string]string{}
	for _, p := range a.Personas {
		desc[p.ID] = p.Description
	}
	answers := map[string]string{}
	for _, it := range a.Items {
		if it.Answered {
			answers[it.ID] = it.Answer
		}
	}
	var items []roleplay.Item
	for _, it := range b.Items {
		if _, ok := answers[it.ID]; ok && it.Answered {
			items = append(items, it)
		}
	}
	out := make([]*PairItem, len(items))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(concurrency, 1))
	var mu sync.Mutex
	var first error
	done := 0
	var wg sync.WaitGroup
	for i, it := range items {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			o, err := j.Pairwise(ctx, desc[it.Persona], it.Question, answers[it.ID], it.Answer)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("pairwise %s vs %s, %s: %w", a.Label, b.Label, it.ID, err)
					cancel()
				}
				return
			}
			out[i] = &PairItem{ID: it.ID, Persona: it.Persona, PairOutcome: o}
			done++
			if progress != nil {
				progress(done, len(items))
			}
		}()
	}
	wg.Wait()
	for _, p := range out {
		if p == nil {
			continue
		}
		res.Outcomes = append(res.Outcomes, *p)
		res.Items++
		switch p.Winner {
		case judge.WinA:
			res.WinsA++
		case judge.WinB:
			res.WinsB++
		case judge.Tie:
			res.Ties++
		default:
			res.Invalid++
		}
		if p.Consistent {
			res.Consistent++
		}
	}
	res.WinRateB = Num(math.NaN())
	if n := res.WinsA + res.WinsB + res.Ties; n > 0 {
		res.WinRateB = Num((float64(res.WinsB) + float64(res.Ties)/2) / float64(n))
	}
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return res, first
}

// AddPairwise judges every run against the comparison's reference run
// (Pairwise, concurrency requests at once) and appends the results to
// c.Pairwise; the judge's replies are cached in cachePath (a rerun resumes).
// progress, if set, follows each run by its label. On an error the results
// so far are kept in c.
func (c *Comparison) AddPairwise(ctx context.Context, j *judge.Judge, runs []*roleplay.Run, cachePath string, concurrency int, progress func(label string, done, total int)) error {
	cache, err := roleplay.OpenCache(cachePath)
	if err != nil {
		return err
	}
	defer cache.Close()
	j.Cache = cache
	var ref *roleplay.Run
	for _, r := range runs {
		if r.Label == c.Reference {
			ref = r
		}
	}
	if ref == nil {
		return fmt.Errorf("report: no run labelled %q (the reference) to compare with", c.Reference)
	}
	for _, r := range runs {
		if r == ref {
			continue
		}
		var p func(int, int)
		if progress != nil {
			label := r.Label
			p = func(d, t int) { progress(label, d, t) }
		}
		res, err := Pairwise(ctx, j, ref, r, concurrency, p)
		if res != nil {
			c.Pairwise = append(c.Pairwise, *res)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
