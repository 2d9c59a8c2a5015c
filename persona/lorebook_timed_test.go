package persona

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestLoreProbability: an entry with probability 0 is never inserted, one
// with 100 always; at 50 about half of the conversations insert it, and a
// conversation always gets the same answer.
func TestLoreProbability(t *testing.T) {
	b := &Lorebook{Entries: []LoreEntry{
		{Keys: []string{"dragon"}, Content: "never", Probability: ptr(0)},
		{Keys: []string{"dragon"}, Content: "always", Probability: ptr(100)},
		{Keys: []string{"dragon"}, Content: "half", Probability: ptr(50)},
	}}
	half := 0
	const n = 400
	for k := range n {
		msg := fmt.Sprintf("the dragon number %d", k)
		got := activated(b, nil, msg)
		if slices.Contains(got, "never") || !slices.Contains(got, "always") {
			t.Fatalf("%q: %q", msg, got)
		}
		if slices.Contains(got, "half") {
			half++
		}
		if again := activated(b, nil, msg); !slices.Equal(again, got) {
			t.Fatalf("%q: %q, then %q", msg, got, again)
		}
	}
	if half < n*35/100 || half > n*65/100 {
		t.Errorf("probability 50 inserted the entry in %d of %d conversations", half, n)
	}
	// Without its keys, an entry is not rolled for.
	if got := activated(b, nil, "no key"); len(got) != 0 {
		t.Errorf("no key: %q", got)
	}
}

// TestLoreInclusionGroups: of a group's activated entries one is inserted:
// drawn by weight, or the override entry of highest order; a group that an
// earlier pass inserted takes none of the later ones; other groups and
// entries without a group are not affected.
func TestLoreInclusionGroups(t *testing.T) {
	b := &Lorebook{Entries: []LoreEntry{
		{Keys: []string{"sea"}, Content: "calm", Group: "weather", GroupWeight: ptr(1)},
		{Keys: []string{"sea"}, Content: "storm", Group: "weather", GroupWeight: ptr(1)},
		{Keys: []string{"sea"}, Content: "fog", Group: "weather", GroupWeight: ptr(8)},
		{Keys: []string{"sea"}, Content: "gulls"},
		{Keys: []string{"sea"}, Content: "lonely", Group: "mood, weather2"},
	}}
	seen := map[string]int{}
	const n = 300
	for k := range n {
		msg := fmt.Sprintf("the sea, day %d", k)
		got := activated(b, nil, msg)
		weather := 0
		for _, c := range got {
			if c == "calm" || c == "storm" || c == "fog" {
				weather++
			}
			seen[c]++
		}
		if weather != 1 || !slices.Contains(got, "gulls") || !slices.Contains(got, "lonely") {
			t.Fatalf("%q: %q, want one weather entry, gulls and lonely (alone in its groups)", msg, got)
		}
		if again := activated(b, nil, msg); !slices.Equal(again, got) {
			t.Fatalf("%q: %q, then %q", msg, got, again)
		}
	}
	if seen["fog"] < n*7/10 || seen["fog"] > n*9/10 || seen["calm"] == 0 || seen["storm"] == 0 {
		t.Errorf("weights 1, 1, 8: chosen in %v of %d conversations", seen, n)
	}

	// Override: the override entry of highest insertion order, always.
	b = &Lorebook{Entries: []LoreEntry{
		{Keys: []string{"sea"}, Content: "calm", Group: "weather", GroupWeight: ptr(1000)},
		{Keys: []string{"sea"}, Content: "storm", Group: "weather", GroupOverride: true, InsertionOrder: 5},
		{Keys: []string{"sea"}, Content: "fog", Group: "weather", GroupOverride: true, InsertionOrder: 9},
	}}
	for k := range 50 {
		if got := activated(b, nil, fmt.Sprint("sea ", k)); !slices.Equal(got, []string{"fog"}) {
			t.Fatalf("override: %q", got)
		}
	}

	// Recursion: an entry of a group already inserted keeps the others
	// of that group out.
	b = &Lorebook{Entries: []LoreEntry{
		{Keys: []string{"ship"}, Content: "The ship sails in fog.", Group: "weather"},
		{Keys: []string{"fog"}, Content: "Fog hides the coast.", Group: "weather"},
		{Keys: []string{"fog"}, Content: "Fog horns sound."},
	}}
	if got := activated(b, nil, "the ship"); !slices.Equal(got, []string{"The ship sails in fog.", "Fog horns sound."}) {
		t.Errorf("group already in: %q", got)
	}
}

