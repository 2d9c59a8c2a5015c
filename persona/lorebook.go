package persona

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
)

// Lorebook is a character card's character_book: entries of background
// text put into the prompt when their keys appear in the latest messages of
// a conversation, as SillyTavern's World Info does for a character's book:
//
//   - A key is plain text, found anywhere in the scanned text (case-
//     insensitively unless the entry or the book is case-sensitive; a key of
//     one word only as a whole word when whole-word matching is on, which it
//     is by default), or a JavaScript regular expression written
//     /pattern/flags (flags i, m, s, u; g, y and d change nothing), matched
//     as it says, macros expanded first. A key that looks like a regular
//     expression but does not compile is plain text.
//   - The scanned text is the last ScanDepth messages (the entry's own
//     scan depth when it has one); 0 scans no message, so that only constant
//     entries and recursion activate entries.
//   - An entry activates when one of its keys matches and, when it is
//     selective and has secondary keys, its secondary keys pass its
//     SelectiveLogic (AND ANY, NOT ALL, NOT ANY, AND ALL). Constant entries
//     always activate; disabled entries and entries without content never.
//   - Recursion (on unless RecursiveScanning is false): the contents of the
//     activated entries (but those that prevent recursion) are scanned too,
//     pass after pass, until a pass activates nothing new. An entry that
//     excludes recursion is never activated by other entries' contents; one
//     delayed until recursion is activated only by them.
//   - Token budget (TokenBudget > 0, in tokens of the model's tokenizer):
//     the activated entries are taken sticky ones first (see timed effects
//     below), then constant ones, then by priority
//     (Priority, or InsertionOrder when it has none), highest first, entries
//     of an earlier pass before those of later ones; when the next entry does
//     not fit in what is left, no further entry is taken.
//   - Placement: the taken entries are ordered by InsertionOrder, lowest
//     first, and go before or after the character's definitions, before or
//     after the example dialogue (as example blocks), or into the
//     conversation at a depth, as messages of a role.
//   - Inclusion groups: among the entries that one pass activates, those
//     of one group (Group names one or several, comma-separated) give
//     one: the group's sticky entries if it has any (see below), none when
//     an earlier pass already inserted an entry of the group, else the
//     GroupOverride entry of highest InsertionOrder, else one drawn at
//     random with probability proportional to GroupWeight (default 100).
//   - Probability: an activated entry with a Probability below 100 is
//     then inserted only with that chance (in percent); one that fails is
//     not tried again in later passes.
//   - Timed effects, counted in messages (the length of messages): an
//     entry with Sticky N activated when the conversation had L messages
//     stays active, keys, probability and cooldown aside, while it has up
//     to L+N; one with Cooldown N cannot activate in the N messages after
//     it was activated or, with Sticky, after its stickiness ended; one
//     with Delay N cannot activate before the conversation has N messages.
//
// Activate is a pure function of the conversation: the random draws
// (probability and inclusion groups) are seeded by a hash of the messages
// up to the point evaluated (FNV-1a of their texts; the request's sampling
// seed does not enter), so a conversation always calls up the same lore,
// and the state of timed effects is derived by evaluating the book again
// at each of the last LoreHistory lengths of the conversation (the
// activations that SillyTavern would have recorded), not kept on a server.
//
// Not supported: SillyTavern's group scoring, minimum activations, Author's
// Note and outlet positions (entries placed there are activated but not
// inserted, as SillyTavern does when the Author's Note is off), vector
// matching and the V3 spec's @@decorators. A V3 card's use_regex is not
// needed: as in SillyTavern, a key is a regular expression by its /…/ form.
type Lorebook struct {
	// ScanDepth is how many of the latest messages are searched for keys
	// (DefaultScanDepth when not set; 0 searches none).
	ScanDepth *int `json:"scan_depth,omitempty" yaml:"scan_depth,omitempty"`
	// TokenBudget, when positive, bounds the tokens of the entries inserted
	// (measured with the model's tokenizer).
	TokenBudget int `json:"token_budget,omitempty" yaml:"token_budget,omitempty"`
	// RecursiveScanning says whether entries' contents activate other
	// entries (default true, SillyTavern's default).
	RecursiveScanning *bool `json:"recursive_scanning,omitempty" yaml:"recursive_scanning,omitempty"`
	// CaseSensitive is the default of entries that do not say.
	CaseSensitive bool `json:"case_sensitive,omitempty" yaml:"case_sensitive,omitempty"`
	// MatchWholeWords is the default of entries that do not say (default
	// true, SillyTavern's default).
	MatchWholeWords *bool `json:"match_whole_words,omitempty" yaml:"match_whole_words,omitempty"`
	// Entries are the lore entries.
	Entries []LoreEntry `json:"entries" yaml:"entries"`
}

