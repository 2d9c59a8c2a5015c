package roleplay

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/style"
)

// styleProfiles profiles the two personas of tinySet from a few lines each
// (lexical and syntactic parts; every word counts).
func styleProfiles(t *testing.T, emb style.Embedder) *style.Set {
	t.Helper()
	set, err := style.Run(context.Background(), style.Config{Characters: []style.Character{
		{Name: "pirate", Lines: []string{"Arr, where is the gold, matey?", "Arr, the sea is blue and the rum is gone.", "Hoist the sails, ye dogs!"}},
		{Name: "robot", Lines: []string{"Affirmative. The sky is blue because of Rayleigh scattering.", "I do not dream. I compute.", "Processing request. Please wait."}},
	}, MinCount: 1, Workers: 1, Embedder: emb, EmbedLines: 3})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestEvaluateStyle: every answer gets its style similarity to its
// persona's profile (the number style.Scorer gives), aggregated like any
// metric; with references and an embedder also semantic, VSS and H; an
// answer the scorer cannot read is a failed score with its reason.
func TestEvaluateStyle(t *testing.T) {
	ctx := context.Background()
	profiles := styleProfiles(t, nil)
	sc, err := style.NewScorer(profiles, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(ctx, Config{Out: t.TempDir(), Set: tinySet(t), Gen: &fakeGen{}, Style: &StyleConfig{Scorer: sc}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Metrics, []string{MetricStyle}) || r.Counts.Judgements != 0 {
		t.Fatalf("metrics %v, counts %+v", r.Metrics, r.Counts)
	}
	for _, it := range r.Items {
		p, _ := profiles.Character(it.Persona)
		f, err := sc.Features(ctx, it.Answer)
		if err != nil {
			t.Fatal(err)
		}
		if s := it.Scores[MetricStyle]; !s.OK || s.Value != sc.Parts(f, p).Style {
			t.Fatalf("%s: %+v, want %v", it.ID, s, sc.Parts(f, p).Style)
		}
	}
	if s := r.Summary[MetricStyle]; !s.Mean.Valid() || s.N != 2 || s.Items != 4 {
		t.Fatalf("summary %+v", s)
	}
	if strings.Contains(strings.Join(r.Notes, " "), "style scores: none") || !strings.Contains(strings.Join(r.Notes, " "), "style: the answer's similarity") {
		t.Fatalf("notes %q", r.Notes)
	}

	// A persona without a profile is refused before anything runs.
	set := tinySet(t)
	set.Personas[1].ID = "ghost"
	gen := &fakeGen{}
	if _, err := Evaluate(ctx, Config{Out: t.TempDir(), Set: set, Gen: gen, Style: &StyleConfig{Scorer: sc}}); err == nil || !strings.Contains(err.Error(), "ghost") || gen.calls.Load() != 0 {
		t.Fatalf("persona without a profile: %v (%d answers)", err, gen.calls.Load())
	}

	// With an embedder and references: semantic, VSS and H.
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	emb := &style.ModelEmbedder{Model: ck.Model, Tokenizer: ck.Tokenizer, Name: ck.Path}
	profiles = styleProfiles(t, emb)
	if sc, err = style.NewScorer(profiles, nil, emb, nil); err != nil {
		t.Fatal(err)
	}
	set = tinySet(t)
	set.Personas[0].Questions[0].Reference = "Arr, where is the gold?"
	set.Personas[1].Questions[0].Reference = "Я не вижу снов." // the answer is English; the reference only needs embedding
	set.Personas[1].Questions[1].Text = "Почему небо голубое?" // the answer is Russian: its style cannot be scored
	r, err = Evaluate(ctx, Config{Out: t.TempDir(), Set: set, Gen: &fakeGen{}, Style: &StyleConfig{Scorer: sc}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Metrics, []string{MetricRougeL, MetricStyle, MetricSemantic, MetricVSS, MetricStyleH}) {
		t.Fatalf("metrics %v", r.Metrics)
	}
	for _, it := range r.Items {
		p, _ := profiles.Character(it.Persona)
		if strings.Contains(it.Question, "небо") {
			if s := it.Scores[MetricStyle]; s.OK || !strings.Contains(s.Reason, "cannot tag") {
				t.Fatalf("Russian answer: %+v", s)
			}
			continue
		}
		if it.Reference == "" {
			if _, ok := it.Scores[MetricSemantic]; ok || !it.Scores[MetricStyle].OK {
				t.Fatalf("%s without reference: %+v", it.ID, it.Scores)
			}
			continue
		}
		want, err := sc.ScorePair(ctx, p, it.Reference, it.Answer, style.SemanticGate)
		if err != nil {
			t.Fatal(err)
		}
		got := it.Scores
		if got[MetricSemantic].Value != want.Semantic || got[MetricStyle].Value != want.Style || got[MetricVSS].Value != want.VSS || got[MetricStyleH].Value != want.H {
			t.Fatalf("%s: %+v, want %+v", it.ID, got, want)
		}
		if v := got[MetricVSS].Value; (want.Semantic > style.SemanticGate) != (v == want.Style) || math.IsNaN(v) {
			t.Fatalf("%s: VSS %v with semantic %v", it.ID, v, want.Semantic)
		}
	}
	if r.Summary[MetricStyle].Failures != 1 {
		t.Fatalf("style summary %+v", r.Summary[MetricStyle])
	}
}
