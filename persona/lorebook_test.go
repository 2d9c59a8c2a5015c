package persona

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestLorebookActivate follows SillyTavern's world-info rules as its
// documentation states them: keys are matched in the last scan_depth
// messages, case-insensitively unless the entry is case-sensitive;
// selective entries also need a secondary key; constant entries are always
// in; disabled entries never; the inserted entries are ordered by
// insertion_order (lowest first) and placed before or after the character.
func TestLorebookActivate(t *testing.T) {
	b := &Lorebook{ScanDepth: 2, Entries: []LoreEntry{
		{Keys: []string{"dragon"}, Content: "Dragons sleep under the mountain.", InsertionOrder: 20},
		{Keys: []string{"Mira"}, Content: "Mira is the captain.", CaseSensitive: true, InsertionOrder: 10},
		{Keys: []string{"sword"}, SecondaryKeys: []string{"king"}, Selective: true, Content: "The king's sword is lost.", InsertionOrder: 5},
		{Content: "The year is 1720.", Constant: true, Position: "before_char", InsertionOrder: 100},
		{Keys: []string{"ghost"}, Content: "Ghosts are real.", Disabled: true},
		{Keys: []string{"storm", "gale"}, Content: "A storm is coming.", Position: "before_char", InsertionOrder: 1},
	}}
	cases := []struct {
		name          string
		messages      []string
		before, after string
	}{
		{"constant only", []string{"hello"}, "The year is 1720.", ""},
		{"case-insensitive key", []string{"A DRAGON!"}, "The year is 1720.", "Dragons sleep under the mountain."},
		{"case-sensitive key", []string{"mira and the dragon"}, "The year is 1720.", "Dragons sleep under the mountain."},
		{"case-sensitive key matches", []string{"Mira and the dragon"}, "The year is 1720.", "Mira is the captain.\nDragons sleep under the mountain."},
		{"beyond the scan depth", []string{"the dragon", "hello", "how are you"}, "The year is 1720.", ""},
		{"within the scan depth", []string{"hello", "the dragon", "how are you"}, "The year is 1720.", "Dragons sleep under the mountain."},
		{"selective without the secondary key", []string{"a sword"}, "The year is 1720.", ""},
		{"selective with it", []string{"the king", "a sword"}, "The year is 1720.", "The king's sword is lost."},
		{"disabled", []string{"a ghost"}, "The year is 1720.", ""},
		{"second key, ordered before", []string{"a gale"}, "A storm is coming.\nThe year is 1720.", ""},
	}
	for _, tc := range cases {
		before, after := b.Activate(tc.messages, nil)
		if before != tc.before || after != tc.after {
			t.Errorf("%s: before %q after %q, want %q and %q", tc.name, before, after, tc.before, tc.after)
		}
	}
	// The default depth is 2.
	b.ScanDepth = 0
	if _, after := b.Activate([]string{"dragon", "a", "b"}, nil); after != "" {
		t.Errorf("default depth: %q", after)
	}
	var nilBook *Lorebook
	if b, a := nilBook.Activate([]string{"x"}, nil); b != "" || a != "" {
		t.Error("a nil lorebook inserted something")
	}
}

const loreCard = `{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Mira","description":"A captain.",
"mes_example":"<START>\n{{user}}: Where are we?\n{{char}}: At sea, {{user}}.\n<START>\n{{user}}: Storm?\n{{char}}: Hold fast.",
"character_book":{"scan_depth":3,"entries":[
 {"keys":["kraken"],"content":"{{char}} fears the kraken.","enabled":true,"insertion_order":2,"position":"after_char"},
 {"keys":["{{char}}'s ship"],"content":"The ship is the Gull.","enabled":true,"insertion_order":1,"position":0},
 {"keys":["x"],"content":"off","enabled":false}]}}}`

