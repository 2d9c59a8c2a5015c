// Package mc runs multiple-choice persona tests by log-likelihood: for every
// item the model sees the question (rendered with its chat template, after an
// optional persona system prompt) and each candidate answer is scored by the
// sum of its tokens' log-probabilities. The item counts as correct when the
// answer matching the persona scores higher; for the opposing persona (e.g.
// introvert on an extraversion test) the non-matching answer is the correct
// one.
//
// Items come from CSV or JSONL rows `question, A, B, matching` (matching is
// A or B) or from Anthropic's model-written-evals persona JSONL
// (`question` or `statement`, `answer_matching_behavior`,
// `answer_not_matching_behavior`).
package mc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/model"
)

// Item is one multiple-choice question with two answers.
type Item struct {
	Question    string `json:"question"`
	Matching    string `json:"matching"`     // the answer that matches the persona/trait
	NotMatching string `json:"not_matching"` // the other answer
}

// statementPrefix is the question model-written-evals ask about a statement.
const statementPrefix = "Is the following statement something you would say?\n"

// Load reads items from a .csv file (header with question, A, B, matching)
// or a .jsonl file (either the same four keys, or model-written-evals
// persona rows). Every problem is an error naming the file and line.
func Load(path string) ([]Item, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mc: %w", err)
	}
	var items []Item
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		items, err = parseCSV(path, data)
	case ".jsonl", ".json":
		items, err = parseJSONL(path, data)
	default:
		return nil, fmt.Errorf("mc: %s: unknown test format (want .csv or .jsonl)", path)
	}
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("mc: %s: no test items", path)
	}
	return items, nil
}

func pick(path string, line int, q, a, b, matching string) (Item, error) {
	switch strings.ToUpper(strings.TrimSpace(matching)) {
	case "A":
		return Item{Question: q, Matching: a, NotMatching: b}, nil
	case "B":
		return Item{Question: q, Matching: b, NotMatching: a}, nil
	}
	switch matching {
	case a:
		return Item{Question: q, Matching: a, NotMatching: b}, nil
	case b:
		return Item{Question: q, Matching: b, NotMatching: a}, nil
	}
	return Item{}, fmt.Errorf("mc: %s:%d: matching is %q, want A or B", path, line, matching)
}

func parseCSV(path string, data []byte) ([]Item, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("mc: %s: reading the CSV header: %v", path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	for _, k := range []string{"question", "a", "b", "matching"} {
		if _, ok := col[k]; !ok {
			return nil, fmt.Errorf("mc: %s: the CSV header lacks a %q column (want question,A,B,matching)", path, k)
		}
	}
	var items []Item
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("mc: %s: %v", path, err)
		}
		line, _ := r.FieldPos(0) // only valid after a record was read
		get := func(k string) string {
			if i := col[k]; i < len(rec) {
				return rec[i]
			}
			return ""
		}
		if len(rec) < len(head) {
			return nil, fmt.Errorf("mc: %s:%d: %d fields, want %d", path, line, len(rec), len(head))
		}
		it, err := pick(path, line, get("question"), get("a"), get("b"), get("matching"))
		if err != nil {
			return nil, err
		}
		if it.Question == "" {
			return nil, fmt.Errorf("mc: %s:%d: empty question", path, line)
		}
		items = append(items, it)
	}
	return items, nil
}

func parseJSONL(path string, data []byte) ([]Item, error) {
	var items []Item
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var row map[string]any
		if err := json.Unmarshal(line, &row); err != nil {
			return nil, fmt.Errorf("mc: %s:%d: malformed JSON: %v", path, n, err)
		}
		str := func(k string) (string, bool) {
			v, ok := row[k].(string)
			return v, ok
		}
		if am, ok := str("answer_matching_behavior"); ok {
			an, ok2 := str("answer_not_matching_behavior")
			if !ok2 {
				return nil, fmt.Errorf("mc: %s:%d: answer_not_matching_behavior is missing", path, n)
			}
			q, ok := str("question")
			if !ok || q == "" {
				st, ok := str("statement")
				if !ok || st == "" {
					return nil, fmt.Errorf("mc: %s:%d: neither question nor statement", path, n)
				}
				q = statementPrefix + `"` + st + `"`
			}
			items = append(items, Item{Question: q, Matching: am, NotMatching: an})
			continue
		}
		q, ok1 := str("question")
		a, ok2 := str("A")
		b, ok3 := str("B")
		mt, ok4 := str("matching")
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, fmt.Errorf("mc: %s:%d: want keys question, A, B, matching (or answer_matching_behavior and answer_not_matching_behavior)", path, n)
		}
		it, err := pick(path, n, q, a, b, mt)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mc: %s: %w", path, err)
	}
	return items, nil
}

