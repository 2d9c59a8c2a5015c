package synth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/persona"
)

// Persona is one persona description read from an input file.
type Persona struct {
	// Text is the persona description.
	Text string
	// File and Line locate it (Line 0 for a whole-file character card).
	File string
	Line int // 1-based
	// Card is set when the persona came from a character card (as the
	// card holds it, macros not expanded).
	Card *persona.Card
}

// Persona input formats accepted by ReadPersonas.
const (
	// PersonaAuto picks by file extension: .jsonl/.ndjson → PersonaJSONL,
	// .png → PersonaCard, .json → a card object or a JSON array of
	// personas, anything else → PersonaText.
	PersonaAuto = "auto"
	// PersonaJSONL is Persona Hub JSONL: {"persona": "..."} per line
	// ("input persona" is accepted too).
	PersonaJSONL = "jsonl"
	// PersonaText is plain text, one persona per line (blank lines skipped).
	PersonaText = "text"
	// PersonaCard is a SillyTavern character card, JSON or PNG.
	PersonaCard = "card"
)

// maxLineBytes bounds one input line.
const maxLineBytes = 16 << 20

// eachLine calls fn with every line of r (without its line ending) and its
// 1-based number. Over-long lines are reported to fn as nil with tooLong.
func eachLine(r io.Reader, fn func(line int, data []byte, tooLong bool)) error {
	br := bufio.NewReaderSize(r, 1<<16)
	for n := 1; ; n++ {
		var data []byte
		tooLong := false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if !tooLong {
				if len(data)+len(chunk) > maxLineBytes {
					tooLong, data = true, nil
				} else {
					data = append(data, chunk...)
				}
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if len(data) > 0 || tooLong {
			fn(n, bytes.TrimRight(data, "\r\n"), tooLong)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ReadPersonas reads personas from path in the given format ("" = auto).
// Lines that cannot be used come back as problems with their file and line;
// err is only for a file that cannot be read at all or an unknown format.
func ReadPersonas(path, format string) ([]Persona, []Problem, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if format == "" || format == PersonaAuto {
		switch ext {
		case ".jsonl", ".ndjson":
			format = PersonaJSONL
		case ".png", ".json":
			format = PersonaCard
		default:
			format = PersonaText
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading personas: %w", err)
	}
	var out []Persona
	var probs []Problem
	switch format {
	case PersonaCard:
		if ext == ".json" && bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
			return readPersonaArray(path, data)
		}
		c, err := persona.ParseCard(data)
		if err != nil {
			return nil, []Problem{{path, 0, err.Error()}}, nil
		}
		ch, err := CharacterFromCard(c)
		if err != nil {
			return nil, []Problem{{path, 0, err.Error()}}, nil
		}
		return []Persona{{Text: ch.Persona, File: path, Card: c}}, nil, nil
	case PersonaJSONL:
		err = eachLine(bytes.NewReader(data), func(line int, b []byte, tooLong bool) {
			if tooLong {
				probs = append(probs, Problem{path, line, "line too long"})
				return
			}
			if len(bytes.TrimSpace(b)) == 0 {
				return
			}
			var row map[string]json.RawMessage
			if err := json.Unmarshal(b, &row); err != nil {
				probs = append(probs, Problem{path, line, "malformed JSON: " + err.Error()})
				return
			}
			text, perr := stringField(row, "persona", "input persona")
			switch {
			case perr != nil:
				probs = append(probs, Problem{path, line, perr.Error()})
			case strings.TrimSpace(text) == "":
				probs = append(probs, Problem{path, line, `no "persona" field`})
			default:
				out = append(out, Persona{Text: strings.TrimSpace(text), File: path, Line: line})
			}
		})
	case PersonaText:
		err = eachLine(bytes.NewReader(data), func(line int, b []byte, tooLong bool) {
			if tooLong {
				probs = append(probs, Problem{path, line, "line too long"})
				return
			}
			if t := strings.TrimSpace(string(b)); t != "" {
				out = append(out, Persona{Text: t, File: path, Line: line})
			}
		})
	default:
		return nil, nil, fmt.Errorf("unknown persona format %q (want auto, jsonl, text or card)", format)
	}
	return out, probs, err
}

// readPersonaArray reads a JSON array whose elements are persona strings or
// {"persona": ...} objects.
func readPersonaArray(path string, data []byte) ([]Persona, []Problem, error) {
	var out []Persona
	var probs []Problem
	err := eachArrayElement(path, data, func(line int, raw json.RawMessage) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, Persona{Text: s, File: path, Line: line})
			}
			return
		}
		var row map[string]json.RawMessage
		if err := json.Unmarshal(raw, &row); err != nil {
			probs = append(probs, Problem{path, line, "element is neither a string nor an object"})
			return
		}
		text, err := stringField(row, "persona", "input persona")
		if err != nil || strings.TrimSpace(text) == "" {
			probs = append(probs, Problem{path, line, `no "persona" string`})
			return
		}
		out = append(out, Persona{Text: strings.TrimSpace(text), File: path, Line: line})
	}, func(p Problem) { probs = append(probs, p) })
	return out, probs, err
}

