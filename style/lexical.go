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

// meanPMI is the mean, over a text's content words, of their PMI for a
// character (0 for words outside its lexicon), and the number of content
// words.
func meanPMI(c *Counts, lexicon map[string]float64) (float64, int) {
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
		s += float64(c.Stem[w]) * lexicon[w]
	}
	return s / float64(c.Total), c.Total
}
