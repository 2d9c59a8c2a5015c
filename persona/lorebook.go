package persona

import (
	"fmt"
	"slices"
	"strings"
)

// Lorebook is a character card's character_book: entries of background
// text inserted into the system prompt when one of their keys appears in
// the last ScanDepth messages of a conversation, as SillyTavern's world
// info does (substring keys, case-insensitive unless the entry says
// otherwise; selective entries also need a secondary key; constant entries
// always; enabled ones only; ordered by insertion_order, lowest first; each
// before or after the character's description). Regular-expression keys,
// token budgets and recursive scanning are not supported: a key is always
// matched as plain text.
type Lorebook struct {
	// ScanDepth is how many of the latest messages are searched for keys
	// (DefaultScanDepth when 0).
	ScanDepth int `json:"scan_depth,omitempty" yaml:"scan_depth,omitempty"`
	// Entries are the lore entries.
	Entries []LoreEntry `json:"entries" yaml:"entries"`
}

// LoreEntry is one lorebook entry (character_book.entries[i]).
type LoreEntry struct {
	// Keys activate the entry when one appears in a scanned message.
	Keys []string `json:"keys" yaml:"keys"`
	// SecondaryKeys: a selective entry also needs one of these.
	SecondaryKeys []string `json:"secondary_keys,omitempty" yaml:"secondary_keys,omitempty"`
	// Content is the text inserted.
	Content string `json:"content" yaml:"content"`
	// Disabled entries are never inserted (the card's "enabled": false).
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	// InsertionOrder orders the inserted entries, lowest first.
	InsertionOrder int `json:"insertion_order,omitempty" yaml:"insertion_order,omitempty"`
	// CaseSensitive keys match only with the same case.
	CaseSensitive bool `json:"case_sensitive,omitempty" yaml:"case_sensitive,omitempty"`
	// Constant entries are always inserted.
	Constant bool `json:"constant,omitempty" yaml:"constant,omitempty"`
	// Selective entries need a key and a secondary key.
	Selective bool `json:"selective,omitempty" yaml:"selective,omitempty"`
	// Position is "before_char" or "after_char" (the default): where the
	// entry goes relative to the character's system prompt.
	Position string `json:"position,omitempty" yaml:"position,omitempty"`
}

// DefaultScanDepth is the messages scanned when a lorebook sets no depth
// (SillyTavern's default world-info depth).
const DefaultScanDepth = 2

// Limits on a lorebook.
const (
	MaxLoreEntries = 1024
	MaxLoreKeys    = 64
	MaxLoreKeyLen  = 256
	MaxScanDepth   = 1000
)

// validate checks a lorebook's limits.
func (b *Lorebook) validate() error {
	if b.ScanDepth < 0 || b.ScanDepth > MaxScanDepth {
		return fmt.Errorf("lorebook: scan_depth %d outside [0, %d]", b.ScanDepth, MaxScanDepth)
	}
	if len(b.Entries) > MaxLoreEntries {
		return fmt.Errorf("lorebook: %d entries; the limit is %d", len(b.Entries), MaxLoreEntries)
	}
	for i, e := range b.Entries {
		if len(e.Content) > MaxPromptLen {
			return fmt.Errorf("lorebook: entry %d is %d bytes; the limit is %d", i+1, len(e.Content), MaxPromptLen)
		}
		if len(e.Keys) > MaxLoreKeys || len(e.SecondaryKeys) > MaxLoreKeys {
			return fmt.Errorf("lorebook: entry %d has more than %d keys", i+1, MaxLoreKeys)
		}
		for _, k := range append(slices.Clone(e.Keys), e.SecondaryKeys...) {
			if len(k) > MaxLoreKeyLen {
				return fmt.Errorf("lorebook: entry %d has a key of %d bytes; the limit is %d", i+1, len(k), MaxLoreKeyLen)
			}
		}
		switch e.Position {
		case "", "before_char", "after_char":
		default:
			return fmt.Errorf("lorebook: entry %d: position %q is not before_char or after_char", i+1, e.Position)
		}
	}
	return nil
}

// matches reports whether one of keys occurs in text.
func matches(keys []string, text, lower string, caseSensitive bool) bool {
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if caseSensitive {
			if strings.Contains(text, k) {
				return true
			}
		} else if strings.Contains(lower, strings.ToLower(k)) {
			return true
		}
	}
	return false
}

// Activate returns the text of the entries that messages (the
// conversation's texts, oldest first) activate, joined by newlines: those
// that go before the character's prompt and those after it. expand, if
// not nil, expands the macros of keys and contents (Spec.Expand).
func (b *Lorebook) Activate(messages []string, expand func(string) string) (before, after string) {
	if expand == nil {
		expand = func(s string) string { return s }
	}
	if b == nil || len(b.Entries) == 0 {
		return "", ""
	}
	depth := b.ScanDepth
	if depth == 0 {
		depth = DefaultScanDepth
	}
	recent := messages[max(0, len(messages)-depth):]
	text := strings.Join(recent, "\n")
	lower := strings.ToLower(text)
	var on []int
	for i, e := range b.Entries {
		if e.Disabled || strings.TrimSpace(e.Content) == "" {
			continue
		}
		if !e.Constant {
			if !matches(expandAll(e.Keys, expand), text, lower, e.CaseSensitive) {
				continue
			}
			if e.Selective && len(e.SecondaryKeys) > 0 && !matches(expandAll(e.SecondaryKeys, expand), text, lower, e.CaseSensitive) {
				continue
			}
		}
		on = append(on, i)
	}
	slices.SortStableFunc(on, func(x, y int) int { return b.Entries[x].InsertionOrder - b.Entries[y].InsertionOrder })
	var bw, aw []string
	for _, i := range on {
		e := b.Entries[i]
		c := strings.TrimSpace(expand(e.Content))
		if e.Position == "before_char" {
			bw = append(bw, c)
		} else {
			aw = append(aw, c)
		}
	}
	return strings.Join(bw, "\n"), strings.Join(aw, "\n")
}

// expandAll expands every key.
func expandAll(keys []string, expand func(string) string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = expand(k)
	}
	return out
}
