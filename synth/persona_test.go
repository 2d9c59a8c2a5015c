package synth

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunPersonaScoresModel checks that the score phase scores with the
// checkpoint at the configured layers (the same numbers as a Scorer made by
// hand), records both in the settings, and refuses a missing model or a
// reversed range before writing anything.
func TestRunPersonaScoresModel(t *testing.T) {
	ctx := context.Background()
	ck := builtin(t)
	persona := "A grumpy lighthouse keeper."
	ins := []Instruction{{Question: "Where do you live?"}, {Question: "What do you eat?"}}
	out := filepath.Join(t.TempDir(), "out")
	for _, cfg := range []ScoresConfig{
		{Out: out, Persona: persona, FirstLayer: 1, LastLayer: 2, Instructions: ins},
		{Out: out, Persona: persona, Checkpoint: ck, FirstLayer: 2, LastLayer: 1, Instructions: ins},
	} {
		if sum, err := RunPersonaScores(ctx, cfg); err == nil || sum != nil {
			t.Errorf("checkpoint %v, layers %d..%d: %+v, %v", cfg.Checkpoint != nil, cfg.FirstLayer, cfg.LastLayer, sum, err)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused run wrote its folder")
	}

	sum, err := RunPersonaScores(ctx, ScoresConfig{Out: out, Persona: persona, Checkpoint: ck, FirstLayer: 1, LastLayer: 2,
		Instructions: ins, NeedAll: true})
	if err != nil || !sum.Complete || sum.Total != 2 {
		t.Fatalf("%+v %v", sum, err)
	}
	man, err := ReadManifest(out, StageScores)
	if err != nil || man.Settings["layers"] != "1..2" || man.Settings["model"] != ck.Path || man.Settings["persona"] != persona {
		t.Fatalf("settings %+v %v", man, err)
	}
	scores, _, err := ReadScores(StageFile(out, StageScores, "log"))
	if err != nil {
		t.Fatal(err)
	}
	byHand, err := NewScorer(ck, persona, nil, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		want, err := byHand.Score(ctx, in.Question)
		if got := scores[PersonaQuestionID(in.Question)]; err != nil || math.Abs(got-want) > 1e-6 {
			t.Errorf("%q: %v, by hand %v (%v)", in.Question, got, want, err)
		}
	}
}

// TestUnscored: the rewrite phase needs every score; an interrupted run is
// not an error (a rerun continues it) and a complete one is fine.
func TestUnscored(t *testing.T) {
	if err := unscored(&Summary{Complete: true}); err != nil {
		t.Error(err)
	}
	if err := unscored(&Summary{Remaining: 2, Interrupted: true}); err != nil {
		t.Error(err)
	}
	err := unscored(&Summary{Remaining: 3})
	if err == nil || !strings.Contains(err.Error(), "3 questions could not be scored; rerun to retry them") {
		t.Errorf("incomplete: %v", err)
	}
}
