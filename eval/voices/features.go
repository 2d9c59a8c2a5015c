package voices

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Features says which n-grams the classifier counts and how they are
// hashed. Every feature is hashed (64-bit FNV-1a of a kind byte and its
// bytes) into one of Buckets buckets.
//
// Words: the text is lower-cased and cut into tokens: runs of letters,
// digits and marks (with apostrophes inside a word kept, so "don't" is one
// token), and every other non-space character alone. Word n-grams are runs
// of WordMin..WordMax consecutive tokens.
//
// Characters: white space runs become one space, the text (case kept) is
// padded with a space at both ends, and every run of CharMin..CharMax
// consecutive characters is a feature.
type Features struct {
	WordMin int `json:"word_min"`
	WordMax int `json:"word_max"`
	CharMin int `json:"char_min"`
	CharMax int `json:"char_max"`
	// Buckets is the size of the hash space, a power of two.
	Buckets int `json:"buckets"`
}

// DefaultFeatures are word uni- and bigrams and character 3- to 5-grams
// hashed into 2^20 buckets.
var DefaultFeatures = Features{WordMin: 1, WordMax: 2, CharMin: 3, CharMax: 5, Buckets: 1 << 20}

func (f Features) validate() error {
	switch {
	case f.Buckets < 2 || f.Buckets&(f.Buckets-1) != 0 || f.Buckets > 1<<30:
		return fmt.Errorf("voices: the hash space must be a power of two between 2 and 2^30, not %d", f.Buckets)
	case f.WordMin < 0 || f.WordMax < f.WordMin || f.WordMax > 8:
		return fmt.Errorf("voices: word n-gram range %d..%d is not valid (0 ≤ min ≤ max ≤ 8; 0..0: none)", f.WordMin, f.WordMax)
	case f.CharMin < 0 || f.CharMax < f.CharMin || f.CharMax > 16:
		return fmt.Errorf("voices: character n-gram range %d..%d is not valid (0 ≤ min ≤ max ≤ 16; 0..0: none)", f.CharMin, f.CharMax)
	case f.WordMax == 0 && f.CharMax == 0:
		return fmt.Errorf("voices: no features: both n-gram ranges are empty")
	}
	return nil
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// extractor turns texts into bucket ids, reusing its buffers. Not safe for
// concurrent use.
type extractor struct {
	f     Features
	mask  uint64
	words [][]byte
	buf   []byte
	offs  []int
	out   []uint32
}

func newExtractor(f Features) *extractor {
	return &extractor{f: f, mask: uint64(f.Buckets - 1)}
}

func (e *extractor) bucket(h uint64) uint32 {
	h ^= h >> 29
	return uint32(h & e.mask)
}

// extract returns the bucket of every feature occurrence of text (the
// slice is reused by the next call).
func (e *extractor) extract(text string) []uint32 {
	e.out = e.out[:0]
	if e.f.WordMax > 0 {
		e.wordFeatures(text)
	}
	if e.f.CharMax > 0 {
		e.charFeatures(text)
	}
	return e.out
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// tokenize fills e.words with the lower-cased word tokens of text (they
// point into e.buf).
func (e *extractor) tokenize(text string) {
	e.words = e.words[:0]
	e.buf = e.buf[:0]
	starts := e.offs[:0]
	inWord := false
	var prev rune
	for i, r := range text {
		switch {
		case isWordRune(r):
			if !inWord {
				starts = append(starts, len(e.buf))
				inWord = true
			}
			e.buf = utf8.AppendRune(e.buf, unicode.ToLower(r))
		case (r == '\'' || r == '’') && inWord && isWordRune(prev) && i+utf8.RuneLen(r) < len(text) && nextIsWord(text[i+utf8.RuneLen(r):]):
			e.buf = append(e.buf, '\'')
		case unicode.IsSpace(r):
			if inWord {
				starts = append(starts, len(e.buf))
				inWord = false
			}
		default:
			if inWord {
				starts = append(starts, len(e.buf))
				inWord = false
			}
			starts = append(starts, len(e.buf))
			e.buf = utf8.AppendRune(e.buf, r)
			starts = append(starts, len(e.buf))
		}
		prev = r
	}
	if inWord {
		starts = append(starts, len(e.buf))
	}
	for i := 0; i+1 < len(starts); i += 2 {
		e.words = append(e.words, e.buf[starts[i]:starts[i+1]])
	}
	e.offs = starts
}

func nextIsWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordRune(r)
}

func (e *extractor) wordFeatures(text string) {
	e.tokenize(text)
	for n := max(e.f.WordMin, 1); n <= e.f.WordMax; n++ {
		for i := 0; i+n <= len(e.words); i++ {
			h := uint64(fnvOffset)
			h = (h ^ uint64('w')) * fnvPrime
			h = (h ^ uint64(n)) * fnvPrime
			for k := i; k < i+n; k++ {
				if k > i {
					h = (h ^ 0x1f) * fnvPrime // unit separator between words
				}
				for _, b := range e.words[k] {
					h = (h ^ uint64(b)) * fnvPrime
				}
			}
			e.out = append(e.out, e.bucket(h))
		}
	}
}

func (e *extractor) charFeatures(text string) {
	// Normalised text: single spaces, padded.
	e.buf = append(e.buf[:0], ' ')
	space := true
	for _, r := range text {
		if unicode.IsSpace(r) {
			if !space {
				e.buf = append(e.buf, ' ')
				space = true
			}
			continue
		}
		e.buf = utf8.AppendRune(e.buf, r)
		space = false
	}
	if !space {
		e.buf = append(e.buf, ' ')
	}
	// Rune offsets.
	offs := e.offs[:0]
	for i := range string(e.buf) {
		offs = append(offs, i)
	}
	offs = append(offs, len(e.buf))
	e.offs = offs
	runes := len(offs) - 1
	for n := max(e.f.CharMin, 1); n <= e.f.CharMax; n++ {
		for i := 0; i+n <= runes; i++ {
			h := uint64(fnvOffset)
			h = (h ^ uint64('c')) * fnvPrime
			h = (h ^ uint64(n)) * fnvPrime
			for _, b := range e.buf[offs[i]:offs[i+n]] {
				h = (h ^ uint64(b)) * fnvPrime
			}
			e.out = append(e.out, e.bucket(h))
		}
	}
}