// LoreEntry is one lorebook entry (character_book.entries[i], with the
// fields SillyTavern keeps in the entry's extensions).
type LoreEntry struct {
	// Keys activate the entry when one matches the scanned text.
	Keys []string `json:"keys" yaml:"keys"`
	// SecondaryKeys: a selective entry also needs these to pass its
	// SelectiveLogic.
	SecondaryKeys []string `json:"secondary_keys,omitempty" yaml:"secondary_keys,omitempty"`
	// Content is the text inserted.
	Content string `json:"content" yaml:"content"`
	// Disabled entries are never inserted (the card's "enabled": false).
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	// InsertionOrder orders the inserted entries, lowest first; without a
	// Priority it is also the entry's priority under a token budget.
	InsertionOrder int `json:"insertion_order,omitempty" yaml:"insertion_order,omitempty"`
	// Priority, when set, ranks the entry under a token budget: the lowest
	// are dropped first.
	Priority *int `json:"priority,omitempty" yaml:"priority,omitempty"`
	// CaseSensitive keys match only with the same case (default: the
	// book's).
	CaseSensitive *bool `json:"case_sensitive,omitempty" yaml:"case_sensitive,omitempty"`
	// MatchWholeWords: a plain key of one word matches only a whole word
	// (default: the book's).
	MatchWholeWords *bool `json:"match_whole_words,omitempty" yaml:"match_whole_words,omitempty"`
	// Constant entries are always inserted (within the budget).
	Constant bool `json:"constant,omitempty" yaml:"constant,omitempty"`
	// Selective entries check SecondaryKeys.
	Selective bool `json:"selective,omitempty" yaml:"selective,omitempty"`
	// SelectiveLogic is how the secondary keys decide: "and_any" (the
	// default: one of them must match), "and_all" (all must), "not_any"
	// (none may), "not_all" (not all may).
	SelectiveLogic string `json:"selective_logic,omitempty" yaml:"selective_logic,omitempty"`
	// ScanDepth, when set, replaces the book's for this entry.
	ScanDepth *int `json:"scan_depth,omitempty" yaml:"scan_depth,omitempty"`
	// ExcludeRecursion: other entries' contents never activate this one.
	ExcludeRecursion bool `json:"exclude_recursion,omitempty" yaml:"exclude_recursion,omitempty"`
	// PreventRecursion: this entry's content activates no other entry.
	PreventRecursion bool `json:"prevent_recursion,omitempty" yaml:"prevent_recursion,omitempty"`
	// DelayUntilRecursion: only other entries' contents activate this one.
	DelayUntilRecursion bool `json:"delay_until_recursion,omitempty" yaml:"delay_until_recursion,omitempty"`
	// Position is where the entry goes: "before_char", "after_char" (the
	// default), "before_examples", "after_examples", "at_depth" (into the
	// conversation, Depth messages from its end, as a message of Role), or
	// "author_note_top", "author_note_bottom", "outlet" (SillyTavern's
	// positions that masque has no place for: activated, not inserted).
	Position string `json:"position,omitempty" yaml:"position,omitempty"`
	// Depth is an at_depth entry's depth: 0 puts it after the last
	// message, 1 before the last one, and so on.
	Depth int `json:"depth,omitempty" yaml:"depth,omitempty"`
	// Role is an at_depth entry's role: "system" (the default), "user" or
	// "assistant".
	Role string `json:"role,omitempty" yaml:"role,omitempty"`
	// Probability, when set below 100, is the chance in percent (0 to 100)
	// that the entry, once activated, is inserted (SillyTavern's
	// probability with useProbability on).
	Probability *int `json:"probability,omitempty" yaml:"probability,omitempty"`
	// Group names the entry's inclusion groups (comma-separated): of the
	// entries of a group that activate together, one is inserted.
	Group string `json:"group,omitempty" yaml:"group,omitempty"`
	// GroupOverride makes the entry its groups' choice when it activates
	// (among several, the one of highest InsertionOrder).
	GroupOverride bool `json:"group_override,omitempty" yaml:"group_override,omitempty"`
	// GroupWeight is the entry's weight in its groups' random choice
	// (default 100).
	GroupWeight *int `json:"group_weight,omitempty" yaml:"group_weight,omitempty"`
	// Sticky, Cooldown and Delay are timed effects, in messages (see
	// Lorebook): stay active Sticky messages after activating; do not
	// activate for Cooldown messages after that; do not activate before
	// the conversation has Delay messages.
	Sticky   int `json:"sticky,omitempty" yaml:"sticky,omitempty"`
	Cooldown int `json:"cooldown,omitempty" yaml:"cooldown,omitempty"`
	Delay    int `json:"delay,omitempty" yaml:"delay,omitempty"`
}

