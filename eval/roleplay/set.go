package roleplay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/masque-ai/masque/data/evalset"
)

// Question kinds.
const (
	KindSpecific  = "specific"  // persona-specific question
	KindGeneral   = "general"   // general question, the same for every persona
	KindRoleBench = "rolebench" // RoleBench question with reference answers
)

// DefaultSystemTemplate is the system prompt used when a persona has no
// system.txt: the Persona-Pruner training prompt, so that a sculpted model
// is evaluated the way it was trained. %s is the persona description.
const DefaultSystemTemplate = "You are roleplaying as a user with this persona: %s\nAnswer the question, roleplay as the given persona."

// Question is one evaluation question.
type Question struct {
	// Kind is KindSpecific, KindGeneral or KindRoleBench.
	Kind string `json:"kind"`
	// Index numbers the questions of one kind of one persona from 0.
	Index int `json:"index"`
	// Text is the question.
	Text string `json:"text"`
	// Reference is the reference answer (RoleBench's generated[0]), if any.
	Reference string `json:"reference,omitempty"`
}

// Persona is one character to evaluate.
type Persona struct {
	// ID names the persona in results (its folder name, or its RoleBench
	// role).
	ID string `json:"id"`
	// Description is what the judge sees as the persona.
	Description string `json:"description"`
	// System is the system prompt the model under test gets.
	System string `json:"system"`
	// Questions are asked one at a time, each in a fresh conversation.
	Questions []Question `json:"questions"`
}

// Set is an evaluation set.
type Set struct {
	// Name and Version come from set.json (Name defaults to the folder's
	// name).
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Source says where the set was loaded from.
	Source string `json:"source"`
	// Kind is "personas" (the Persona-Pruner layout) or "rolebench".
	Kind     string    `json:"kind"`
	Personas []Persona `json:"personas"`
	// Skipped are the source rows left out (RoleBench rows without a
	// reference answer), in file order.
	Skipped []SkippedRow `json:"skipped,omitempty"`
}

// SkippedRow is a source row left out of a set, and why.
type SkippedRow struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// SkippedSummary describes the skipped rows in one line ("" when none):
// how many, why, and the first few file:line places.
func (s *Set) SkippedSummary() string {
	if len(s.Skipped) == 0 {
		return ""
	}
	reasons := map[string]int{}
	var order []string
	for _, k := range s.Skipped {
		if reasons[k.Reason] == 0 {
			order = append(order, k.Reason)
		}
		reasons[k.Reason]++
	}
	var parts []string
	for _, r := range order {
		parts = append(parts, fmt.Sprintf("%d %s", reasons[r], r))
	}
	var at []string
	for i, k := range s.Skipped {
		if i == 5 {
			at = append(at, "…")
			break
		}
		at = append(at, fmt.Sprintf("%s:%d", k.File, k.Line))
	}
	return fmt.Sprintf("%d source rows skipped (%s): %s", len(s.Skipped), strings.Join(parts, ", "), strings.Join(at, ", "))
}

// Count returns the number of questions over all personas.
func (s *Set) Count() int {
	n := 0
	for _, p := range s.Personas {
		n += len(p.Questions)
	}
	return n
}

// Filter keeps the personas whose IDs are listed (all when ids is empty)
// and at most limit questions of each kind per persona (limit ≤ 0: all).
// Unknown IDs are an error.
func (s *Set) Filter(ids []string, limit int) (*Set, error) {
	out := *s
	out.Personas = nil
	for _, id := range ids {
		if !slices.ContainsFunc(s.Personas, func(p Persona) bool { return p.ID == id }) {
			return nil, fmt.Errorf("evaluation set %s has no persona %q", s.Name, id)
		}
	}
	for _, p := range s.Personas {
		if len(ids) > 0 && !slices.Contains(ids, p.ID) {
			continue
		}
		q := p.Questions
		if limit > 0 {
			q = nil
			for _, x := range p.Questions {
				if x.Index < limit {
					q = append(q, x)
				}
			}
		}
		p.Questions = q
		out.Personas = append(out.Personas, p)
	}
	return &out, nil
}

