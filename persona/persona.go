// Package persona is what a character is in masque: a name, a profile that
// becomes the system prompt, and what the persona runs on (the base model, a
// weight mask over it, a LoRA adapter, or a separate pruned model folder).
// It reads and writes persona registries (YAML or JSON), imports SillyTavern
// character cards (V1, V2 and V3; JSON, or PNG with the card in a "chara" or
// "ccv3" text chunk) as plain data that other packages convert into what
// they need, and opens a persona over a shared base model (Open), its mask
// and adapter applied per sequence through the model's adapter and hook
// interfaces (Overlay) rather than by copying the model.
package persona

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/internal/macro"
)

// Kinds of persona, by what they run on.
const (
	KindBase     = "base"      // the base model as it is
	KindMask     = "mask"      // a weight mask over the base model
	KindLoRA     = "lora"      // a LoRA adapter over the base model
	KindMaskLoRA = "mask+lora" // both
	KindModel    = "model"     // a separate (e.g. pruned) model folder
)

// Spec is one persona as a registry lists it.
type Spec struct {
	// Name is the persona's id: the "model" of API requests.
	Name string `json:"name" yaml:"name"`
	// Description is the persona's profile. It becomes the system prompt
	// when SystemPrompt is empty.
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// SystemPrompt, when set, is the system prompt (a request that brings
	// its own system message replaces it).
	SystemPrompt string `json:"system_prompt,omitempty" yaml:"system_prompt,omitempty"`
	// Greeting is the persona's first message (a card's first_mes); the
	// playground shows it.
	Greeting string `json:"greeting,omitempty" yaml:"greeting,omitempty"`
	// Char is the character's display name, which the macros {{char}},
	// {{Char}} and <BOT> in the texts (description, system prompt,
	// greeting, examples, lorebook) stand for; {{user}}, {{User}} and
	// <USER> stand for "User". A card import sets it and leaves the macros
	// in the texts, so that a registry written back keeps them; they are
	// expanded when the texts are used. Empty: the texts are used as they
	// are.
	Char string `json:"char,omitempty" yaml:"char,omitempty"`
	// Examples is example dialogue (a card's mes_example, with its
	// <START> separators), added to the system prompt under "Example
	// dialogue:".
	Examples string `json:"examples,omitempty" yaml:"examples,omitempty"`
	// Lorebook holds background entries inserted into the system prompt
	// when their keys appear in the latest messages (a card's
	// character_book).
	Lorebook *Lorebook `json:"lorebook,omitempty" yaml:"lorebook,omitempty"`
	// Mask is a mask file (masque subnet) applied to the base model.
	Mask string `json:"mask,omitempty" yaml:"mask,omitempty"`
	// LoRA is a PEFT LoRA adapter folder applied to the base model.
	LoRA string `json:"lora,omitempty" yaml:"lora,omitempty"`
	// Model is a separate model folder (or .gguf file) the persona runs on
	// instead of the base model, or the hub id org/name[@rev][:QUANT] of a
	// model that masque pull fetched (as --model takes it). With Mask or
	// LoRA, it names the model they apply over instead of the server's
	// default base (a server runs it as a base of its own, shared by every
	// persona naming it).
	Model string `json:"model,omitempty" yaml:"model,omitempty"`
	// Card is a SillyTavern character card (JSON or PNG) to import; fields
	// set here override the card's. Registries only.
	Card string `json:"card,omitempty" yaml:"card,omitempty"`
	// Temperature is the persona's default temperature for requests that
	// set none (default 1, as OpenAI's).
	Temperature *float64 `json:"temperature,omitempty" yaml:"temperature,omitempty"`
	// TopP is the persona's default top_p (default 1).
	TopP *float64 `json:"top_p,omitempty" yaml:"top_p,omitempty"`
	// MaxTokens, if positive, is the persona's default max_tokens (still
	// bounded by the server's limit).
	MaxTokens int `json:"max_tokens,omitempty" yaml:"max_tokens,omitempty"`
	// Tags are free-form labels.
	Tags []string `json:"tags,omitempty" yaml:"tags,omitempty"`
	// HideReasoning, when set, says whether a leading <think>…</think>
	// block is removed from the persona's chat replies (default: the
	// server's setting; a request's hide_reasoning overrides both).
	HideReasoning *bool `json:"hide_reasoning,omitempty" yaml:"hide_reasoning,omitempty"`
}