// DefaultScanDepth is the messages scanned when a lorebook sets no depth
// (SillyTavern's default world-info depth).
const DefaultScanDepth = 2

// DefaultLoreDepth is the depth of an at_depth entry that a card gives
// none (SillyTavern's default).
const DefaultLoreDepth = 4

// Limits on a lorebook.
const (
	MaxLoreEntries = 1024
	MaxLoreKeys    = 64
	MaxLoreKeyLen  = 256
	MaxScanDepth   = 1000
	// MaxLoreBudget bounds a token budget.
	MaxLoreBudget = 1 << 24
	// MaxGroupWeight bounds an inclusion group weight.
	MaxGroupWeight = 1 << 20
)

// DefaultGroupWeight is an entry's weight in its inclusion groups when it
// gives none (SillyTavern's default).
const DefaultGroupWeight = 100

// LoreHistory is how many of a conversation's latest lengths Activate
// evaluates the book at to derive the state of timed effects (sticky,
// cooldown): activations before them are not seen.
const LoreHistory = 256

// LoreMatchTime bounds the time that one activation spends matching
// regular-expression keys: a key that has not matched when it runs out
// does not match. A book with timed effects has it twice: once for the
// conversation, once for all the earlier lengths evaluated before it.
var LoreMatchTime = 250 * time.Millisecond

// Selective logics.
const (
	LogicAndAny = "and_any"
	LogicNotAll = "not_all"
	LogicNotAny = "not_any"
	LogicAndAll = "and_all"
)

// Positions.
const (
	PosBeforeChar     = "before_char"
	PosAfterChar      = "after_char"
	PosBeforeExamples = "before_examples"
	PosAfterExamples  = "after_examples"
	PosAtDepth        = "at_depth"
	PosANTop          = "author_note_top"
	PosANBottom       = "author_note_bottom"
	PosOutlet         = "outlet"
)

