// Package chatdata reads chat data files, the one reader of every command
// that takes conversations (finetune, pretrain's chat share, statistics and
// calibration sets, perplexity): JSONL rows in the OpenAI "messages" layout
// (or ShareGPT "conversations", or a bare list of messages), the
// OpenCharacter question/answer layout, or Alpaca's instruction/output. Bad
// rows are problems naming the file and line, never a reason to stop
// reading; what to do with them is the bad-row policy (SkipBadRows, the
// default everywhere, or FailOnBadRow).
package chatdata

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/masque-ai/masque/chattemplate"
)

// Conversation is one row of a chat data file.
type Conversation struct {
	Messages []chattemplate.Message
	// File and Line locate the row (1-based line).
	File string
	Line int
}

// Problem is a row that could not be used.
type Problem struct {
	File string
	Line int
	Msg  string
}

// Error formats the problem as "file:line: message".
func (p Problem) Error() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Row formats accepted by Read.
const (
	// FormatAuto picks per row: "messages" if the row has that key,
	// "qa" if it has question/answer, "alpaca" if instruction/output.
	FormatAuto = "auto"
	// FormatMessages: {"messages":[{"role":..., "content":...}, ...]}
	// (content may also be a list of {"type":"text","text":...} parts).
	FormatMessages = "messages"
	// FormatQA is OpenCharacter-style: {"system":..., "question":...,
	// "answer":...} ("character_answer" is accepted for "answer",
	// "character" or "persona" for "system").
	FormatQA = "qa"
	// FormatAlpaca: {"instruction":..., "input":..., "output":..., "system":...}.
	FormatAlpaca = "alpaca"
)

// ReadOptions tune Read.
type ReadOptions struct {
	// Format is one of the Format constants ("" = auto).
	Format string
	// System, if set, is used as the system prompt of rows that have none.
	System string
	// AllowNoAssistant accepts conversations without an assistant turn (or
	// with an empty one): prompts for calibration, where nothing is
	// trained. Training data needs a non-empty assistant turn.
	AllowNoAssistant bool
}

// Bad-row policies.
const (
	// SkipBadRows reports bad rows (through a warning) and leaves them out.
	SkipBadRows = "skip"
	// FailOnBadRow fails on the first bad row.
	FailOnBadRow = "fail"
)

// CheckPolicy returns the bad-row policy ("" is SkipBadRows) or an error
// for an unknown one.
func CheckPolicy(p string) (string, error) {
	switch p {
	case "":
		return SkipBadRows, nil
	case SkipBadRows, FailOnBadRow:
		return p, nil
	}
	return "", fmt.Errorf("unknown bad-row policy %q (want skip or fail)", p)
}

// BadRow applies policy p to a problem: with FailOnBadRow it is the error
// to stop with; otherwise it goes to warn (which may be nil) and BadRow
// returns nil.
func BadRow(p string, prob Problem, warn func(Problem)) error {
	if p == FailOnBadRow {
		return fmt.Errorf("%v (use --on-bad-row skip to leave such rows out)", prob)
	}
	if warn != nil {
		warn(prob)
	}
	return nil
}

// Load reads the file at path and applies the bad-row policy to its
// problems (see BadRow). A file without a usable conversation is an error.
func Load(path string, o ReadOptions, policy string, warn func(Problem)) ([]Conversation, error) {
	policy, err := CheckPolicy(policy)
	if err != nil {
		return nil, err
	}
	convs, probs, err := Read(path, o)
	if err != nil {
		return nil, err
	}
	for _, p := range probs {
		if err := BadRow(policy, p, warn); err != nil {
			return nil, err
		}
	}
	if len(convs) == 0 {
		return nil, fmt.Errorf("%s: no usable conversations (%d bad rows)", path, len(probs))
	}
	return convs, nil
}

// maxLine bounds one JSONL line.
const maxLine = 64 << 20

// Read parses a JSONL file of conversations. Blank lines are skipped.
// Rows that cannot be used (malformed JSON, unknown layout, no assistant
// turn, empty content) come back as problems; err is only for I/O errors
// and unknown options.
func Read(path string, o ReadOptions) ([]Conversation, []Problem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading chat data: %w", err)
	}
	defer f.Close()
	return ReadFrom(f, path, o)
}

// ReadFrom is Read on an open stream; name is used in problems.
func ReadFrom(r io.Reader, name string, o ReadOptions) ([]Conversation, []Problem, error) {
	switch o.Format {
	case "", FormatAuto, FormatMessages, FormatQA, FormatAlpaca:
	default:
		return nil, nil, fmt.Errorf("unknown data format %q (want auto, messages, qa or alpaca)", o.Format)
	}
	br := bufio.NewReaderSize(r, 1<<16)
	var convs []Conversation
	var probs []Problem
	for line := 1; ; line++ {
		data, err := readLine(br)
		eof := errors.Is(err, io.EOF)
		switch {
		case errors.Is(err, errLineTooLong):
			probs = append(probs, Problem{name, line, fmt.Sprintf("line longer than %d bytes", maxLine)})
		case err != nil && !eof:
			return convs, probs, fmt.Errorf("reading %s: %w", name, err)
		default:
			if t := bytes.TrimSpace(data); len(t) > 0 {
				msgs, perr := parseRow(t, o)
				if perr != nil {
					probs = append(probs, Problem{name, line, perr.Error()})
				} else {
					convs = append(convs, Conversation{Messages: msgs, File: name, Line: line})
				}
			}
		}
		if eof {
			break
		}
	}
	return convs, probs, nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline; at the end of the
// input it returns the last (possibly empty) line with io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(out)+len(chunk) > maxLine {
			// Skip the rest of the line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: %w", errLineTooLong, io.EOF)
			}
			return nil, errLineTooLong
		}
		out = append(out, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(out, []byte("\n")), err
	}
}

type rawMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	From    string          `json:"from"`  // ShareGPT
	Value   *string         `json:"value"` // ShareGPT
}

// ParseRow turns one JSON row (a line of a training file) into messages,
// by the rules of Read; the error says what is wrong with the row.
func ParseRow(data []byte, o ReadOptions) ([]chattemplate.Message, error) {
	return parseRow(data, o)
}

// parseRow turns one JSON object into messages.
func parseRow(data []byte, o ReadOptions) ([]chattemplate.Message, error) {
	var row map[string]json.RawMessage
	if len(data) > 0 && data[0] == '[' {
		// A bare list of messages.
		row = map[string]json.RawMessage{"messages": data}
	} else if err := json.Unmarshal(data, &row); err != nil {
		return nil, fmt.Errorf("malformed JSON: %v", err)
	}
	format := o.Format
	if format == "" || format == FormatAuto {
		switch {
		case row["messages"] != nil || row["conversations"] != nil:
			format = FormatMessages
		case row["question"] != nil:
			format = FormatQA
		case row["instruction"] != nil:
			format = FormatAlpaca
		default:
			return nil, fmt.Errorf("cannot tell the row's layout: want \"messages\", or \"question\"/\"answer\", or \"instruction\"/\"output\"")
		}
	}
	str := func(keys ...string) (string, bool, error) {
		for _, k := range keys {
			raw, ok := row[k]
			if !ok || string(raw) == "null" {
				continue
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", false, fmt.Errorf("field %q is not a string", k)
			}
			return s, true, nil
		}
		return "", false, nil
	}
	var msgs []chattemplate.Message
	sys := func(keys ...string) error {
		s, ok, err := str(keys...)
		if err != nil {
			return err
		}
		if !ok || s == "" {
			s = o.System
		}
		if s != "" {
			msgs = append(msgs, chattemplate.Message{Role: "system", Content: s})
		}
		return nil
	}
	switch format {
	case FormatMessages:
		raw := row["messages"]
		if raw == nil {
			raw = row["conversations"]
		}
		var rms []rawMessage
		if err := json.Unmarshal(raw, &rms); err != nil {
			return nil, fmt.Errorf("\"messages\" is not a list of {\"role\", \"content\"} objects: %v", err)
		}
		hasSystem := false
		for i, rm := range rms {
			role := rm.Role
			content, err := contentText(rm.Content)
			if rm.Value != nil && role == "" {
				role, content, err = sharegptRole(rm.From), *rm.Value, nil
			}
			if err != nil {
				return nil, fmt.Errorf("message %d: %v", i, err)
			}
			if role == "" {
				return nil, fmt.Errorf("message %d has no role", i)
			}
			hasSystem = hasSystem || role == "system"
			msgs = append(msgs, chattemplate.Message{Role: role, Content: content})
		}
		if !hasSystem && o.System != "" {
			msgs = append([]chattemplate.Message{{Role: "system", Content: o.System}}, msgs...)
		}
	case FormatQA:
		if err := sys("system", "character", "persona", "profile"); err != nil {
			return nil, err
		}
		q, ok, err := str("question", "prompt")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("no \"question\" field")
		}
		a, ok, err := str("answer", "character_answer", "response")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("conversation has no assistant turn (no \"answer\" field)")
		}
		msgs = append(msgs, chattemplate.Message{Role: "user", Content: q}, chattemplate.Message{Role: "assistant", Content: a})
	case FormatAlpaca:
		if err := sys("system"); err != nil {
			return nil, err
		}
		ins, ok, err := str("instruction")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("no \"instruction\" field")
		}
		in, _, err := str("input")
		if err != nil {
			return nil, err
		}
		if in != "" {
			ins += "\n\n" + in
		}
		out, ok, err := str("output")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("conversation has no assistant turn (no \"output\" field)")
		}
		msgs = append(msgs, chattemplate.Message{Role: "user", Content: ins}, chattemplate.Message{Role: "assistant", Content: out})
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("no messages")
	}
	if o.AllowNoAssistant {
		return msgs, nil
	}
	nAssistant := 0
	for _, m := range msgs {
		if m.Role == "assistant" {
			nAssistant++
			if strings.TrimSpace(m.Content) == "" {
				return nil, fmt.Errorf("an assistant turn is empty")
			}
		}
	}
	if nAssistant == 0 {
		return nil, fmt.Errorf("conversation has no assistant turn")
	}
	return msgs, nil
}

func sharegptRole(from string) string {
	switch from {
	case "human", "user":
		return "user"
	case "gpt", "assistant", "model":
		return "assistant"
	case "system":
		return "system"
	}
	return from
}

// contentText accepts a string or a list of {"type":"text","text":...} parts.
func contentText(raw json.RawMessage) (string, error) {
	parts, err := chattemplate.ParseContent(raw)
	if err != nil {
		return "", fmt.Errorf("content is neither a string nor a list of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "" && p.Type != "text" {
			return "", fmt.Errorf("content part of type %q is not supported (only text)", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}
