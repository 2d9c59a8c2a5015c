package synth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/masque-ai/masque/checkpoint"
)

// PersonaQuestionID is the id of a question in Persona-Pruner data (its
// score row id).
func PersonaQuestionID(question string) string { return RowID("persona-question", question) }

// uniqueQuestions drops excluded questions and repeats (first one wins).
func uniqueQuestions(ins []Instruction, exclude map[string]bool) (map[string]*Instruction, []string, int) {
	byID := map[string]*Instruction{}
	var ids []string
	excluded := 0
	for i := range ins {
		in := &ins[i]
		if exclude[NormalizeQuestion(in.Question)] {
			excluded++
			continue
		}
		id := PersonaQuestionID(in.Question)
		if _, ok := byID[id]; !ok {
			byID[id] = in
			ids = append(ids, id)
		}
	}
	return byID, ids, excluded
}

// ScoresConfig configures RunPersonaScores.
type ScoresConfig struct {
	// Out is the output folder.
	Out string
	// Shard is the part of the questions this run scores.
	Shard Shard
	// Persona is the target persona P.
	Persona string
	// Checkpoint is the model to be pruned: it scores (NewScorer) and is
	// named, by its Path, in the settings fingerprint. The caller closes it.
	Checkpoint *checkpoint.Checkpoint
	// FirstLayer and LastLayer are the layers of the score, inclusive, in
	// Hugging Face's hidden_states numbering, clamped to the model as
	// NewScorer does (the paper's: DefaultFirstLayer, DefaultLastLayer).
	FirstLayer, LastLayer int
	// Instructions are the candidate questions.
	Instructions []Instruction
	// Exclude holds normalized evaluation questions, never scored or used.
	Exclude map[string]bool
	// NeedAll says that the rewrite phase follows, which needs a score for
	// every question: a run that ends with questions unscored (failed, not
	// interrupted) is then an error, returned with its summary.
	NeedAll bool
	// Sync flushes every row to stable storage.
	Sync bool
	// Progress and Logf are as in Common.
	Progress func(Progress)
	Logf     func(format string, args ...any) // notices
	// Problems are input problems to carry into the summary.
	Problems []Problem
}

// scoreRow is a line of the scores log.
type scoreRow struct {
	ID       string   `json:"id"`
	Question string   `json:"question"`
	Score    *float64 `json:"score"`
	Skipped  string   `json:"skipped,omitempty"`
}

// RunPersonaScores is the score phase of Persona-Pruner data (METHODS §1
// stage A, step 3): it scores every candidate question of the shard for
// persona sensitivity with cfg.Checkpoint at cfg's layers and appends the
// scores to the scores log (resumable, like every stage). A question whose
// prompt does not fit the model is logged with score null and never
// selected. The summary is returned with any error; with cfg.NeedAll, an
// incomplete, uninterrupted run is an error too.
func RunPersonaScores(ctx context.Context, cfg ScoresConfig) (*Summary, error) {
	if cfg.Checkpoint == nil {
		return nil, errors.New("no scoring model")
	}
	scorer, err := NewScorer(cfg.Checkpoint, cfg.Persona, nil, cfg.FirstLayer, cfg.LastLayer)
	if err != nil {
		return nil, err
	}
	byID, ids, _ := uniqueQuestions(cfg.Instructions, cfg.Exclude)
	first, last := scorer.Layers()
	settings := map[string]string{
		"stage":      StageScores,
		"persona":    cfg.Persona,
		"model":      cfg.Checkpoint.Path,
		"layers":     fmt.Sprintf("%d..%d", first, last),
		"references": RowID("refs", scorer.personas[1:]...),
	}
	c := &Common{Out: cfg.Out, Shard: cfg.Shard, Workers: 1, Sync: cfg.Sync, Progress: cfg.Progress, Logf: cfg.Logf}
	r, err := openRunner(c, StageScores, settings, ids)
	if err != nil {
		return nil, err
	}
	runErr := r.run(ctx, func(ctx context.Context, id string) (outcome, error) {
		q := byID[id].Question
		row := &scoreRow{ID: id, Question: q}
		s, err := scorer.Score(ctx, q)
		switch {
		case errors.Is(err, ErrPromptTooLong):
			row.Skipped = ReasonTooLong
		case err != nil:
			return outcome{}, err
		default:
			row.Score = &s
		}
		return outcome{row: row}, nil
	})
	sum, err := r.finish(cfg.Problems)
	if runErr != nil {
		return sum, runErr
	}
	if err == nil && cfg.NeedAll {
		err = unscored(sum)
	}
	return sum, err
}

// unscored is the error of a score run that left questions without a
// score, other than by an interruption (a rerun continues that one).
func unscored(sum *Summary) error {
	if sum.Complete || sum.Interrupted {
		return nil
	}
	return fmt.Errorf("%d questions could not be scored; rerun to retry them", sum.Remaining)
}

// ScoredQuestion is a question with its persona-sensitivity score.
type ScoredQuestion struct {
	ID       string  // PersonaQuestionID(Question)
	Question string  // the question
	Score    float64 // s(q)
}

// ReadScores reads a scores log (as written by RunPersonaScores or merged
// by Merge) into a map from question id to score; skipped questions map to
// NaN.
func ReadScores(path string) (map[string]float64, []Problem, error) {
	out := map[string]float64{}
	probs, err := ReadLog(path, func(id string, raw []byte) error {
		var r scoreRow
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil
		}
		if r.Score == nil {
			out[id] = math.NaN()
		} else {
			out[id] = *r.Score
		}
		return nil
	})
	return out, probs, err
}