// validate checks a lorebook's limits.
func (b *Lorebook) validate() error {
	if d := b.ScanDepth; d != nil && (*d < 0 || *d > MaxScanDepth) {
		return fmt.Errorf("lorebook: scan_depth %d outside [0, %d]", *d, MaxScanDepth)
	}
	if b.TokenBudget < 0 || b.TokenBudget > MaxLoreBudget {
		return fmt.Errorf("lorebook: token_budget %d outside [0, %d]", b.TokenBudget, MaxLoreBudget)
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
		case "", PosBeforeChar, PosAfterChar, PosBeforeExamples, PosAfterExamples, PosAtDepth, PosANTop, PosANBottom, PosOutlet:
		default:
			return fmt.Errorf("lorebook: entry %d: position %q is not before_char, after_char, before_examples, after_examples or at_depth", i+1, e.Position)
		}
		switch e.SelectiveLogic {
		case "", LogicAndAny, LogicNotAll, LogicNotAny, LogicAndAll:
		default:
			return fmt.Errorf("lorebook: entry %d: selective_logic %q is not and_any, and_all, not_any or not_all", i+1, e.SelectiveLogic)
		}
		switch e.Role {
		case "", "system", "user", "assistant":
		default:
			return fmt.Errorf("lorebook: entry %d: role %q is not system, user or assistant", i+1, e.Role)
		}
		if e.Depth < 0 || e.Depth > MaxScanDepth {
			return fmt.Errorf("lorebook: entry %d: depth %d outside [0, %d]", i+1, e.Depth, MaxScanDepth)
		}
		if d := e.ScanDepth; d != nil && (*d < 0 || *d > MaxScanDepth) {
			return fmt.Errorf("lorebook: entry %d: scan_depth %d outside [0, %d]", i+1, *d, MaxScanDepth)
		}
		if p := e.Probability; p != nil && (*p < 0 || *p > 100) {
			return fmt.Errorf("lorebook: entry %d: probability %d outside [0, 100]", i+1, *p)
		}
		if w := e.GroupWeight; w != nil && (*w < 1 || *w > MaxGroupWeight) {
			return fmt.Errorf("lorebook: entry %d: group_weight %d outside [1, %d]", i+1, *w, MaxGroupWeight)
		}
		if len(e.Group) > MaxLoreKeyLen {
			return fmt.Errorf("lorebook: entry %d: group is %d bytes; the limit is %d", i+1, len(e.Group), MaxLoreKeyLen)
		}
		for _, f := range []struct {
			name string
			v    int
		}{{"sticky", e.Sticky}, {"cooldown", e.Cooldown}, {"delay", e.Delay}} {
			if f.v < 0 || f.v > MaxScanDepth {
				return fmt.Errorf("lorebook: entry %d: %s %d outside [0, %d]", i+1, f.name, f.v, MaxScanDepth)
			}
		}
	}
	return nil
}

// LoreInsert is lore that goes into the conversation itself: Content as
// a message of Role, Depth messages before its end.
type LoreInsert struct {
	Depth   int
	Role    string
	Content string
}

// Lore is what a lorebook puts into a prompt for one conversation.
type Lore struct {
	// BeforeChar and AfterChar go before and after the character's
	// definitions (the system prompt); BeforeExamples and AfterExamples
	// are example dialogue blocks before and after the character's own.
	// Each holds its entries' contents joined by newlines (the example
	// blocks as a list).
	BeforeChar, AfterChar         string
	BeforeExamples, AfterExamples []string
	// AtDepth are the entries that go into the conversation, those of the
	// same depth and role joined into one message, deepest first.
	AtDepth []LoreInsert
	// Entries are the indexes of the inserted entries, in insertion order.
	Entries []int
	// Tokens is what the inserted entries count (with the counter given).
	Tokens int
	// Overflow says whether the token budget left out an activated entry.
	Overflow bool
}