// eachArrayElement calls fn for every element of the top-level JSON array in
// data with the line it starts on. A syntax error ends the walk and is
// reported as a problem (the rest of the array cannot be read).
func eachArrayElement(path string, data []byte, fn func(line int, raw json.RawMessage), problem func(Problem)) error {
	lineAt := func(off int64) int {
		for off < int64(len(data)) && (data[off] == ' ' || data[off] == '\n' || data[off] == '\r' || data[off] == '\t' || data[off] == ',') {
			off++
		}
		return 1 + bytes.Count(data[:min(off, int64(len(data)))], []byte("\n"))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '[' {
		problem(Problem{path, 1, "not a JSON array"})
		return nil
	}
	for dec.More() {
		off := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			problem(Problem{path, lineAt(off), "malformed JSON (the rest of the file is skipped): " + err.Error()})
			return nil
		}
		fn(lineAt(off), raw)
	}
	return nil
}

// stringField returns the first of keys present in row as a string.
func stringField(row map[string]json.RawMessage, keys ...string) (string, error) {
	for _, k := range keys {
		raw, ok := row[k]
		if !ok || string(raw) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("field %q is not a string", k)
		}
		return s, nil
	}
	return "", nil
}

// Instruction is one instruction (question) with its optional reference
// answer.
type Instruction struct {
	// Question is the user turn: the Alpaca instruction, followed by its
	// input after a blank line when there is one.
	Question string
	// Reference is the reference answer ("" when the source has none).
	Reference string
	// Source names where it came from (question_source in the output).
	Source string
	// File and Line locate it.
	File string
	Line int // 1-based
}

// Instruction input formats accepted by ReadInstructions.
const (
	// InstructionAuto picks by extension: .json → InstructionAlpaca (a JSON
	// array), .jsonl/.ndjson → per line by its keys ("messages" or
	// "conversations" → chat, "instruction" → Alpaca, "question" or
	// "prompt" → a question with optional "answer"), anything else →
	// InstructionQuestions.
	InstructionAuto = "auto"
	// InstructionAlpaca is Alpaca: {"instruction", "input", "output"}, as a
	// JSON array (.json) or JSONL.
	InstructionAlpaca = "alpaca"
	// InstructionChat is chat JSONL: {"messages": [{"role", "content"}, ...]}
	// (or ShareGPT "conversations"); the first user turn is the question and
	// the first assistant turn after it the reference answer.
	InstructionChat = "chat"
	// InstructionQuestions is a plain list, one question per line.
	InstructionQuestions = "questions"
)

