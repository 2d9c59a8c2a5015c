package chattemplate

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Markers are built from supplementary private-use characters, which no
// string transform of a chat template (case mapping, trimming, JSON
// escaping with ensure_ascii=False) alters.
const (
	markStartOpen  = "\U000F0000"
	markStartClose = "\U000F0001"
	markEndOpen    = "\U000F0002"
	markEndClose   = "\U000F0003"
	sentinelOpen   = "\U000F0004"
	sentinelClose  = "\U000F0005"
	markerRunes    = "\U000F0000\U000F0001\U000F0002\U000F0003\U000F0004\U000F0005"
)

var sentinelRE = regexp.MustCompile(sentinelOpen + "([0-9]+)" + sentinelClose)

var markerRE = regexp.MustCompile("(" + markStartOpen + "|" + markEndOpen + ")([0-9]+)(" + markStartClose + "|" + markEndClose + ")")

// RenderSpans renders like Render and also returns, for each assistant
// message with non-empty string content, the byte ranges [Start, End) of
// the output that hold that content as the template rendered it (sorted by
// Start). Training code uses them to put the loss on assistant tokens only.
//
// The spans are found from the template, not guessed: the conversation is
// rendered once with a unique marker around each assistant content; if
// removing the markers gives back exactly the plain rendering, the markers
// give the spans. Templates that transform content (trim it, split off a
// <think> block, test how it starts) break that check; then the contents
// are located by rendering with each content replaced by a sentinel and
// aligning that rendering with the plain one: the template text between
// sentinels must recur in the plain rendering, and what lies between is the
// rendered content (when that text also occurs inside the content, the
// content itself or its trimmed form is preferred, else the first
// occurrence). Contents that cannot be aligned this way are located one at
// a time, comparing the plain rendering with one where only that content is
// a sentinel: the span is then the part of the plain rendering that depends
// on the content. A message whose content does not appear in the
// output gets no span; content that is rendered transformed beyond
// recognition, or more than once in a way markers cannot resolve, is an
// error.
func (t *Template) RenderSpans(msgs []Message, opt Options) (string, []Span, error) {
	plain, err := t.Render(msgs, opt)
	if err != nil {
		return "", nil, err
	}
	var targets []int
	contents := map[int]string{}
	for i, m := range msgs {
		role := m.Role
		if r, ok := m.Fields["role"].(string); ok {
			role = r
		}
		if role != "assistant" {
			continue
		}
		c, ok := messageContent(m)
		if ok && c != "" {
			targets = append(targets, i)
			contents[i] = c
		}
	}
	if len(targets) == 0 {
		return plain, nil, nil
	}
	if !strings.ContainsAny(plain, markerRunes) {
		if spans, ok := t.markerSpans(msgs, opt, plain, targets, contents); ok {
			return plain, spans, nil
		}
	}
	spans, rest := t.alignSpans(msgs, opt, plain, targets, contents)
	for _, i := range rest {
		s, err := t.diffSpan(msgs, opt, plain, i)
		if err != nil {
			return "", nil, err
		}
		spans = append(spans, s...)
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].Start < spans[b].Start })
	return plain, spans, nil
}

// messageContent returns the content the template sees for m, if it is a
// string.
func messageContent(m Message) (string, bool) {
	if v, ok := m.Fields["content"]; ok {
		s, isStr := v.(string)
		return s, isStr
	}
	return m.Content, true
}

func (t *Template) markerSpans(msgs []Message, opt Options, plain string, targets []int, contents map[int]string) ([]Span, bool) {
	override := map[int]any{}
	for _, i := range targets {
		n := strconv.Itoa(i)
		override[i] = markStartOpen + n + markStartClose + contents[i] + markEndOpen + n + markEndClose
	}
	marked, err := t.render(msgs, override, opt)
	if err != nil {
		return nil, false
	}
	var out strings.Builder
	var spans []Span
	open := -1 // message whose start marker was seen last
	openAt := 0
	last := 0
	for _, m := range markerRE.FindAllStringSubmatchIndex(marked, -1) {
		out.WriteString(marked[last:m[0]])
		last = m[1]
		kind := marked[m[2]:m[3]]
		closer := marked[m[6]:m[7]]
		idx, err := strconv.Atoi(marked[m[4]:m[5]])
		if err != nil || override[idx] == nil {
			return nil, false
		}
		if kind == markStartOpen {
			if closer != markStartClose || open >= 0 {
				return nil, false
			}
			open, openAt = idx, out.Len()
			continue
		}
		if closer != markEndClose || open != idx {
			return nil, false
		}
		spans = append(spans, Span{Message: idx, Start: openAt, End: out.Len()})
		open = -1
	}
	out.WriteString(marked[last:])
	if open >= 0 || out.String() != plain || strings.ContainsAny(out.String(), markerRunes) {
		return nil, false
	}
	return spans, true
}

