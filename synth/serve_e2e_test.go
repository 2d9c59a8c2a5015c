// This test runs the answers stage against `masque serve` (package serve)
// on the built-in stories260K model over real HTTP with streaming.
// TestEndToEndOverHTTP does the same against synth's own minimal server over
// generate.Generate, with fault injection elsewhere. stories260K's 512-token context is shorter
// than synth's prompts, so the test opens its own copy of the model with
// max_position_embeddings raised to 2048 (RoPE runs at any position; the
// text is nonsense either way) and checks the formats and row counts.
package synth

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/masque-ai/masque/synth/teacher"
)

func TestAgainstMasqueServe(t *testing.T) {
	srv := masqueServe(t)
	out := t.TempDir()
	cl := modelTeacher(srv, "base", openCache(t, filepath.Join(out, FileCache)), teacher.Options{Concurrency: 2, MaxAttempts: 3})
	com := Common{Out: out, Teacher: cl, TeacherModel: "base", Seed: 1, MaxTokens: 24, Temperature: 0.7, FlagOnly: true,
		Quality: QualityOptions{Language: "any"}}
	sum, err := RunAnswers(context.Background(), AnswersConfig{Common: com, Strategy: StrategyG, Characters: testCharacters(3), Instructions: testInstructions(4), PerInstruction: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 8 || sum.Kept != 8 || !sum.Complete {
		t.Fatalf("summary %+v", sum)
	}
	ids := logIDs(t, StageFile(out, StageAnswers, "log"))
	if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
		t.Fatal("duplicate rows")
	}
	for _, r := range readJSONL(t, StageFile(out, StageAnswers, "rejected")) {
		if len(r["reasons"].([]any)) == 0 {
			t.Fatalf("rejected row without a reason: %v", r)
		}
	}
	for _, r := range readJSONL(t, StageFile(out, StageAnswers, "failures")) {
		if r["kind"] == "" || r["error"] == "" {
			t.Fatalf("failure without a reason: %v", r)
		}
	}
	rows := readJSONL(t, filepath.Join(out, FileDialogue))
	if len(rows) != 8 || len(readJSONL(t, filepath.Join(out, FileDialogueChat))) != 8 {
		t.Fatalf("%d dialogue rows", len(rows))
	}
	for _, r := range rows {
		if k := keysOf(r); k != "character_answer,character_id,question,question_source" && k != "character_answer,character_id,flags,question,question_source" {
			t.Fatalf("dialogue keys %s", k)
		}
	}
	t.Logf("masque serve: %d kept, %d rejected %v, %d failed %v", sum.Kept, sum.Rejected, sum.Rejections, sum.Failed, sum.Failures)
}
