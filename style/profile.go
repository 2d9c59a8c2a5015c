package style

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/masque-ai/masque/internal/workers"
)

// Version is the profile file format's version.
const Version = 2

// Character is one character's lines.
type Character struct {
	Name  string
	Lines []string
}

// Config configures Run, which builds the style profiles of characters.
type Config struct {
	// Characters to profile (at least one). Each is the background of the
	// others.
	Characters []Character
	// Background is neutral text, also part of every character's
	// background (may be empty when there are several characters).
	Background []string
	// Lang analyses the text (nil: English).
	Lang Language
	// MinCount is the least number of times a character must use a word
	// for it to enter its lexicon and keywords (default 5).
	MinCount int
	// TopK is the number of keywords (default 25).
	TopK int
	// ChunkWords is the size of the chunks whose syntactic vectors give
	// each dimension's spread (default 100 words).
	ChunkWords int
	// Embedder, if set, adds the pragmatic part (tags and the style
	// centroid); without it profiles have the lexical and syntactic parts.
	Embedder Embedder
	// TagSet is the pragmatic tag set (nil: the built-in one).
	TagSet *TagSet
	// EmbedLines is the most lines per character (and of the background)
	// that are embedded, chosen evenly through the lines (default 200).
	EmbedLines int
	// Workers analyse lines in parallel (default GOMAXPROCS).
	Workers int
	// Progress, if set, is called as work is done: stage, done, total.
	Progress func(stage string, done, total int)
}

func (c *Config) defaults() error {
	if len(c.Characters) == 0 {
		return errors.New("style: no characters to profile")
	}
	if c.Lang == nil {
		c.Lang = English{}
	}
	if c.MinCount <= 0 {
		c.MinCount = 5
	}
	if c.TopK <= 0 {
		c.TopK = 25
	}
	if c.ChunkWords <= 0 {
		c.ChunkWords = 100
	}
	if c.EmbedLines <= 0 {
		c.EmbedLines = 200
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.TagSet == nil {
		c.TagSet = DefaultTagSet()
	}
	if c.Progress == nil {
		c.Progress = func(string, int, int) {}
	}
	seen := map[string]bool{}
	for _, ch := range c.Characters {
		if ch.Name == "" {
			return errors.New("style: a character has no name")
		}
		if seen[ch.Name] {
			return fmt.Errorf("style: character %q appears twice", ch.Name)
		}
		seen[ch.Name] = true
		if len(ch.Lines) == 0 {
			return fmt.Errorf("style: character %q has no lines", ch.Name)
		}
	}
	if len(c.Characters) == 1 && len(c.Background) == 0 {
		return fmt.Errorf("style: one character (%s) and no background text: PMI needs a background (give neutral text)", c.Characters[0].Name)
	}
	return nil
}

// Set is a profile file: the profiles of several characters built
// together, with what is needed to score texts against them.
type Set struct {
	Version    int      `json:"version"`
	Language   string   `json:"language"`
	MinCount   int      `json:"min_count"`
	TopK       int      `json:"top_k"`
	ChunkWords int      `json:"chunk_words"`
	Dimensions []string `json:"dimensions"`
	// Background is how many lines and content words of neutral text were
	// used.
	BackgroundLines int `json:"background_lines"`
	BackgroundWords int `json:"background_words"`
	// Vocabulary holds the pool's counts of its common stems (lexical
	// evidence against a character, see wordPMI).
	Vocabulary Vocabulary `json:"vocabulary"`
	// Pragmatic is absent when the profiles were built without an
	// embedder.
	Pragmatic  *PragmaticSet `json:"pragmatic,omitempty"`
	Characters []*Profile    `json:"characters"`
}

// PragmaticSet is what the pragmatic part of every profile shares.
type PragmaticSet struct {
	Embedder  string   `json:"embedder"`
	Dim       int      `json:"dim"`
	TagSet    string   `json:"tag_set"`
	TagSHA256 string   `json:"tag_set_sha256"`
	Threshold float64  `json:"threshold"`
	Tags      []string `json:"tags"`
	// PrototypeMean is the mean embedding of all prototype sentences and
	// Prototypes[k] the mean of tag k's (tag scores centre both on
	// PrototypeMean).
	PrototypeMean []float32   `json:"prototype_mean"`
	Prototypes    [][]float32 `json:"prototypes"`
	// BackgroundMean is the mean embedding of all embedded lines (every
	// character's and the background's); style centroids are compared
	// after subtracting it.
	BackgroundMean []float32 `json:"background_mean"`
}

// Profile is one character's style.
type Profile struct {
	Name  string `json:"name"`
	Lines int    `json:"lines"`
	// Words counts content words (stopwords and punctuation dropped);
	// Tokens counts all tokens and Sentences the sentences.
	Words     int `json:"words"`
	Tokens    int `json:"tokens"`
	Sentences int `json:"sentences"`

	Keywords []Keyword `json:"keywords"`
	// Lexicon is the PMI of every stem used at least MinCount times, and
	// LexSelf the mean word PMI (see wordPMI) of the character's own
	// content words: the lexical style centroid.
	Lexicon map[string]float64 `json:"lexicon"`
	LexSelf float64            `json:"lex_self"`
	// LexSpread is the standard deviation of the mean word PMI over the
	// character's chunks of ChunkWords words (floored at LexSpreadFloor).
	LexSpread float64 `json:"lex_spread"`

	Syntax Syntax `json:"syntax"`

	Tags     []TagScore `json:"tags,omitempty"`
	Centroid []float32  `json:"centroid,omitempty"`
}

// Syntax is the syntactic part of a profile.
type Syntax struct {
	// Vector is the 14 dimensions over all the character's lines; Spread
	// is each dimension's standard deviation over chunks of ChunkWords
	// words (floored at SpreadFloor).
	Vector []float64 `json:"vector"`
	Spread []float64 `json:"spread"`
	Chunks int       `json:"chunks"`
	// Rules are P(rule | LHS) of the rules seen at least twice.
	Rules map[string]float64 `json:"rules"`
}

// TagScore is a tag's score for a character: the cosine score of its style
// centroid (Score), whether that is above the threshold (On), and the share
// of its embedded lines whose own score is above it (Rate).
type TagScore struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
	On    bool    `json:"on"`
	Rate  float64 `json:"rate"`
}

