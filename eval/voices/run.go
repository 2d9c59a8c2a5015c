package voices

import (
	"math"

	"github.com/masque-ai/masque/eval/judge"
	"github.com/masque-ai/masque/eval/ppl"
	"github.com/masque-ai/masque/eval/roleplay"
)

// Item-level metrics of run.json (what `masque eval compare` pairs across
// runs by item).
const (
	MetricFidelity         = "fidelity"          // 1 when the greedy answer is classified as the persona's voice, else 0
	MetricFidelityT08      = "fidelity_t08"      // the same for the sampled answer
	MetricPOwn             = "p_own"             // the classifier's posterior of the own voice, greedy answer
	MetricNLL              = "nll"               // mean NLL per token of the reference answer under the run's system prompt
	MetricConditioningGain = "conditioning_gain" // mean over other personas of the NLL per token, minus the own persona's
	MetricRepetition       = "repetition"        // repetition rate of the greedy answer
)

// RunMetrics lists the item-level metrics of run.json in display order.
var RunMetrics = []string{MetricFidelity, MetricFidelityT08, MetricPOwn, MetricNLL, MetricConditioningGain, MetricRepetition}

// RunKind is the question kind of the items in run.json.
const RunKind = "voices"

// Run converts the report to an eval/roleplay run (run.json), the format
// `masque eval compare` reads: every voice is a persona, every test prompt
// an item scored with the item-level metrics RunMetrics (so compare's
// persona means of fidelity are the report's fidelities, and its paired
// bootstrap pairs the same prompts across runs), and the per-voice
// perplexities under the own persona are its reference perplexities. The
// set's name carries the classifier's hash, so that compare warns when two
// runs were classified differently.
// Corpus-level figures (distinct-n, perplexity ratios, the confusion
// matrix) stay in report.json.
func (r *Report) Run() *roleplay.Run {
	run := &roleplay.Run{Format: roleplay.RunFormat, Label: r.Label, Method: r.Method, Sparsity: r.Sparsity,
		Model: r.Model, Fingerprint: r.Fingerprint, Metrics: RunMetrics, Started: r.Started, Finished: r.Finished, Complete: true,
		Set:    roleplay.SetInfo{Name: "voices", Source: r.Corpus, Kind: RunKind, Personas: len(r.VoiceOrder), Questions: len(r.Items)},
		Counts: roleplay.Counts{Items: len(r.Items), Answered: len(r.Items), Scored: len(r.Items)},
		Notes:  []string{"persona fidelity from `masque eval voices` (report.json holds the corpus-level figures: distinct-n, perplexity ratios, confusion matrices)"}}
	ref := &roleplay.Reference{}
	for _, v := range r.VoiceOrder {
		vr := r.Voices[v]
		run.Personas = append(run.Personas, roleplay.PersonaResult{ID: v, Description: vr.Title})
		if vr.ScoredTokens > 0 && vr.PPLOwn.Valid() {
			ref.PPL = append(ref.PPL, &ppl.Result{Name: v + " test answers, own persona", Samples: vr.Prompts, Tokens: vr.ScoredTokens,
				NLL: math.Log(float64(vr.PPLOwn)), PPL: float64(vr.PPLOwn)})
		}
	}
	if len(ref.PPL) > 0 {
		run.Reference = ref
	}
	index := map[string]int{}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, it := range r.Items {
		own := it.NLL[it.Voice]
		var other float64
		k := 0
		for name, x := range it.NLL {
			if name != it.Voice && name != systemKey {
				other += x
				k++
			}
		}
		nll := own
		if r.SystemOverride != nil {
			nll = it.NLL[systemKey]
		}
		gain := math.NaN()
		if k > 0 {
			gain = other/float64(k) - own
		}
		scores := map[string]roleplay.ItemScore{}
		for name, x := range map[string]float64{
			MetricFidelity:         b2f(it.Greedy.Voice == it.Voice),
			MetricFidelityT08:      b2f(it.T08.Voice == it.Voice),
			MetricPOwn:             it.Greedy.POwn,
			MetricNLL:              nll,
			MetricConditioningGain: gain,
			MetricRepetition:       Repetition(it.Greedy.Text, RepetitionN),
		} {
			// An undefined value (a gain without other personas, the
			// repetition of an answer shorter than RepetitionN words) is
			// left out rather than counted as a failure.
			if !math.IsNaN(x) && !math.IsInf(x, 0) {
				scores[name] = roleplay.ItemScore{Score: judge.Score{Value: x, OK: true, Method: "voices"}}
			}
		}
		run.Items = append(run.Items, roleplay.Item{ID: it.ID, Persona: it.Voice, Kind: RunKind, Index: index[it.Voice],
			Question: it.Prompt, Reference: it.Reference, Answered: true, Answer: it.Greedy.Text, FinishReason: it.Greedy.Finish,
			Scores: scores})
		index[it.Voice]++
	}
	run.Aggregate()
	return run
}

func short(sha string) string { return sha[:min(len(sha), 12)] }
