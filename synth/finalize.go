package synth

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/internal/atomicfile"
)

// FinalizeOptions tune Finalize.
type FinalizeOptions struct {
	// DedupeThreshold is the MinHash similarity at which an answer is a
	// near duplicate of a kept one with a smaller row id (0: off).
	DedupeThreshold float64
	// FlagOnly marks near duplicates with a flag instead of dropping them.
	FlagOnly bool
}

// FinalStats describes the deliverables Finalize built.
type FinalStats struct {
	// Rows is the number of rows in the deliverable(s).
	Rows int `json:"rows"`
	// NearDuplicates were dropped (or flagged, with FlagOnly).
	NearDuplicates int  `json:"near_duplicates"`
	FlagOnly       bool `json:"flag_only,omitempty"` // near duplicates were flagged, not dropped
	// Rejected counts the stage's rejected rows by reason, Flagged its kept
	// rows by flag (near duplicates included).
	Rejected map[string]int `json:"rejected,omitempty"`
	Flagged  map[string]int `json:"flagged,omitempty"` // kept rows by flag
	// Failed is the number of rows whose last attempt failed and that are
	// still not done.
	Failed int `json:"failed"`
	// Files are the files written.
	Files []string `json:"files"`
}

// logEntry locates one row of a log.
type logEntry struct {
	id  string
	off int64
	n   int
}

// indexLog lists the rows of a log file (first occurrence of each id),
// calling fn with each row.
func indexLog(path string, fn func(id string, raw []byte)) ([]logEntry, []Problem, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var out []logEntry
	var probs []Problem
	seen := map[string]bool{}
	_, err = scanLog(f, path, func(id string, raw []byte, line int, off int64, n int) {
		if seen[id] {
			probs = append(probs, Problem{path, line, "duplicate row id " + id + " (ignored)"})
			return
		}
		seen[id] = true
		out = append(out, logEntry{id, off, n})
		if fn != nil {
			fn(id, raw)
		}
	}, func(p Problem) { probs = append(probs, p) })
	return out, probs, err
}

// anyRow is the union of the log row fields Finalize needs.
type anyRow struct {
	ID             string   `json:"id"`
	Persona        string   `json:"persona"`
	Character      string   `json:"character"`
	CharacterID    string   `json:"character_id"`
	Question       string   `json:"question"`
	QuestionSource string   `json:"question_source"`
	CharAnswer     string   `json:"character_answer"`
	Answer         string   `json:"answer"`
	System         string   `json:"system"`
	Score          *float64 `json:"score"`
	Skipped        string   `json:"skipped"`
	Flags          []string `json:"flags"`
	// style-rewrite rows
	Name    string `json:"name"`
	Neutral string `json:"neutral"`
	Styled  string `json:"styled"`
	Trace   string `json:"trace"`
	Source  string `json:"source"`
	User    string `json:"user"`
}

// text is the generated text of a row.
func (r *anyRow) text(stage string) string {
	switch stage {
	case StageProfiles:
		return r.Character
	case StageAnswers:
		return r.CharAnswer
	case StagePersona:
		return r.Answer
	case StageStyle:
		return r.Styled
	}
	return ""
}

type chatRow struct {
	Messages []chattemplate.Message `json:"messages"`
	Flags    []string               `json:"flags,omitempty"`
}

// styleOut is a row of style_rewrite.jsonl.
type styleOut struct {
	Character string   `json:"character"`
	Neutral   string   `json:"neutral"`
	Styled    string   `json:"styled"`
	Trace     string   `json:"trace,omitempty"`
	Source    string   `json:"source,omitempty"`
	System    string   `json:"system"`
	User      string   `json:"user"`
	Flags     []string `json:"flags,omitempty"`
}

type characterOut struct {
	CharacterID string   `json:"character_id"`
	Persona     string   `json:"persona"`
	Character   string   `json:"character"`
	Flags       []string `json:"flags,omitempty"`
}

type dialogueOut struct {
	CharacterID     string   `json:"character_id"`
	Question        string   `json:"question"`
	QuestionSource  string   `json:"question_source"`
	CharacterAnswer string   `json:"character_answer"`
	Flags           []string `json:"flags,omitempty"`
}

