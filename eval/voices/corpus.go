package voices

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/masque-ai/masque/chattemplate"
	datavoices "github.com/masque-ai/masque/data/voices"
	"github.com/masque-ai/masque/internal/filehash"
)

// Split names of the voices corpus.
const (
	SplitTrain = "train"
	SplitValid = "valid"
	SplitTest  = "test"
)

// PersonasFile is the corpus file that lists the voices and their personas.
const PersonasFile = "personas.json"

// Voice is one entry of personas.json and Row one passage of a split file
// (DIR/<voice>/<split>.jsonl): the types of data/voices, which writes the
// corpus.
type (
	Voice = datavoices.Persona
	Row   = datavoices.Row
)

// Corpus is an opened voices corpus: its folder and its voices in
// canonical order.
type Corpus struct {
	Dir    string
	Voices []Voice
}

// OpenCorpus reads DIR/personas.json. The split files are read on demand
// (Rows).
func OpenCorpus(dir string) (*Corpus, error) {
	if dir == "" {
		return nil, errors.New("voices: no corpus folder given (--corpus DIR, as written by `masque corpus voices --out DIR`)")
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("voices: corpus: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("voices: corpus %s is not a folder", dir)
	}
	path := filepath.Join(dir, PersonasFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("voices: %s is missing: %s is not a voices corpus (build one with `masque corpus voices --out DIR`)", path, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("voices: %w", err)
	}
	var pf struct {
		Voices []Voice `json:"voices"`
	}
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, fmt.Errorf("voices: %s: malformed JSON: %v", path, err)
	}
	if len(pf.Voices) < 2 {
		return nil, fmt.Errorf("voices: %s lists %d voice(s); a voices corpus needs at least two", path, len(pf.Voices))
	}
	seen := map[string]bool{}
	for i, v := range pf.Voices {
		switch {
		case v.Name == "":
			return nil, fmt.Errorf("voices: %s: voice %d has no name", path, i+1)
		case !validName(v.Name):
			return nil, fmt.Errorf("voices: %s: voice name %q is not a plain folder name", path, v.Name)
		case seen[v.Name]:
			return nil, fmt.Errorf("voices: %s: voice %q is listed twice", path, v.Name)
		case v.Persona == "":
			return nil, fmt.Errorf("voices: %s: voice %q has no persona", path, v.Name)
		}
		seen[v.Name] = true
	}
	return &Corpus{Dir: dir, Voices: pf.Voices}, nil
}

func validName(s string) bool {
	if s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// Names returns the voice names in canonical order.
func (c *Corpus) Names() []string {
	out := make([]string, len(c.Voices))
	for i, v := range c.Voices {
		out[i] = v.Name
	}
	return out
}

// Voice returns the voice called name.
func (c *Corpus) Voice(name string) (Voice, bool) {
	i := slices.IndexFunc(c.Voices, func(v Voice) bool { return v.Name == name })
	if i < 0 {
		return Voice{}, false
	}
	return c.Voices[i], true
}

// SplitPath is the file of one voice's split.
func (c *Corpus) SplitPath(voice, split string) string {
	return filepath.Join(c.Dir, voice, split+".jsonl")
}

// Rows reads one voice's split. Every row must name the voice and have a
// text; a missing or empty file is an error naming it.
func (c *Corpus) Rows(voice, split string) ([]Row, error) {
	path := c.SplitPath(voice, split)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("voices: %s is missing: the corpus has no %s split for voice %q", path, split, voice)
	}
	if err != nil {
		return nil, fmt.Errorf("voices: %w", err)
	}
	defer f.Close()
	var rows []Row
	br := bufio.NewReaderSize(f, 1<<16)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("voices: reading %s: %w", path, err)
		}
		if b := bytes.TrimSpace(line); len(b) > 0 {
			var r Row
			if jerr := json.Unmarshal(b, &r); jerr != nil {
				return nil, fmt.Errorf("voices: %s:%d: malformed JSON: %v", path, n, jerr)
			}
			switch {
			case r.Voice != voice:
				return nil, fmt.Errorf("voices: %s:%d: the row's voice is %q, not %q", path, n, r.Voice, voice)
			case r.Text == "":
				return nil, fmt.Errorf("voices: %s:%d: the row has no text", path, n)
			}
			rows = append(rows, r)
		}
		if err == io.EOF {
			break
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("voices: %s has no rows", path)
	}
	return rows, nil
}

// SplitSHA256 returns the SHA-256 of one voice's split file. An evaluation
// kit (a corpus folder shipped without its train split, such as the one
// embedded with builtin:voices) has no train.jsonl: then the digest that the
// corpus's MANIFEST.json recorded for the file is used.
func (c *Corpus) SplitSHA256(voice, split string) (string, error) {
	path := c.SplitPath(voice, split)
	sum, err := filehash.SHA256(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return sum, err
	}
	mpath := filepath.Join(c.Dir, "MANIFEST.json")
	data, merr := os.ReadFile(mpath)
	if merr != nil {
		return "", err
	}
	var m struct {
		Outputs []struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		} `json:"outputs"`
	}
	if jerr := json.Unmarshal(data, &m); jerr != nil {
		return "", fmt.Errorf("%s: %v", mpath, jerr)
	}
	rel := voice + "/" + split + ".jsonl"
	for _, o := range m.Outputs {
		if o.Path == rel {
			return o.SHA256, nil
		}
	}
	return "", fmt.Errorf("%s is missing and %s records no digest for it", path, mpath)
}

// turns splits a row's conversation for generation and scoring: the system
// prompt (its persona; "" when there is none), the user prompt that comes
// right before the assistant turn, and the assistant text. Rows without
// messages fall back to prompt and text.
func rowTurns(r *Row) (system, user, answer string, err error) {
	if len(r.Messages) == 0 {
		if r.Prompt == "" {
			return "", "", "", fmt.Errorf("row %s has neither messages nor a prompt", r.ID)
		}
		return "", r.Prompt, r.Text, nil
	}
	ai := slices.IndexFunc(r.Messages, func(m chattemplate.Message) bool { return m.Role == "assistant" })
	if ai < 1 || r.Messages[ai-1].Role != "user" {
		return "", "", "", fmt.Errorf("row %s: the messages need a user turn followed by an assistant turn", r.ID)
	}
	if r.Messages[0].Role == "system" && ai >= 2 {
		system = r.Messages[0].Content
	}
	return system, r.Messages[ai-1].Content, r.Messages[ai].Content, nil
}
