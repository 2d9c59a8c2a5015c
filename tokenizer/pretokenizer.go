package tokenizer

import (
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// piece is a part of the input during pre-tokenization. first reports that the piece
// starts at offset 0 of the original input (used by Metaspace prepend_scheme "first").
// raw reports that s still has to be mapped to the byte-level alphabet: the ByteLevel
// pre-tokenizer defers the mapping so that the model cache can be looked up without
// building the mapped string; any later pre-tokenizer maps the pieces first.
type piece struct {
	s     string
	first bool
	raw   bool
}

// materialize applies a deferred byte-level mapping.
func materialize(in []piece) []piece {
	for i := range in {
		if in[i].raw {
			in[i].s = byteLevelEncode(in[i].s)
			in[i].raw = false
		}
	}
	return in
}

// preTokenizer splits pieces into smaller pieces (and may transform them).
type preTokenizer func(in []piece) []piece

type preJSON struct {
	Type             string            `json:"type"`
	Pretokenizers    []json.RawMessage `json:"pretokenizers"`
	Pattern          *patternJSON      `json:"pattern"`
	Behavior         string            `json:"behavior"`
	Invert           bool              `json:"invert"`
	AddPrefixSpace   *bool             `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Replacement      *string           `json:"replacement"`
	PrependScheme    *string           `json:"prepend_scheme"`
	Split            *bool             `json:"split"`
	IndividualDigits bool              `json:"individual_digits"`
	Delimiter        *string           `json:"delimiter"`
}

type behavior int

const (
	bIsolated behavior = iota
	bRemoved
	bMergedWithPrevious
	bMergedWithNext
	bContiguous
)

func parseBehavior(s string) (behavior, bool) {
	switch s {
	case "Isolated":
		return bIsolated, true
	case "Removed":
		return bRemoved, true
	case "MergedWithPrevious":
		return bMergedWithPrevious, true
	case "MergedWithNext":
		return bMergedWithNext, true
	case "Contiguous":
		return bContiguous, true
	}
	return 0, false
}

// gpt2Pattern is the regex of the ByteLevel pre-tokenizer (use_regex: true).
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

func parsePreTokenizer(raw json.RawMessage, perr func(string, ...any) error) (preTokenizer, error) {
	return parsePre(raw, perr, 0)
}

func parsePre(raw json.RawMessage, perr func(string, ...any) error, depth int) (preTokenizer, error) {
	f, err := parsePreType(raw, perr, depth)
	if f == nil || err != nil {
		return f, err
	}
	var p typed
	_ = json.Unmarshal(raw, &p)
	if p.Type == "Sequence" || p.Type == "ByteLevel" {
		return f, nil // these handle raw pieces themselves
	}
	return func(in []piece) []piece { return f(materialize(in)) }, nil
}

func parsePreType(raw json.RawMessage, perr func(string, ...any) error, depth int) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > 32 {
		return nil, perr("pre_tokenizer nested too deeply")
	}
	var p preJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, perr("bad pre_tokenizer: %v", err)
	}
	switch p.Type {
	case "Sequence":
		var list []preTokenizer
		for _, sub := range p.Pretokenizers {
			f, err := parsePre(sub, perr, depth+1)
			if err != nil {
				return nil, err
			}
			if f != nil {
				list = append(list, f)
			}
		}
		if len(list) == 0 {
			return nil, nil
		}
		return func(in []piece) []piece {
			for _, f := range list {
				in = f(in)
			}
			return in
		}, nil
	case "Split":
		beh, ok := parseBehavior(p.Behavior)
		if !ok {
			return nil, perr("pre_tokenizer Split: unknown behavior %q", p.Behavior)
		}
		if p.Pattern == nil {
			return nil, perr("pre_tokenizer Split: missing \"pattern\"")
		}
		var find func(string) [][2]int
		switch {
		case p.Pattern.Regex != nil:
			re, err := compileRegex(*p.Pattern.Regex)
			if err != nil {
				return nil, perr("pre_tokenizer Split: %v", err)
			}
			find = re.find
		case p.Pattern.String != nil:
			lit := *p.Pattern.String
			find = func(s string) [][2]int { return findLiteral(s, lit) }
		default:
			return nil, perr("pre_tokenizer Split: pattern needs \"String\" or \"Regex\"")
		}
		invert := p.Invert
		return func(in []piece) []piece {
			out := make([]piece, 0, len(in)*4)
			for _, pc := range in {
				out = splitPiece(out, pc, find(pc.s), beh, invert)
			}
			return out
		}, nil
	case "ByteLevel":
		addPrefix, useRegex := true, true
		if p.AddPrefixSpace != nil {
			addPrefix = *p.AddPrefixSpace
		}
		if p.UseRegex != nil {
			useRegex = *p.UseRegex
		}
		var re *regex
		if useRegex {
			var err error
			if re, err = compileRegex(gpt2Pattern); err != nil {
				return nil, perr("pre_tokenizer ByteLevel: %v", err)
			}
		}
		return func(in []piece) []piece {
			in = materialize(in)
			out := make([]piece, 0, len(in)*4)
			for _, pc := range in {
				if addPrefix && !strings.HasPrefix(pc.s, " ") {
					pc.s = " " + pc.s
				}
				start := len(out)
				if re != nil {
					out = splitPiece(out, pc, re.find(pc.s), bIsolated, false)
				} else if pc.s != "" {
					out = append(out, pc)
				}
				for i := start; i < len(out); i++ {
					out[i].raw = true
				}
			}
			return out
		}, nil
	case "Metaspace":
		m, err := parseMetaspace(&p, perr)
		if err != nil {
			return nil, err
		}
		return m.preTokenize, nil
	case "Digits":
		individual := p.IndividualDigits
		return func(in []piece) []piece {
			var out []piece
			for _, pc := range in {
				spans := findChars(pc.s, unicode.IsNumber)
				if individual {
					out = splitPiece(out, pc, spans, bIsolated, false)
				} else {
					out = splitPiece(out, pc, spans, bContiguous, false)
				}
			}
			return out
		}, nil
	case "Whitespace":
		return func(in []piece) []piece {
			var out []piece
			for _, pc := range in {
				out = splitPiece(out, pc, findWhitespaceWords(pc.s), bRemoved, true)
			}
			return out
		}, nil
	case "WhitespaceSplit":
		return splitOnChars(unicode.IsSpace, bRemoved), nil
	case "Punctuation":
		beh := bIsolated
		if p.Behavior != "" {
			var ok bool
			if beh, ok = parseBehavior(p.Behavior); !ok {
				return nil, perr("pre_tokenizer Punctuation: unknown behavior %q", p.Behavior)
			}
		}
		return splitOnChars(isPunc, beh), nil
	case "BertPreTokenizer":
		ws := splitOnChars(unicode.IsSpace, bRemoved)
		pu := splitOnChars(isPunc, bIsolated)
		return func(in []piece) []piece { return pu(ws(in)) }, nil
	case "CharDelimiterSplit":
		if p.Delimiter == nil || utf8.RuneCountInString(*p.Delimiter) != 1 {
			return nil, perr("pre_tokenizer CharDelimiterSplit: \"delimiter\" must be one character")
		}
		d, _ := utf8.DecodeRuneInString(*p.Delimiter)
		return splitOnChars(func(r rune) bool { return r == d }, bRemoved), nil
	case "":
		return nil, perr("pre_tokenizer has no \"type\"")
	default:
		return nil, perr("unsupported pre_tokenizer type %q", p.Type)
	}
}

// isPunc is ASCII punctuation or a Unicode punctuation (P*) character.
func isPunc(r rune) bool {
	if r < 0x80 {
		return strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r)
	}
	return unicode.IsPunct(r)
}

func splitOnChars(pred func(rune) bool, beh behavior) preTokenizer {
	return func(in []piece) []piece {
		var out []piece
		for _, pc := range in {
			out = splitPiece(out, pc, findChars(pc.s, pred), beh, false)
		}
		return out
	}
}

// findChars returns one span per character that satisfies pred.
func findChars(s string, pred func(rune) bool) [][2]int {
	var out [][2]int
	for i, r := range s {
		if pred(r) {
			out = append(out, [2]int{i, i + utf8.RuneLen(r)})
		}
	}
	return out
}

// findLiteral returns the spans of the non-overlapping occurrences of lit in s.
func findLiteral(s, lit string) [][2]int {
	if lit == "" {
		return nil
	}
	var out [][2]int
	for i := 0; ; {
		j := strings.Index(s[i:], lit)
		if j < 0 {
			return out
		}
		out = append(out, [2]int{i + j, i + j + len(lit)})
		i += j + len(lit)
	}
}

func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.IsMark(r) ||
		unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r) || r == '\u200c' || r == '\u200d'
}

// findWhitespaceWords finds the matches of `\w+|[^\w\s]+`.
func findWhitespaceWords(s string) [][2]int {
	var out [][2]int
	for i := 0; i < len(s); {
		r, n := decodeRune(s, i)
		if unicode.IsSpace(r) {
			i += n
			continue
		}
		w := isWordChar(r)
		j := i + n
		for j < len(s) {
			r2, n2 := decodeRune(s, j)
			if unicode.IsSpace(r2) || isWordChar(r2) != w {
				break
			}
			j += n2
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

type span struct {
	a, b int
	m    bool
}

// splitPiece splits pc at the given match spans (sorted, non-overlapping) with the
// Hugging Face SplitDelimiterBehavior semantics and appends the non-empty results.
func splitPiece(out []piece, pc piece, matches [][2]int, beh behavior, invert bool) []piece {
	if pc.s == "" {
		return out
	}
	if len(matches) == 0 && !invert {
		return append(out, pc)
	}
	if beh == bIsolated && !invert {
		prev := 0
		for _, m := range matches {
			if m[0] > prev {
				out = append(out, piece{s: pc.s[prev:m[0]], first: pc.first && prev == 0})
			}
			if m[1] > m[0] {
				out = append(out, piece{s: pc.s[m[0]:m[1]], first: pc.first && m[0] == 0})
			}
			prev = m[1]
		}
		if prev < len(pc.s) {
			out = append(out, piece{s: pc.s[prev:], first: pc.first && prev == 0})
		}
		return out
	}
	segs := make([]span, 0, 2*len(matches)+1)
	prev := 0
	for _, m := range matches {
		if m[0] > prev {
			segs = append(segs, span{prev, m[0], false})
		}
		segs = append(segs, span{m[0], m[1], true})
		prev = m[1]
	}
	if prev < len(pc.s) {
		segs = append(segs, span{prev, len(pc.s), false})
	}
	if invert {
		for i := range segs {
			segs[i].m = !segs[i].m
		}
	}
	var res []span
	switch beh {
	case bIsolated:
		res = segs
	case bRemoved:
		for _, s := range segs {
			if !s.m {
				res = append(res, s)
			}
		}
	case bContiguous:
		prevM := false
		for _, s := range segs {
			if s.m == prevM && len(res) > 0 {
				res[len(res)-1].b = s.b
			} else {
				res = append(res, s)
			}
			prevM = s.m
		}
	case bMergedWithPrevious:
		prevM := false
		for _, s := range segs {
			if s.m && !prevM && len(res) > 0 {
				res[len(res)-1].b = s.b
			} else {
				res = append(res, s)
			}
			prevM = s.m
		}
	case bMergedWithNext:
		prevM := false
		for i := len(segs) - 1; i >= 0; i-- {
			s := segs[i]
			if s.m && !prevM && len(res) > 0 {
				res[len(res)-1].a = s.a
			} else {
				res = append(res, s)
			}
			prevM = s.m
		}
		for i, j := 0, len(res)-1; i < j; i, j = i+1, j-1 {
			res[i], res[j] = res[j], res[i]
		}
	}
	for _, s := range res {
		if s.b > s.a {
			out = append(out, piece{s: pc.s[s.a:s.b], first: pc.first && s.a == 0})
		}
	}
	return out
}

// ---- byte-level alphabet ----

var (
	byteToRune [256]rune
	byteToStr  [256]string
	runeToByte [0x144]int16 // byte-level character -> byte, or -1
)

func init() {
	var bs []int
	for b := '!'; b <= '~'; b++ {
		bs = append(bs, int(b))
	}
	for b := 0xA1; b <= 0xAC; b++ {
		bs = append(bs, b)
	}
	for b := 0xAE; b <= 0xFF; b++ {
		bs = append(bs, b)
	}
	in := map[int]bool{}
	for _, b := range bs {
		in[b] = true
		byteToRune[b] = rune(b)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !in[b] {
			byteToRune[b] = rune(256 + n)
			n++
		}
	}
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	for b := 0; b < 256; b++ {
		byteToStr[b] = string(byteToRune[b])
		runeToByte[byteToRune[b]] = int16(b)
	}
}

// byteLevelEncode maps every byte of s to its byte-level alphabet character.
func byteLevelEncode(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteString(byteToStr[s[i]])
	}
	return b.String()
}

// byteLevelDecode maps a byte-level token back to bytes; a token that contains a
// character outside the alphabet is returned unchanged (as Hugging Face does).
func byteLevelDecode(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		if r < 0 || int(r) >= len(runeToByte) || runeToByte[r] < 0 {
			return append(dst[:start], tok...)
		}
		dst = append(dst, byte(runeToByte[r]))
	}
	return dst
}

func decodeRune(s string, i int) (rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// ---- Metaspace ----

type metaspace struct {
	repl    rune
	str     string
	prepend string // "always", "first" or "never"
	split   bool
}

func parseMetaspace(p *preJSON, perr func(string, ...any) error) (*metaspace, error) {
	m := &metaspace{repl: '▁', str: "▁", prepend: "always", split: true}
	if p.Replacement != nil {
		if utf8.RuneCountInString(*p.Replacement) != 1 {
			return nil, perr("Metaspace: \"replacement\" must be one character, got %q", *p.Replacement)
		}
		m.repl, _ = utf8.DecodeRuneInString(*p.Replacement)
		m.str = *p.Replacement
	}
	if p.PrependScheme != nil {
		switch *p.PrependScheme {
		case "always", "first", "never":
			m.prepend = *p.PrependScheme
		default:
			return nil, perr("Metaspace: unknown prepend_scheme %q", *p.PrependScheme)
		}
	}
	if p.AddPrefixSpace != nil && !*p.AddPrefixSpace {
		if p.PrependScheme != nil && *p.PrependScheme != "never" {
			return nil, perr("Metaspace: add_prefix_space false does not match prepend_scheme %q", *p.PrependScheme)
		}
		m.prepend = "never"
	}
	if p.Split != nil {
		m.split = *p.Split
	}
	return m, nil
}

func (m *metaspace) preTokenize(in []piece) []piece {
	var out []piece
	for _, pc := range in {
		s := strings.ReplaceAll(pc.s, " ", m.str)
		if !strings.HasPrefix(s, m.str) && (m.prepend == "always" || (m.prepend == "first" && pc.first)) {
			s = m.str + s
		}
		pc.s = s
		if m.split {
			out = splitPiece(out, pc, findLiteral(s, m.str), bMergedWithNext, false)
		} else if s != "" {
			out = append(out, pc)
		}
	}
	return out
}