// ReadInstructions reads instructions from path in the given format
// ("" = auto). source names them in the output ("" = the file's base name
// without extension). Lines that cannot be used come back as problems with
// file and line; err is only for a file that cannot be read or a bad format.
func ReadInstructions(path, format, source string) ([]Instruction, []Problem, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if source == "" {
		source = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if format == "" || format == InstructionAuto {
		switch ext {
		case ".json", ".jsonl", ".ndjson":
			format = InstructionAuto
		default:
			format = InstructionQuestions
		}
	}
	switch format {
	case InstructionAuto, InstructionAlpaca, InstructionChat, InstructionQuestions:
	default:
		return nil, nil, fmt.Errorf("unknown instruction format %q (want auto, alpaca, chat or questions)", format)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading instructions: %w", err)
	}
	var out []Instruction
	var probs []Problem
	add := func(line int, raw []byte) {
		in, err := parseInstruction(raw, format)
		if err != nil {
			probs = append(probs, Problem{path, line, err.Error()})
			return
		}
		in.Source, in.File, in.Line = source, path, line
		out = append(out, in)
	}
	if format == InstructionQuestions {
		err = eachLine(bytes.NewReader(data), func(line int, b []byte, tooLong bool) {
			if tooLong {
				probs = append(probs, Problem{path, line, "line too long"})
				return
			}
			if q := strings.TrimSpace(string(b)); q != "" {
				out = append(out, Instruction{Question: q, Source: source, File: path, Line: line})
			}
		})
		return out, probs, err
	}
	if ext == ".json" && bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
		err = eachArrayElement(path, data, func(line int, raw json.RawMessage) { add(line, raw) },
			func(p Problem) { probs = append(probs, p) })
		return out, probs, err
	}
	err = eachLine(bytes.NewReader(data), func(line int, b []byte, tooLong bool) {
		if tooLong {
			probs = append(probs, Problem{path, line, "line too long"})
			return
		}
		if len(bytes.TrimSpace(b)) > 0 {
			add(line, b)
		}
	})
	return out, probs, err
}

// parseInstruction reads one JSON row.
func parseInstruction(raw []byte, format string) (Instruction, error) {
	var row map[string]json.RawMessage
	if err := json.Unmarshal(raw, &row); err != nil {
		return Instruction{}, fmt.Errorf("malformed JSON: %v", err)
	}
	if format == InstructionAuto {
		switch {
		case row["messages"] != nil || row["conversations"] != nil:
			format = InstructionChat
		case row["instruction"] != nil:
			format = InstructionAlpaca
		case row["question"] != nil || row["prompt"] != nil:
			format = "qa"
		default:
			return Instruction{}, errors.New(`cannot tell the row's layout: want "instruction" (Alpaca), "messages" (chat) or "question"`)
		}
	}
	var in Instruction
	switch format {
	case InstructionAlpaca:
		ins, err := stringField(row, "instruction")
		if err != nil {
			return in, err
		}
		input, err := stringField(row, "input")
		if err != nil {
			return in, err
		}
		if in.Reference, err = stringField(row, "output"); err != nil {
			return in, err
		}
		in.Question = strings.TrimSpace(ins)
		if input = strings.TrimSpace(input); input != "" {
			in.Question += "\n\n" + input
		}
	case "qa":
		q, err := stringField(row, "question", "prompt")
		if err != nil {
			return in, err
		}
		if in.Reference, err = stringField(row, "answer", "output", "response"); err != nil {
			return in, err
		}
		in.Question = strings.TrimSpace(q)
	case InstructionChat:
		raw := row["messages"]
		if raw == nil {
			raw = row["conversations"]
		}
		if raw == nil {
			return in, errors.New(`no "messages" list`)
		}
		var msgs []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
			From    string          `json:"from"`
			Value   *string         `json:"value"`
		}
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return in, fmt.Errorf(`"messages" is not a list of {"role", "content"} objects`)
		}
		gotUser := false
		for i, m := range msgs {
			role, text := m.Role, ""
			if m.Value != nil && role == "" {
				role, text = m.From, *m.Value
				switch role {
				case "human":
					role = "user"
				case "gpt":
					role = "assistant"
				}
			} else {
				var err error
				if text, err = contentText(m.Content); err != nil {
					return in, fmt.Errorf("message %d: %v", i, err)
				}
			}
			if !gotUser && role == "user" {
				in.Question, gotUser = strings.TrimSpace(text), true
			} else if gotUser && role == "assistant" {
				in.Reference = text
				break
			}
		}
		if !gotUser {
			return in, errors.New("no user turn")
		}
	default:
		return in, fmt.Errorf("unknown instruction format %q", format)
	}
	in.Reference = strings.TrimSpace(in.Reference)
	if in.Question == "" {
		return in, errors.New("empty question")
	}
	return in, nil
}

