package synth

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// AnswersConfig configures RunAnswers.
type AnswersConfig struct {
	Common
	// Strategy is StrategyR (rewrite the reference answer in character) or
	// StrategyG (fresh in-character answer).
	Strategy string
	// Characters are the characters to answer as (identical ids are kept
	// once).
	Characters []Character
	// Instructions are the questions (identical question and reference
	// pairs are done once, with the first one's source).
	Instructions []Instruction
	// PerInstruction is how many random characters answer each instruction
	// (default 3; all characters when there are fewer).
	PerInstruction int
	// Problems are input problems to carry into the summary.
	Problems []Problem
}

// dialogueRow is a line of the answers log.
type dialogueRow struct {
	ID             string   `json:"id"`
	CharacterID    string   `json:"character_id"`
	Question       string   `json:"question"`
	QuestionSource string   `json:"question_source"`
	Answer         string   `json:"character_answer"`
	Strategy       string   `json:"strategy"`
	System         string   `json:"system"`
	Finish         string   `json:"finish_reason,omitempty"`
	Flags          []string `json:"flags,omitempty"`
}

func (r *dialogueRow) setFlags(f []string) { r.Flags = f }

// DialogueID is the row id of character characterID answering question
// (with reference) by strategy.
func DialogueID(strategy, characterID, question, reference string) string {
	return RowID("dialogue", strategy, characterID, question, reference)
}

// PairCharacters picks n distinct characters for the instruction with id
// qid, out of count characters (sorted by id), reproducibly from seed: the
// same seed, instruction and character set always give the same pairing,
// whatever the order or the machine.
func PairCharacters(seed uint64, qid string, count, n int) []int {
	if n >= count {
		out := make([]int, count)
		for i := range out {
			out[i] = i
		}
		return out
	}
	rng := rand.New(rand.NewPCG(seed, hash64("pair\x00"+qid)))
	chosen := map[int]bool{}
	out := make([]int, 0, n)
	for len(out) < n {
		if i := rng.IntN(count); !chosen[i] {
			chosen[i] = true
			out = append(out, i)
		}
	}
	sort.Ints(out)
	return out
}

// answerJob is one row to do.
type answerJob struct {
	ch *Character
	in *Instruction
}

// RunAnswers writes in-character answers (OpenCharacter-R or -G): each
// instruction is paired with PerInstruction random characters. Kept rows go
// to the answers log; when the run covers the whole job,
// synthetic_dialogue.jsonl (character_id, question, question_source,
// character_answer) and synthetic_dialogue.chat.jsonl ({"messages":
// [system = persona + profile, user, assistant]}) are built from it, with
// near-duplicate answers removed.
func RunAnswers(ctx context.Context, cfg AnswersConfig) (*Summary, error) {
	if cfg.Strategy != StrategyR && cfg.Strategy != StrategyG {
		return nil, fmt.Errorf("unknown strategy %q (want r or g)", cfg.Strategy)
	}
	n := cfg.PerInstruction
	if n <= 0 {
		n = 3
	}
	chars := map[string]*Character{}
	for i := range cfg.Characters {
		c := &cfg.Characters[i]
		if _, ok := chars[c.ID]; !ok {
			chars[c.ID] = c
		}
	}
	if len(chars) == 0 {
		return nil, fmt.Errorf("no characters")
	}
	sorted := make([]*Character, 0, len(chars))
	for _, c := range chars {
		sorted = append(sorted, c)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })

	problems := cfg.Problems
	jobs := map[string]answerJob{}
	var ids []string
	seenQ := map[string]bool{}
	for i := range cfg.Instructions {
		in := &cfg.Instructions[i]
		if cfg.Strategy == StrategyR && strings.TrimSpace(in.Reference) == "" {
			problems = append(problems, Problem{in.File, in.Line, "strategy r needs a reference answer; row skipped"})
			continue
		}
		qid := RowID("question", in.Question, in.Reference)
		if seenQ[qid] {
			continue
		}
		seenQ[qid] = true
		for _, k := range PairCharacters(cfg.Seed, qid, len(sorted), n) {
			c := sorted[k]
			id := DialogueID(cfg.Strategy, c.ID, in.Question, in.Reference)
			jobs[id] = answerJob{c, in}
			ids = append(ids, id)
		}
	}
	settings := cfg.settings()
	settings["stage"] = StageAnswers
	settings["strategy"] = cfg.Strategy
	settings["per_instruction"] = fmt.Sprint(n)
	// Pairing depends on the whole character set: a folder is only
	// continued with the same characters.
	charIDs := make([]string, len(sorted))
	for i, c := range sorted {
		charIDs[i] = c.ID
	}
	settings["characters"] = RowID("characters", charIDs...)
	r, err := openRunner(&cfg.Common, StageAnswers, settings, ids)
	if err != nil {
		return nil, err
	}
	runErr := r.run(ctx, func(ctx context.Context, id string) (outcome, error) {
		j := jobs[id]
		req := cfg.request(AnswerMessages(cfg.Strategy, j.ch.Profile, j.in.Question, j.in.Reference), id, 0, 1024)
		resp, err := cfg.Teacher.Complete(ctx, req)
		if err != nil {
			return outcome{}, err
		}
		row := &dialogueRow{ID: id, CharacterID: j.ch.ID, Question: j.in.Question, QuestionSource: j.in.Source,
			Answer: cleanOutput(resp.Text), Strategy: cfg.Strategy, System: CharacterSystemPrompt(j.ch.Persona, j.ch.Profile),
			Finish: resp.FinishReason}
		return outcome{row: row, reasons: cfg.Quality.CheckText(row.Answer, resp.FinishReason)}, nil
	})
	sum, err := r.finish(problems)
	if runErr != nil {
		return sum, runErr
	}
	return sum, err
}