// setMeta is the optional set.json.
type setMeta struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description"`
}

// LoadSet reads an evaluation set in the Persona-Pruner layout from dir:
//
//	dir/set.json                optional: {"name": …, "version": …}
//	dir/general.txt             general questions shared by every persona
//	dir/<id>/description.txt    the persona description (required)
//	dir/<id>/system.txt         system prompt (default: DefaultSystemTemplate)
//	dir/<id>/specific.txt       persona-specific questions (required)
//	dir/<id>/general.txt        general questions for this persona only
//	                            (replaces dir/general.txt)
//
// Question files hold one question per line; blank lines and lines that
// start with # are skipped. The paper uses 20 specific and 20 general
// questions per persona; other counts are accepted. Every subfolder whose
// name does not start with "." or "_" is a persona. Problems are errors
// naming the file.
func LoadSet(dir string) (*Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("evaluation set: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("evaluation set %s: not a folder (want the Persona-Pruner layout: one subfolder per persona)", dir)
	}
	return LoadSetFS(os.DirFS(dir), dir)
}

// OpenSet loads the evaluation set named by name: "" or "builtin"
// (evalset.Name) is masque's own set, anything else a folder (LoadSet).
func OpenSet(name string) (*Set, error) {
	if name == "" || name == evalset.Name {
		return LoadSetFS(evalset.FS, evalset.Name)
	}
	return LoadSet(name)
}

// LoadSetFS is LoadSet on a file system (for example an embedded set);
// source names it in results and errors.
func LoadSetFS(fsys fs.FS, source string) (*Set, error) {
	name := path.Base(strings.TrimRight(strings.ReplaceAll(source, "\\", "/"), "/"))
	s := &Set{Name: name, Source: source, Kind: "personas"}
	where := func(p string) string { return strings.TrimRight(source, "/") + "/" + p }
	if b, err := fs.ReadFile(fsys, "set.json"); err == nil {
		var m setMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("evaluation set: %s: malformed JSON: %v", where("set.json"), err)
		}
		if m.Name != "" {
			s.Name = m.Name
		}
		s.Version = m.Version
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("evaluation set: %w", err)
	}
	shared, err := readQuestions(fsys, "general.txt", where, false)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("evaluation set %s: %w", source, err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		id := e.Name()
		desc, err := readText(fsys, id+"/description.txt", where, true)
		if err != nil {
			return nil, err
		}
		sys, err := readText(fsys, id+"/system.txt", where, false)
		if err != nil {
			return nil, err
		}
		if sys == "" {
			sys = fmt.Sprintf(DefaultSystemTemplate, desc)
		}
		spec, err := readQuestions(fsys, id+"/specific.txt", where, true)
		if err != nil {
			return nil, err
		}
		gen, err := readQuestions(fsys, id+"/general.txt", where, false)
		if err != nil {
			return nil, err
		}
		if gen == nil {
			gen = shared
		}
		if len(gen) == 0 {
			return nil, fmt.Errorf("evaluation set: persona %s has no general questions: write %s or %s", id, where("general.txt"), where(id+"/general.txt"))
		}
		p := Persona{ID: id, Description: desc, System: sys}
		for i, q := range spec {
			p.Questions = append(p.Questions, Question{Kind: KindSpecific, Index: i, Text: q})
		}
		for i, q := range gen {
			p.Questions = append(p.Questions, Question{Kind: KindGeneral, Index: i, Text: q})
		}
		s.Personas = append(s.Personas, p)
	}
	if len(s.Personas) == 0 {
		return nil, fmt.Errorf("evaluation set %s: no persona folders (want <id>/description.txt and <id>/specific.txt)", source)
	}
	return s, nil
}

func readText(fsys fs.FS, name string, where func(string) string, required bool) (string, error) {
	b, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return "", nil
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("evaluation set: %s is missing", where(name))
		}
		return "", fmt.Errorf("evaluation set: %w", err)
	}
	s := strings.TrimSpace(strings.TrimPrefix(string(b), "\ufeff"))
	if s == "" && required {
		return "", fmt.Errorf("evaluation set: %s is empty", where(name))
	}
	return s, nil
}

