package synth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"

	"github.com/masque-ai/masque/internal/macro"
)

// Limits on a card, checked when it is read (before any macro is
// expanded): every text field, before and after expansion, holds at most
// MaxCardFieldLen bytes, the name MaxCardNameLen, and there are at most
// MaxCardTags tags of MaxCardNameLen bytes each.
const (
	MaxCardFieldLen = 64 << 10
	MaxCardNameLen  = 256
	MaxCardTags     = 256
	// MaxCardBytes bounds a card file (a PNG with its image).
	MaxCardBytes = 16 << 20
)

// Card is a SillyTavern character card: the fields of a V2 card's "data"
// object (V1 cards keep them at the top level; V3 cards are read the same
// way as V2).
type Card struct {
	Name         string   `json:"name"`          // the character's name
	Description  string   `json:"description"`   // who they are
	Personality  string   `json:"personality"`   // how they behave
	Scenario     string   `json:"scenario"`      // the setting of the role-play
	FirstMes     string   `json:"first_mes"`     // the greeting
	MesExample   string   `json:"mes_example"`   // example dialogue
	CreatorNotes string   `json:"creator_notes"` // notes for users, not the model
	SystemPrompt string   `json:"system_prompt"` // the card's own system prompt
	Tags         []string `json:"tags"`          // free-form tags
}

// ParseCard reads a character card from its JSON: a V2/V3 card
// ({"spec": "chara_card_v2", "data": {...}}) or a V1 card (the fields at
// the top level). The card must have a name.
func ParseCard(data []byte) (*Card, error) {
	if len(data) > MaxCardBytes {
		return nil, fmt.Errorf("character card: %d bytes; the limit is %d", len(data), MaxCardBytes)
	}
	var top struct {
		Spec string          `json:"spec"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("character card: malformed JSON: %v", err)
	}
	var c Card
	src := data
	if len(top.Data) > 0 && string(top.Data) != "null" {
		src = top.Data
	}
	if err := json.Unmarshal(src, &c); err != nil {
		return nil, fmt.Errorf("character card: %v", err)
	}
	if strings.TrimSpace(c.Name) == "" {
		return nil, errors.New("character card: no name")
	}
	if err := c.expand(); err != nil {
		return nil, err
	}
	return &c, nil
}

// expand checks the card's limits, then replaces the {{char}} and
// {{user}} placeholders of its text (each expansion bounded first).
func (c *Card) expand() error {
	if len(c.Name) > MaxCardNameLen {
		return fmt.Errorf("character card: the name is %d bytes; the limit is %d", len(c.Name), MaxCardNameLen)
	}
	if len(c.Tags) > MaxCardTags {
		return fmt.Errorf("character card: %d tags; the limit is %d", len(c.Tags), MaxCardTags)
	}
	for i, t := range c.Tags {
		if len(t) > MaxCardNameLen {
			return fmt.Errorf("character card: tag %d is %d bytes; the limit is %d", i+1, len(t), MaxCardNameLen)
		}
	}
	c.Name = strings.TrimSpace(c.Name)
	pairs := []string{"{{char}}", c.Name, "{{Char}}", c.Name, "<BOT>", c.Name,
		"{{user}}", "the user", "{{User}}", "the user", "<USER>", "the user"}
	for _, f := range []struct {
		name string
		p    *string
	}{
		{"description", &c.Description}, {"personality", &c.Personality}, {"scenario", &c.Scenario},
		{"first_mes", &c.FirstMes}, {"mes_example", &c.MesExample}, {"system_prompt", &c.SystemPrompt},
		{"creator_notes", &c.CreatorNotes},
	} {
		if len(*f.p) > MaxCardFieldLen {
			return fmt.Errorf("character card: %s is %d bytes; the limit is %d", f.name, len(*f.p), MaxCardFieldLen)
		}
		if f.name == "creator_notes" {
			continue // not expanded: notes for users
		}
		v, err := macro.Expand("character card: "+f.name, *f.p, MaxCardFieldLen, pairs...)
		if err != nil {
			return err
		}
		*f.p = strings.TrimSpace(v)
	}
	return nil
}

var pngSignature = []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}

// ParseCardPNG reads a character card embedded in a PNG image: a tEXt
// chunk with the keyword "chara" (or "ccv3", preferred when both are
// there) holding the card's JSON in base64.
func ParseCardPNG(data []byte) (*Card, error) {
	if len(data) > MaxCardBytes {
		return nil, fmt.Errorf("character card: %d bytes; the limit is %d", len(data), MaxCardBytes)
	}
	if !bytes.HasPrefix(data, pngSignature) {
		return nil, errors.New("character card: not a PNG file")
	}
	texts := map[string][]byte{}
	p := data[len(pngSignature):]
	for len(p) >= 12 {
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-12) {
			return nil, errors.New("character card: truncated PNG chunk")
		}
		typ, body := p[4:8], p[8:8+n]
		if crc := binary.BigEndian.Uint32(p[8+n:]); crc != crc32.ChecksumIEEE(p[4:8+n]) {
			return nil, fmt.Errorf("character card: bad CRC in PNG chunk %q", typ)
		}
		if string(typ) == "tEXt" {
			if k, v, ok := bytes.Cut(body, []byte{0}); ok {
				texts[string(k)] = v
			}
		}
		if string(typ) == "IEND" {
			break
		}
		p = p[12+n:]
	}
	raw, ok := texts["ccv3"]
	if !ok {
		raw, ok = texts["chara"]
	}
	if !ok {
		return nil, errors.New(`character card: the PNG has no "chara" tEXt chunk`)
	}
	raw = bytes.TrimSpace(raw)
	js, err := base64.StdEncoding.DecodeString(string(raw))
	if err != nil {
		if js, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(string(raw), "=")); err != nil {
			return nil, fmt.Errorf("character card: the chara chunk is not base64: %v", err)
		}
	}
	return ParseCard(js)
}

// ReadCard reads a card from a .json or .png file.
func ReadCard(path string) (*Card, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(data, pngSignature) {
		return ParseCardPNG(data)
	}
	return ParseCard(data)
}

// Persona is a one-paragraph persona description made from the card.
func (c *Card) Persona() string {
	var b strings.Builder
	b.WriteString(c.Name)
	if c.Description != "" {
		b.WriteString(": ")
		b.WriteString(oneLine(c.Description))
	}
	if c.Personality != "" {
		b.WriteString(" Personality: ")
		b.WriteString(oneLine(c.Personality))
	}
	if c.Scenario != "" {
		b.WriteString(" Scenario: ")
		b.WriteString(oneLine(c.Scenario))
	}
	return b.String()
}

// Profile is a character profile made from the card's fields, first line
// "Name: ...".
func (c *Card) Profile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Name: %s\n", c.Name)
	add := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", label, oneLine(v))
		}
	}
	add("Description", c.Description)
	add("Personality", c.Personality)
	add("Scenario", c.Scenario)
	add("Example dialogue", c.MesExample)
	return strings.TrimSpace(b.String())
}

// oneLine collapses runs of white space, newlines included, to one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
