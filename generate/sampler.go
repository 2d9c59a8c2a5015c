package generate

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampler picks the next token from a row of logits according to the
// sampling fields of Options (Temperature, TopK, TopP, MinP,
// RepetitionPenalty, RepeatLastN, FrequencyPenalty, PresencePenalty,
// LogitBias and Seed). The other fields are ignored.
//
// A Sampler holds its own random number generator (PCG from math/rand/v2,
// seeded from Options.Seed), so two Samplers made from the same Options give
// the same sequence of tokens for the same inputs. A Sampler is not safe for
// concurrent use.
type Sampler struct {
	temp      float64
	topK      int
	topP      float64
	minP      float64
	penalty   float32
	lastN     int
	rng       *rand.Rand
	work      []float32 // penalized logits
	cands     []cand
	seen      map[int]struct{}
	seenOrder []int
	freq      float32     // OpenAI frequency penalty (0: off)
	pres      float32     // OpenAI presence penalty (0: off)
	counts    map[int]int // times each id was returned, for freq/pres
	bias      map[int]float32
}

// cand is one candidate token during sampling: its (penalized, tempered)
// logit and, once computed, its unnormalized probability.
type cand struct {
	id    int
	logit float64
	p     float64
}

// pcgStream is the second PCG seed word; the first one is Options.Seed.
const pcgStream = 0x9e3779b97f4a7c15

// NewSampler returns a Sampler for o. Out-of-range values are treated as
// "off": TopK ≤ 0, TopP outside (0,1), MinP outside (0,1], and a
// RepetitionPenalty of 0 or 1 disable the respective step; a negative
// Temperature is the same as 0 (greedy).
func NewSampler(o Options) *Sampler {
	s := &Sampler{
		temp:    float64(o.Temperature),
		topK:    o.TopK,
		topP:    float64(o.TopP),
		minP:    float64(o.MinP),
		penalty: o.RepetitionPenalty,
		lastN:   o.RepeatLastN,
		rng:     rand.New(rand.NewPCG(o.Seed, pcgStream)),
		freq:    finiteOr0(o.FrequencyPenalty),
		pres:    finiteOr0(o.PresencePenalty),
	}
	for id, b := range o.LogitBias {
		if b = finiteOr0(b); b != 0 {
			if s.bias == nil {
				s.bias = make(map[int]float32, len(o.LogitBias))
			}
			s.bias[id] = b
		}
	}
	if s.freq != 0 || s.pres != 0 {
		s.counts = map[int]int{}
	}
	if !(s.temp > 0) || math.IsInf(s.temp, 0) {
		s.temp = 0
	}
	if !(s.topP > 0 && s.topP < 1) {
		s.topP = 0
	}
	if !(s.minP > 0 && s.minP <= 1) {
		s.minP = 0
	}
	if s.penalty <= 0 || s.penalty == 1 || math.IsNaN(float64(s.penalty)) || math.IsInf(float64(s.penalty), 0) {
		s.penalty = 0
	}
	return s
}

// finiteOr0 returns x, or 0 for NaN and infinities.
func finiteOr0(x float32) float32 {
	if x != x || math.IsInf(float64(x), 0) {
		return 0
	}
	return x
}

// Sample returns the id of the next token. logits is one row of raw model
// output (Vocab values); it is not modified. history is the sequence the
// repetition penalty looks at (prompt and generated tokens so far, oldest
// first); only its last RepeatLastN entries are used when RepeatLastN > 0.
// The frequency and presence penalties look instead at the ids this
// Sampler has returned so far, which are the generated tokens when one
// Sampler serves one generation.
//
// The steps run in this order: repetition penalty, frequency and presence
// penalties, logit bias, then (if Temperature is 0) argmax, with the lowest
// index winning ties; otherwise division by the temperature, top-k, top-p,
// min-p and a random draw from what is left. NaN logits are never chosen;
// if every logit is NaN, Sample returns 0.
func (s *Sampler) Sample(logits []float32, history []int) int {
	return s.SampleMasked(logits, history, nil)
}

// SampleMasked is Sample where only the ids with allowed[id] true may be
// chosen (nil: all). If no allowed id has a usable logit, the allowed id
// with the largest raw logit is returned (the lowest allowed id if all are
// NaN); if allowed is all false, it returns -1.
func (s *Sampler) SampleMasked(logits []float32, history []int, allowed []bool) int {
	l := logits
	if (s.penalty != 0 && len(history) > 0) || len(s.counts) > 0 || s.bias != nil || allowed != nil {
		s.work = append(s.work[:0], logits...)
		l = s.work
		if s.penalty != 0 && len(history) > 0 {
			s.applyPenalty(l, history)
		}
		for id, n := range s.counts {
			if id >= 0 && id < len(l) {
				l[id] -= float32(n)*s.freq + s.pres
			}
		}
		for id, b := range s.bias {
			if id >= 0 && id < len(l) {
				l[id] += b
			}
		}
		if allowed != nil {
			best := -1
			for i := range l {
				if i >= len(allowed) || !allowed[i] {
					l[i] = float32(math.Inf(-1))
				} else if best < 0 || logits[i] > logits[best] {
					best = i
				}
			}
			if best < 0 {
				return -1
			}
			id := s.pick(l)
			if id >= len(allowed) || !allowed[id] {
				id = best // every allowed logit was -Inf or NaN
			}
			s.count(id)
			return id
		}
	}
	id := s.pick(l)
	s.count(id)
	return id
}