// alignSpans renders once with every target content replaced by a
// sentinel, then walks the plain rendering and the sentinel rendering
// together: the template text between sentinels must appear in the plain
// rendering in the same order, and what lies between is the rendered
// content. It returns the spans it could place and the messages left for
// diffSpan.
func (t *Template) alignSpans(msgs []Message, opt Options, plain string, targets []int, contents map[int]string) ([]Span, []int) {
	override := map[int]any{}
	for _, i := range targets {
		override[i] = sentinelOpen + strconv.Itoa(i) + sentinelClose
	}
	b, err := t.render(msgs, override, opt)
	if err != nil {
		return nil, targets
	}
	locs := sentinelRE.FindAllStringSubmatchIndex(b, -1)
	var ids []int
	seen := map[int]bool{}
	for _, l := range locs {
		id, _ := strconv.Atoi(b[l[2]:l[3]])
		if seen[id] || override[id] == nil {
			return nil, targets // a content rendered twice: let diffSpan report it
		}
		seen[id] = true
		ids = append(ids, id)
	}
	var rest []int
	for _, i := range targets {
		if !seen[i] {
			rest = append(rest, i)
		}
	}
	segs := make([]string, len(locs)+1)
	prev := 0
	for k, l := range locs {
		segs[k] = b[prev:l[0]]
		prev = l[1]
	}
	segs[len(locs)] = b[prev:]
	if !strings.HasPrefix(plain, segs[0]) {
		return nil, targets
	}
	var spans []Span
	pos := len(segs[0])
	for k, id := range ids {
		next := segs[k+1]
		q := -1
		if k+1 == len(ids) {
			if strings.HasSuffix(plain, next) && len(plain)-len(next) >= pos {
				q = len(plain) - len(next)
			}
		} else if next != "" {
			for _, c := range []string{contents[id], strings.TrimSpace(contents[id])} {
				if strings.HasPrefix(plain[pos:], c) && strings.HasPrefix(plain[pos+len(c):], next) {
					q = pos + len(c)
					break
				}
			}
			if q < 0 {
				if j := strings.Index(plain[pos:], next); j >= 0 {
					q = pos + j
				}
			}
		}
		if q < 0 {
			return spans, append(rest, ids[k:]...)
		}
		spans = append(spans, Span{Message: id, Start: pos, End: q})
		pos = q + len(next)
	}
	return spans, rest
}

func (t *Template) diffSpan(msgs []Message, opt Options, plain string, i int) ([]Span, error) {
	sentinel := sentinelOpen + strconv.Itoa(i) + sentinelClose
	b, err := t.render(msgs, map[int]any{i: sentinel}, opt)
	if err != nil {
		return nil, &Error{Source: t.name, Msg: fmt.Sprintf("locating the content of message %d: %v", i, err)}
	}
	switch strings.Count(b, sentinel) {
	case 0:
		if b == plain {
			return nil, nil // the template does not render this content
		}
		return nil, &Error{Source: t.name, Msg: fmt.Sprintf("cannot locate the content of message %d in the rendering: the template transforms it", i)}
	case 1:
	default:
		return nil, &Error{Source: t.name, Msg: fmt.Sprintf("the content of message %d is rendered %d times in a form that cannot be delimited", i, strings.Count(b, sentinel))}
	}
	p := strings.Index(b, sentinel)
	prefix, suffix := b[:p], b[p+len(sentinel):]
	if strings.HasPrefix(plain, prefix) && strings.HasSuffix(plain, suffix) && len(prefix)+len(suffix) <= len(plain) {
		return []Span{{Message: i, Start: len(prefix), End: len(plain) - len(suffix)}}, nil
	}
	// The template renders around the content differently for the sentinel
	// (e.g. it splits off a reasoning block): take the part of the plain
	// rendering between the longest common prefix and suffix.
	lcp := 0
	for lcp < len(prefix) && lcp < len(plain) && plain[lcp] == prefix[lcp] {
		lcp++
	}
	for lcp > 0 && lcp < len(plain) && !utf8.RuneStart(plain[lcp]) {
		lcp--
	}
	lcs := 0
	for lcs < len(suffix) && lcs < len(plain)-lcp && plain[len(plain)-1-lcs] == suffix[len(suffix)-1-lcs] {
		lcs++
	}
	for lcs > 0 && !utf8.RuneStart(plain[len(plain)-lcs]) {
		lcs--
	}
	if lcp >= len(plain)-lcs {
		return nil, nil
	}
	return []Span{{Message: i, Start: lcp, End: len(plain) - lcs}}, nil
}
