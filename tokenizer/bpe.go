package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
)

// bpeModel is the Hugging Face BPE model.
type bpeModel struct {
	vocab        map[string]int // model vocabulary only
	merges       map[uint64]mergeVal
	unk          int // -1 when none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int
}

type mergeVal struct {
	rank  int32
	newID int32
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newBPE(mj *modelJSON, vocab map[string]int, t *Tokenizer, perr func(string, ...any) error) (*bpeModel, error) {
	m := &bpeModel{vocab: vocab, unk: -1, fuseUnk: mj.FuseUnk, byteFallback: mj.ByteFallback, ignoreMerges: mj.IgnoreMerges}
	if mj.ContinuingSubwordPrefix != nil {
		m.prefix = *mj.ContinuingSubwordPrefix
	}
	if mj.EndOfWordSuffix != nil {
		m.suffix = *mj.EndOfWordSuffix
	}
	if mj.UnkToken != nil {
		if id, ok := m.vocab[*mj.UnkToken]; ok {
			m.unk = id
		} else if id, ok := t.tokToID[*mj.UnkToken]; ok {
			m.unk = id
		}
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	merges, err := parseMerges(mj.Merges)
	if err != nil {
		return nil, perr("model %v", err)
	}
	m.merges = make(map[uint64]mergeVal, len(merges))
	for rank, mg := range merges {
		a, b := mg[0], mg[1]
		ida, ok := m.vocab[a]
		if !ok {
			return nil, perr("model merges[%d] (%q %q): token %q is not in the vocab", rank, a, b, a)
		}
		idb, ok := m.vocab[b]
		if !ok {
			return nil, perr("model merges[%d] (%q %q): token %q is not in the vocab", rank, a, b, b)
		}
		nb := b
		if m.prefix != "" && strings.HasPrefix(b, m.prefix) {
			nb = b[len(m.prefix):]
		}
		idn, ok := m.vocab[a+nb]
		if !ok {
			return nil, perr("model merges[%d] (%q %q): merged token %q is not in the vocab", rank, a, b, a+nb)
		}
		m.merges[pairKey(ida, idb)] = mergeVal{rank: int32(rank), newID: int32(idn)}
	}
	return m, nil
}

// parseMerges reads the merges: a list of "a b" strings or of [a, b] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	list, pairs, ok := fastMerges(raw)
	if ok && pairs {
		out := make([][2]string, len(list)/2)
		for i := range out {
			out[i] = [2]string{list[2*i], list[2*i+1]}
		}
		return out, nil
	}
	if ok {
		strs = list
	}
	if ok || json.Unmarshal(raw, &strs) == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			j := strings.IndexByte(s, ' ')
			if j < 0 {
				return nil, fmt.Errorf("merges[%d]: merge %q is not two space-separated tokens", i, truncate(s, 80))
			}
			out[i] = [2]string{s[:j], s[j+1:]}
		}
		return out, nil
	}
	var pairList [][]string
	if err := json.Unmarshal(raw, &pairList); err == nil {
		out := make([][2]string, len(pairList))
		for i, p := range pairList {
			if len(p) != 2 {
				return nil, fmt.Errorf("merges[%d]: want 2 tokens, got %d", i, len(p))
			}
			out[i] = [2]string{p[0], p[1]}
		}
		return out, nil
	}
	// Mixed or malformed: find the offending entry.
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("merges: want a list: %v", err)
	}
	out := make([][2]string, len(items))
	for i, it := range items {
		a, b, err := parseMerge(it)
		if err != nil {
			return nil, fmt.Errorf("merges[%d]: %v", i, err)
		}
		out[i] = [2]string{a, b}
	}
	return out, nil
}

func parseMerge(raw json.RawMessage) (string, string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			return "", "", fmt.Errorf("merge %q is not two space-separated tokens", truncate(s, 80))
		}
		return s[:i], s[i+1:], nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("merge must be \"a b\" or [\"a\", \"b\"], got %s", truncate(string(raw), 80))
	}
	return pair[0], pair[1], nil
}

// encodeWord appends the ids of one pre-token.
func (m *bpeModel) encodeWord(dst []int, w string) []int {
	if w == "" {
		return dst
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[w]; ok {
			return append(dst, id)
		}
	}
	syms := make([]int, 0, len(w))
	unkPending := false
	flushUnk := func() {
		if unkPending {
			syms = append(syms, m.unk)
			unkPending = false
		}
	}
	for i := 0; i < len(w); {
		_, n := decodeRune(w, i)
		s := w[i : i+n]
		if i > 0 && m.prefix != "" {
			s = m.prefix + s
		}
		if i+n == len(w) && m.suffix != "" {
			s = s + m.suffix
		}
		if id, ok := m.vocab[s]; ok {
			flushUnk()
			syms = append(syms, id)
			i += n
			continue
		}
		if m.byteFallback {
			ok := true
			for k := i; k < i+n; k++ {
				if m.byteIDs[w[k]] < 0 {
					ok = false
					break
				}
			}
			if ok {
				flushUnk()
				for k := i; k < i+n; k++ {
					syms = append(syms, m.byteIDs[w[k]])
				}
				i += n
				continue
			}
		}
		if m.unk >= 0 {
			if !(unkPending && m.fuseUnk) {
				flushUnk()
				unkPending = true
			}
		}
		i += n
	}
	flushUnk()
	if len(syms) > 1 && len(m.merges) > 0 {
		syms = m.mergeAll(syms)
	}
	return append(dst, syms...)
}

type mergeItem struct {
	rank  int32
	pos   int32
	newID int32
}

func (a mergeItem) less(b mergeItem) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeHeap is a binary min-heap of candidate merges.
type mergeHeap []mergeItem

func (h *mergeHeap) push(x mergeItem) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		c := l
		if r := l + 1; r < len(s) && s[r].less(s[l]) {
			c = r
		}
		if !s[c].less(s[i]) {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	*h = s
	return top
}

// mergeAll applies the merges, lowest rank first (leftmost first among equal ranks),
// in O(n log n) with a heap and a linked list of symbols.
func (m *bpeModel) mergeAll(ids []int) []int {
	n := len(ids)
	prev := make([]int32, n)
	next := make([]int32, n)
	alive := make([]bool, n)
	for i := range ids {
		prev[i] = int32(i - 1)
		next[i] = int32(i + 1)
		alive[i] = true
	}
	next[n-1] = -1
	h := make(mergeHeap, 0, n)
	for i := 0; i+1 < n; i++ {
		if mv, ok := m.merges[pairKey(ids[i], ids[i+1])]; ok {
			h.push(mergeItem{mv.rank, int32(i), mv.newID})
		}
	}
	for len(h) > 0 {
		top := h.pop()
		p := top.pos
		if !alive[p] {
			continue
		}
		q := next[p]
		if q < 0 {
			continue
		}
		mv, ok := m.merges[pairKey(ids[p], ids[q])]
		if !ok || mv.newID != top.newID {
			continue
		}
		ids[p] = int(top.newID)
		alive[q] = false
		nq := next[q]
		next[p] = nq
		if nq >= 0 {
			prev[nq] = p
		}
		if pp := prev[p]; pp >= 0 {
			if mv, ok := m.merges[pairKey(ids[pp], ids[p])]; ok {
				h.push(mergeItem{mv.rank, pp, mv.newID})
			}
		}
		if nq >= 0 {
			if mv, ok := m.merges[pairKey(ids[p], ids[nq])]; ok {
				h.push(mergeItem{mv.rank, p, mv.newID})
			}
		}
	}
	out := ids[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}