// contentText reads a message content: a string or a list of
// {"type": "text", "text": ...} parts.
func contentText(raw json.RawMessage) (string, error) {
	parts, err := chattemplate.ParseContent(raw)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "" || p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

// NormalizeQuestion is how questions are compared for --exclude: lower
// case, runs of white space collapsed, trimmed.
func NormalizeQuestion(q string) string { return strings.ToLower(oneLine(q)) }

// ReadQuestionSet reads questions to exclude (any instruction format: a
// plain list, Alpaca, chat or {"question"} JSONL) as a set of normalized
// questions.
func ReadQuestionSet(path string) (map[string]bool, []Problem, error) {
	ins, probs, err := ReadInstructions(path, "", "")
	if err != nil {
		return nil, probs, err
	}
	set := make(map[string]bool, len(ins))
	for _, in := range ins {
		set[NormalizeQuestion(in.Question)] = true
	}
	return set, probs, nil
}

// Character is a character with its profile, as in
// synthetic_character.jsonl.
type Character struct {
	// ID is the character_id: RowID("character", Persona).
	ID string `json:"character_id"`
	// Persona is the one-line persona it was made from.
	Persona string `json:"persona"`
	// Profile is the character profile, first line "Name: ...".
	Profile string `json:"character"`
	// Flags lists quality flags (only in --on-reject flag runs).
	Flags []string `json:"flags,omitempty"`
}

// CharacterID is the character_id of the character made from persona.
func CharacterID(persona string) string { return RowID("character", persona) }

// Name is the name on the profile's "Name:" line ("" when there is none).
func (c Character) Name() string { return ParseProfile(c.Profile).Name }

// ReadCharacters reads characters from synthetic_character.jsonl (or any
// JSONL with character_id/persona/character) or from a character card
// (.json or .png). Rows that cannot be used come back as problems.
func ReadCharacters(path string) ([]Character, []Problem, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".png" || ext == ".json" {
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		var c *persona.Card
		if err == nil {
			c, err = persona.ParseCard(data)
		}
		if err != nil {
			return nil, []Problem{{path, 0, err.Error()}}, nil
		}
		ch, err := CharacterFromCard(c)
		if err != nil {
			return nil, []Problem{{path, 0, err.Error()}}, nil
		}
		return []Character{ch}, nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading characters: %w", err)
	}
	defer f.Close()
	var out []Character
	var probs []Problem
	err = eachLine(f, func(line int, b []byte, tooLong bool) {
		if tooLong {
			probs = append(probs, Problem{path, line, "line too long"})
			return
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return
		}
		var c Character
		if err := json.Unmarshal(b, &c); err != nil {
			probs = append(probs, Problem{path, line, "malformed JSON: " + err.Error()})
			return
		}
		if strings.TrimSpace(c.Profile) == "" {
			probs = append(probs, Problem{path, line, `no "character" profile`})
			return
		}
		if c.ID == "" {
			c.ID = CharacterID(c.Persona)
		}
		out = append(out, c)
	})
	return out, probs, err
}

// ReadPersonaFiles reads the personas of every file (ReadPersonas), in
// order, with all their problems.
func ReadPersonaFiles(paths []string, format string) ([]Persona, []Problem, error) {
	return readAll(paths, func(p string) ([]Persona, []Problem, error) { return ReadPersonas(p, format) })
}

// ReadInstructionFiles reads the instructions of every file
// (ReadInstructions), in order, with all their problems.
func ReadInstructionFiles(paths []string, format, source string) ([]Instruction, []Problem, error) {
	return readAll(paths, func(p string) ([]Instruction, []Problem, error) { return ReadInstructions(p, format, source) })
}

// ReadCharacterFiles reads the characters of every file (ReadCharacters),
// in order, with all their problems.
func ReadCharacterFiles(paths []string) ([]Character, []Problem, error) {
	return readAll(paths, ReadCharacters)
}

// readAll joins what read returns for each path; the first error stops it.
func readAll[T any](paths []string, read func(string) ([]T, []Problem, error)) ([]T, []Problem, error) {
	var all []T
	var probs []Problem
	for _, p := range paths {
		xs, pr, err := read(p)
		if err != nil {
			return nil, nil, err
		}
		all, probs = append(all, xs...), append(probs, pr...)
	}
	return all, probs, nil
}