// SpreadFloor is the least spread of a syntactic dimension.
const SpreadFloor = 0.01

// LexSpreadFloor is the least spread of the mean word PMI (bits).
const LexSpreadFloor = 0.05

// analysis is one line's lexical and syntactic counts.
type analysis struct {
	counts    *Counts
	rules     Rules
	tokens    int
	sentences int
	words     int // whitespace words, for chunking
	err       error
}

// analyze tags and counts one text.
func analyze(lang Language, text string) analysis {
	sents, err := lang.Analyze(text)
	if err != nil {
		return analysis{err: err}
	}
	a := analysis{counts: NewCounts(), rules: Rules{}, sentences: len(sents), words: len(strings.Fields(text))}
	for _, s := range sents {
		a.tokens += len(s)
	}
	a.counts.Add(lang, sents)
	a.rules.Add(sents)
	return a
}

// analyzeAll analyses lines in parallel, in order.
func analyzeAll(ctx context.Context, lang Language, lines []string, n int, progress func(int)) ([]analysis, error) {
	out := make([]analysis, len(lines))
	var mu sync.Mutex
	done := 0
	err := workers.Each(ctx, len(lines), n, func(i int) error {
		out[i] = analyze(lang, lines[i])
		mu.Lock()
		done++
		progress(done)
		mu.Unlock()
		return nil
	})
	return out, err
}

