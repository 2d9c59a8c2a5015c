// Package calib builds calibration sets: token sequences on which activation
// statistics are collected (package stats). A set comes from a text file
// (one sample per line), a chat JSONL file (each conversation rendered with
// the model's chat template), a persona description (the model answers
// varied seed questions in the persona), or the small generic set shipped
// with masque (Generic).
//
// The shipped files, written for the project: generic.txt (generic,
// persona-neutral English sentences, one sample per line) and
// seed_questions.txt (open questions that invite a persona to show itself).
package calib

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/model"
)

//go:embed generic.txt
var genericText string

//go:embed seed_questions.txt
var seedText string

// DefaultMaxTokens is the default truncation length of a sample.
const DefaultMaxTokens = 512

// GenericLines returns the lines of the shipped generic calibration text.
func GenericLines() []string { return lines(genericText) }

// SeedQuestions returns the shipped seed questions for persona calibration.
func SeedQuestions() []string { return lines(seedText) }

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Tokenizer is what calibration needs from a tokenizer
// (*tokenizer.Tokenizer has these methods).
type Tokenizer interface {
	Encode(text string, addSpecial bool) []int
	Decode(ids []int, skipSpecial bool) string
}

// ChatFunc renders a conversation with the model's chat template and
// tokenizes it (with the generation prompt appended when
// addGenerationPrompt is true).
type ChatFunc func(msgs []chattemplate.Message, addGenerationPrompt bool) ([]int, error)

// Options tune set construction.
type Options struct {
	// MaxTokens truncates each sample (≤ 0: DefaultMaxTokens).
	MaxTokens int
	// Limit keeps only the first Limit samples (≤ 0: all).
	Limit int
	// OnBadRow is the bad-row policy of chat files (chatdata.SkipBadRows,
	// the default, or chatdata.FailOnBadRow), as for finetune; Warn, when
	// not nil, receives every skipped row.
	OnBadRow string
	Warn     func(chatdata.Problem)
}

func (o *Options) maxTokens() int {
	if o.MaxTokens > 0 {
		return o.MaxTokens
	}
	return DefaultMaxTokens
}

// Set is a calibration set.
type Set struct {
	Name    string   // e.g. "generic", a file name, "persona:<hash>"
	Source  string   // generic, text, chat, persona
	Texts   []string // the sample texts, where known
	Samples [][]int  // token ids, truncated
	// MaxTokens is the truncation length used.
	MaxTokens int
	// EmptyAnswers counts persona answers that came out empty (the model
	// stopped at once).
	EmptyAnswers int
}

// Tokens returns the total number of tokens.
func (s *Set) Tokens() int {
	n := 0
	for _, x := range s.Samples {
		n += len(x)
	}
	return n
}