// Activate returns the lore that messages (the conversation's texts,
// oldest first) call up. expand, if not nil, expands the macros of keys and
// contents (Spec.Expand); count, if not nil, counts a text's tokens (the
// model's tokenizer) for the token budget; nil counts bytes, which is at
// least the tokens of byte-level tokenizers. The result depends on
// messages only (see Lorebook for the random draws and timed effects).
func (b *Lorebook) Activate(messages []string, expand func(string) string, count func(string) int) Lore {
	var out Lore
	if b == nil || len(b.Entries) == 0 {
		return out
	}
	if expand == nil {
		expand = func(s string) string { return s }
	}
	if count == nil {
		count = func(s string) int { return len(s) }
	}
	a := &activation{book: b, expand: expand, count: count, entries: make([]*loreState, len(b.Entries)), timed: make([]timedState, len(b.Entries))}
	timed := false
	for i, e := range b.Entries {
		if e.Disabled || strings.TrimSpace(e.Content) == "" {
			continue
		}
		a.entries[i] = b.compile(e, expand)
		timed = timed || e.Sticky > 0 || e.Cooldown > 0
	}
	// The seed of the evaluation at each length: a hash of the messages
	// up to it.
	n := len(messages)
	seeds := make([]uint64, n+1)
	h := fnv.New64a()
	seeds[0] = h.Sum64()
	for i, m := range messages {
		var l [8]byte
		binary.LittleEndian.PutUint64(l[:], uint64(len(m)))
		h.Write(l[:])
		h.Write([]byte(m))
		seeds[i+1] = h.Sum64()
	}
	if timed {
		// The earlier lengths share one time for regular expressions.
		deadline := time.Now().Add(LoreMatchTime)
		for L := max(1, n-LoreHistory); L < n; L++ {
			a.eval(messages[:L], seeds[L], deadline)
		}
	}
	taken, contents, overflow := a.eval(messages, seeds[n], time.Now().Add(LoreMatchTime))
	out.Overflow = overflow
	slices.SortStableFunc(taken, func(x, y int) int {
		if d := b.Entries[x].InsertionOrder - b.Entries[y].InsertionOrder; d != 0 {
			return d
		}
		return x - y
	})
	var bc, ac []string
	depthAt := map[[2]string]int{}
	for _, i := range taken {
		e, c := &b.Entries[i], contents[i]
		out.Entries = append(out.Entries, i)
		if b.TokenBudget > 0 {
			out.Tokens += count(c)
		}
		switch e.Position {
		case PosBeforeChar:
			bc = append(bc, c)
		case "", PosAfterChar:
			ac = append(ac, c)
		case PosBeforeExamples:
			out.BeforeExamples = append(out.BeforeExamples, c)
		case PosAfterExamples:
			out.AfterExamples = append(out.AfterExamples, c)
		case PosAtDepth:
			role := e.Role
			if role == "" {
				role = "system"
			}
			k := [2]string{fmt.Sprint(e.Depth), role}
			if j, ok := depthAt[k]; ok {
				out.AtDepth[j].Content += "\n" + c
			} else {
				depthAt[k] = len(out.AtDepth)
				out.AtDepth = append(out.AtDepth, LoreInsert{Depth: e.Depth, Role: role, Content: c})
			}
		}
	}
	slices.SortStableFunc(out.AtDepth, func(x, y LoreInsert) int { return y.Depth - x.Depth })
	out.BeforeChar, out.AfterChar = strings.Join(bc, "\n"), strings.Join(ac, "\n")
	return out
}

// activation is a book being evaluated along a conversation.
type activation struct {
	book    *Lorebook
	expand  func(string) string
	count   func(string) int
	entries []*loreState // compiled keys; nil for entries never inserted
	timed   []timedState
}

// timedState is an entry's timed effects after its last activation at a
// conversation length: sticky while the length is at most stickyUntil,
// cooling down (unless sticky) while it is at most coolUntil.
type timedState struct {
	set                    bool
	stickyUntil, coolUntil int
}