// SelectTop returns the n highest-scoring candidate questions (ties: by
// id), never an excluded one. Every candidate must have a score.
func SelectTop(ins []Instruction, exclude map[string]bool, scores map[string]float64, n int) ([]ScoredQuestion, error) {
	byID, ids, _ := uniqueQuestions(ins, exclude)
	var all []ScoredQuestion
	missing := 0
	for _, id := range ids {
		s, ok := scores[id]
		if !ok {
			missing++
			continue
		}
		if math.IsNaN(s) {
			continue
		}
		all = append(all, ScoredQuestion{ID: id, Question: byID[id].Question, Score: s})
	}
	if missing > 0 {
		return nil, fmt.Errorf("%d of %d questions have no persona-sensitivity score: score them first (for a sharded job, run the score phase on every shard and merge the shards)", missing, len(ids))
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Score != all[j].Score {
			return all[i].Score > all[j].Score
		}
		return all[i].ID < all[j].ID
	})
	if n > 0 && len(all) > n {
		all = all[:n]
	}
	return all, nil
}

// PersonaConfig configures RunPersonaData.
type PersonaConfig struct {
	Common
	// Persona is the target persona description.
	Persona string
	// Instructions are the candidate questions with reference answers.
	Instructions []Instruction
	// Exclude holds normalized evaluation questions, never used.
	Exclude map[string]bool
	// Scores maps question ids to scores (from ReadScores).
	Scores map[string]float64
	// TopN is how many questions to keep (default 2000).
	TopN int
	// Modes are the rewrite modes to produce for each question: ModeRewrite
	// (with the reference answer) and/or ModeDirect (without).
	Modes []string
	// Problems are input problems to carry into the summary.
	Problems []Problem
}

// personaRow is a line of the persona log.
type personaRow struct {
	ID       string   `json:"id"`
	QID      string   `json:"qid"`
	Question string   `json:"question"`
	Mode     string   `json:"mode"`
	Answer   string   `json:"answer"`
	Score    float64  `json:"score"`
	System   string   `json:"system"`
	Finish   string   `json:"finish_reason,omitempty"`
	Flags    []string `json:"flags,omitempty"`
}

func (r *personaRow) setFlags(f []string) { r.Flags = f }

// RunPersonaData makes Persona-Pruner training data for one persona
// (METHODS §1 stage A): the TopN most persona-sensitive questions (by
// cfg.Scores, evaluation questions excluded) have their reference answers
// rewritten in the persona's voice (ModeRewrite) and/or answered directly
// in persona (ModeDirect). Kept rows go to the persona log; when the run
// covers the whole job, persona_data.jsonl is built from it as chat rows
// {"messages": [system, user, assistant]} with the METHODS system prompt.
func RunPersonaData(ctx context.Context, cfg PersonaConfig) (*Summary, error) {
	if strings.TrimSpace(cfg.Persona) == "" {
		return nil, errors.New("no persona")
	}
	if len(cfg.Modes) == 0 {
		cfg.Modes = []string{ModeRewrite}
	}
	for _, m := range cfg.Modes {
		if m != ModeRewrite && m != ModeDirect {
			return nil, fmt.Errorf("unknown mode %q (want rewrite or direct)", m)
		}
	}
	n := cfg.TopN
	if n <= 0 {
		n = 2000
	}
	top, err := SelectTop(cfg.Instructions, cfg.Exclude, cfg.Scores, n)
	if err != nil {
		return nil, err
	}
	byQ, _, _ := uniqueQuestions(cfg.Instructions, cfg.Exclude)
	type job struct {
		q    ScoredQuestion
		in   *Instruction
		mode string
	}
	problems := cfg.Problems
	jobs := map[string]job{}
	var ids []string
	for _, q := range top {
		in := byQ[q.ID]
		for _, m := range cfg.Modes {
			if m == ModeRewrite && strings.TrimSpace(in.Reference) == "" {
				problems = append(problems, Problem{in.File, in.Line, "rewrite mode needs a reference answer; row skipped"})
				continue
			}
			id := RowID("persona", m, cfg.Persona, in.Question, in.Reference)
			jobs[id] = job{q, in, m}
			ids = append(ids, id)
		}
	}
	settings := cfg.settings()
	settings["stage"] = StagePersona
	settings["persona"] = cfg.Persona
	settings["modes"] = strings.Join(cfg.Modes, ",")
	settings["top_n"] = fmt.Sprint(n)
	// The rows follow from the selection: a folder is only continued with
	// the same selected questions.
	sel := make([]string, len(top))
	for i, q := range top {
		sel[i] = q.ID
	}
	settings["selection"] = RowID("selection", sel...)
	settings["exclude"] = RowID("exclude", slices.Sorted(maps.Keys(cfg.Exclude))...)
	r, err := openRunner(&cfg.Common, StagePersona, settings, ids)
	if err != nil {
		return nil, err
	}
	system := PersonaTrainingSystem(cfg.Persona)
	runErr := r.run(ctx, func(ctx context.Context, id string) (outcome, error) {
		j := jobs[id]
		req := cfg.request(PersonaRewriteMessages(j.mode, cfg.Persona, j.in.Question, j.in.Reference), id, 0, 1024)
		resp, err := cfg.Teacher.Complete(ctx, req)
		if err != nil {
			return outcome{}, err
		}
		row := &personaRow{ID: id, QID: j.q.ID, Question: j.in.Question, Mode: j.mode, Answer: cleanOutput(resp.Text),
			Score: j.q.Score, System: system, Finish: resp.FinishReason}
		return outcome{row: row, reasons: cfg.Quality.CheckText(row.Answer, resp.FinishReason)}, nil
	})
	sum, err := r.finish(problems)
	if runErr != nil {
		return sum, runErr
	}
	return sum, err
}
