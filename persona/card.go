package persona

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/masque-ai/masque/internal/macro"
)

// Card is a SillyTavern character card (the fields masque uses), as plain
// data: the texts as the card holds them, macros ({{char}}, {{user}}, …)
// not expanded. Spec turns it into a persona spec; other packages (synth)
// convert it into what they need.
type Card struct {
	// SpecName is "chara_card_v1", "chara_card_v2" or "chara_card_v3".
	SpecName string `json:"-"`
	// Name is the character's display name.
	Name string `json:"name"`
	// Description, Personality and Scenario describe the character and
	// the setting; they make up the default system prompt.
	Description string `json:"description"`
	Personality string `json:"personality"`
	Scenario    string `json:"scenario"`
	// FirstMessage is the character's greeting (first_mes).
	FirstMessage string `json:"first_mes"`
	// MessageExamples are example dialogues (mes_example): the spec's
	// Examples.
	MessageExamples string `json:"mes_example"`
	// CharacterBook is the card's lorebook (character_book): the spec's
	// Lorebook.
	CharacterBook *CardBook `json:"character_book"`
	// SystemPrompt replaces the default system prompt; {{original}} in it
	// stands for the default one.
	SystemPrompt string `json:"system_prompt"`
	// PostHistoryInstructions are instructions after the chat history
	// (not used).
	PostHistoryInstructions string `json:"post_history_instructions"`
	// CreatorNotes, Creator and CharacterVersion are informational.
	CreatorNotes     string `json:"creator_notes"`
	Creator          string `json:"creator"`
	CharacterVersion string `json:"character_version"`
	// Tags are the card's labels.
	Tags []string `json:"tags"`
	// AlternateGreetings are further greetings (not used).
	AlternateGreetings []string `json:"alternate_greetings"`
}

// CardBook is a card's character_book (V2 and V3 specs), the fields
// masque uses.
type CardBook struct {
	ScanDepth         *int            `json:"scan_depth"`
	TokenBudget       int             `json:"token_budget"`
	RecursiveScanning *bool           `json:"recursive_scanning"`
	Entries           []CardBookEntry `json:"entries"`
}

// CardBookEntry is one character_book entry: the spec's fields, and the
// world-info settings SillyTavern keeps in its extensions.
type CardBookEntry struct {
	Keys           []string `json:"keys"`
	SecondaryKeys  []string `json:"secondary_keys"`
	Content        string   `json:"content"`
	Enabled        *bool    `json:"enabled"`
	InsertionOrder int      `json:"insertion_order"`
	Priority       *int     `json:"priority"`
	CaseSensitive  *bool    `json:"case_sensitive"`
	Constant       bool     `json:"constant"`
	Selective      bool     `json:"selective"`
	// Position is "before_char" or "after_char" (V2), or SillyTavern's
	// world-info number (0 before, 1 after); anything else means after.
	Position any `json:"position"`
	// Extensions are SillyTavern's settings (position, depth, role,
	// selectiveLogic, scan_depth, case_sensitive, match_whole_words,
	// exclude_recursion, prevent_recursion, delay_until_recursion,
	// probability and useProbability, group, group_override, group_weight,
	// sticky, cooldown, delay); values of another type than SillyTavern
	// writes, or out of range, are ignored.
	Extensions map[string]any `json:"extensions"`
}

// SillyTavern's world-info positions and selective logics, by number.
var (
	stPositions = []string{PosBeforeChar, PosAfterChar, PosANTop, PosANBottom, PosAtDepth, PosBeforeExamples, PosAfterExamples, PosOutlet}
	stLogics    = []string{LogicAndAny, LogicNotAll, LogicNotAny, LogicAndAll}
	stRoles     = []string{"system", "user", "assistant"}
)

// extInt returns the integer extension name, if it is one.
func (e *CardBookEntry) extInt(name string) (int, bool) {
	f, ok := e.Extensions[name].(float64)
	if !ok || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}

// extBool returns the boolean extension name, or nil.
func (e *CardBookEntry) extBool(name string) *bool {
	if b, ok := e.Extensions[name].(bool); ok {
		return &b
	}
	return nil
}