// TestCardExamplesAndLorebook: mes_example becomes the example dialogue
// of the system prompt and character_book the lorebook, macros expanded;
// both survive a registry's JSON and YAML.
func TestCardExamplesAndLorebook(t *testing.T) {
	c, err := ParseCard([]byte(loreCard))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	p := s.Prompt()
	if !strings.Contains(p, "Example dialogue:\n***\nUser: Where are we?\nMira: At sea, User.\n***\nUser: Storm?") || !strings.HasPrefix(p, "You are Mira. A captain.") {
		t.Errorf("prompt %q", p)
	}
	// The macros stay in the spec (for a registry written back) and are
	// expanded when it is used.
	if s.Lorebook == nil || len(s.Lorebook.Entries) != 3 || s.Lorebook.ScanDepth != 3 || !s.Lorebook.Entries[2].Disabled ||
		s.Lorebook.Entries[0].Content != "{{char}} fears the kraken." || s.Lorebook.Entries[1].Keys[0] != "{{char}}'s ship" || s.Lorebook.Entries[1].Position != "before_char" {
		t.Fatalf("lorebook %+v", s.Lorebook)
	}
	if s.Char != "Mira" || !strings.Contains(s.Examples, "{{user}}: Where are we?") {
		t.Errorf("char %q, examples %q", s.Char, s.Examples)
	}
	got := s.PromptFor([]string{"Is that a kraken near Mira's ship?"})
	if want := "The ship is the Gull.\n\n" + p + "\n\nMira fears the kraken."; got != want {
		t.Errorf("prompt for the conversation:\n%q\nwant\n%q", got, want)
	}
	if got := s.PromptFor([]string{"hello"}); got != p {
		t.Errorf("no key: %q", got)
	}
	js, _ := json.Marshal(s)
	var back Spec
	if err := json.Unmarshal(js, &back); err != nil || back.PromptFor([]string{"kraken"}) != s.PromptFor([]string{"kraken"}) {
		t.Errorf("JSON round trip: %v %s", err, js)
	}
	if !strings.Contains(string(js), `{{char}} fears the kraken.`) || !strings.Contains(string(js), `"char":"Mira"`) {
		t.Errorf("the registry's JSON lost the macros: %s", js)
	}
	ym, _ := yaml.Marshal(s)
	if !strings.Contains(string(ym), `{{char}} fears the kraken.`) {
		t.Errorf("the registry's YAML lost the macros: %s", ym)
	}
	back = Spec{}
	if err := yaml.Unmarshal(ym, &back); err != nil || back.PromptFor([]string{"kraken"}) != s.PromptFor([]string{"kraken"}) {
		t.Errorf("YAML round trip: %v %s", err, ym)
	}
	// Limits.
	bad := s
	bad.Lorebook = &Lorebook{Entries: []LoreEntry{{Keys: []string{"a"}, Content: "b", Position: "middle"}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "position") {
		t.Errorf("bad position: %v", err)
	}
	bad.Lorebook = &Lorebook{Entries: make([]LoreEntry, MaxLoreEntries+1)}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "entries") {
		t.Errorf("too many entries: %v", err)
	}
}

// TestRegistryKeepsMacros: a card's persona written back to a registry
// keeps {{char}} and {{user}} as macros, and reads back to the same
// prompts; a registry whose macros would expand past the limit is refused.
func TestRegistryKeepsMacros(t *testing.T) {
	c, err := ParseCard([]byte(loreCard))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "personas.yaml")
	if err := SaveRegistry(path, []Spec{s}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "{{user}}: Where are we?") || !strings.Contains(string(data), "{{char}} fears the kraken.") {
		t.Errorf("the registry lost the macros:\n%s", data)
	}
	back, err := LoadRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := back[0].PromptFor([]string{"kraken"}), s.PromptFor([]string{"kraken"}); got != want || strings.Contains(got, "{{") {
		t.Errorf("read back: %q, want %q", got, want)
	}
	huge := Spec{Name: "x", Char: strings.Repeat("n", 200), Description: strings.Repeat("{{char}}", 8000)}
	if err := huge.Validate(); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("over-long expansion: %v", err)
	}
}
