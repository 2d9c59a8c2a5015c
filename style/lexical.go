package style

import (
	"math"
	"sort"
)

// Counts are content-word counts by stem (stopwords and punctuation
// dropped), with the most frequent surface form of each stem.
type Counts struct {
	Stem  map[string]int
	Total int
	forms map[string]map[string]int
}

// NewCounts returns empty counts.
func NewCounts() *Counts {
	return &Counts{Stem: map[string]int{}, forms: map[string]map[string]int{}}
}

// Add counts the content words of tagged sentences.
func (c *Counts) Add(lang Language, sents [][]Token) {
	contentWords(lang, sents, func(w, s string) {
		c.Stem[s]++
		c.Total++
		f := c.forms[s]
		if f == nil {
			f = map[string]int{}
			c.forms[s] = f
		}
		f[w]++
	})
}

// Merge adds o's counts to c.
func (c *Counts) Merge(o *Counts) {
	for s, n := range o.Stem {
		c.Stem[s] += n
	}
	c.Total += o.Total
	for s, f := range o.forms {
		g := c.forms[s]
		if g == nil {
			g = map[string]int{}
			c.forms[s] = g
		}
		for w, n := range f {
			g[w] += n
		}
	}
}

// Form is the most frequent surface form of a stem (ties: the
// alphabetically first).
func (c *Counts) Form(stem string) string {
	best, bn := stem, -1
	for w, n := range c.forms[stem] {
		if n > bn || n == bn && w < best {
			best, bn = w, n
		}
	}
	return best
}

// Keyword is one word of a lexical signature.
type Keyword struct {
	Word  string  `json:"word"`
	Stem  string  `json:"stem"`
	Count int     `json:"count"`
	PMI   float64 `json:"pmi"`
	Score float64 `json:"score"`
}

// PMI returns log2(p(w|c)/p(w)) for every stem the character uses at least
// minCount times, where p(w|c) = count_c(w)/N_c and p(w) is the stem's
// frequency in the pool of the character's and the background's words,
// (count_c(w)+count_bg(w))/(N_c+N_bg), so it is always defined.
func PMI(char, bg *Counts, minCount int) map[string]float64 {
	out := map[string]float64{}
	if char.Total == 0 {
		return out
	}
	n := float64(char.Total + bg.Total)
	for s, k := range char.Stem {
		if k < minCount {
			continue
		}
		pwc := float64(k) / float64(char.Total)
		pw := float64(k+bg.Stem[s]) / n
		out[s] = math.Log2(pwc / pw)
	}
	return out
}

// Keywords ranks the stems of pmi with positive PMI by (1 + ln count)·PMI
// and returns the top n (ties: by stem).
func Keywords(char *Counts, pmi map[string]float64, n int) []Keyword {
	var ks []Keyword
	for s, p := range pmi {
		if p <= 0 {
			continue
		}
		k := char.Stem[s]
		ks = append(ks, Keyword{Word: char.Form(s), Stem: s, Count: k, PMI: p, Score: (1 + math.Log(float64(k))) * p})
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].Score != ks[j].Score {
			return ks[i].Score > ks[j].Score
		}
		return ks[i].Stem < ks[j].Stem
	})
	if len(ks) > n {
		ks = ks[:n]
	}
	return ks
}

// Vocabulary is what scoring needs to know of the words behind a profile
// set: the pool (every character's and the background's content words)
// counts of the stems used at least MinCount times in it, and the pool's
// size.
type Vocabulary struct {
	Stems map[string]int `json:"stems"`
	Words int            `json:"words"`
}

// wordPMI is the PMI of a stem for a character with lexicon lex and n
// content words: its lexicon entry when the character used it at least
// MinCount times; for a stem the pool knows (in voc) but the character
// used fewer times, PMI with the character's count estimated as ½
// (log2((½/n)/p(w)), a penalty: the word is evidence against the
// character); 0 (no evidence) for a stem the pool has not seen often
// enough.
func wordPMI(stem string, lex map[string]float64, n int, voc *Vocabulary) float64 {
	if p, ok := lex[stem]; ok {
		return p
	}
	if voc == nil || n == 0 || voc.Words == 0 {
		return 0
	}
	k := voc.Stems[stem]
	if k == 0 {
		return 0
	}
	return math.Log2((0.5 / float64(n)) / (float64(k) / float64(voc.Words)))
}

// meanPMI is the mean, over a text's content words, of their wordPMI for
// a character (lexicon lex, n content words), and the number of content
// words.
func meanPMI(c *Counts, lex map[string]float64, n int, voc *Vocabulary) (float64, int) {
	if c.Total == 0 {
		return 0, 0
	}
	keys := make([]string, 0, len(c.Stem))
	for w := range c.Stem {
		keys = append(keys, w)
	}
	sort.Strings(keys) // a fixed order of summation: the same bits every run
	s := 0.0
	for _, w := range keys {
		s += float64(c.Stem[w]) * wordPMI(w, lex, n, voc)
	}
	return s / float64(c.Total), c.Total
}
