package synth

import (
	"hash/fnv"
	"sort"
	"strings"
	"unicode"
)

// MinHash parameters: 64 hash functions in 16 LSH bands of 4 rows. Two
// texts with shingle Jaccard similarity J become candidates with
// probability 1 − (1 − J⁴)¹⁶: 0.9998 at J = 0.8, 0.68 at J = 0.5.
const (
	minhashK    = 64
	minhashBand = 4
)

// Signature is the MinHash signature (64 32-bit minima) of a text's word
// 3-shingles.
type Signature [minhashK]uint32

// minhashSeeds are fixed per-function seeds.
var minhashSeeds = func() [minhashK]uint64 {
	var s [minhashK]uint64
	x := uint64(0x9E3779B97F4A7C15)
	for i := range s {
		x = splitmix(x)
		s[i] = x
	}
	return s
}()

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// shingles are the overlapping word 3-grams of text, lowercased, with
// punctuation dropped (a text of fewer than 3 words is one shingle).
func shingles(text string) []string {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) < 3 {
		return []string{strings.Join(words, " ")}
	}
	out := make([]string, 0, len(words)-2)
	for i := 0; i+3 <= len(words); i++ {
		out = append(out, words[i]+" "+words[i+1]+" "+words[i+2])
	}
	return out
}

// MinHash computes the signature of text.
func MinHash(text string) Signature {
	var sig Signature
	for i := range sig {
		sig[i] = ^uint32(0)
	}
	for _, sh := range shingles(text) {
		h := fnv.New64a()
		h.Write([]byte(sh))
		base := h.Sum64()
		for i := range sig {
			if v := uint32(splitmix(base ^ minhashSeeds[i])); v < sig[i] {
				sig[i] = v
			}
		}
	}
	return sig
}

// Similarity estimates the Jaccard similarity of the two texts' shingle
// sets: the fraction of signature positions that agree.
func (s *Signature) Similarity(t *Signature) float64 {
	n := 0
	for i := range s {
		if s[i] == t[i] {
			n++
		}
	}
	return float64(n) / minhashK
}

// NearDuplicates finds near-identical texts: ids maps each row id to its
// signature; a row is a near duplicate when its estimated similarity to a
// row with a smaller id that is itself kept reaches threshold. Rows are
// visited in id order, so the result depends only on the set of rows, not
// on the order they were produced in (or which shard produced them). The
// result maps each duplicate to the id it duplicates.
func NearDuplicates(sigs map[string]*Signature, threshold float64) map[string]string {
	dups := map[string]string{}
	if threshold <= 0 || threshold > 1 {
		return dups
	}
	ids := make([]string, 0, len(sigs))
	for id := range sigs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	type bandKey struct {
		band int
		h    uint64
	}
	buckets := map[bandKey][]string{}
	for _, id := range ids {
		sig := sigs[id]
		keys := make([]bandKey, 0, minhashK/minhashBand)
		for b := 0; b < minhashK/minhashBand; b++ {
			h := uint64(b)
			for _, v := range sig[b*minhashBand : (b+1)*minhashBand] {
				h = splitmix(h ^ uint64(v))
			}
			keys = append(keys, bandKey{b, h})
		}
		of := ""
		for _, k := range keys {
			for _, other := range buckets[k] {
				if sig.Similarity(sigs[other]) >= threshold && (of == "" || other < of) {
					of = other
				}
			}
		}
		if of != "" {
			dups[id] = of
			continue
		}
		for _, k := range keys {
			buckets[k] = append(buckets[k], id)
		}
	}
	return dups
}
