package style

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DataOptions say how LoadCharacters reads a data file.
type DataOptions struct {
	// Name is the character of a plain-text file, or of JSONL rows without
	// a character field.
	Name string
	// CharacterField and TextField name a JSONL row's fields (defaults
	// "character" and "text"); a row without the text field but with
	// "messages" contributes its assistant messages.
	CharacterField, TextField string
	// Split is the voices-corpus split read from a corpus folder (default
	// "train").
	Split string
	// MaxWords, if positive, keeps about that many words of each
	// character: lines chosen evenly through its lines (see Thin).
	MaxWords int
}

// LoadCharacters reads characters' lines from path: a voices corpus folder
// (personas.json and <voice>/<split>.jsonl: every voice a character, in the
// corpus's order), a .jsonl file (one row per line, grouped by the character
// field in order of first appearance) or a plain-text file (one line per
// utterance, the character o.Name). Blank lines are skipped.
func LoadCharacters(path string, o DataOptions) ([]Character, error) {
	if o.CharacterField == "" {
		o.CharacterField = "character"
	}
	if o.TextField == "" {
		o.TextField = "text"
	}
	if o.Split == "" {
		o.Split = "train"
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		cs, err := loadVoices(path, o.Split)
		return Thin(cs, o.MaxWords), err
	}
	if strings.EqualFold(filepath.Ext(path), ".jsonl") {
		cs, err := loadJSONL(path, o)
		return Thin(cs, o.MaxWords), err
	}
	if o.Name == "" {
		return nil, fmt.Errorf("%s: a plain-text file is one character's lines: name the character", path)
	}
	lines, err := ReadLines(path)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no lines", path)
	}
	return Thin([]Character{{Name: o.Name, Lines: lines}}, o.MaxWords), nil
}

// Thin keeps about maxWords whitespace-separated words of each character
// (none kept out when maxWords <= 0 or the character has fewer): n·maxWords/W
// of its n lines (W its words, at least one line), chosen evenly through
// them, in order.
func Thin(cs []Character, maxWords int) []Character {
	if maxWords <= 0 {
		return cs
	}
	for i, c := range cs {
		w := 0
		for _, l := range c.Lines {
			w += len(strings.Fields(l))
		}
		if w <= maxWords {
			continue
		}
		k := max(1, int(int64(len(c.Lines))*int64(maxWords)/int64(w)))
		cs[i].Lines = sample(c.Lines, k)
	}
	return cs
}

// ReadLines reads the non-blank lines of a text file, or the text field
// of a .jsonl file's rows.
func ReadLines(path string) ([]string, error) {
	if strings.EqualFold(filepath.Ext(path), ".jsonl") {
		cs, err := loadJSONL(path, DataOptions{Name: "_", CharacterField: "\x00", TextField: "text"})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Lines...)
		}
		return out, nil
	}
	var out []string
	err := eachLine(path, func(_ int, line string) error {
		out = append(out, line)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachLine calls fn with each non-blank line of the file at path, trimmed
// of surrounding white space, and its line number (from 1). An error from
// fn stops the reading and is returned as it is; a read error names the
// file. It is the one reader of style's text and JSONL files.
func eachLine(path string, fn func(ln int, line string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := fn(ln, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

func loadJSONL(path string, o DataOptions) ([]Character, error) {
	idx := map[string]int{}
	var out []Character
	err := eachLine(path, func(ln int, line string) error {
		var row map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			return fmt.Errorf("%s:%d: not a JSON object: %v", path, ln, err)
		}
		name := o.Name
		if raw, ok := row[o.CharacterField]; ok {
			if err := json.Unmarshal(raw, &name); err != nil || name == "" {
				return fmt.Errorf("%s:%d: field %q is not a non-empty string", path, ln, o.CharacterField)
			}
		}
		if name == "" {
			return fmt.Errorf("%s:%d: no %q field (and no character name given)", path, ln, o.CharacterField)
		}
		var texts []string
		if raw, ok := row[o.TextField]; ok {
			var t string
			if err := json.Unmarshal(raw, &t); err != nil {
				return fmt.Errorf("%s:%d: field %q is not a string", path, ln, o.TextField)
			}
			texts = append(texts, t)
		} else if raw, ok := row["messages"]; ok {
			var ms []struct{ Role, Content string }
			if err := json.Unmarshal(raw, &ms); err != nil {
				return fmt.Errorf("%s:%d: messages: %v", path, ln, err)
			}
			for _, m := range ms {
				if m.Role == "assistant" {
					texts = append(texts, m.Content)
				}
			}
		} else {
			return fmt.Errorf("%s:%d: no %q field and no messages", path, ln, o.TextField)
		}
		i, ok := idx[name]
		if !ok {
			i = len(out)
			idx[name] = i
			out = append(out, Character{Name: name})
		}
		for _, t := range texts {
			if t = strings.TrimSpace(t); t != "" {
				out[i].Lines = append(out[i].Lines, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return out, nil
}

// voiceRow is the part of a voices-corpus row that style reads.
type voiceRow struct {
	Voice string `json:"voice"`
	Doc   string `json:"doc"`
	Text  string `json:"text"`
}

func voiceNames(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "personas.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a voices corpus folder: %v", dir, err)
	}
	var p struct {
		Voices []struct{ Name string } `json:"voices"`
	}
	if err := json.Unmarshal(b, &p); err != nil || len(p.Voices) == 0 {
		return nil, fmt.Errorf("%s: personas.json lists no voices", dir)
	}
	var out []string
	for _, v := range p.Voices {
		out = append(out, v.Name)
	}
	return out, nil
}

func readVoice(dir, voice, split string) ([]voiceRow, error) {
	path := filepath.Join(dir, voice, split+".jsonl")
	var out []voiceRow
	err := eachLine(path, func(ln int, line string) error {
		var r voiceRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%s:%d: %v", path, ln, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

func loadVoices(dir, split string) ([]Character, error) {
	names, err := voiceNames(dir)
	if err != nil {
		return nil, err
	}
	var out []Character
	for _, n := range names {
		rows, err := readVoice(dir, n, split)
		if err != nil {
			return nil, err
		}
		c := Character{Name: n}
		for _, r := range rows {
			if strings.TrimSpace(r.Text) != "" {
				c.Lines = append(c.Lines, r.Text)
			}
		}
		out = append(out, c)
	}
	return out, nil
}