// Run builds the profiles.
func Run(ctx context.Context, cfg Config) (*Set, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	set := &Set{Version: Version, Language: cfg.Lang.Name(), MinCount: cfg.MinCount, TopK: cfg.TopK, ChunkWords: cfg.ChunkWords,
		Dimensions: Dimensions, BackgroundLines: len(cfg.Background)}
	total := len(cfg.Background)
	for _, ch := range cfg.Characters {
		total += len(ch.Lines)
	}
	done0 := 0
	prog := func(n int) { cfg.Progress("analyse", done0+n, total) }
	pool := NewCounts()
	bg, err := analyzeAll(ctx, cfg.Lang, cfg.Background, cfg.Workers, prog)
	if err != nil {
		return nil, err
	}
	for i, a := range bg {
		if a.err != nil && !errors.Is(a.err, ErrEmpty) {
			return nil, fmt.Errorf("style: background line %d: %v", i+1, a.err)
		}
		if a.err == nil {
			pool.Merge(a.counts)
		}
	}
	set.BackgroundWords = pool.Total
	done0 += len(bg)
	type charData struct {
		counts      *Counts
		rules       Rules
		prof        *Profile
		chunks      [][]float64
		chunkCounts []*Counts
	}
	chars := make([]charData, len(cfg.Characters))
	for ci, ch := range cfg.Characters {
		as, err := analyzeAll(ctx, cfg.Lang, ch.Lines, cfg.Workers, prog)
		if err != nil {
			return nil, err
		}
		done0 += len(as)
		cd := charData{counts: NewCounts(), rules: Rules{}, prof: &Profile{Name: ch.Name}}
		chunk, chunkCounts, words := Rules{}, NewCounts(), 0
		for i, a := range as {
			if a.err != nil {
				if errors.Is(a.err, ErrEmpty) {
					continue
				}
				return nil, fmt.Errorf("style: character %s, line %d: %v", ch.Name, i+1, a.err)
			}
			cd.prof.Lines++
			cd.prof.Tokens += a.tokens
			cd.prof.Sentences += a.sentences
			cd.counts.Merge(a.counts)
			cd.rules.Merge(a.rules)
			chunk.Merge(a.rules)
			chunkCounts.Merge(a.counts)
			words += a.words
			if words >= cfg.ChunkWords {
				cd.chunks = append(cd.chunks, chunk.Vector())
				cd.chunkCounts = append(cd.chunkCounts, chunkCounts)
				chunk, chunkCounts, words = Rules{}, NewCounts(), 0
			}
		}
		if words >= cfg.ChunkWords/2 || len(cd.chunks) == 0 && words > 0 {
			cd.chunks = append(cd.chunks, chunk.Vector())
			cd.chunkCounts = append(cd.chunkCounts, chunkCounts)
		}
		if cd.counts.Total == 0 {
			return nil, fmt.Errorf("style: character %s has no content words (every line is empty or only stopwords)", ch.Name)
		}
		cd.prof.Words = cd.counts.Total
		pool.Merge(cd.counts)
		chars[ci] = cd
	}
	set.Vocabulary = Vocabulary{Stems: map[string]int{}, Words: pool.Total}
	for st, k := range pool.Stem {
		if k >= cfg.MinCount {
			set.Vocabulary.Stems[st] = k
		}
	}
	for _, cd := range chars {
		p := cd.prof
		p.Lexicon = pmiPool(cd.counts, pool, cfg.MinCount)
		p.Keywords = Keywords(cd.counts, p.Lexicon, cfg.TopK)
		if p.Keywords == nil {
			p.Keywords = []Keyword{}
		}
		p.LexSelf, _ = meanPMI(cd.counts, p.Lexicon, p.Words, &set.Vocabulary)
		var ms [][]float64
		for _, cc := range cd.chunkCounts {
			if cc.Total > 0 {
				m, _ := meanPMI(cc, p.Lexicon, p.Words, &set.Vocabulary)
				ms = append(ms, []float64{m})
			}
		}
		p.LexSpread = sdFloor(ms, 0, LexSpreadFloor)
		p.Syntax = Syntax{Vector: cd.rules.Vector(), Spread: spread(cd.chunks), Chunks: len(cd.chunks), Rules: map[string]float64{}}
		norm := cd.rules.Normalized()
		for r, v := range norm {
			if cd.rules[r] >= 2 {
				p.Syntax.Rules[r] = v
			}
		}
		set.Characters = append(set.Characters, p)
	}
	if cfg.Embedder != nil {
		if err := pragmatic(ctx, &cfg, set); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// pmiPool is PMI with p(w) taken from a pool that includes the character.
func pmiPool(char, pool *Counts, minCount int) map[string]float64 {
	out := map[string]float64{}
	for s, k := range char.Stem {
		if k < minCount {
			continue
		}
		out[s] = math.Log2((float64(k) / float64(char.Total)) / (float64(pool.Stem[s]) / float64(pool.Total)))
	}
	return out
}

// spread is each dimension's standard deviation over chunk vectors,
// floored at SpreadFloor.
func spread(chunks [][]float64) []float64 {
	out := make([]float64, len(Dimensions))
	for d := range out {
		out[d] = sdFloor(chunks, d, SpreadFloor)
	}
	return out
}

// sdFloor is the sample standard deviation of xs[i][d] over i, at least
// floor (floor itself with fewer than two values).
func sdFloor(xs [][]float64, d int, floor float64) float64 {
	if len(xs) < 2 {
		return floor
	}
	m := 0.0
	for _, c := range xs {
		m += c[d]
	}
	m /= float64(len(xs))
	v := 0.0
	for _, c := range xs {
		v += (c[d] - m) * (c[d] - m)
	}
	return max(math.Sqrt(v/float64(len(xs)-1)), floor)
}

// sample picks at most n items evenly through xs.
func sample(xs []string, n int) []string {
	var nonEmpty []string
	for _, x := range xs {
		if strings.TrimSpace(x) != "" {
			nonEmpty = append(nonEmpty, x)
		}
	}
	if len(nonEmpty) <= n {
		return nonEmpty
	}
	out := make([]string, n)
	for i := range out {
		out[i] = nonEmpty[i*len(nonEmpty)/n]
	}
	return out
}

// pragmatic embeds the tag prototypes and samples of every character's
// lines and fills the pragmatic part.
func pragmatic(ctx context.Context, cfg *Config, set *Set) error {
	ts := cfg.TagSet
	ps := &PragmaticSet{Embedder: cfg.Embedder.ID(), TagSet: ts.Name, TagSHA256: ts.SHA256, Threshold: ts.Threshold}
	var protos []string
	for _, t := range ts.Tags {
		ps.Tags = append(ps.Tags, t.Name)
		protos = append(protos, t.Prototypes...)
	}
	embedded := 0
	total := len(protos) + len(sample(cfg.Background, cfg.EmbedLines))
	for _, ch := range cfg.Characters {
		total += len(sample(ch.Lines, cfg.EmbedLines))
	}
	embed := func(what string, texts []string) ([][]float32, error) {
		var out [][]float32
		for i := 0; i < len(texts); i += 8 {
			vs, err := cfg.Embedder.Embed(ctx, texts[i:min(len(texts), i+8)])
			if err != nil {
				return nil, fmt.Errorf("style: embedding %s: %v", what, err)
			}
			out = append(out, vs...)
			embedded += len(vs)
			cfg.Progress("embed", embedded, total)
		}
		return out, nil
	}
	pv, err := embed("the tag prototypes", protos)
	if err != nil {
		return err
	}
	ps.Dim = len(pv[0])
	ps.PrototypeMean = mean(pv)
	k := 0
	for _, t := range ts.Tags {
		ps.Prototypes = append(ps.Prototypes, mean(pv[k:k+len(t.Prototypes)]))
		k += len(t.Prototypes)
	}
	var all [][]float32
	bv, err := embed("the background", sample(cfg.Background, cfg.EmbedLines))
	if err != nil {
		return err
	}
	all = append(all, bv...)
	lineVecs := make([][][]float32, len(cfg.Characters))
	for i, ch := range cfg.Characters {
		if lineVecs[i], err = embed(ch.Name+"'s lines", sample(ch.Lines, cfg.EmbedLines)); err != nil {
			return err
		}
		all = append(all, lineVecs[i]...)
	}
	ps.BackgroundMean = mean(all)
	set.Pragmatic = ps
	for i, p := range set.Characters {
		p.Centroid = mean(lineVecs[i])
		sc := ps.tagScores(p.Centroid)
		for k, name := range ps.Tags {
			on := 0
			for _, v := range lineVecs[i] {
				if ps.tagScores(v)[k] > ps.Threshold {
					on++
				}
			}
			p.Tags = append(p.Tags, TagScore{Name: name, Score: sc[k], On: sc[k] > ps.Threshold, Rate: float64(on) / float64(len(lineVecs[i]))})
		}
	}
	return nil
}

// tagScores are cos(e − PrototypeMean, prototype_k − PrototypeMean).
func (ps *PragmaticSet) tagScores(e []float32) []float64 {
	c := sub(e, ps.PrototypeMean)
	out := make([]float64, len(ps.Prototypes))
	for k, p := range ps.Prototypes {
		out[k] = cosine(c, sub(p, ps.PrototypeMean))
	}
	return out
}

// Character returns the named profile.
func (s *Set) Character(name string) (*Profile, error) {
	var names []string
	for _, p := range s.Characters {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("no character %q in the profile (it has: %s)", name, strings.Join(names, ", "))
}

// ErrWhichCharacter is Pick's error when no name is given and the set has
// more than one character.
var ErrWhichCharacter = errors.New("no character named")

// Pick returns the profile of name, else of def; with neither, the set's
// only character (an error wrapping ErrWhichCharacter when it has several).
func (s *Set) Pick(name, def string) (*Profile, error) {
	if name == "" {
		name = def
	}
	if name == "" {
		if len(s.Characters) != 1 {
			return nil, fmt.Errorf("%w, and the profile has %d characters", ErrWhichCharacter, len(s.Characters))
		}
		return s.Characters[0], nil
	}
	return s.Character(name)
}

// KeywordWords returns the surface forms of the character's first k
// keywords (all of them when k <= 0 or it has fewer), best first.
func (p *Profile) KeywordWords(k int) []string {
	n := len(p.Keywords)
	if k > 0 && k < n {
		n = k
	}
	out := make([]string, n)
	for i := range out {
		out[i] = p.Keywords[i].Word
	}
	return out
}

// OnTags returns the names of the pragmatic tags that are on for the
// character (none for a profile built without an embedder), in the tag
// set's order.
func (p *Profile) OnTags() []string {
	var out []string
	for _, t := range p.Tags {
		if t.On {
			out = append(out, t.Name)
		}
	}
	return out
}
