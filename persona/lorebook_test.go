package persona

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestLorebookActivate follows SillyTavern's world-info rules as its
// documentation states them: keys are matched in the last scan_depth
// messages, case-insensitively unless the entry is case-sensitive;
// selective entries also need a secondary key; constant entries are always
// in; disabled entries never; the inserted entries are ordered by
// insertion_order (lowest first) and placed before or after the character.
func TestLorebookActivate(t *testing.T) {
	b := &Lorebook{ScanDepth: ptr(2), Entries: []LoreEntry{
		{Keys: []string{"dragon"}, Content: "Dragons sleep under the mountain.", InsertionOrder: 20},
		{Keys: []string{"Mira"}, Content: "Mira is the captain.", CaseSensitive: ptr(true), InsertionOrder: 10},
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
		l := b.Activate(tc.messages, nil, nil)
		if l.BeforeChar != tc.before || l.AfterChar != tc.after {
			t.Errorf("%s: before %q after %q, want %q and %q", tc.name, l.BeforeChar, l.AfterChar, tc.before, tc.after)
		}
	}
	// The default depth is 2.
	b.ScanDepth = nil
	if l := b.Activate([]string{"dragon", "a", "b"}, nil, nil); l.AfterChar != "" {
		t.Errorf("default depth: %q", l.AfterChar)
	}
	var nilBook *Lorebook
	if l := nilBook.Activate([]string{"x"}, nil, nil); l.BeforeChar != "" || l.AfterChar != "" || len(l.Entries) != 0 {
		t.Error("a nil lorebook inserted something")
	}
}

func ptr[T any](v T) *T { return &v }

// activated returns the contents of the entries that messages activate,
// in insertion order.
func activated(b *Lorebook, count func(string) int, messages ...string) []string {
	var out []string
	for _, i := range b.Activate(messages, nil, count).Entries {
		out = append(out, b.Entries[i].Content)
	}
	return out
}

// TestLoreDocumentedExamples are the examples of SillyTavern's World Info
// documentation (docs.sillytavern.app, usage/core-concepts/worldinfo).
func TestLoreDocumentedExamples(t *testing.T) {
	check := func(name string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	// "Regular Expression (Regex) as Keys": an entry inserted when char
	// is doing a weather-related action; {{char}} is expanded first.
	s := Spec{Name: "mira", Char: "Mira", Lorebook: &Lorebook{Entries: []LoreEntry{{
		Keys:    []string{`/(?:{{char}}|he|she) (?:is talking about|is noticing|is checking whether|observes) (?:the )?(rainy weather|heavy wind|it is going to rain|cloudy sky)/i`},
		Content: "Weather matters.",
	}}}}
	for msg, want := range map[string]bool{
		"Mira is noticing the cloudy sky.":             true,
		"MIRA OBSERVES HEAVY WIND":                     true,
		"She is checking whether it is going to rain.": true,
		"Mira is noticing the ship.":                   false,
		"Tom is talking about rainy weather.":          false,
	} {
		if got := len(s.PromptFor([]string{msg}, nil).Lore.Entries) == 1; got != want {
			t.Errorf("regex key on %q: %v, want %v", msg, got, want)
		}
	}
	// Without the i flag the case counts; inside a regex commas and
	// lookbehind are possible; an invalid regex is a plain key.
	b := &Lorebook{Entries: []LoreEntry{
		{Keys: []string{`/Rose, the (queen|knight)/`}, Content: "regex"},
		{Keys: []string{`/(?<=sir )lancelot/`}, Content: "lookbehind"},
		{Keys: []string{`/[unclosed/`}, Content: "plain"},
	}}
	check("regex case", activated(b, nil, "rose, the queen"))
	check("regex", activated(b, nil, "Rose, the knight"), "regex")
	check("lookbehind", activated(b, nil, "sir lancelot"), "lookbehind")
	check("lookbehind miss", activated(b, nil, "lady lancelot"))
	check("invalid regex as text", activated(b, nil, "a /[UNCLOSED/ key"), "plain")

	// "Match whole words": the key "king" matches "long live the king",
	// not "it's not to my liking"; keys of several words match anywhere.
	b = &Lorebook{Entries: []LoreEntry{{Keys: []string{"king"}, Content: "king"}, {Keys: []string{"old ma"}, Content: "phrase"}}}
	check("whole word", activated(b, nil, "long live the king"), "king")
	check("part of a word", activated(b, nil, "it's not to my liking"))
	check("phrase within words", activated(b, nil, "the old man"), "phrase")
	b.MatchWholeWords = ptr(false)
	check("whole words off in the book", activated(b, nil, "it's not to my liking"), "king")
	b.Entries[0].MatchWholeWords = ptr(true)
	check("whole words on in the entry", activated(b, nil, "it's not to my liking"))

	// "Case-sensitive keys": 'rose' and 'Rose' are told apart.
	b = &Lorebook{CaseSensitive: true, Entries: []LoreEntry{{Keys: []string{"Rose"}, Content: "Rose the knight."}, {Keys: []string{"rose"}, Content: "A flower.", CaseSensitive: ptr(false)}}}
	check("case-sensitive book", activated(b, nil, "a rose"), "A flower.")
	check("case-sensitive book, name", activated(b, nil, "Rose"), "Rose the knight.", "A flower.")

	// "Optional Filter": AND ANY, AND ALL, NOT ANY, NOT ALL.
	for _, tc := range []struct {
		logic string
		want  map[string]bool
	}{
		{LogicAndAny, map[string]bool{"sword": false, "sword king": true, "sword king queen": true}},
		{LogicAndAll, map[string]bool{"sword": false, "sword king": false, "sword king queen": true}},
		{LogicNotAny, map[string]bool{"sword": true, "sword king": false, "sword king queen": false}},
		{LogicNotAll, map[string]bool{"sword": true, "sword king": true, "sword king queen": false}},
	} {
		b := &Lorebook{Entries: []LoreEntry{{Keys: []string{"sword"}, SecondaryKeys: []string{"king", "queen"}, Selective: true, SelectiveLogic: tc.logic, Content: "x"}}}
		for msg, want := range tc.want {
			if got := len(activated(b, nil, msg)) == 1; got != want {
				t.Errorf("%s on %q: %v, want %v", tc.logic, msg, got, want)
			}
		}
		// The primary key is always needed.
		if len(activated(b, nil, "king queen")) != 0 {
			t.Errorf("%s without the primary key activated", tc.logic)
		}
	}

	// "Recursive scanning": Bessie's entry mentions Rufus, so a message
	// that mentions just Bessie pulls in both.
	bessie := func() *Lorebook {
		return &Lorebook{Entries: []LoreEntry{
			{Keys: []string{"Bessie"}, Content: "Bessie is a cow and is friends with Rufus.", InsertionOrder: 1},
			{Keys: []string{"Rufus"}, Content: "Rufus is a dog.", InsertionOrder: 2},
		}}
	}
	b = bessie()
	check("recursion", activated(b, nil, "Where is Bessie?"), "Bessie is a cow and is friends with Rufus.", "Rufus is a dog.")
	check("recursion, the other way", activated(b, nil, "Where is Rufus?"), "Rufus is a dog.")
	b.RecursiveScanning = ptr(false)
	check("recursive_scanning false", activated(b, nil, "Where is Bessie?"), "Bessie is a cow and is friends with Rufus.")
	b = bessie()
	b.Entries[1].ExcludeRecursion = true
	check("non-recursable", activated(b, nil, "Where is Bessie?"), "Bessie is a cow and is friends with Rufus.")
	b = bessie()
	b.Entries[0].PreventRecursion = true
	check("prevent further recursion", activated(b, nil, "Where is Bessie?"), "Bessie is a cow and is friends with Rufus.")
	b = bessie()
	b.Entries[1].DelayUntilRecursion = true
	check("delay until recursion, by recursion", activated(b, nil, "Where is Bessie?"), "Bessie is a cow and is friends with Rufus.", "Rufus is a dog.")
	check("delay until recursion, by the chat", activated(b, nil, "Where is Rufus?"))
	// A chain: each entry calls up the next.
	b = &Lorebook{Entries: []LoreEntry{
		{Keys: []string{"alpha"}, Content: "alpha leads to beta"},
		{Keys: []string{"beta"}, Content: "beta leads to gamma"},
		{Keys: []string{"gamma"}, Content: "gamma ends"},
	}}
	check("chain", activated(b, nil, "alpha"), "alpha leads to beta", "beta leads to gamma", "gamma ends")

	// "Scan Depth": 0 evaluates only recursed entries (and constant
	// ones), 1 only the last message; an entry's own depth wins.
	b = bessie()
	b.ScanDepth = ptr(0)
	b.Entries = append(b.Entries, LoreEntry{Content: "Farm.", Constant: true, PreventRecursion: false, InsertionOrder: 0, Keys: nil})
	b.Entries[2].Content = "The farm has Bessie."
	check("depth 0", activated(b, nil, "Bessie", "Rufus"), "The farm has Bessie.", "Bessie is a cow and is friends with Rufus.", "Rufus is a dog.")
	b.Entries[2].Constant = false
	check("depth 0, nothing constant", activated(b, nil, "Bessie", "Rufus"))
	b = bessie()
	b.RecursiveScanning = ptr(false)
	b.ScanDepth = ptr(1)
	check("depth 1", activated(b, nil, "Bessie", "Rufus"), "Rufus is a dog.")
	b.Entries[0].ScanDepth = ptr(2)
	check("entry depth 2", activated(b, nil, "Bessie", "Rufus"), "Bessie is a cow and is friends with Rufus.", "Rufus is a dog.")

	// "Context % / Budget": constant entries first, then higher order
	// numbers; entries activated by the chat before those that recursion
	// activates; when the budget is exhausted no more are activated.
	words := func(s string) int { return len(strings.Fields(s)) }
	b = &Lorebook{TokenBudget: 10, Entries: []LoreEntry{
		{Keys: []string{"a"}, Content: "low order entry, four", InsertionOrder: 1},
		{Keys: []string{"a"}, Content: "high order entry of five", InsertionOrder: 9},
		{Content: "constant entry of four", Constant: true, InsertionOrder: 50},
	}}
	l := b.Activate([]string{"a"}, nil, words)
	if got := activated(b, words, "a"); !slices.Equal(got, []string{"high order entry of five", "constant entry of four"}) || !l.Overflow || l.Tokens != 9 {
		t.Errorf("budget: %q (overflow %v, %d tokens)", got, l.Overflow, l.Tokens)
	}
	b.Entries[0].Priority = ptr(100)
	check("priority", activated(b, words, "a"), "low order entry, four", "constant entry of four")
	b.TokenBudget = 13
	check("budget for all", activated(b, words, "a"), "low order entry, four", "high order entry of five", "constant entry of four")
	b = bessie()
	b.TokenBudget = 11
	b.Entries = append(b.Entries, LoreEntry{Keys: []string{"cow"}, Content: "Cows moo.", InsertionOrder: 0})
	check("direct before recursive", activated(b, words, "Bessie the cow"), "Cows moo.", "Bessie is a cow and is friends with Rufus.")
}

// TestLorePositions: entries go before or after the character's
// definitions, around the example dialogue, or into the conversation at a
// depth (those of one depth and role as one message).
func TestLorePositions(t *testing.T) {
	s := Spec{Name: "m", Char: "Mira", Description: "{{char}} is a captain.", Examples: "<START>\n{{user}}: Hi\n{{char}}: Ahoy", Lorebook: &Lorebook{Entries: []LoreEntry{
		{Keys: []string{"sea"}, Content: "Before {{char}}.", Position: PosBeforeChar},
		{Keys: []string{"sea"}, Content: "After.", Position: PosAfterChar},
		{Keys: []string{"sea"}, Content: "{{user}}: Sea?\n{{char}}: Wide.", Position: PosBeforeExamples},
		{Keys: []string{"sea"}, Content: "<START>\n{{user}}: End?", Position: PosAfterExamples},
		{Keys: []string{"sea"}, Content: "Depth two.", Position: PosAtDepth, Depth: 2, InsertionOrder: 2},
		{Keys: []string{"sea"}, Content: "Depth two first.", Position: PosAtDepth, Depth: 2, InsertionOrder: 1},
		{Keys: []string{"sea"}, Content: "As the user.", Position: PosAtDepth, Depth: 0, Role: "user"},
		{Keys: []string{"sea"}, Content: "Author's note.", Position: PosANTop},
	}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c := s.PromptFor([]string{"the sea"}, nil)
	want := "Before Mira.\n\nMira is a captain.\n\nAfter.\n\nExample dialogue:\n***\nUser: Sea?\nMira: Wide.\n***\nUser: Hi\nMira: Ahoy\n***\nUser: End?"
	if c.System != want {
		t.Errorf("system prompt:\n%q\nwant\n%q", c.System, want)
	}
	if len(c.Inserts) != 2 || c.Inserts[0] != (LoreInsert{Depth: 2, Role: "system", Content: "Depth two first.\nDepth two."}) ||
		c.Inserts[1] != (LoreInsert{Depth: 0, Role: "user", Content: "As the user."}) {
		t.Errorf("inserts %+v", c.Inserts)
	}
	if len(c.Lore.Entries) != 8 {
		t.Errorf("the Author's Note entry is activated (not inserted): %v", c.Lore.Entries)
	}
	if got := s.PromptFor([]string{"land"}, nil); got.System != s.Prompt() || len(got.Inserts) != 0 {
		t.Errorf("no key: %+v", got)
	}
}

// TestCardLoreExtensions: a card as SillyTavern exports it keeps its
// world-info settings in each entry's extensions.
func TestCardLoreExtensions(t *testing.T) {
	card := `{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"Mira","character_book":{"token_budget":500,"recursive_scanning":false,"entries":[
 {"keys":["a"],"secondary_keys":["b","c"],"content":"one","enabled":true,"insertion_order":100,"use_regex":true,"position":"after_char","selective":true,
  "extensions":{"position":4,"depth":3,"role":2,"selectiveLogic":3,"scan_depth":5,"case_sensitive":true,"match_whole_words":false,
   "exclude_recursion":true,"prevent_recursion":true,"delay_until_recursion":false,"probability":100,"group":""}},
 {"keys":["x"],"content":"two","enabled":true,"insertion_order":1,"position":"before_char","case_sensitive":true,"priority":7,
  "extensions":{"position":"weird","depth":null,"case_sensitive":null,"match_whole_words":null}},
 {"keys":["x"],"content":"three","enabled":true,"insertion_order":1,"extensions":{"position":6}}]}}}`
	c, err := ParseCard([]byte(card))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec()
	if err != nil {
		t.Fatal(err)
	}
	b := s.Lorebook
	if b.TokenBudget != 500 || b.RecursiveScanning == nil || *b.RecursiveScanning || b.ScanDepth != nil {
		t.Errorf("book %+v", b)
	}
	e := b.Entries[0]
	if e.Position != PosAtDepth || e.Depth != 3 || e.Role != "assistant" || e.SelectiveLogic != LogicAndAll || e.ScanDepth == nil || *e.ScanDepth != 5 ||
		e.CaseSensitive == nil || !*e.CaseSensitive || e.MatchWholeWords == nil || *e.MatchWholeWords || !e.ExcludeRecursion || !e.PreventRecursion || e.DelayUntilRecursion {
		t.Errorf("entry 1 %+v", e)
	}
	e = b.Entries[1]
	if e.Position != PosBeforeChar || e.CaseSensitive == nil || !*e.CaseSensitive || e.MatchWholeWords != nil || e.Priority == nil || *e.Priority != 7 || e.SelectiveLogic != "" {
		t.Errorf("entry 2 %+v", e)
	}
	if b.Entries[2].Position != PosAfterExamples {
		t.Errorf("entry 3 %+v", b.Entries[2])
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// The registry keeps it all.
	js, _ := json.Marshal(s)
	var back Spec
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back.Lorebook, s.Lorebook) {
		t.Errorf("JSON round trip: %v\n%s", err, js)
	}
	ym, _ := yaml.Marshal(s)
	back = Spec{}
	if err := yaml.Unmarshal(ym, &back); err != nil || !reflect.DeepEqual(back.Lorebook, s.Lorebook) {
		t.Errorf("YAML round trip: %v\n%s", err, ym)
	}
	for _, bad := range []LoreEntry{{SelectiveLogic: "maybe"}, {Role: "narrator"}, {Depth: -1}, {ScanDepth: ptr(-2)}} {
		sp := Spec{Name: "x", Lorebook: &Lorebook{Entries: []LoreEntry{bad}}}
		if err := sp.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestLoreRegexTime: a regular expression that backtracks without end
// gives up when the activation's time is spent, and does not match.
func TestLoreRegexTime(t *testing.T) {
	old := LoreMatchTime
	LoreMatchTime = 50 * time.Millisecond
	defer func() { LoreMatchTime = old }()
	b := &Lorebook{Entries: []LoreEntry{{Keys: []string{`/(a+)+$/`}, Content: "x"}, {Keys: []string{"zzz"}, Content: "y"}}}
	start := time.Now()
	got := activated(b, nil, strings.Repeat("a", 40)+"b zzz")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if !slices.Equal(got, []string{"y"}) {
		t.Errorf("%q", got)
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
	if s.Lorebook == nil || len(s.Lorebook.Entries) != 3 || s.Lorebook.ScanDepth == nil || *s.Lorebook.ScanDepth != 3 || !s.Lorebook.Entries[2].Disabled ||
		s.Lorebook.Entries[0].Content != "{{char}} fears the kraken." || s.Lorebook.Entries[1].Keys[0] != "{{char}}'s ship" || s.Lorebook.Entries[1].Position != "before_char" {
		t.Fatalf("lorebook %+v", s.Lorebook)
	}
	if s.Char != "Mira" || !strings.Contains(s.Examples, "{{user}}: Where are we?") {
		t.Errorf("char %q, examples %q", s.Char, s.Examples)
	}
	got := s.PromptFor([]string{"Is that a kraken near Mira's ship?"}, nil).System
	head, examples, _ := strings.Cut(p, "\n\nExample dialogue:")
	if want := "The ship is the Gull.\n\n" + head + "\n\nMira fears the kraken.\n\nExample dialogue:" + examples; got != want {
		t.Errorf("prompt for the conversation:\n%q\nwant\n%q", got, want)
	}
	if got := s.PromptFor([]string{"hello"}, nil).System; got != p {
		t.Errorf("no key: %q", got)
	}
	js, _ := json.Marshal(s)
	var back Spec
	if err := json.Unmarshal(js, &back); err != nil || back.PromptFor([]string{"kraken"}, nil).System != s.PromptFor([]string{"kraken"}, nil).System {
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
	if err := yaml.Unmarshal(ym, &back); err != nil || back.PromptFor([]string{"kraken"}, nil).System != s.PromptFor([]string{"kraken"}, nil).System {
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
	if got, want := back[0].PromptFor([]string{"kraken"}, nil).System, s.PromptFor([]string{"kraken"}, nil).System; got != want || strings.Contains(got, "{{") {
		t.Errorf("read back: %q, want %q", got, want)
	}
	huge := Spec{Name: "x", Char: strings.Repeat("n", 200), Description: strings.Repeat("{{char}}", 8000)}
	if err := huge.Validate(); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("over-long expansion: %v", err)
	}
}