// entry converts a card entry into a LoreEntry.
func (e *CardBookEntry) entry() LoreEntry {
	le := LoreEntry{
		Keys: slices.Clone(e.Keys), SecondaryKeys: slices.Clone(e.SecondaryKeys), Content: e.Content,
		Disabled: e.Enabled != nil && !*e.Enabled, InsertionOrder: e.InsertionOrder, Priority: e.Priority,
		CaseSensitive: e.CaseSensitive, Constant: e.Constant, Selective: e.Selective, Position: PosAfterChar,
	}
	switch p := e.Position.(type) {
	case string:
		if p == PosBeforeChar {
			le.Position = p
		}
	case float64:
		if p == 0 {
			le.Position = PosBeforeChar
		}
	}
	if p, ok := e.extInt("position"); ok && p >= 0 && p < len(stPositions) {
		le.Position = stPositions[p]
	}
	if le.Position == PosAtDepth {
		le.Depth = DefaultLoreDepth
		if d, ok := e.extInt("depth"); ok && d >= 0 && d <= MaxScanDepth {
			le.Depth = d
		}
		le.Role = "system"
		if r, ok := e.extInt("role"); ok && r >= 0 && r < len(stRoles) {
			le.Role = stRoles[r]
		}
	}
	if l, ok := e.extInt("selectiveLogic"); ok && l >= 0 && l < len(stLogics) && l > 0 {
		le.SelectiveLogic = stLogics[l]
	}
	if d, ok := e.extInt("scan_depth"); ok && d >= 0 && d <= MaxScanDepth {
		le.ScanDepth = &d
	}
	if b := e.extBool("case_sensitive"); b != nil {
		le.CaseSensitive = b
	}
	le.MatchWholeWords = e.extBool("match_whole_words")
	for _, f := range []struct {
		name string
		to   *bool
	}{{"exclude_recursion", &le.ExcludeRecursion}, {"prevent_recursion", &le.PreventRecursion}, {"delay_until_recursion", &le.DelayUntilRecursion},
		{"group_override", &le.GroupOverride}} {
		if b := e.extBool(f.name); b != nil {
			*f.to = *b
		}
	}
	// SillyTavern rolls the probability only with useProbability on (its
	// default for entries that do not say).
	if p, ok := e.extInt("probability"); ok && p >= 0 && p < 100 {
		if u := e.extBool("useProbability"); u == nil || *u {
			le.Probability = &p
		}
	}
	if g, ok := e.Extensions["group"].(string); ok && len(g) <= MaxLoreKeyLen {
		le.Group = g
	}
	if w, ok := e.extInt("group_weight"); ok && w >= 1 && w <= MaxGroupWeight {
		le.GroupWeight = &w
	}
	for _, f := range []struct {
		name string
		to   *int
	}{{"sticky", &le.Sticky}, {"cooldown", &le.Cooldown}, {"delay", &le.Delay}} {
		if v, ok := e.extInt(f.name); ok && v >= 0 && v <= MaxScanDepth {
			*f.to = v
		}
	}
	return le
}

// MaxCardBytes bounds the size of a card file (a PNG with its image).
const MaxCardBytes = 16 << 20

// Limits on a card's fields, checked when the card is read: every text
// field holds at most MaxPromptLen bytes (what a spec's prompt may hold),
// the name MaxCardNameLen bytes, and the lists at most MaxCardTags tags
// (each MaxCardTagLen bytes) and MaxCardGreetings greetings.
const (
	MaxCardNameLen   = 256
	MaxCardTags      = 256
	MaxCardTagLen    = 256
	MaxCardGreetings = 256
)