// readQuestions returns nil (no error) for an absent optional file.
func readQuestions(fsys fs.FS, name string, where func(string) string, required bool) ([]string, error) {
	b, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("evaluation set: %s is missing", where(name))
		}
		return nil, fmt.Errorf("evaluation set: %w", err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("evaluation set: %s: %v", where(name), err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("evaluation set: %s holds no questions", where(name))
	}
	return out, nil
}

// RoleBenchRow is one RoleBench test row.
type RoleBenchRow struct {
	Role      string   `json:"role"`
	Question  string   `json:"question"`
	Generated []string `json:"generated"`
}

// LoadRoleBench reads RoleBench JSONL rows {role, question, generated[]}
// from dataPath and the role descriptions {"role": "description", …} from
// descPath (RoleBench's desc.json), and makes a Set with one persona per
// role, in order of first appearance. Each question's Reference is
// generated[0]. A row whose reference is missing or blank cannot be
// scored by ROUGE-L: it is skipped and listed in Set.Skipped (the run goes
// on and reports the count). A malformed line, a row without a role or
// question, a role without a description, or a file with no usable row is
// an error naming the file and line.
func LoadRoleBench(dataPath, descPath string) (*Set, error) {
	db, err := os.ReadFile(descPath)
	if err != nil {
		return nil, fmt.Errorf("rolebench: %w", err)
	}
	var descs map[string]string
	if err := json.Unmarshal(db, &descs); err != nil {
		return nil, fmt.Errorf("rolebench: %s: malformed JSON (want {\"role\": \"description\", …}): %v", descPath, err)
	}
	data, err := os.ReadFile(dataPath)
	if err != nil {
		return nil, fmt.Errorf("rolebench: %w", err)
	}
	s := &Set{Name: path.Base(strings.ReplaceAll(dataPath, "\\", "/")), Source: dataPath, Kind: "rolebench"}
	at := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r RoleBenchRow
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("rolebench: %s:%d: malformed JSON: %v", dataPath, n, err)
		}
		switch {
		case r.Role == "":
			return nil, fmt.Errorf("rolebench: %s:%d: no role", dataPath, n)
		case r.Question == "":
			return nil, fmt.Errorf("rolebench: %s:%d: no question", dataPath, n)
		case len(r.Generated) == 0 || strings.TrimSpace(r.Generated[0]) == "":
			s.Skipped = append(s.Skipped, SkippedRow{File: dataPath, Line: n, Reason: "no reference answer (generated[0])"})
			continue
		}
		i, ok := at[r.Role]
		if !ok {
			d, ok := descs[r.Role]
			if !ok || strings.TrimSpace(d) == "" {
				return nil, fmt.Errorf("rolebench: %s:%d: role %q has no description in %s", dataPath, n, r.Role, descPath)
			}
			d = strings.TrimSpace(d)
			i = len(s.Personas)
			at[r.Role] = i
			s.Personas = append(s.Personas, Persona{ID: r.Role, Description: d, System: RoleBenchSystem(r.Role, d)})
		}
		p := &s.Personas[i]
		p.Questions = append(p.Questions, Question{Kind: KindRoleBench, Index: len(p.Questions), Text: r.Question, Reference: r.Generated[0]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rolebench: %s: %v", dataPath, err)
	}
	if len(s.Personas) == 0 {
		if len(s.Skipped) > 0 {
			return nil, fmt.Errorf("rolebench: %s: no usable rows: %s", dataPath, s.SkippedSummary())
		}
		return nil, fmt.Errorf("rolebench: %s: no rows", dataPath)
	}
	return s, nil
}

// RoleBenchSystem is the system prompt for a RoleBench role: the
// Persona-Pruner template around "role: description".
func RoleBenchSystem(role, desc string) string {
	return fmt.Sprintf(DefaultSystemTemplate, role+": "+desc)
}