// Kind says what the persona runs on (KindBase, KindMask, …).
func (s *Spec) Kind() string {
	switch {
	case s.Mask != "" && s.LoRA != "":
		return KindMaskLoRA
	case s.Mask != "":
		return KindMask
	case s.LoRA != "":
		return KindLoRA
	case s.Model != "":
		return KindModel
	}
	return KindBase
}

// Prompt returns the system prompt the persona adds to a conversation that
// has none ("" for none): the system prompt (or the description), then the
// example dialogue, if any. It holds no lore; PromptFor adds it.
func (s *Spec) Prompt() string { return s.prompt(Lore{}) }

// prompt is the system prompt with lore l placed in it: l.BeforeChar
// before the character's definitions, l.AfterChar after them (before the
// example dialogue), and its example blocks before and after the
// character's own examples.
func (s *Spec) prompt(l Lore) string {
	p := s.SystemPrompt
	if p == "" {
		p = s.Description
	}
	p = s.Expand(p)
	var blocks []string
	block := func(c string) {
		if !strings.HasPrefix(c, "<START>") {
			c = "<START>\n" + c
		}
		blocks = append(blocks, c)
	}
	for _, c := range l.BeforeExamples {
		block(c)
	}
	if ex := strings.TrimSpace(s.Expand(s.Examples)); ex != "" {
		blocks = append(blocks, ex)
	}
	for _, c := range l.AfterExamples {
		block(c)
	}
	var parts []string
	for _, x := range []string{l.BeforeChar, p, l.AfterChar} {
		if x != "" {
			parts = append(parts, x)
		}
	}
	if len(blocks) > 0 {
		parts = append(parts, "Example dialogue:\n"+strings.ReplaceAll(strings.Join(blocks, "\n"), "<START>", "***"))
	}
	return strings.Join(parts, "\n\n")
}

// Context is what a persona puts into one conversation.
type Context struct {
	// System is the system prompt, with the lore that the conversation
	// calls up ("" for none).
	System string
	// Inserts are the lore entries that go into the conversation itself,
	// deepest first (see LoreInsert).
	Inserts []LoreInsert
	// Lore is the lorebook's activation, for inspection.
	Lore Lore
}

// PromptFor is the persona's context for a conversation whose message texts
// (oldest first) are messages: its system prompt with the lorebook entries
// that the messages activate (see Lorebook), and the entries that go into
// the conversation. count counts a text's tokens with the model's
// tokenizer, for the lorebook's token budget (nil: bytes).
func (s *Spec) PromptFor(messages []string, count func(string) int) Context {
	l := s.Lorebook.Activate(messages, s.Expand, count)
	return Context{System: s.prompt(l), Inserts: l.AtDepth, Lore: l}
}

// macroPairs are the macros of Char's texts and their values.
func (s *Spec) macroPairs() []string {
	return []string{"{{char}}", s.Char, "{{Char}}", s.Char, "<BOT>", s.Char, "{{user}}", "User", "{{User}}", "User", "<USER>", "User"}
}

// Expand returns text with its {{char}} and {{user}} macros replaced (see
// Char); text as it is when Char is empty. Validate has checked that the
// spec's texts stay within MaxPromptLen once expanded.
func (s *Spec) Expand(text string) string {
	if s.Char == "" || text == "" {
		return text
	}
	out, err := macro.Expand("persona "+s.Name, text, MaxPromptLen, s.macroPairs()...)
	if err != nil {
		return text
	}
	return out
}

// checkMacros reports a text of the spec that would exceed MaxPromptLen
// once its macros are expanded.
func (s *Spec) checkMacros() error {
	if s.Char == "" {
		return nil
	}
	if len(s.Char) > MaxCardNameLen {
		return fmt.Errorf("persona %s: char is %d bytes; the limit is %d", s.Name, len(s.Char), MaxCardNameLen)
	}
	texts := []struct{ what, v string }{{"description", s.Description}, {"system prompt", s.SystemPrompt}, {"greeting", s.Greeting}, {"examples", s.Examples}}
	if s.Lorebook != nil {
		for i, e := range s.Lorebook.Entries {
			texts = append(texts, struct{ what, v string }{fmt.Sprintf("lorebook entry %d", i+1), e.Content})
		}
	}
	pairs := s.macroPairs()
	for _, t := range texts {
		if n := macro.Bound(t.v, MaxPromptLen, pairs...); n > MaxPromptLen {
			return fmt.Errorf("persona %s: %w", s.Name, &macro.TooLongError{What: "the " + t.what, Size: n, Limit: MaxPromptLen})
		}
	}
	return nil
}