// pick is argmax or a draw, by temperature.
func (s *Sampler) pick(l []float32) int {
	if s.temp == 0 {
		return argmax(l)
	}
	return s.draw(l)
}

// count records a returned id for the frequency and presence penalties.
func (s *Sampler) count(id int) {
	if s.counts != nil {
		s.counts[id]++
	}
}

// applyPenalty applies the Hugging Face-style repetition penalty in place:
// every distinct id in the window has its logit divided by the penalty if
// it is positive and multiplied by it otherwise.
func (s *Sampler) applyPenalty(l []float32, history []int) {
	win := history
	if s.lastN > 0 && len(win) > s.lastN {
		win = win[len(win)-s.lastN:]
	}
	if s.seen == nil {
		s.seen = make(map[int]struct{})
	}
	clear(s.seen)
	for _, id := range win {
		if id < 0 || id >= len(l) {
			continue
		}
		if _, dup := s.seen[id]; dup {
			continue
		}
		s.seen[id] = struct{}{}
		if l[id] > 0 {
			l[id] /= s.penalty
		} else {
			l[id] *= s.penalty
		}
	}
}

// argmax returns the index of the largest non-NaN value, the lowest index
// on ties, and 0 if there is none.
func argmax(v []float32) int {
	best := -1
	for i, x := range v {
		if x != x { // NaN
			continue
		}
		if best < 0 || x > v[best] {
			best = i
		}
	}
	return max(best, 0)
}

// better orders candidates from most to least likely: higher logit first,
// lower id first on ties.
func better(a, b cand) int {
	if a.logit != b.logit {
		if a.logit > b.logit {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.id, b.id)
}

// draw runs temperature, top-k, top-p and min-p, then picks a token at random.
func (s *Sampler) draw(l []float32) int {
	c := s.cands[:0]
	for i, x := range l {
		if x != x || math.IsInf(float64(x), -1) {
			continue
		}
		c = append(c, cand{id: i, logit: float64(x) / s.temp})
	}
	s.cands = c
	if len(c) == 0 {
		return argmax(l)
	}
	sorted := 0 // c[:sorted] holds the best candidates in order
	if s.topK > 0 && s.topK < len(c) {
		selectTop(c, s.topK)
		c = c[:s.topK]
		slices.SortFunc(c, better)
		sorted = len(c)
	}
	// Unnormalized probabilities relative to the best logit.
	hi := math.Inf(-1)
	for _, x := range c {
		hi = max(hi, x.logit)
	}
	if math.IsInf(hi, 1) {
		// +Inf logits share all the probability.
		for i := range c {
			c[i].p = 0
			if math.IsInf(c[i].logit, 1) {
				c[i].p = 1
			}
		}
	} else {
		for i := range c {
			c[i].p = math.Exp(c[i].logit - hi)
		}
	}
	total := 0.0
	for _, x := range c {
		total += x.p
	}
	if s.topP > 0 {
		// Keep the smallest set of best candidates whose probability reaches
		// TopP. Sort only as many as needed, growing the sorted prefix.
		want := s.topP * total
		n := min(64, len(c))
		for {
			if n > sorted {
				selectTop(c, n)
				slices.SortFunc(c[:n], better)
				sorted = n
			}
			cum, cut := 0.0, -1
			for i := 0; i < n; i++ {
				cum += c[i].p
				if cum >= want {
					cut = i + 1
					break
				}
			}
			if cut > 0 {
				c = c[:cut]
				total = cum
				break
			}
			if n == len(c) {
				break // rounding: keep everything
			}
			n = min(4*n, len(c))
		}
	}
	if s.minP > 0 {
		top := 0.0
		for _, x := range c {
			top = max(top, x.p)
		}
		thr := s.minP * top
		k := 0
		total = 0
		for _, x := range c {
			if x.p >= thr {
				c[k] = x
				k++
				total += x.p
			}
		}
		c = c[:k]
	}
	r := s.rng.Float64() * total
	for _, x := range c {
		r -= x.p
		if r < 0 {
			return x.id
		}
	}
	// Rounding left r ≥ 0: take the last candidate with probability > 0.
	for i := len(c) - 1; i >= 0; i-- {
		if c[i].p > 0 {
			return c[i].id
		}
	}
	return c[0].id
}

// selectTop reorders c so that its first n elements are the n best
// candidates (in no particular order), by quickselect.
func selectTop(c []cand, n int) {
	lo, hi := 0, len(c) // the boundary n lies in c[lo:hi]
	for hi-lo > 16 {
		// Median of three as the pivot.
		a, b, d := lo, lo+(hi-lo)/2, hi-1
		if better(c[b], c[a]) < 0 {
			a, b = b, a
		}
		if better(c[d], c[b]) < 0 {
			b = d
			if better(c[b], c[a]) < 0 {
				b = a
			}
		}
		pivot := c[b]
		// Three-way partition: better than pivot, equal (only the pivot itself,
		// since ids are unique), worse.
		i, j := lo, hi-1
		for i <= j {
			for better(c[i], pivot) < 0 {
				i++
			}
			for better(pivot, c[j]) < 0 {
				j--
			}
			if i <= j {
				c[i], c[j] = c[j], c[i]
				i++
				j--
			}
		}
		// Now c[lo:j+1] are all ≤ pivot-rank, c[i:hi] all ≥ pivot-rank.
		switch {
		case n <= j+1:
			hi = j + 1
		case n >= i:
			lo = i
		default:
			return
		}
	}
	slices.SortFunc(c[lo:hi], better)
}
