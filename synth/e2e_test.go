package synth

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/synth/teacher"
)

// TestEndToEndOverHTTP runs profiles and answers (R and G) against a real
// OpenAI-compatible HTTP server with real SSE streaming, backed by the
// built-in stories260K model (engineHandler, our own test server: masque
// serve was not available), and checks the documented formats and counts.
// stories260K writes children's stories, not profiles, so the run keeps
// failing outputs flagged (FlagOnly) to make the counts exact.
func TestEndToEndOverHTTP(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	personasPath, insPath := testInputs(t, dir, 4, 5)
	h := newEngineHandler(t)
	srv := newServer(t, h)
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	cache := openCache(t, filepath.Join(out, FileCache))
	com := Common{Out: out, Teacher: httpTeacher(srv, cache, teacher.Options{Concurrency: 2}), TeacherModel: "stories260K",
		Seed: 1, MaxTokens: 24, Temperature: 0.8, FlagOnly: true, DedupeThreshold: 0.85, Quality: QualityOptions{Language: "en"}}

	personas, probs, err := ReadPersonas(personasPath, "")
	if err != nil || len(personas) != 4 || len(probs) != 1 || probs[0].Line != 3 {
		t.Fatalf("personas %d problems %v err %v", len(personas), probs, err)
	}
	sum, err := RunProfiles(ctx, ProfilesConfig{Common: com, Personas: personas, Problems: probs})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Complete || sum.Kept != 4 || sum.Total != 4 || len(sum.Problems) != 1 {
		t.Fatalf("profiles summary %+v", sum)
	}
	chars := readJSONL(t, filepath.Join(out, FileCharacters))
	if len(chars) != 4 {
		t.Fatalf("%d characters", len(chars))
	}
	for _, c := range chars {
		if k := keysOf(c); k != "character,character_id,persona" && k != "character,character_id,flags,persona" {
			t.Fatalf("character keys %s", k)
		}
		if c["character_id"] != CharacterID(c["persona"].(string)) || c["character"] == "" {
			t.Fatalf("row %v", c)
		}
	}

	characters, cprobs, err := ReadCharacters(filepath.Join(out, FileCharacters))
	if err != nil || len(cprobs) > 0 || len(characters) != 4 {
		t.Fatal(err, cprobs)
	}
	ins, iprobs, err := ReadInstructions(insPath, "", "")
	if err != nil || len(ins) != 5 || len(iprobs) != 1 || iprobs[0].Line != 7 {
		t.Fatalf("instructions %d problems %v err %v", len(ins), iprobs, err)
	}
	for _, strategy := range []string{StrategyR, StrategyG} {
		t.Run("answers-"+strategy, func(t *testing.T) {
			aout := filepath.Join(dir, "answers-"+strategy)
			c := com
			c.Out = aout
			c.Teacher = httpTeacher(srv, openCache(t, filepath.Join(dir, "cache-"+strategy+".jsonl")), teacher.Options{Concurrency: 3})
			sum, err := RunAnswers(ctx, AnswersConfig{Common: c, Strategy: strategy, Characters: characters, Instructions: ins, PerInstruction: 3, Problems: iprobs})
			if err != nil {
				t.Fatal(err)
			}
			if !sum.Complete || sum.Total != 15 || sum.Kept != 15 || sum.Final == nil || sum.Final.Rows != 15 {
				t.Fatalf("summary %+v final %+v", sum, sum.Final)
			}
			rows := readJSONL(t, filepath.Join(aout, FileDialogue))
			if len(rows) != 15 {
				t.Fatalf("%d dialogue rows", len(rows))
			}
			perQ := map[string]map[string]bool{}
			for _, r := range rows {
				k := keysOf(r)
				if k != "character_answer,character_id,question,question_source" && k != "character_answer,character_id,flags,question,question_source" {
					t.Fatalf("dialogue keys %s", k)
				}
				if r["question_source"] != "alpaca" {
					t.Fatalf("source %v", r["question_source"])
				}
				q := r["question"].(string)
				if perQ[q] == nil {
					perQ[q] = map[string]bool{}
				}
				perQ[q][r["character_id"].(string)] = true
			}
			if len(perQ) != 5 {
				t.Fatalf("%d questions", len(perQ))
			}
			for q, cs := range perQ {
				if len(cs) != 3 {
					t.Fatalf("question %q answered by %d characters", q, len(cs))
				}
			}
			chatPath := filepath.Join(aout, FileDialogueChat)
			chat := readJSONL(t, chatPath)
			if len(chat) != 15 {
				t.Fatalf("%d chat rows", len(chat))
			}
			for _, r := range chat {
				msgs := r["messages"].([]any)
				var roles []string
				for _, m := range msgs {
					roles = append(roles, m.(map[string]any)["role"].(string))
				}
				sys := msgs[0].(map[string]any)["content"].(string)
				if strings.Join(roles, ",") != "system,user,assistant" || !strings.Contains(sys, "Persona: A cheerful") || !strings.Contains(sys, "Character profile:") {
					t.Fatalf("chat row %v", r)
				}
			}
			convs, sprobs, err := chatdata.Read(chatPath, chatdata.ReadOptions{})
			if err != nil || len(convs) != 15 || len(sprobs) > 0 {
				t.Fatalf("masque finetune reader: %d rows, problems %v, err %v", len(convs), sprobs, err)
			}
			if html := mustRead(t, StageFile(aout, StageAnswers, "report")); !strings.Contains(html, "<svg") || !strings.Contains(html, "Length of kept outputs") {
				t.Fatal("report lacks charts")
			}

			// A rerun pays nothing and changes nothing.
			before := mustRead(t, filepath.Join(aout, FileDialogue))
			c.Teacher = httpTeacher(srv, nil, teacher.Options{})
			calls := h.calls.Load()
			sum, err = RunAnswers(ctx, AnswersConfig{Common: c, Strategy: strategy, Characters: characters, Instructions: ins, PerInstruction: 3})
			if err != nil || sum.Resumed != 15 || sum.Kept != 0 || h.calls.Load() != calls {
				t.Fatalf("rerun: %+v %v, %d new calls", sum, err, h.calls.Load()-calls)
			}
			if mustRead(t, filepath.Join(aout, FileDialogue)) != before {
				t.Fatal("rerun changed the output")
			}
		})
	}
	if html := mustRead(t, StageFile(out, StageProfiles, "report")); !strings.Contains(html, "<svg") || !strings.Contains(html, "malformed_profile") {
		t.Fatal("profiles report lacks the flag counts")
	}
}