// eval evaluates the book on messages (the conversation up to some
// length), with random draws seeded by seed, and records the timed effects
// of what it inserts. It returns the inserted entries in the order taken,
// their expanded contents by index, and whether the budget left one out.
func (a *activation) eval(messages []string, seed uint64, deadline time.Time) (taken []int, contents []string, overflow bool) {
	b := a.book
	L := len(messages)
	sc := &scanner{book: b, messages: messages, texts: map[int]*scanText{}, deadline: deadline}
	sticky := make([]bool, len(b.Entries))
	blocked := make([]bool, len(b.Entries)) // cooling down or delayed
	for i, e := range b.Entries {
		t := a.timed[i]
		sticky[i] = t.set && L <= t.stickyUntil
		blocked[i] = !sticky[i] && (t.set && L <= t.coolUntil || L < e.Delay)
	}
	recursive := b.RecursiveScanning == nil || *b.RecursiveScanning
	var recursion []string // contents that the next pass scans
	active := make([]bool, len(b.Entries))
	failed := make([]bool, len(b.Entries)) // failed their probability
	contents = make([]string, len(b.Entries))
	used := 0
	for pass := 0; ; pass++ {
		var on []int
		for i, st := range a.entries {
			if st == nil || active[i] || failed[i] || blocked[i] {
				continue
			}
			e := &b.Entries[i]
			if e.Constant || sticky[i] {
				if pass == 0 {
					on = append(on, i)
				}
				continue
			}
			if pass == 0 && e.DelayUntilRecursion {
				continue
			}
			text := sc.text(e)
			if pass > 0 && !e.ExcludeRecursion {
				text = text.with(recursion)
			}
			if st.matches(sc, text) {
				on = append(on, i)
			}
		}
		if len(on) == 0 {
			break
		}
		// Under a budget: sticky entries first, then constant ones, then
		// the highest priority.
		slices.SortStableFunc(on, func(x, y int) int {
			if sticky[x] != sticky[y] {
				if sticky[x] {
					return -1
				}
				return 1
			}
			ex, ey := &b.Entries[x], &b.Entries[y]
			if ex.Constant != ey.Constant {
				if ex.Constant {
					return -1
				}
				return 1
			}
			return ey.rank() - ex.rank()
		})
		on = a.groups(on, active, sticky, seed, pass)
		var added []string
		for _, i := range on {
			e := &b.Entries[i]
			if p := e.Probability; p != nil && *p < 100 && !sticky[i] && !(draw(seed, uint64(i), 0)*100 < float64(*p)) {
				failed[i] = true
				continue
			}
			c := strings.TrimSpace(a.expand(e.Content))
			if b.TokenBudget > 0 {
				n := a.count(c)
				if used+n > b.TokenBudget {
					overflow = true
					break
				}
				used += n
			}
			active[i] = true
			contents[i] = c
			taken = append(taken, i)
			if !e.PreventRecursion {
				added = append(added, c)
			}
		}
		if overflow || !recursive || len(added) == 0 {
			break
		}
		recursion = append(recursion, added...)
	}
	for _, i := range taken {
		if e := &b.Entries[i]; !sticky[i] && (e.Sticky > 0 || e.Cooldown > 0) {
			a.timed[i] = timedState{set: true, stickyUntil: L + e.Sticky, coolUntil: L + e.Sticky + e.Cooldown}
		}
	}
	return taken, contents, overflow
}

// groups applies inclusion groups to on, the entries a pass activates (in
// budget order): of each group's entries, one stays (see Lorebook).
func (a *activation) groups(on []int, active, sticky []bool, seed uint64, pass int) []int {
	b := a.book
	var names []string
	members := map[string][]int{}
	for _, i := range on {
		for _, g := range groupNames(b.Entries[i].Group) {
			if _, ok := members[g]; !ok {
				names = append(names, g)
			}
			members[g] = append(members[g], i)
		}
	}
	if len(names) == 0 {
		return on
	}
	removed := map[int]bool{}
	for _, g := range names {
		var group []int
		for _, i := range members[g] {
			if !removed[i] {
				group = append(group, i)
			}
		}
		if len(group) == 0 {
			continue // its entries lost in another group
		}
		if slices.ContainsFunc(group, func(i int) bool { return sticky[i] }) {
			for _, i := range group {
				if !sticky[i] {
					removed[i] = true
				}
			}
			continue
		}
		keep := -1 // none of the group
		if !a.groupIn(g, active) {
			keep = a.choose(group, g, seed, pass)
		}
		for _, i := range group {
			if i != keep {
				removed[i] = true
			}
		}
	}
	return slices.DeleteFunc(on, func(i int) bool { return removed[i] })
}