// Limits on what a spec may hold.
const (
	MaxNameLen   = 64
	MaxPromptLen = 64 << 10
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidName reports whether name can be a persona id: 1 to MaxNameLen
// letters, digits, '.', '_' or '-', starting with a letter or digit, and no
// "..": names appear in URLs, metrics and logs and must never act as paths.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("persona name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("persona name is longer than %d characters", MaxNameLen)
	case !nameRE.MatchString(name):
		return fmt.Errorf("persona name %q may only hold letters, digits, '.', '_' and '-', and must start with a letter or digit", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("persona name %q contains \"..\"", name)
	}
	return nil
}

// Slug turns a display name (a card's "Captain Mira!") into a valid
// persona name ("captain-mira").
func Slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_'
		if ok {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
		if b.Len() >= MaxNameLen {
			break
		}
	}
	out := b.String()
	if len(out) > MaxNameLen {
		out = out[:MaxNameLen]
	}
	out = strings.Trim(out, "-_")
	if out == "" {
		return "persona"
	}
	return out
}

// Validate checks the spec's name, its fields' sizes and ranges, and that
// it does not both name a model folder and a mask or adapter.
func (s *Spec) Validate() error {
	if err := ValidName(s.Name); err != nil {
		return err
	}
	if len(s.Description) > MaxPromptLen || len(s.SystemPrompt) > MaxPromptLen || len(s.Greeting) > MaxPromptLen || len(s.Examples) > MaxPromptLen {
		return fmt.Errorf("persona %s: description, system prompt, greeting and examples are limited to %d bytes each", s.Name, MaxPromptLen)
	}
	if s.Lorebook != nil {
		if err := s.Lorebook.validate(); err != nil {
			return fmt.Errorf("persona %s: %w", s.Name, err)
		}
	}
	if err := s.checkMacros(); err != nil {
		return err
	}
	if t := s.Temperature; t != nil && !(*t >= 0 && *t <= 2) {
		return fmt.Errorf("persona %s: temperature %g outside [0, 2]", s.Name, *t)
	}
	if p := s.TopP; p != nil && !(*p >= 0 && *p <= 1) {
		return fmt.Errorf("persona %s: top_p %g outside [0, 1]", s.Name, *p)
	}
	if s.MaxTokens < 0 {
		return fmt.Errorf("persona %s: max_tokens %d is negative", s.Name, s.MaxTokens)
	}
	for _, t := range []*float64{s.Temperature, s.TopP} {
		if t != nil && (math.IsNaN(*t) || math.IsInf(*t, 0)) {
			return fmt.Errorf("persona %s: sampling defaults must be finite", s.Name)
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// registryFile is the layout of a registry: {"personas": [...]}; a bare
// list is accepted too.
type registryFile struct {
	Personas []Spec `json:"personas" yaml:"personas"`
}

// MaxRegistryBytes bounds the size of a registry file.
const MaxRegistryBytes = 16 << 20

// LoadRegistry reads a registry file: YAML (.yaml, .yml) or JSON (.json),
// either {"personas": [...]} or a bare list of specs. Relative paths in it
// (mask, lora, model, card) are taken relative to the file's folder, cards
// are imported, and every spec is validated; names must be unique.
func LoadRegistry(path string) ([]Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("persona registry: %w", err)
	}
	if len(data) > MaxRegistryBytes {
		return nil, fmt.Errorf("persona registry %s: larger than %d bytes", path, MaxRegistryBytes)
	}
	specs, err := ParseRegistry(data, strings.EqualFold(filepath.Ext(path), ".json"))
	if err != nil {
		return nil, fmt.Errorf("persona registry %s: %v", path, err)
	}
	dir := filepath.Dir(path)
	seen := map[string]bool{}
	for i := range specs {
		s := &specs[i]
		if s.Model != "" && checkpoint.HubID(s.Model) && !exists(filepath.Join(dir, s.Model)) {
			// model: org/name[@rev] is a model pulled from the hub (as
			// --model takes it), unless the registry's folder holds that path.
			if _, err := checkpoint.Resolve(s.Model); err != nil {
				return nil, fmt.Errorf("persona registry %s: entry %d: model %s: %v", path, i+1, s.Model, err)
			}
		} else if s.Model != "" && !filepath.IsAbs(s.Model) {
			s.Model = filepath.Join(dir, s.Model)
		}
		for _, p := range []*string{&s.Mask, &s.LoRA, &s.Card} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
		if s.Card != "" {
			if err := s.importCard(); err != nil {
				return nil, fmt.Errorf("persona registry %s: entry %d: %v", path, i+1, err)
			}
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("persona registry %s: entry %d: %v", path, i+1, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("persona registry %s: persona %s is listed twice", path, s.Name)
		}
		seen[s.Name] = true
	}
	return specs, nil
}

// SaveRegistry writes specs to path as a registry that LoadRegistry reads
// back: YAML ({"personas": [...]}), or JSON when path ends in .json. The
// file is replaced atomically (a temporary file renamed over it), so a
// crash never leaves it half-written. File paths (mask, lora, model, card)
// inside path's folder are written relative to it, others as they are.
// Comments and formatting of an earlier file are not kept.
func SaveRegistry(path string, specs []Spec) error {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("persona registry %s: %v", path, err)
	}
	out := make([]Spec, len(specs))
	for i, s := range specs {
		for _, p := range []*string{&s.Mask, &s.LoRA, &s.Model, &s.Card} {
			if *p == "" || p == &s.Model && checkpoint.HubID(*p) && !exists(*p) {
				continue // a hub id is written as it is
			}
			if abs, err := filepath.Abs(*p); err == nil {
				if rel, err := filepath.Rel(dir, abs); err == nil && filepath.IsLocal(rel) {
					*p = rel
				}
			}
		}
		out[i] = s
	}
	reg := struct {
		Personas []Spec `json:"personas" yaml:"personas"`
	}{out}
	var data []byte
	if strings.EqualFold(filepath.Ext(path), ".json") {
		data, err = json.MarshalIndent(reg, "", "  ")
		data = append(data, '\n')
	} else {
		data, err = yaml.Marshal(reg)
		data = append([]byte("# Persona registry, rewritten by masque serve --persist when personas are\n# added or removed at run time.\n"), data...)
	}
	if err != nil {
		return fmt.Errorf("persona registry %s: %v", path, err)
	}
	err = atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("persona registry %s: %v", path, err)
	}
	return nil
}

// ParseRegistry parses a registry's text (JSON when asJSON, else YAML, of
// which JSON is a subset). Unknown fields are errors. Paths are left as
// they are and cards are not imported.
func ParseRegistry(data []byte, asJSON bool) ([]Spec, error) {
	trimmed := bytes.TrimSpace(data)
	isList := len(trimmed) > 0 && (trimmed[0] == '[' || trimmed[0] == '-')
	if asJSON {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if isList {
			var specs []Spec
			if err := dec.Decode(&specs); err != nil {
				return nil, err
			}
			return specs, nil
		}
		var f registryFile
		if err := dec.Decode(&f); err != nil {
			return nil, err
		}
		return f.Personas, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if isList {
		var specs []Spec
		if err := dec.Decode(&specs); err != nil {
			return nil, err
		}
		return specs, nil
	}
	var f registryFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	return f.Personas, nil
}

// importCard reads s.Card and fills the fields s leaves empty from it.
func (s *Spec) importCard() error {
	c, err := ReadCard(s.Card)
	if err != nil {
		return err
	}
	from, err := c.Spec()
	if err != nil {
		return fmt.Errorf("%s: %v", s.Card, err)
	}
	if s.Name == "" {
		s.Name = from.Name
	}
	if s.Description == "" {
		s.Description = from.Description
	}
	if s.SystemPrompt == "" {
		s.SystemPrompt = from.SystemPrompt
	}
	if s.Greeting == "" {
		s.Greeting = from.Greeting
	}
	if s.Examples == "" {
		s.Examples = from.Examples
	}
	if s.Lorebook == nil {
		s.Lorebook = from.Lorebook
	}
	if s.Char == "" {
		s.Char = from.Char
	}
	if len(s.Tags) == 0 {
		s.Tags = from.Tags
	}
	s.Card = ""
	return nil
}