func TestPersonaData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ck := builtin(t)
	persona := "A grumpy lighthouse keeper who hates boats."
	var ib strings.Builder
	qs := []string{"Where do you live?", "What do you eat?", "Who is your friend?", "Why is the sky blue?", "How do boats float?", "What is your job?", "Do you like the sea?", "What did you do today?"}
	for i, q := range qs {
		ib.WriteString(`{"instruction": "` + q + `", "output": "A plain answer number ` + string(rune('A'+i)) + `."}` + "\n")
	}
	insPath := writeFile(t, dir, "q.jsonl", ib.String())
	exclPath := writeFile(t, dir, "eval.txt", "why is the SKY blue?\n")
	ins, _, err := ReadInstructions(insPath, "", "")
	if err != nil {
		t.Fatal(err)
	}
	excl, _, err := ReadQuestionSet(exclPath)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewScorer(ck, persona, nil, DefaultFirstLayer, DefaultLastLayer)
	if err != nil {
		t.Fatal(err)
	}
	if f, l := sc.Layers(); f != 5 || l != 5 {
		t.Fatalf("layers %d..%d for a 5-layer model, want 5..5", f, l)
	}
	out := filepath.Join(dir, "out")
	ssum, err := RunPersonaScores(ctx, ScoresConfig{Out: out, Persona: persona, Checkpoint: ck, FirstLayer: DefaultFirstLayer, LastLayer: DefaultLastLayer,
		Instructions: ins, Exclude: excl, NeedAll: true})
	if err != nil || !ssum.Complete || ssum.Total != 7 {
		t.Fatalf("scores %+v %v", ssum, err)
	}
	scores, _, err := ReadScores(StageFile(out, StageScores, "log"))
	if err != nil || len(scores) != 7 {
		t.Fatalf("%d scores, %v", len(scores), err)
	}
	if _, ok := scores[PersonaQuestionID("Why is the sky blue?")]; ok {
		t.Fatal("an excluded question was scored")
	}
	// Scores are finite, vary, and do not depend on what was scored before
	// (prefix-cache reuse is exact enough).
	fresh, _ := NewScorer(ck, persona, nil, 5, 24)
	distinct := map[float64]bool{}
	for _, q := range []string{"What do you eat?", "Where do you live?"} {
		s1 := scores[PersonaQuestionID(q)]
		s2, err := fresh.Score(ctx, q)
		if err != nil || math.Abs(s1-s2) > 1e-4 || math.IsNaN(s1) || s1 < 0 || s1 > 2 {
			t.Fatalf("%q: %v vs %v (%v)", q, s1, s2, err)
		}
	}
	for _, s := range scores {
		distinct[s] = true
	}
	if len(distinct) < 5 {
		t.Fatalf("scores barely vary: %v", scores)
	}

	srv := newServer(t, newEngineHandler(t))
	com := Common{Out: out, Teacher: httpTeacher(srv, openCache(t, filepath.Join(out, FileCache)), teacher.Options{}), TeacherModel: "stories260K",
		Seed: 3, MaxTokens: 32, Temperature: 0.7, FlagOnly: true, Quality: QualityOptions{Language: "en"}}
	sum, err := RunPersonaData(ctx, PersonaConfig{Common: com, Persona: persona, Instructions: ins, Exclude: excl, Scores: scores,
		TopN: 3, Modes: []string{ModeRewrite, ModeDirect}})
	if err != nil || !sum.Complete || sum.Total != 6 || sum.Kept != 6 {
		t.Fatalf("persona data %+v %v", sum, err)
	}
	top, _ := SelectTop(ins, excl, scores, 3)
	var want []string
	for _, q := range top {
		want = append(want, q.Question, q.Question)
	}
	rows := readJSONL(t, filepath.Join(out, FilePersonaData))
	var got []string
	for _, r := range rows {
		msgs := r["messages"].([]any)
		sys := msgs[0].(map[string]any)["content"].(string)
		if sys != "You are roleplaying as a user with this persona: "+persona+"\nAnswer the question, roleplay as the given persona." {
			t.Fatalf("system prompt %q", sys)
		}
		got = append(got, msgs[1].(map[string]any)["content"].(string))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("questions %q, want %q", got, want)
	}
	for _, q := range got {
		if NormalizeQuestion(q) == "why is the sky blue?" {
			t.Fatal("an evaluation question made it into the training data")
		}
	}
}