// TestLoreTimedEffects: sticky keeps an entry N more messages without its
// keys; cooldown keeps it out for N messages after it ended; delay keeps
// it out of the first messages. The state comes from the conversation
// itself: every prefix gives what it gave as the conversation grew.
func TestLoreTimedEffects(t *testing.T) {
	// at returns, for each length of the conversation msgs, whether the
	// entry is inserted.
	at := func(e LoreEntry, msgs ...string) string {
		e.Content = "x"
		b := &Lorebook{ScanDepth: ptr(1), Entries: []LoreEntry{e}}
		var s strings.Builder
		for L := 1; L <= len(msgs); L++ {
			if len(b.Activate(msgs[:L], nil, nil).Entries) == 1 {
				s.WriteByte('+')
			} else {
				s.WriteByte('.')
			}
		}
		return s.String()
	}
	key := []string{"dragon"}
	d, o := "a dragon", "nothing"
	for _, tc := range []struct {
		name string
		e    LoreEntry
		msgs []string
		want string
	}{
		{"keys only", LoreEntry{Keys: key}, []string{d, o, o, o, d}, "+...+"},
		{"sticky 2", LoreEntry{Keys: key, Sticky: 2}, []string{d, o, o, o, o, d, o}, "+++..++"},
		{"cooldown 2", LoreEntry{Keys: key, Cooldown: 2}, []string{d, d, d, d, d, d, d}, "+..+..+"},
		{"sticky 1 then cooldown 2", LoreEntry{Keys: key, Sticky: 1, Cooldown: 2}, []string{d, o, d, d, d, d, d, d}, "++..++.."},
		{"delay 3", LoreEntry{Keys: key, Delay: 3}, []string{d, d, d, d}, "..++"},
		{"constant with cooldown", LoreEntry{Constant: true, Cooldown: 1}, []string{o, o, o, o}, "+.+."},
		{"sticky without probability roll", LoreEntry{Keys: key, Sticky: 3, Probability: ptr(0)}, []string{d, o, o}, "..."},
	} {
		if got := at(tc.e, tc.msgs...); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}

	// A sticky entry stays without rolling its probability again: find a
	// conversation whose first message passes a roll of 30%, then it stays
	// for its 3 messages whatever their rolls.
	e := LoreEntry{Keys: key, Sticky: 3, Probability: ptr(30), Content: "x"}
	b := &Lorebook{ScanDepth: ptr(1), Entries: []LoreEntry{e}}
	for k := 0; ; k++ {
		first := fmt.Sprint("a dragon ", k)
		if len(b.Activate([]string{first}, nil, nil).Entries) == 0 {
			continue
		}
		msgs := []string{first, o, o, o, o}
		if got := at(e, msgs...); got != "++++." {
			t.Errorf("sticky after a roll: %s, want ++++.", got)
		}
		break
	}

	// A sticky entry of an inclusion group keeps its group's place: the
	// override entry that activates later does not replace it.
	b = &Lorebook{ScanDepth: ptr(1), Entries: []LoreEntry{
		{Keys: []string{"rain"}, Content: "rain", Group: "weather", Sticky: 2},
		{Keys: []string{"sun"}, Content: "sun", Group: "weather", GroupOverride: true},
	}}
	if got := activated(b, nil, "rain", "sun"); !slices.Equal(got, []string{"rain"}) {
		t.Errorf("sticky in a group: %q", got)
	}
	if got := activated(b, nil, "rain", "x", "x", "sun"); !slices.Equal(got, []string{"sun"}) {
		t.Errorf("after the sticky: %q", got)
	}
}

// TestCardLoreTimedFields: the probability, inclusion group and timed
// effect settings that SillyTavern keeps in an entry's extensions become
// the lorebook's, and a registry's JSON and YAML keep them.
func TestCardLoreTimedFields(t *testing.T) {
	card := `{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Mira","character_book":{"entries":[
 {"keys":["a"],"content":"one","enabled":true,"extensions":{"probability":25,"useProbability":true,"group":"weather,mood",
  "group_override":true,"group_weight":7,"sticky":2,"cooldown":3,"delay":4}},
 {"keys":["b"],"content":"two","enabled":true,"extensions":{"probability":25,"useProbability":false,"group_weight":0,"sticky":-1,"cooldown":"3"}},
 {"keys":["c"],"content":"three","enabled":true,"extensions":{"probability":40}}]}}}`
	c, err := ParseCard([]byte(card))
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
	es := s.Lorebook.Entries
	want := LoreEntry{Keys: []string{"a"}, Content: "one", Position: PosAfterChar, Probability: ptr(25), Group: "weather,mood",
		GroupOverride: true, GroupWeight: ptr(7), Sticky: 2, Cooldown: 3, Delay: 4}
	if !reflect.DeepEqual(es[0], want) {
		t.Errorf("entry 1 %+v\nwant %+v", es[0], want)
	}
	// useProbability off: no roll; out-of-range and mistyped values ignored.
	if e := es[1]; e.Probability != nil || e.GroupWeight != nil || e.Sticky != 0 || e.Cooldown != 0 {
		t.Errorf("entry 2 %+v", e)
	}
	if e := es[2]; e.Probability == nil || *e.Probability != 40 {
		t.Errorf("entry 3 %+v", e)
	}
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
	for _, bad := range []LoreEntry{{Probability: ptr(101)}, {Probability: ptr(-1)}, {GroupWeight: ptr(0)}, {Sticky: -1},
		{Cooldown: MaxScanDepth + 1}, {Delay: -2}, {Group: strings.Repeat("g", MaxLoreKeyLen+1)}} {
		sp := Spec{Name: "x", Lorebook: &Lorebook{Entries: []LoreEntry{bad}}}
		if err := sp.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
