package tokenizer

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
)

// llama2c is the tokenizer of Karpathy's llama2.c (tokenizer.bin).
type llama2c struct {
	pieces []string
	scores []float32
	lookup map[string]int // piece -> first id with that piece
}

const (
	l2cUnk = 0
	l2cBOS = 1
	l2cEOS = 2
)

// LoadLlama2C reads a llama2.c tokenizer.bin: int32 max_token_length, then for each id
// a float32 score, an int32 length and that many bytes of the piece (little-endian).
// Ids 0, 1 and 2 are <unk>, BOS and EOS; ids 3..258 are the bytes <0x00>..<0xFF>.
func LoadLlama2C(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parseLlama2C(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// ParseLlama2C reads a llama2.c tokenizer from memory; name is used in errors.
func ParseLlama2C(data []byte, name string) (*Tokenizer, error) {
	t, err := parseLlama2C(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, err)
	}
	return t, nil
}

func parseLlama2C(data []byte) (*Tokenizer, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("file too short for a llama2.c tokenizer header")
	}
	maxLen := int32(binary.LittleEndian.Uint32(data))
	if maxLen <= 0 {
		return nil, fmt.Errorf("bad max_token_length %d", maxLen)
	}
	l := &llama2c{lookup: map[string]int{}}
	off := 4
	for off < len(data) {
		id := len(l.pieces)
		if off+8 > len(data) {
			return nil, fmt.Errorf("truncated entry for id %d at byte %d", id, off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int32(binary.LittleEndian.Uint32(data[off+4:]))
		off += 8
		if n < 0 || int(n) > len(data)-off {
			return nil, fmt.Errorf("bad piece length %d for id %d at byte %d", n, id, off-4)
		}
		p := string(data[off : off+int(n)])
		off += int(n)
		l.pieces = append(l.pieces, p)
		l.scores = append(l.scores, score)
		if _, ok := l.lookup[p]; !ok {
			l.lookup[p] = id
		}
	}
	if len(l.pieces) < 3+256 {
		return nil, fmt.Errorf("only %d pieces; a llama2.c tokenizer has at least 259 (<unk>, BOS, EOS, 256 bytes)", len(l.pieces))
	}
	n := len(l.pieces)
	t := &Tokenizer{
		l2c:     l,
		idToTok: l.pieces,
		special: make([]bool, n),
		isAdded: make([]bool, n),
		tokToID: l.lookup,
		bos:     l2cBOS, eos: l2cEOS,
		bosTok: l.pieces[l2cBOS], eosTok: l.pieces[l2cEOS],
	}
	t.special[l2cUnk], t.special[l2cBOS], t.special[l2cEOS] = true, true, true
	return t, nil
}

// encode follows llama2.c run.c encode(text, bos, eos=0).
func (l *llama2c) encode(text string, bos bool) []int {
	var toks []int
	if bos {
		toks = append(toks, l2cBOS)
	}
	if text != "" {
		if id, ok := l.lookup[" "]; ok {
			toks = append(toks, id)
		} else {
			toks = append(toks, ' '+3)
		}
	}
	// One id per UTF-8 code point (grouping as run.c does, by bytes), else bytes+3.
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := l.lookup[text[i:j]]; ok {
			toks = append(toks, id)
		} else {
			for k := i; k < j; k++ {
				toks = append(toks, int(text[k])+3)
			}
		}
		i = j
	}
	return l.merge(toks)
}

type l2cItem struct {
	score float32
	pos   int32
	id    int32
}

func (a l2cItem) better(b l2cItem) bool {
	return a.score > b.score || (a.score == b.score && a.pos < b.pos)
}

// merge repeatedly merges the adjacent pair whose concatenation is a piece with the
// highest score (leftmost on ties), using a heap: O(n log n).
func (l *llama2c) merge(toks []int) []int {
	n := len(toks)
	if n < 2 {
		return toks
	}
	next := make([]int32, n)
	prev := make([]int32, n)
	alive := make([]bool, n)
	for i := range toks {
		next[i], prev[i], alive[i] = int32(i+1), int32(i-1), true
	}
	next[n-1] = -1
	var h []l2cItem
	push := func(it l2cItem) {
		h = append(h, it)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !h[i].better(h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
	}
	pop := func() l2cItem {
		top := h[0]
		h[0] = h[len(h)-1]
		h = h[:len(h)-1]
		for i := 0; ; {
			c := 2*i + 1
			if c >= len(h) {
				break
			}
			if c+1 < len(h) && h[c+1].better(h[c]) {
				c++
			}
			if !h[c].better(h[i]) {
				break
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
		return top
	}
	var sb strings.Builder
	pair := func(p int32) {
		q := next[p]
		if q < 0 {
			return
		}
		sb.Reset()
		sb.WriteString(l.pieces[toks[p]])
		sb.WriteString(l.pieces[toks[q]])
		if id, ok := l.lookup[sb.String()]; ok && l.scores[id] > -1e10 {
			push(l2cItem{l.scores[id], p, int32(id)})
		}
	}
	for i := 0; i+1 < n; i++ {
		pair(int32(i))
	}
	for len(h) > 0 {
		it := pop()
		p := it.pos
		if !alive[p] {
			continue
		}
		q := next[p]
		if q < 0 {
			continue
		}
		if id, ok := l.lookup[l.pieces[toks[p]]+l.pieces[toks[q]]]; !ok || int32(id) != it.id {
			continue
		}
		toks[p] = int(it.id)
		alive[q] = false
		next[p] = next[q]
		if next[q] >= 0 {
			prev[next[q]] = p
		}
		if prev[p] >= 0 {
			pair(prev[p])
		}
		pair(p)
	}
	out := toks[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, toks[i])
	}
	return out
}

// addL2C decodes one llama2.c id as run.c decode() does.
func (d *StreamDecoder) addL2C(id int) string {
	l := d.t.l2c
	prev := d.prevID
	d.prevID = id
	if id < 0 || id >= len(l.pieces) {
		return ""
	}
	if d.skipSpecial && d.t.special[id] {
		return ""
	}
	p := l.pieces[id]
	if prev == l2cBOS && strings.HasPrefix(p, " ") {
		p = p[1:]
	}
	if b, ok := parseByteToken(p); ok {
		return d.l2cBuf.add([]byte{b})
	}
	return d.l2cBuf.add([]byte(p))
}