func TestPersonaRewritePrompt(t *testing.T) {
	tests := []struct {
		mode           string
		wantBlocks     []string
		wantSystemHas  []string
		wantNoOriginal bool
	}{
		{ModeRewrite, []string{"### Persona\nP", "### Question\nQ", "### Original answer\nA"}, []string{"expert role-play actor", "Total immersion", "Voice and tone", "Keep the facts", "No preaching", "Output only"}, false},
		{ModeDirect, []string{"### Persona\nP", "### Question\nQ"}, []string{"expert role-play actor", "Total immersion", "No preaching"}, true},
	}
	for _, tc := range tests {
		m := PersonaRewriteMessages(tc.mode, "P", "Q", "A")
		if len(m) != 2 || m[0].Role != "system" || m[1].Role != "user" {
			t.Fatalf("%s: %v", tc.mode, m)
		}
		last := -1
		for _, b := range tc.wantBlocks {
			i := strings.Index(m[1].Content, b)
			if i <= last {
				t.Fatalf("%s: block %q missing or out of order in %q", tc.mode, b, m[1].Content)
			}
			last = i
		}
		if strings.Contains(m[1].Content, "Original answer") == tc.wantNoOriginal {
			t.Fatalf("%s: original answer block presence wrong", tc.mode)
		}
		if !strings.HasSuffix(strings.TrimSpace(m[1].Content), ".") || !strings.Contains(m[1].Content[last:], "\n\n") {
			t.Fatalf("%s: no task line after the blocks", tc.mode)
		}
		for _, s := range tc.wantSystemHas {
			if !strings.Contains(m[0].Content, s) {
				t.Fatalf("%s: system prompt lacks %q", tc.mode, s)
			}
		}
	}
	if len(ReferencePersonas) != 10 {
		t.Fatalf("%d reference personas", len(ReferencePersonas))
	}
}
