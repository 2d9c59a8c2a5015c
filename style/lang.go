package style

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"

	"github.com/jdkato/prose/v2"
	"github.com/kljensen/snowball/english"
)

// Token is one word or punctuation mark with its part-of-speech tag.
type Token struct {
	Text string `json:"text"`
	Tag  string `json:"tag"`
}

// Language is what the lexical and syntactic parts need from a language:
// sentences of tagged tokens (Penn Treebank tags, the clause rules of
// syntax.go are written for them), a stemmer and a stopword list. English
// is the only one today; another language plugs in here.
type Language interface {
	// Name identifies the language in profiles ("en").
	Name() string
	// Analyze splits text into sentences of tagged tokens. It fails on
	// text it cannot tag (empty, or not in its script).
	Analyze(text string) ([][]Token, error)
	// Stem returns the stem of a lower-cased word.
	Stem(word string) string
	// Stopword reports whether a lower-cased word is a stopword.
	Stopword(word string) bool
}

// ErrEmpty is returned for a text with no words.
var ErrEmpty = errors.New("the text has no words")

// English tokenises and tags with prose/v2 (its iterative tokenizer and
// averaged-perceptron tagger, Penn Treebank tags), stems with the Snowball
// English (Porter2) stemmer and takes its stopwords from the same package.
// Sentences end at tokens tagged "." (the tagger's sentence-final class);
// the tag of a final "?" or "!" is refined to "?" or "!" so that
// declarativity can be measured.
type English struct{}

var (
	proseOnce  sync.Once
	proseModel *prose.Model
	proseErr   error
)

// tagger loads prose's tagging model once (NewDocument would decode it on
// every call otherwise).
func tagger() (*prose.Model, error) {
	proseOnce.Do(func() {
		var d *prose.Document
		d, proseErr = prose.NewDocument("a", prose.WithExtraction(false), prose.WithSegmentation(false))
		if proseErr == nil {
			proseModel = d.Model
		}
	})
	return proseModel, proseErr
}

// Name is "en".
func (English) Name() string { return "en" }

// minLatin is the share of letters that must be Latin script for the
// English tagger to be trusted with a text.
const minLatin = 0.8

// Analyze tags text. It fails on empty text and on text whose letters are
// mostly not Latin script (the tagger was trained on English).
func (English) Analyze(text string) ([][]Token, error) {
	letters, latin := 0, 0
	for _, r := range text {
		if unicode.IsLetter(r) {
			letters++
			if unicode.Is(unicode.Latin, r) {
				latin++
			}
		}
	}
	if letters == 0 {
		return nil, ErrEmpty
	}
	if float64(latin) < minLatin*float64(letters) {
		return nil, fmt.Errorf("the English tagger cannot tag this text: only %d of its %d letters are Latin script", latin, letters)
	}
	m, err := tagger()
	if err != nil {
		return nil, fmt.Errorf("loading the prose tagger: %v", err)
	}
	doc, err := prose.NewDocument(text, prose.UsingModel(m), prose.WithExtraction(false), prose.WithSegmentation(false))
	if err != nil {
		return nil, err
	}
	var out [][]Token
	var cur []Token
	for _, t := range doc.Tokens() {
		tag := t.Tag
		if tag == "." && (t.Text == "?" || t.Text == "!") {
			tag = t.Text
		}
		cur = append(cur, Token{Text: t.Text, Tag: tag})
		if tag == "." || tag == "?" || tag == "!" {
			out = append(out, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// Stem is Snowball's English stemmer.
func (English) Stem(w string) string { return english.Stem(w, false) }

// Stopword is Snowball's English stopword list.
func (English) Stopword(w string) bool { return english.IsStopWord(w) }

// isWord reports whether a token is a word (holds a letter); punctuation,
// numbers and symbols are not.
func isWord(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) {
			return true
		}
	}
	return false
}

// contentWords returns the lower-cased words of sentences that are not
// stopwords, with their stems.
func contentWords(lang Language, sents [][]Token, fn func(word, stem string)) {
	for _, s := range sents {
		for _, t := range s {
			if !isWord(t.Text) {
				continue
			}
			if clitic(t.Text) {
				continue
			}
			w := strings.ToLower(strings.Trim(t.Text, "'’-_"))
			if w == "" || lang.Stopword(w) || !isWord(w) {
				continue
			}
			fn(w, lang.Stem(w))
		}
	}
}

// clitic reports whether a token is a contraction's clitic split off by the
// tokenizer (n't, 's, 'll, 're, 've, 'd, 'm): not a content word.
func clitic(s string) bool {
	s = strings.ToLower(strings.ReplaceAll(s, "’", "'"))
	return s == "n't" || strings.HasPrefix(s, "'") && len(s) <= 3
}
