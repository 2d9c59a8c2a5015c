package tokenizer

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json "added_tokens".
type addedToken struct {
	id         int
	content    string
	special    bool
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
}

// trie is a byte trie over added-token patterns, for leftmost-longest matching.
type trie struct {
	nodes []trieNode
	first [256]bool
}

type trieNode struct {
	keys  []byte
	kids  []int32
	token int32 // index into Tokenizer.added, or -1
}

func newTrie() *trie { return &trie{nodes: []trieNode{{token: -1}}} }

func (tr *trie) insert(pat string, tok int) {
	if pat == "" {
		return
	}
	tr.first[pat[0]] = true
	n := 0
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		nd := &tr.nodes[n]
		k := sort.Search(len(nd.keys), func(j int) bool { return nd.keys[j] >= c })
		if k < len(nd.keys) && nd.keys[k] == c {
			n = int(nd.kids[k])
			continue
		}
		tr.nodes = append(tr.nodes, trieNode{token: -1})
		child := int32(len(tr.nodes) - 1)
		nd = &tr.nodes[n]
		nd.keys = append(nd.keys, 0)
		nd.kids = append(nd.kids, 0)
		copy(nd.keys[k+1:], nd.keys[k:])
		copy(nd.kids[k+1:], nd.kids[k:])
		nd.keys[k] = c
		nd.kids[k] = child
		n = int(child)
	}
	if tr.nodes[n].token < 0 {
		tr.nodes[n].token = int32(tok)
	}
}

// longest returns the longest pattern starting at s[i] (token index and end), or -1.
func (tr *trie) longest(s string, i int) (int, int) {
	best, bestEnd := -1, -1
	n := 0
	for j := i; j < len(s); j++ {
		nd := &tr.nodes[n]
		c := s[j]
		k := sort.Search(len(nd.keys), func(x int) bool { return nd.keys[x] >= c })
		if k >= len(nd.keys) || nd.keys[k] != c {
			break
		}
		n = int(nd.kids[k])
		if t := tr.nodes[n].token; t >= 0 {
			best, bestEnd = int(t), j+1
		}
	}
	return best, bestEnd
}

// buildTries builds the added-token matchers. As in Hugging Face, a normalized added
// token is matched (and decoded) in its normalized form.
func (t *Tokenizer) buildTries() {
	for i, a := range t.added {
		if a.normalized {
			pat := a.content
			if t.normalize != nil {
				pat = t.normalize(pat)
				if pat != "" {
					t.idToTok[a.id] = pat
				}
			}
			if t.normTrie == nil {
				t.normTrie = newTrie()
			}
			t.normTrie.insert(pat, i)
		} else {
			if t.rawTrie == nil {
				t.rawTrie = newTrie()
			}
			t.rawTrie.insert(a.content, i)
		}
	}
}

// segment is a part of the input: either an added token (tok >= 0) or text.
type segment struct {
	s     string
	tok   int // added token id, or -1
	first bool
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || r == '_'
}

// splitAdded splits s at the added tokens of tr (leftmost-longest, with the
// single_word/lstrip/rstrip rules of Hugging Face) and appends the segments.
func (t *Tokenizer) splitAdded(out []segment, s string, first bool, tr *trie) []segment {
	if tr == nil || s == "" {
		if s != "" {
			out = append(out, segment{s, -1, first})
		}
		return out
	}
	startOff := 0
	for i := 0; i < len(s); {
		if !tr.first[s[i]] {
			i++
			continue
		}
		ti, end := tr.longest(s, i)
		if ti < 0 {
			i++
			continue
		}
		a := &t.added[ti]
		start, stop := i, end
		if a.singleWord {
			okL := start == 0
			if !okL {
				r, _ := utf8.DecodeLastRuneInString(s[:start])
				okL = !isWordRune(r)
			}
			okR := stop == len(s)
			if !okR {
				r, _ := utf8.DecodeRuneInString(s[stop:])
				okR = !isWordRune(r)
			}
			if !okL || !okR {
				i = end
				continue
			}
		}
		if a.lstrip {
			for start > startOff {
				r, n := utf8.DecodeLastRuneInString(s[:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= n
			}
		}
		if a.rstrip {
			for stop < len(s) {
				r, n := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += n
			}
		}
		if start < startOff {
			start = startOff
		}
		if startOff < start {
			out = append(out, segment{s[startOff:start], -1, first && startOff == 0})
		}
		out = append(out, segment{s[start:stop], a.id, false})
		startOff = stop
		i = max(end, stop)
	}
	if startOff < len(s) {
		out = append(out, segment{s[startOff:], -1, first && startOff == 0})
	}
	return out
}

// encodeText encodes text without post-processing. When toks is not nil, the token
// strings are appended to it.
func (t *Tokenizer) encodeText(text string, toks *[]string) []int {
	text = validUTF8(text)
	if text == "" {
		return []int{}
	}
	segs := t.splitAdded(nil, text, true, t.rawTrie)
	ids := make([]int, 0, len(text)/3+4)
	var pieces []piece
	for _, sg := range segs {
		if sg.tok >= 0 {
			ids = append(ids, sg.tok)
			if toks != nil {
				*toks = append(*toks, sg.s)
			}
			continue
		}
		s := sg.s
		if t.normalize != nil {
			s = t.normalize(s)
		}
		sub := []segment{{s, -1, sg.first}}
		if t.normTrie != nil {
			sub = t.splitAdded(nil, s, sg.first, t.normTrie)
		}
		for _, ss := range sub {
			if ss.tok >= 0 {
				ids = append(ids, ss.tok)
				if toks != nil {
					*toks = append(*toks, ss.s)
				}
				continue
			}
			if ss.s == "" {
				continue
			}
			pieces = append(pieces[:0], piece{s: ss.s, first: ss.first})
			if t.pretok != nil {
				pieces = t.pretok(pieces)
			}
			for _, pc := range pieces {
				n := len(ids)
				ids = t.encodePiece(ids, pc.s, pc.raw)
				if toks != nil {
					for _, id := range ids[n:] {
						*toks = append(*toks, t.Token(id))
					}
				}
			}
		}
	}
	return ids
}

// encodePiece runs the model on one pre-token, through the bounded cache. raw means
// that w still has to be mapped to the byte-level alphabet (the cache key is then the
// unmapped text; a tokenizer's pieces are either always raw or never).
func (t *Tokenizer) encodePiece(dst []int, w string, raw bool) []int {
	if w == "" {
		return dst
	}
	t.cacheMu.Lock()
	c, ok := t.cache[w]
	t.cacheMu.Unlock()
	if ok {
		return append(dst, c...)
	}
	start := len(dst)
	if raw {
		dst = t.bpe.encodeWord(dst, byteLevelEncode(w))
	} else {
		dst = t.bpe.encodeWord(dst, w)
	}
	res := append([]int(nil), dst[start:]...)
	t.cacheMu.Lock()
	if len(t.cache) >= cacheLimit {
		clear(t.cache)
	}
	t.cache[w] = res
	t.cacheMu.Unlock()
	return dst
}