// Hash returns the hex SHA-256 of the samples' token ids.
func (s *Set) Hash() string {
	h := sha256.New()
	var b [8]byte
	for _, x := range s.Samples {
		binary.LittleEndian.PutUint64(b[:], uint64(len(x)))
		h.Write(b[:])
		for _, id := range x {
			binary.LittleEndian.PutUint64(b[:], uint64(id))
			h.Write(b[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Calibration describes the set for a statistics manifest.
func (s *Set) Record() Record {
	return Record{Name: s.Name, Source: s.Source, SHA256: s.Hash(), MaxTokens: s.MaxTokens}
}

func (s *Set) add(text string, ids []int, max int) {
	if len(ids) > max {
		ids = ids[:max]
	}
	if len(ids) == 0 {
		return
	}
	s.Texts = append(s.Texts, text)
	s.Samples = append(s.Samples, ids)
}

// FromLines tokenizes each line as a sample (with the tokenizer's default
// special tokens, e.g. BOS).
func FromLines(name, source string, ls []string, tok Tokenizer, o Options) (*Set, error) {
	s := &Set{Name: name, Source: source, MaxTokens: o.maxTokens()}
	for _, l := range ls {
		if o.Limit > 0 && len(s.Samples) >= o.Limit {
			break
		}
		s.add(l, tok.Encode(l, true), s.MaxTokens)
	}
	if len(s.Samples) == 0 {
		return nil, fmt.Errorf("calib: %s: no samples", name)
	}
	return s, nil
}

// Generic returns the shipped generic calibration set.
func Generic(tok Tokenizer, o Options) (*Set, error) {
	return FromLines("generic", "generic", GenericLines(), tok, o)
}

// FromTextFile reads a text file with one sample per non-empty line.
func FromTextFile(path string, tok Tokenizer, o Options) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("calib: %w", err)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("calib: %s: binary data, want a text file with one sample per line", path)
	}
	ls := lines(string(data))
	if len(ls) == 0 {
		return nil, fmt.Errorf("calib: %s: no non-empty lines", path)
	}
	return FromLines(filepath.Base(path), "text", ls, tok, o)
}

// ReadChatJSONL reads the conversations of a chat data file with
// chatdata, the reader finetune uses (every layout it accepts: messages,
// ShareGPT, a bare list of messages, question/answer, Alpaca), applying
// o.OnBadRow to rows that cannot be read. Calibration conversations need no
// assistant turn.
func ReadChatJSONL(path string, o Options) ([][]chattemplate.Message, error) {
	convs, err := chatdata.Load(path, chatdata.ReadOptions{AllowNoAssistant: true}, o.OnBadRow, o.Warn)
	if err != nil {
		return nil, fmt.Errorf("calib: %w", err)
	}
	out := make([][]chattemplate.Message, len(convs))
	for i, c := range convs {
		out[i] = c.Messages
	}
	return out, nil
}

// FromChatJSONL renders every conversation of a chat JSONL file with chat
// (no generation prompt) as one sample.
func FromChatJSONL(path string, chat ChatFunc, o Options) (*Set, error) {
	convs, err := ReadChatJSONL(path, o)
	if err != nil {
		return nil, err
	}
	return FromChats(filepath.Base(path), "chat", convs, chat, o)
}

// FromChats renders every conversation with chat (no generation prompt) as
// one sample; name (a file name, say) appears in errors and in the set.
func FromChats(name, source string, convs [][]chattemplate.Message, chat ChatFunc, o Options) (*Set, error) {
	s := &Set{Name: name, Source: source, MaxTokens: o.maxTokens()}
	for i, c := range convs {
		if o.Limit > 0 && len(s.Samples) >= o.Limit {
			break
		}
		ids, err := chat(c, false)
		if err != nil {
			return nil, fmt.Errorf("calib: %s: conversation %d: %v", name, i+1, err)
		}
		var text strings.Builder
		for _, m := range c {
			text.WriteString(m.Role + ": " + m.Content + "\n")
		}
		s.add(text.String(), ids, s.MaxTokens)
	}
	if len(s.Samples) == 0 {
		return nil, fmt.Errorf("calib: %s: every conversation rendered to no tokens", name)
	}
	return s, nil
}

// PersonaOptions tune FromPersona.
type PersonaOptions struct {
	Options
	// Samples is the number of questions answered (≤ 0: every seed
	// question once). Seed questions are reused in order when more are asked.
	Samples int
	// Questions replaces the shipped seed questions.
	Questions []string
	// GenTokens caps each answer (≤ 0: 128).
	GenTokens int
	// Temperature 0 is greedy decoding; otherwise sampling with Seed+i for
	// the i-th answer.
	Temperature float32
	// Seed seeds sampling.
	Seed uint64
	// StopTokens end an answer (besides the model's EOS ids).
	StopTokens []int
	// IncludeSystem keeps the persona description as the system message of
	// each sample; by default a sample is the rendered question and answer
	// only, so that the statistics reflect the persona's voice rather than
	// the description.
	IncludeSystem bool
	// Progress, if set, is called after each answer.
	Progress func(done, total int)
}

// FromPersona builds a calibration set from a persona description: the model
// answers seed questions with the description as its system prompt, at a
// fixed seed (greedy by default), and each question with its answer,
// rendered with the chat template, is a sample.
func FromPersona(ctx context.Context, m *model.Model, tok Tokenizer, chat ChatFunc, description string, o PersonaOptions) (*Set, error) {
	description = strings.TrimSpace(description)
	if description == "" {
		return nil, errors.New("calib: empty persona description")
	}
	qs := o.Questions
	if len(qs) == 0 {
		qs = SeedQuestions()
	}
	n := o.Samples
	if n <= 0 {
		n = len(qs)
	}
	if o.Limit > 0 {
		n = min(n, o.Limit)
	}
	gen := o.GenTokens
	if gen <= 0 {
		gen = 128
	}
	h := sha256.Sum256([]byte(description))
	s := &Set{Name: "persona:" + hex.EncodeToString(h[:])[:12], Source: "persona", MaxTokens: o.maxTokens()}
	for i := 0; i < n; i++ {
		q := qs[i%len(qs)]
		prompt, err := chat([]chattemplate.Message{{Role: "system", Content: description}, {Role: "user", Content: q}}, true)
		if err != nil {
			return nil, fmt.Errorf("calib: rendering the persona prompt: %v", err)
		}
		if len(prompt) >= m.Config.MaxSeq && m.Config.MaxSeq > 0 {
			return nil, fmt.Errorf("calib: the persona prompt has %d tokens, the model's context is %d", len(prompt), m.Config.MaxSeq)
		}
		res, err := generate.Generate(ctx, m, nil, prompt, generate.Options{
			MaxTokens: gen, Temperature: o.Temperature, Seed: o.Seed + uint64(i), StopTokens: o.StopTokens}, nil)
		if err != nil {
			return nil, fmt.Errorf("calib: answering seed question %d: %w", i+1, err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		answer := strings.TrimSpace(tok.Decode(res.IDs, true))
		if answer == "" {
			s.EmptyAnswers++
		}
		msgs := []chattemplate.Message{{Role: "user", Content: q}, {Role: "assistant", Content: answer}}
		if o.IncludeSystem {
			msgs = append([]chattemplate.Message{{Role: "system", Content: description}}, msgs...)
		}
		ids, err := chat(msgs, false)
		if err != nil {
			return nil, fmt.Errorf("calib: rendering sample %d: %v", i+1, err)
		}
		s.add("Q: "+q+"\nA: "+answer, ids, s.MaxTokens)
		if o.Progress != nil {
			o.Progress(i+1, n)
		}
	}
	return s, nil
}

// WriteText writes the set's texts, one per line (newlines inside a sample
// become spaces), e.g. to inspect or reuse a generated persona set.
func (s *Set) WriteText(w io.Writer) error {
	for _, t := range s.Texts {
		if _, err := fmt.Fprintln(w, strings.Join(strings.Fields(t), " ")); err != nil {
			return err
		}
	}
	return nil
}

// Record describes a calibration set wherever results computed on it are
// recorded (the "calibration" of a statistics manifest; a SparseGPT mask
// names it): its name, source, the hash of its samples' token ids and the
// truncation length.
type Record struct {
	Name      string `json:"name"`                 // e.g. "generic", a file name, "persona:<hash>"
	Source    string `json:"source,omitempty"`     // text, chat, persona, builtin, tokens
	SHA256    string `json:"sha256,omitempty"`     // hash of the samples' token ids
	MaxTokens int    `json:"max_tokens,omitempty"` // truncation length of each sample
}
