package voices

import (
	"hash/fnv"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// words counts whitespace-separated words: the unit of every budget and count.
func words(s string) int { return len(strings.Fields(s)) }

var spaceRun = regexp.MustCompile(`[ \t\r\f\v\x{00a0}]+`)

// squash collapses runs of blanks (not newlines) into one space and trims.
func squash(s string) string { return strings.TrimSpace(spaceRun.ReplaceAllString(s, " ")) }

// paragraphs splits plain text at blank lines. Inside a paragraph, lines are
// joined with one space, except in a verse block (every line indented by at
// least four spaces, as quotations of poetry are in the dictionaries), whose
// line breaks are kept.
func paragraphs(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var out []string
	for _, block := range regexp.MustCompile(`\n[ \t]*\n`).Split(s, -1) {
		lines := strings.Split(block, "\n")
		verse := len(lines) > 1
		var keep []string
		for _, l := range lines {
			if strings.TrimSpace(l) == "" {
				continue
			}
			if !strings.HasPrefix(l, "    ") {
				verse = false
			}
			keep = append(keep, squash(l))
		}
		if len(keep) == 0 {
			continue
		}
		sep := " "
		if verse {
			sep = "\n"
		}
		out = append(out, strings.Join(keep, sep))
	}
	return out
}

// sentenceEnd finds sentence boundaries: ., ! or ? (optionally followed by
// closing quotes or brackets) then a space and an upper-case letter, digit or
// opening quote. Abbreviations such as "Mr." or "v. t." are protected by the
// upper-case requirement only in part; a wrong cut inside a long paragraph
// costs nothing but a slightly odd passage edge.
var sentenceEnd = regexp.MustCompile(`[.!?][”’"')\]]*\s+`)

var abbrev = map[string]bool{"mr": true, "mrs": true, "dr": true, "st": true, "messrs": true, "rev": true, "gen": true,
	"col": true, "capt": true, "hon": true, "gov": true, "sen": true, "jr": true, "sr": true, "no": true, "vol": true,
	"viz": true, "cf": true, "e.g": true, "i.e": true, "etc": true, "vs": true, "ch": true, "ver": true, "u.s": true}

// sentences splits a paragraph into sentences.
func sentences(p string) []string {
	var out []string
	start := 0
	for _, m := range sentenceEnd.FindAllStringIndex(p, -1) {
		if m[1] >= len(p) {
			break
		}
		next := []rune(p[m[1]:])[0]
		if !(unicode.IsUpper(next) || unicode.IsDigit(next) || strings.ContainsRune("“‘\"'(", next)) {
			continue
		}
		// the word before the period
		w := p[start:m[0]]
		if i := strings.LastIndexAny(w, " \n(“\""); i >= 0 {
			w = w[i+1:]
		}
		if p[m[0]] == '.' && (abbrev[strings.ToLower(w)] || (len([]rune(w)) == 1 && unicode.IsUpper([]rune(w)[0]))) {
			continue
		}
		out = append(out, strings.TrimSpace(p[start:m[1]]))
		start = m[1]
	}
	if rest := strings.TrimSpace(p[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// cut packs paragraphs into passages of at most max words. Paragraphs stay
// whole where they fit (joined by sep, normally a blank line); a longer
// paragraph is cut at sentence boundaries, and a sentence longer than max at
// word boundaries.
func cut(paras []string, max int, sep string) []string {
	// pieces: (text, glue before it)
	type piece struct {
		text string
		sep  string
	}
	var pieces []piece
	for _, p := range paras {
		if words(p) <= max {
			pieces = append(pieces, piece{p, sep})
			continue
		}
		for i, s := range sentences(p) {
			glue := " "
			if i == 0 {
				glue = sep
			}
			for words(s) > max {
				f := strings.Fields(s)
				pieces = append(pieces, piece{strings.Join(f[:max], " "), glue})
				s = strings.Join(f[max:], " ")
				glue = " "
			}
			pieces = append(pieces, piece{s, glue})
		}
	}
	var out []string
	var cur strings.Builder
	n := 0
	for _, pc := range pieces {
		w := words(pc.text)
		if n > 0 && n+w > max {
			out = append(out, cur.String())
			cur.Reset()
			n = 0
		}
		if n > 0 {
			cur.WriteString(pc.sep)
		}
		cur.WriteString(pc.text)
		n += w
	}
	if n > 0 {
		out = append(out, cur.String())
	}
	return out
}

// hash64 is the deterministic hash behind every seeded choice: FNV-1a of the
// seed and the parts, separated by NUL.
func hash64(seed int64, parts ...string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(uint64(seed) >> (8 * i))
	}
	h.Write(b[:])
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	// FNV's low bits mix poorly for short inputs: finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// stopwords are left out of topic words: common English function words, the
// archaic forms of scripture and sermon, and words too general to say what a
// passage is about.
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all almost also although always am among an and
	another any anyone anything are around as at away back be became because become becomes been before being below
	between both but by came can cannot could did do does doing done down during each either else enough even ever
	every few for from further get gets getting give given go goes going gone got great had has have having he her here
	hers herself him himself his how however i if in into is it its itself just keep know known last least less let
	like made make makes many may me might more most much must my myself never new no nor not now of off often on once
	one only or other others our ours ourselves out over own part per perhaps put rather said same say says see seen
	shall she should since so some something still such take than that the their theirs them themselves then there
	therefore these they thing things this those though through thus to too toward towards under until up upon us
	used very was way we well were what whatever when where whether which while who whom whose why will with within
	without would yet you your yours yourself yourselves first second two three four five six seven eight nine ten
	hundred thousand year years time times day days also upon unto thee thou thy thine ye hath doth art shalt wilt
	hast dost didst canst saith unto thereof therein whereof wherefore hither thither hence thence whence lo behold
	o oh yea nay verily ought mr mrs make made us am upon also shall said say people man men sir come came let every
	new mean means used use using called call see etc especially usually sometimes often verse verses psalm`) {
		m[w] = true
	}
	return m
}()

var wordRE = regexp.MustCompile(`[\p{L}][\p{L}'’-]*[\p{L}]`)

// topicWords returns up to k salient content words of the texts: the words
// (lower-cased, possessive 's dropped) of three letters or more that are not
// stopwords, ordered by frequency, ties broken by first appearance.
func topicWords(k int, texts ...string) []string {
	count := map[string]int{}
	first := map[string]int{}
	pos := 0
	for _, t := range texts {
		for _, w := range wordRE.FindAllString(t, -1) {
			w = strings.ToLower(w)
			w = strings.TrimSuffix(strings.TrimSuffix(w, "'s"), "’s")
			w = strings.Trim(w, "'’-")
			if len([]rune(w)) < 3 || stopwords[w] {
				continue
			}
			if _, ok := first[w]; !ok {
				first[w] = pos
			}
			count[w]++
			pos++
		}
	}
	ws := make([]string, 0, len(count))
	for w := range count {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool {
		if count[ws[i]] != count[ws[j]] {
			return count[ws[i]] > count[ws[j]]
		}
		return first[ws[i]] < first[ws[j]]
	})
	if len(ws) > k {
		ws = ws[:k]
	}
	return ws
}

// andList joins words as "a", "a and b", "a, b and c".
func andList(ws []string) string {
	switch len(ws) {
	case 0:
		return ""
	case 1:
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " and " + ws[len(ws)-1]
}

// slug makes an id component: lower case, runs of anything but letters and
// digits turned into one '-'.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}