// Finalize builds a stage's deliverables in dir from its log, sorted by row
// id so that the same set of rows always gives byte-identical files (after
// an interrupted run, across shards merged, or an uninterrupted run):
// synthetic_character.jsonl for profiles; synthetic_dialogue.jsonl and
// synthetic_dialogue.chat.jsonl for answers; persona_data.jsonl for
// persona; style_rewrite.jsonl and style_rewrite.chat.jsonl for
// style-rewrite. Near-duplicate answers are removed (or flagged) here, never in
// the logs, so the decision always sees the whole set. It also writes the
// stage's HTML report. Deliverables are written atomically.
func Finalize(dir, stage string, o FinalizeOptions) (*FinalStats, error) {
	st := &FinalStats{FlagOnly: o.FlagOnly, Rejected: map[string]int{}, Flagged: map[string]int{}}
	rep := newReport(stage)
	logPath := StageFile(dir, stage, "log")
	sigs := map[string]*Signature{}
	dedupe := o.DedupeThreshold > 0 && (stage == StageAnswers || stage == StagePersona)
	entries, _, err := indexLog(logPath, func(id string, raw []byte) {
		if dedupe {
			var r anyRow
			if json.Unmarshal(raw, &r) == nil {
				s := MinHash(r.text(stage))
				sigs[id] = &s
			}
		}
	})
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for _, e := range entries {
		done[e.id] = true
	}
	if _, err := ReadLog(StageFile(dir, stage, "rejected"), func(id string, raw []byte) error {
		done[id] = true
		var rr rejectedRow
		if json.Unmarshal(raw, &rr) == nil {
			for _, x := range rr.Reasons {
				st.Rejected[x]++
			}
			var r anyRow
			if json.Unmarshal(rr.Row, &r) == nil {
				rep.addRejected(stage, &r)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	failed := map[string]bool{}
	if _, err := ReadLog(StageFile(dir, stage, "failures"), func(id string, raw []byte) error {
		if !done[id] {
			failed[id] = true
		}
		return nil
	}); err != nil {
		return nil, err
	}
	st.Failed = len(failed)
	dups := map[string]string{}
	if dedupe {
		dups = NearDuplicates(sigs, o.DedupeThreshold)
	}
	st.NearDuplicates = len(dups)
	sort.Slice(entries, func(i, j int) bool { return entries[i].id < entries[j].id })

	lf, err := os.Open(logPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if lf != nil {
		defer lf.Close()
	}
	// each visits the rows in id order.
	each := func(fn func(r *anyRow) error) error {
		buf := []byte{}
		for _, e := range entries {
			if cap(buf) < e.n {
				buf = make([]byte, e.n)
			}
			buf = buf[:e.n]
			if _, err := lf.ReadAt(buf, e.off); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading %s: %w", logPath, err)
			}
			var r anyRow
			if err := json.Unmarshal(buf, &r); err != nil {
				return fmt.Errorf("%s: row %s: %v", logPath, e.id, err)
			}
			if _, dup := dups[e.id]; dup {
				if !o.FlagOnly {
					continue
				}
				r.Flags = append(r.Flags, ReasonNearDuplicate)
			}
			if err := fn(&r); err != nil {
				return err
			}
		}
		return nil
	}
	write := func(name string, conv func(r *anyRow) any) error {
		path := filepath.Join(dir, name)
		st.Files = append(st.Files, path)
		return atomicfile.WriteFile(path, func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 1<<16)
			if err := each(func(r *anyRow) error {
				line, err := marshalLine(conv(r))
				if err != nil {
					return err
				}
				_, err = bw.Write(line)
				return err
			}); err != nil {
				return err
			}
			return bw.Flush()
		})
	}
	var werr error
	switch stage {
	case StageProfiles:
		werr = write(FileCharacters, func(r *anyRow) any {
			return characterOut{CharacterID: r.ID, Persona: r.Persona, Character: r.Character, Flags: r.Flags}
		})
	case StageAnswers:
		werr = write(FileDialogue, func(r *anyRow) any {
			return dialogueOut{CharacterID: r.CharacterID, Question: r.Question, QuestionSource: r.QuestionSource, CharacterAnswer: r.CharAnswer, Flags: r.Flags}
		})
		if werr == nil {
			werr = write(FileDialogueChat, func(r *anyRow) any {
				return chatRow{Messages: []chattemplate.Message{{Role: "system", Content: r.System}, {Role: "user", Content: r.Question}, {Role: "assistant", Content: r.CharAnswer}}, Flags: r.Flags}
			})
		}
	case StagePersona:
		werr = write(FilePersonaData, func(r *anyRow) any {
			return chatRow{Messages: []chattemplate.Message{{Role: "system", Content: r.System}, {Role: "user", Content: r.Question}, {Role: "assistant", Content: r.Answer}}, Flags: r.Flags}
		})
	case StageStyle:
		werr = write(FileStyleRows, func(r *anyRow) any {
			return styleOut{Character: r.Name, Neutral: r.Neutral, Styled: r.Styled, Trace: r.Trace, Source: r.Source, System: r.System, User: r.User, Flags: r.Flags}
		})
		if werr == nil {
			werr = write(FileStyleChat, func(r *anyRow) any {
				return chatRow{Messages: []chattemplate.Message{{Role: "system", Content: r.System}, {Role: "user", Content: r.User}, {Role: "assistant", Content: StyleTarget(r.Trace, r.Styled)}}, Flags: r.Flags}
			})
		}
	}
	if werr != nil {
		return nil, werr
	}
	// Statistics for the report, over the kept rows.
	if err := each(func(r *anyRow) error {
		st.Rows++
		for _, f := range r.Flags {
			st.Flagged[f]++
		}
		rep.addKept(stage, r)
		return nil
	}); err != nil {
		return nil, err
	}
	if stage == StageScores {
		st.Files = nil
	}
	rep.stats = st
	reportPath := StageFile(dir, stage, "report")
	if err := atomicfile.WriteFile(reportPath, rep.writeHTML); err != nil {
		return nil, err
	}
	st.Files = append(st.Files, reportPath)
	return st, nil
}

// profileAttrs returns the report attributes of a profile text.
func profileAttrs(text string) map[string]string {
	p := ParseProfile(text)
	out := map[string]string{}
	for _, f := range []string{"Gender", "Race", "Birthplace", "Age"} {
		if v := strings.TrimSpace(p.Fields[f]); v != "" {
			out[f] = v
		}
	}
	return out
}