// groupIn reports whether an entry of group g is already inserted.
func (a *activation) groupIn(g string, active []bool) bool {
	for j, e := range a.book.Entries {
		if active[j] && slices.Contains(groupNames(e.Group), g) {
			return true
		}
	}
	return false
}

// choose returns the entry that group g (its activated entries, not
// empty) keeps: the override entry of highest insertion order, else one
// drawn by weight.
func (a *activation) choose(group []int, g string, seed uint64, pass int) int {
	b := a.book
	keep := -1
	for _, i := range group {
		if e := &b.Entries[i]; e.GroupOverride && (keep < 0 || e.InsertionOrder > b.Entries[keep].InsertionOrder) {
			keep = i
		}
	}
	if keep >= 0 {
		return keep
	}
	if len(group) == 1 {
		return group[0]
	}
	total := 0
	for _, i := range group {
		total += b.Entries[i].groupWeight()
	}
	r := draw(seed, uint64(pass), 1, g) * float64(total)
	sum := 0
	for _, i := range group {
		sum += b.Entries[i].groupWeight()
		if r < float64(sum) {
			return i
		}
	}
	return group[len(group)-1]
}

// groupNames splits an entry's Group into its names.
func groupNames(g string) []string {
	var out []string
	for _, n := range strings.Split(g, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// groupWeight is the entry's weight in its groups' random choice.
func (e *LoreEntry) groupWeight() int {
	if e.GroupWeight != nil {
		return *e.GroupWeight
	}
	return DefaultGroupWeight
}

// draw is a number in [0, 1) determined by the evaluation's seed, what is
// drawn (kind: 0 an entry's probability, 1 a group's choice), an index
// (the entry, or the pass) and, for a group, its name.
func draw(seed, index, kind uint64, name ...string) float64 {
	h := fnv.New64a()
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], seed)
	binary.LittleEndian.PutUint64(b[8:], index)
	binary.LittleEndian.PutUint64(b[16:], kind)
	h.Write(b[:])
	for _, n := range name {
		h.Write([]byte(n))
	}
	return rand.New(rand.NewPCG(h.Sum64(), 0x6c6f7265)).Float64()
}

// rank is the entry's priority under a token budget.
func (e *LoreEntry) rank() int {
	if e.Priority != nil {
		return *e.Priority
	}
	return e.InsertionOrder
}

// scanner holds the texts an activation scans.
type scanner struct {
	book     *Lorebook
	messages []string
	texts    map[int]*scanText
	deadline time.Time
}

// scanText is a text to search, with its lower-case form.
type scanText struct {
	raw, lower string
}

// msgSep separates the scanned messages, so that no plain key matches
// across two of them.
const msgSep = "\x01"

// text is the chat text that entry e scans: its last scan-depth messages.
func (sc *scanner) text(e *LoreEntry) *scanText {
	depth := DefaultScanDepth
	if sc.book.ScanDepth != nil {
		depth = *sc.book.ScanDepth
	}
	if e.ScanDepth != nil {
		depth = *e.ScanDepth
	}
	depth = min(depth, len(sc.messages))
	if t, ok := sc.texts[depth]; ok {
		return t
	}
	raw := strings.Join(sc.messages[len(sc.messages)-depth:], msgSep)
	t := &scanText{raw: raw, lower: strings.ToLower(raw)}
	sc.texts[depth] = t
	return t
}

// with is t followed by the recursion texts.
func (t *scanText) with(more []string) *scanText {
	if len(more) == 0 {
		return t
	}
	raw := strings.Join(append([]string{t.raw}, more...), msgSep)
	return &scanText{raw: raw, lower: strings.ToLower(raw)}
}

// loreState is an entry's keys, ready to match.
type loreState struct {
	primary   []loreKey
	secondary []loreKey
	logic     string
}

// loreKey is one key: plain text or a regular expression.
type loreKey struct {
	text      string // plain: as written, or lower-cased
	fold      bool   // plain: compare lower-cased
	wholeWord bool   // plain: a single word, matched as a whole word
	re        *regexp2.Regexp
}