// Prompter turns an item into token ids.
type Prompter interface {
	// Prompt returns the ids the answers continue: the question (with the
	// system prompt when not empty).
	Prompt(system, question string) ([]int, error)
	// Answer returns the ids of an answer.
	Answer(answer string) []int
}

// ChatPrompter renders the question as a user turn with the chat template
// and the generation prompt; answers are tokenized without special tokens
// and, unless KeepSpace, without surrounding spaces (model-written-evals
// answers start with a space, which a chat turn does not).
type ChatPrompter struct {
	Chat      calib.ChatFunc
	Tok       calib.Tokenizer
	KeepSpace bool
}

// Prompt implements Prompter.
func (p ChatPrompter) Prompt(system, question string) ([]int, error) {
	var msgs []chattemplate.Message
	if system != "" {
		msgs = append(msgs, chattemplate.Message{Role: "system", Content: system})
	}
	return p.Chat(append(msgs, chattemplate.Message{Role: "user", Content: question}), true)
}

// Answer implements Prompter.
func (p ChatPrompter) Answer(a string) []int {
	if !p.KeepSpace {
		a = strings.TrimSpace(a)
	}
	return p.Tok.Encode(a, false)
}

// ErrFormat is the error of PrompterFor for a format it does not know.
var ErrFormat = errors.New("unknown prompt format")

// PrompterFor returns the prompter of format with ck's tokenizer: "chat"
// (ChatPrompter with ck's chat template), "plain" (PlainPrompter), or ""
// for chat when ck has a chat template and plain otherwise. An unknown
// format is an error wrapping ErrFormat.
func PrompterFor(ck *checkpoint.Checkpoint, format string) (Prompter, error) {
	if format == "" {
		format = "plain"
		if ck.HasTemplate {
			format = "chat"
		}
	}
	if format != "chat" && format != "plain" {
		return nil, fmt.Errorf("%w %q (want chat or plain)", ErrFormat, format)
	}
	tok, err := ck.NeedTokenizer()
	if err != nil {
		return nil, err
	}
	if format == "chat" {
		return ChatPrompter{Chat: ck.ChatEncoder(), Tok: tok}, nil
	}
	return PlainPrompter{Tok: tok}, nil
}

// PlainPrompter uses the format of the model-written-evals paper, without a
// chat template: "[system\n\n]Human: question\n\nAssistant:" (with the
// tokenizer's default special tokens); answers keep their leading space.
type PlainPrompter struct{ Tok calib.Tokenizer }

// Prompt implements Prompter.
func (p PlainPrompter) Prompt(system, question string) ([]int, error) {
	s := "Human: " + question + "\n\nAssistant:"
	if system != "" {
		s = system + "\n\n" + s
	}
	return p.Tok.Encode(s, true), nil
}

// Answer implements Prompter.
func (p PlainPrompter) Answer(a string) []int { return p.Tok.Encode(a, false) }

// Options tune Evaluate.
type Options struct {
	// Name labels the report (e.g. the test file).
	Name string
	// System is the persona system prompt ("" for none).
	System string
	// Opposing scores for the opposing persona: the non-matching answer is
	// correct.
	Opposing bool
	// Limit evaluates only the first Limit items (≤ 0: all).
	Limit int
	// Progress, if set, is called after each item.
	Progress func(done, total int)
}

// ItemResult is the outcome of one item.
type ItemResult struct {
	Index       int     `json:"index"`
	Matching    float64 `json:"logprob_matching"`     // summed log-probability of the matching answer
	NotMatching float64 `json:"logprob_not_matching"` // … of the other answer
	Correct     bool    `json:"correct"`
}