// checkLimits returns an error naming the first field over its limit.
func (c *Card) checkLimits() error {
	if len(c.Name) > MaxCardNameLen {
		return fmt.Errorf("character card: the name is %d bytes; the limit is %d", len(c.Name), MaxCardNameLen)
	}
	for _, f := range []struct {
		name, v string
	}{
		{"description", c.Description}, {"personality", c.Personality}, {"scenario", c.Scenario},
		{"first_mes", c.FirstMessage}, {"mes_example", c.MessageExamples}, {"system_prompt", c.SystemPrompt},
		{"post_history_instructions", c.PostHistoryInstructions}, {"creator_notes", c.CreatorNotes},
		{"creator", c.Creator}, {"character_version", c.CharacterVersion},
	} {
		if len(f.v) > MaxPromptLen {
			return fmt.Errorf("character card: %s is %d bytes; the limit is %d", f.name, len(f.v), MaxPromptLen)
		}
	}
	if len(c.Tags) > MaxCardTags {
		return fmt.Errorf("character card: %d tags; the limit is %d", len(c.Tags), MaxCardTags)
	}
	for i, t := range c.Tags {
		if len(t) > MaxCardTagLen {
			return fmt.Errorf("character card: tag %d is %d bytes; the limit is %d", i+1, len(t), MaxCardTagLen)
		}
	}
	if b := c.CharacterBook; b != nil {
		if err := b.lorebook().validate(); err != nil {
			return fmt.Errorf("character card: character_book: %w", err)
		}
	}
	if len(c.AlternateGreetings) > MaxCardGreetings {
		return fmt.Errorf("character card: %d alternate greetings; the limit is %d", len(c.AlternateGreetings), MaxCardGreetings)
	}
	for i, g := range c.AlternateGreetings {
		if len(g) > MaxPromptLen {
			return fmt.Errorf("character card: alternate greeting %d is %d bytes; the limit is %d", i+1, len(g), MaxPromptLen)
		}
	}
	return nil
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// ReadCard reads a character card file (JSON or PNG, see ParseCard);
// errors name the file.
func ReadCard(path string) (*Card, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCardBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	c, err := ParseCard(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

// ParseCard reads a character card: JSON (V1 fields at the top level, or
// V2/V3 {"spec": "chara_card_v2", "data": {...}}) or a PNG whose "ccv3" or
// "chara" tEXt chunk holds the JSON in base64 (ccv3 is preferred).
func ParseCard(data []byte) (*Card, error) {
	if len(data) > MaxCardBytes {
		return nil, fmt.Errorf("card larger than %d bytes", MaxCardBytes)
	}
	if bytes.HasPrefix(data, pngSignature) {
		js, err := cardFromPNG(data)
		if err != nil {
			return nil, err
		}
		data = js
	}
	var top struct {
		Spec string          `json:"spec"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("character card: malformed JSON: %v", err)
	}
	c := &Card{}
	switch top.Spec {
	case "chara_card_v2", "chara_card_v3":
		if len(top.Data) == 0 {
			return nil, fmt.Errorf("character card: %s without \"data\"", top.Spec)
		}
		if err := json.Unmarshal(top.Data, c); err != nil {
			return nil, fmt.Errorf("character card: malformed data: %v", err)
		}
		c.SpecName = top.Spec
	case "":
		// V1: the fields at the top level (or, in some exports, under
		// "data" without a "spec").
		src := data
		if len(top.Data) > 0 && string(top.Data) != "null" {
			src = top.Data
		}
		if err := json.Unmarshal(src, c); err != nil {
			return nil, fmt.Errorf("character card: %v", err)
		}
		c.SpecName = "chara_card_v1"
	default:
		return nil, fmt.Errorf("character card: unknown spec %q", top.Spec)
	}
	if strings.TrimSpace(c.Name) == "" {
		return nil, errors.New("character card: no name")
	}
	if err := c.checkLimits(); err != nil {
		return nil, err
	}
	return c, nil
}

// cardFromPNG returns the decoded card JSON of a PNG's ccv3 or chara chunk.
func cardFromPNG(data []byte) ([]byte, error) {
	chunks := map[string][]byte{}
	p := len(pngSignature)
	for p < len(data) {
		if len(data)-p < 12 {
			return nil, errors.New("character card: truncated PNG chunk")
		}
		n := binary.BigEndian.Uint32(data[p:])
		typ := string(data[p+4 : p+8])
		if uint64(n) > uint64(len(data)-p-12) {
			return nil, fmt.Errorf("character card: PNG chunk %q overruns the file", typ)
		}
		body := data[p+8 : p+8+int(n)]
		crc := binary.BigEndian.Uint32(data[p+8+int(n):])
		if crc32.ChecksumIEEE(data[p+4:p+8+int(n)]) != crc {
			return nil, fmt.Errorf("character card: PNG chunk %q has a bad CRC", typ)
		}
		p += 12 + int(n)
		if typ == "IEND" {
			break
		}
		if typ != "tEXt" {
			continue
		}
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			continue
		}
		key := string(body[:i])
		if key == "chara" || key == "ccv3" {
			chunks[key] = body[i+1:]
		}
	}
	text, ok := chunks["ccv3"]
	if !ok {
		if text, ok = chunks["chara"]; !ok {
			return nil, errors.New("character card: the PNG has no \"chara\" text chunk")
		}
	}
	raw := strings.TrimSpace(string(text))
	js, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		// Some writers leave out the padding.
		if js, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(raw, "=")); err != nil {
			return nil, fmt.Errorf("character card: the PNG's card is not base64: %v", err)
		}
	}
	return js, nil
}

// EmbedCardPNG returns a copy of the PNG image img with the card JSON
// stored as a base64 "chara" tEXt chunk before IEND (replacing any
// existing chara chunk), as SillyTavern writes cards.
func EmbedCardPNG(img, cardJSON []byte) ([]byte, error) {
	if !bytes.HasPrefix(img, pngSignature) {
		return nil, errors.New("not a PNG image")
	}
	var out bytes.Buffer
	out.Write(pngSignature)
	p := len(pngSignature)
	for p+12 <= len(img) {
		n := int(binary.BigEndian.Uint32(img[p:]))
		if n > len(img)-p-12 {
			return nil, errors.New("truncated PNG chunk")
		}
		typ := string(img[p+4 : p+8])
		chunk := img[p : p+12+n]
		p += 12 + n
		if typ == "tEXt" && bytes.HasPrefix(chunk[8:], []byte("chara\x00")) {
			continue
		}
		if typ == "IEND" {
			writeChunk(&out, "tEXt", append([]byte("chara\x00"), base64.StdEncoding.AppendEncode(nil, cardJSON)...))
		}
		out.Write(chunk)
		if typ == "IEND" {
			return out.Bytes(), nil
		}
	}
	return nil, errors.New("PNG without IEND")
}

func writeChunk(w *bytes.Buffer, typ string, body []byte) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(body)))
	copy(hdr[4:], typ)
	w.Write(hdr[:])
	w.Write(body)
	crc := crc32.NewIEEE()
	crc.Write(hdr[4:])
	crc.Write(body)
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], crc.Sum32())
	w.Write(c[:])
}

// Spec turns the card into a persona spec: the name becomes a slug, the
// description the profile, and the system prompt is the card's own (its
// {{original}} replaced by the default prompt) or the default one built
// from the description, personality and scenario; mes_example becomes the
// example dialogue and character_book the lorebook. {{char}} and {{user}}
// stay in the texts, with Spec.Char set to the character's name: they are
// replaced by the name and "User" when the spec is used, and a registry
// written back keeps them. Every expansion is bounded before it is done: a
// field that would grow past MaxPromptLen bytes is an error, and nothing
// is allocated for it.
func (c *Card) Spec() (Spec, error) {
	if err := c.checkLimits(); err != nil {
		return Spec{}, err
	}
	var def strings.Builder
	fmt.Fprintf(&def, "You are %s.", c.Name)
	if d := strings.TrimSpace(c.Description); d != "" {
		def.WriteString(" " + d)
	}
	if p := strings.TrimSpace(c.Personality); p != "" {
		fmt.Fprintf(&def, "\n%s's personality: %s", c.Name, p)
	}
	if s := strings.TrimSpace(c.Scenario); s != "" {
		def.WriteString("\nScenario: " + s)
	}
	prompt := def.String()
	if sp := strings.TrimSpace(c.SystemPrompt); sp != "" {
		var err error
		if prompt, err = macro.Expand("character card: the system prompt", sp, MaxPromptLen, "{{original}}", prompt); err != nil {
			return Spec{}, err
		}
	}
	pairs := []string{"{{char}}", c.Name, "{{Char}}", c.Name, "<BOT>", c.Name, "{{user}}", "User", "{{User}}", "User", "<USER>", "User"}
	// The spec keeps the {{char}} and {{user}} macros (Spec.Char) and
	// expands them when it is used: check here that every text stays
	// within the limit once expanded.
	for _, t := range []struct{ what, v string }{
		{"the description", c.Description}, {"the system prompt", prompt},
		{"the greeting (first_mes)", c.FirstMessage}, {"the example dialogue (mes_example)", c.MessageExamples},
	} {
		if n := macro.Bound(strings.TrimSpace(t.v), MaxPromptLen, pairs...); n > MaxPromptLen {
			return Spec{}, &macro.TooLongError{What: "character card: " + t.what, Size: n, Limit: MaxPromptLen}
		}
	}
	var book *Lorebook
	if c.CharacterBook != nil && len(c.CharacterBook.Entries) > 0 {
		book = c.CharacterBook.lorebook()
		for i, e := range book.Entries {
			what := fmt.Sprintf("character card: character_book entry %d", i+1)
			if n := macro.Bound(e.Content, MaxPromptLen, pairs...); n > MaxPromptLen {
				return Spec{}, &macro.TooLongError{What: what, Size: n, Limit: MaxPromptLen}
			}
			for _, k := range append(slices.Clone(e.Keys), e.SecondaryKeys...) {
				if n := macro.Bound(k, MaxLoreKeyLen, pairs...); n > MaxLoreKeyLen {
					return Spec{}, &macro.TooLongError{What: what + " key", Size: n, Limit: MaxLoreKeyLen}
				}
			}
		}
	}
	return Spec{
		Name:         Slug(c.Name),
		Char:         c.Name,
		Description:  strings.TrimSpace(c.Description),
		SystemPrompt: prompt,
		Greeting:     c.FirstMessage,
		Examples:     strings.TrimSpace(c.MessageExamples),
		Lorebook:     book,
		Tags:         c.Tags,
	}, nil
}

// lorebook converts a card's book (copying its lists).
func (b *CardBook) lorebook() *Lorebook {
	out := &Lorebook{TokenBudget: b.TokenBudget, RecursiveScanning: b.RecursiveScanning}
	if b.ScanDepth != nil {
		d := *b.ScanDepth
		out.ScanDepth = &d
	}
	for i := range b.Entries {
		out.Entries = append(out.Entries, b.Entries[i].entry())
	}
	return out
}