// compile prepares entry e's keys.
func (b *Lorebook) compile(e LoreEntry, expand func(string) string) *loreState {
	cs := b.CaseSensitive
	if e.CaseSensitive != nil {
		cs = *e.CaseSensitive
	}
	ww := b.MatchWholeWords == nil || *b.MatchWholeWords
	if e.MatchWholeWords != nil {
		ww = *e.MatchWholeWords
	}
	keys := func(ks []string) []loreKey {
		var out []loreKey
		for _, k := range ks {
			k = strings.TrimSpace(expand(k))
			if k == "" {
				continue
			}
			if re := parseRegexKey(k); re != nil {
				out = append(out, loreKey{re: re})
				continue
			}
			lk := loreKey{text: k, fold: !cs, wholeWord: ww && !strings.ContainsFunc(k, isSpace)}
			if lk.fold {
				lk.text = strings.ToLower(k)
			}
			out = append(out, lk)
		}
		return out
	}
	st := &loreState{primary: keys(e.Keys), logic: e.SelectiveLogic}
	if e.Selective {
		st.secondary = keys(e.SecondaryKeys)
	}
	return st
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v'
}

// parseRegexKey returns the regular expression of a key written
// /pattern/flags (JavaScript's syntax), or nil when the key is not one or
// does not compile.
func parseRegexKey(k string) *regexp2.Regexp {
	if len(k) < 3 || k[0] != '/' {
		return nil
	}
	end := strings.LastIndexByte(k, '/')
	if end <= 1 {
		return nil
	}
	pattern, flags := k[1:end], k[end+1:]
	opts := regexp2.RegexOptions(regexp2.ECMAScript)
	for _, f := range flags {
		switch f {
		case 'i':
			opts |= regexp2.IgnoreCase
		case 'm':
			opts |= regexp2.Multiline
		case 's':
			opts |= regexp2.Singleline
		case 'u', 'v':
			opts |= regexp2.Unicode
		case 'g', 'y', 'd':
		default:
			return nil
		}
	}
	// An unescaped slash ends a JavaScript regular expression literal:
	// such a key is not one.
	esc, class := false, false
	for _, c := range pattern {
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '[':
			class = true
		case c == ']':
			class = false
		case c == '/' && !class:
			return nil
		}
	}
	re, err := regexp2.Compile(pattern, opts)
	if err != nil {
		// The ECMAScript mode refuses some syntax that JavaScript takes
		// (lookbehind, named groups); try without it.
		if re, err = regexp2.Compile(pattern, opts&^regexp2.ECMAScript); err != nil {
			return nil
		}
	}
	return re
}

// matches reports whether the entry's keys activate it on t.
func (st *loreState) matches(sc *scanner, t *scanText) bool {
	if !slices.ContainsFunc(st.primary, func(k loreKey) bool { return sc.match(k, t) }) {
		return false
	}
	if len(st.secondary) == 0 {
		return true
	}
	n := 0
	for _, k := range st.secondary {
		if sc.match(k, t) {
			n++
		}
	}
	switch st.logic {
	case LogicAndAll:
		return n == len(st.secondary)
	case LogicNotAny:
		return n == 0
	case LogicNotAll:
		return n < len(st.secondary)
	}
	return n > 0
}

// match reports whether key k matches t.
func (sc *scanner) match(k loreKey, t *scanText) bool {
	if k.re != nil {
		left := time.Until(sc.deadline)
		if left <= 0 {
			return false
		}
		k.re.MatchTimeout = left
		ok, err := k.re.MatchString(t.raw)
		return err == nil && ok
	}
	s := t.raw
	if k.fold {
		s = t.lower
	}
	if !k.wholeWord {
		return strings.Contains(s, k.text)
	}
	for off := 0; ; {
		j := strings.Index(s[off:], k.text)
		if j < 0 {
			return false
		}
		j += off
		end := j + len(k.text)
		if (j == 0 || !isWordByte(s[j-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		off = j + 1
	}
}

// isWordByte is JavaScript's \w: an ASCII letter, digit or underscore.
func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