// Report is the outcome of a test.
type Report struct {
	Name     string `json:"name"`
	System   string `json:"system,omitempty"`
	Opposing bool   `json:"opposing"`
	Items    int    `json:"items"`
	Correct  int    `json:"correct"`
	// Accuracy is Correct/Items.
	Accuracy float64 `json:"accuracy"`
	// MatchingRate is the share of items where the matching answer scored higher.
	MatchingRate float64 `json:"matching_rate"`
	// MeanMargin is the mean log-probability margin of the correct answer
	// over the other one.
	MeanMargin float64      `json:"mean_margin"`
	Ties       int          `json:"ties"`
	Results    []ItemResult `json:"results"`
}

// ScoreAnswers returns, for each answer, the sum of the log-probabilities of
// its tokens after prompt. The prompt is run once; answers reuse its cache.
func ScoreAnswers(m *model.Model, prompt []int, answers [][]int) ([]float64, error) {
	if len(prompt) == 0 {
		return nil, errors.New("mc: empty prompt")
	}
	longest := 0
	for i, a := range answers {
		if len(a) == 0 {
			return nil, fmt.Errorf("mc: answer %d has no tokens", i)
		}
		longest = max(longest, len(a))
	}
	c := m.NewCache(len(prompt) + longest)
	last, err := m.Forward(c, prompt, false)
	if err != nil {
		return nil, err
	}
	V := m.Config.Vocab
	out := make([]float64, len(answers))
	for i, a := range answers {
		c.Truncate(len(prompt))
		s := generate.LogProb(last, a[0])
		if len(a) > 1 {
			lg, err := m.Forward(c, a[:len(a)-1], true)
			if err != nil {
				return nil, err
			}
			for j := 1; j < len(a); j++ {
				s += generate.LogProb(lg[(j-1)*V:j*V], a[j])
			}
		}
		out[i] = s
	}
	return out, nil
}

// Evaluate scores every item with m.
func Evaluate(ctx context.Context, m *model.Model, p Prompter, items []Item, o Options) (*Report, error) {
	if o.Limit > 0 && o.Limit < len(items) {
		items = items[:o.Limit]
	}
	r := &Report{Name: o.Name, System: o.System, Opposing: o.Opposing, Items: len(items)}
	var margin float64
	matching := 0
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prompt, err := p.Prompt(o.System, it.Question)
		if err != nil {
			return nil, fmt.Errorf("mc: item %d: %v", i+1, err)
		}
		s, err := ScoreAnswers(m, prompt, [][]int{p.Answer(it.Matching), p.Answer(it.NotMatching)})
		if err != nil {
			return nil, fmt.Errorf("mc: item %d: %v", i+1, err)
		}
		good, bad := s[0], s[1]
		if o.Opposing {
			good, bad = bad, good
		}
		res := ItemResult{Index: i, Matching: s[0], NotMatching: s[1], Correct: good > bad}
		if good == bad {
			r.Ties++
		}
		if s[0] > s[1] {
			matching++
		}
		if res.Correct {
			r.Correct++
		}
		margin += good - bad
		r.Results = append(r.Results, res)
		if o.Progress != nil {
			o.Progress(i+1, len(items))
		}
	}
	if r.Items > 0 {
		r.Accuracy = float64(r.Correct) / float64(r.Items)
		r.MatchingRate = float64(matching) / float64(r.Items)
		r.MeanMargin = margin / float64(r.Items)
	}
	return r, nil
}

// WriteTable prints a summary table of reports.
func WriteTable(w io.Writer, reports ...*Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "test\tpersona\titems\tcorrect\taccuracy\tmatching rate\tmean margin\t")
	for _, r := range reports {
		side := "matching"
		if r.Opposing {
			side = "opposing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%.3f\t%+.3f\t\n", r.Name, side, r.Items, r.Correct, r.Accuracy, r.MatchingRate, r.MeanMargin)
	}
	return tw.Flush()
}

// EvaluateFiles runs the test of every file (Load, Evaluate) with m and p,
// each named by its base name; o's Name and Progress are set per file,
// Progress from progress(name) when progress is not nil.
func EvaluateFiles(ctx context.Context, m *model.Model, p Prompter, files []string, o Options, progress func(name string) func(done, total int)) ([]*Report, error) {
	var reports []*Report
	for _, f := range files {
		items, err := Load(f)
		if err != nil {
			return nil, err
		}
		o.Name, o.Progress = filepath.Base(f), nil
		if progress != nil {
			o.Progress = progress(o.Name)
		}
		r, err := Evaluate(ctx, m, p, items, o)
		if err != nil {
			return nil, err
		}
		reports = append(reports, r)
	}
	return reports, nil
}
