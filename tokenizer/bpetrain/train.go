package bpetrain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/masque-ai/masque/tokenizer"
)

// DefaultSpecialTokens are the added special tokens of a trained tokenizer: the
// end-of-text (padding) token and ChatML's turn delimiters.
var DefaultSpecialTokens = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// Options configure a Trainer.
type Options struct {
	// VocabSize is the size of the whole vocabulary: the 256 byte tokens, the merged
	// tokens and the special tokens (default 8192).
	VocabSize int
	// Pattern names the pre-tokenizer regex: "llama3" (default), "gpt2" or "qwen2"
	// (see tokenizer.SplitPatterns).
	Pattern string
	// MinFrequency stops training when the most frequent pair occurs fewer times
	// (0 or 1: merge while any pair occurs).
	MinFrequency int
	// SpecialTokens are added after the merged tokens, in this order (default
	// DefaultSpecialTokens). Their literal occurrences in the training text are not
	// trained on, as the encoder matches them before pre-tokenizing.
	SpecialTokens []string
	// Progress, if set, is called now and then during Train with the merges done
	// and the merges wanted.
	Progress func(done, total int)
}

func (o *Options) defaults() error {
	if o.VocabSize == 0 {
		o.VocabSize = 8192
	}
	if o.Pattern == "" {
		o.Pattern = "llama3"
	}
	if o.SpecialTokens == nil {
		o.SpecialTokens = DefaultSpecialTokens
	}
	if _, ok := tokenizer.SplitPatterns[o.Pattern]; !ok {
		return fmt.Errorf("bpetrain: unknown pattern %q (want llama3, gpt2 or qwen2)", o.Pattern)
	}
	seen := map[string]bool{}
	for _, s := range o.SpecialTokens {
		if s == "" {
			return errors.New("bpetrain: empty special token")
		}
		if seen[s] {
			return fmt.Errorf("bpetrain: special token %q listed twice", s)
		}
		seen[s] = true
	}
	if min := 256 + len(o.SpecialTokens); o.VocabSize < min {
		return fmt.Errorf("bpetrain: vocabulary size %d is smaller than the 256 byte tokens plus %d special tokens (%d)",
			o.VocabSize, len(o.SpecialTokens), min)
	}
	if o.VocabSize > 1<<24 {
		return fmt.Errorf("bpetrain: vocabulary size %d is too large", o.VocabSize)
	}
	if o.MinFrequency < 0 {
		return fmt.Errorf("bpetrain: negative minimum frequency %d", o.MinFrequency)
	}
	return nil
}

// Trainer learns a byte-level BPE vocabulary. Add the training texts, then call
// Train. A Trainer is not safe for concurrent use.
type Trainer struct {
	opt    Options
	split  *tokenizer.Splitter
	words  map[string]int64 // pre-token (raw bytes) -> frequency
	texts  int64
	pieces int64
}

// NewTrainer checks the options and returns an empty Trainer.
func NewTrainer(opt Options) (*Trainer, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	sp, err := tokenizer.NewSplitter(tokenizer.SplitPatterns[opt.Pattern])
	if err != nil {
		return nil, err
	}
	return &Trainer{opt: opt, split: sp, words: map[string]int64{}}, nil
}

// Add counts the pre-tokens of one text (a document, a message). Invalid UTF-8 is
// replaced by U+FFFD and the special tokens written in the text are left out, as the
// encoder does.
func (t *Trainer) Add(text string) {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	t.texts++
	for text != "" {
		at, n := t.nextSpecial(text)
		part := text
		if at >= 0 {
			part = text[:at]
		}
		t.split.Split(part, t.count)
		if at < 0 {
			break
		}
		text = text[at+n:]
	}
}

func (t *Trainer) count(p string) {
	t.pieces++
	if c, ok := t.words[p]; ok {
		t.words[p] = c + 1
	} else {
		t.words[strings.Clone(p)] = 1
	}
}

// nextSpecial returns the offset and length of the leftmost (then longest) special
// token in s, or -1.
func (t *Trainer) nextSpecial(s string) (int, int) {
	at, n := -1, 0
	for _, sp := range t.opt.SpecialTokens {
		i := strings.Index(s, sp)
		if i >= 0 && (at < 0 || i < at || i == at && len(sp) > n) {
			at, n = i, len(sp)
		}
	}
	return at, n
}

// Texts returns the number of texts added; Pieces the number of pre-tokens counted;
// Words the number of distinct pre-tokens.
func (t *Trainer) Texts() int64  { return t.texts }
func (t *Trainer) Pieces() int64 { return t.pieces }
func (t *Trainer) Words() int    { return len(t.words) }

// Model is a trained byte-level BPE tokenizer.
type Model struct {
	// Pattern is the name of the pre-tokenizer regex.
	Pattern string
	// Tokens are the model's tokens by id as raw bytes: ids 0–255 are the single
	// bytes, then the merged tokens in the order they were learned.
	Tokens []string
	// Merges are the learned merges in priority order, as pairs of token ids. A merge
	// whose result is a token already (the same bytes split differently) adds no token,
	// as in Hugging Face's trainer.
	Merges [][2]int32
	// MergeCounts are the pair frequencies at the time of each merge.
	MergeCounts []int64
	// SpecialTokens follow the model's tokens: the first has id len(Tokens).
	SpecialTokens []string
}

// VocabSize is the number of ids: the model's tokens and the special tokens.
func (m *Model) VocabSize() int { return len(m.Tokens) + len(m.SpecialTokens) }

// ErrEmpty is returned by Train when no text was added.
var ErrEmpty = errors.New("bpetrain: the training corpus is empty")

// Train learns merges until the vocabulary (byte tokens, merged tokens and special
// tokens) has Options.VocabSize entries, no pair occurs at least MinFrequency times,
// or every pre-token is a single token. Pairs are merged by frequency (summed over
// the pre-tokens' counts); ties go to the pair of smaller ids (left, then right), so
// the result depends only on the multiset of pre-tokens. Pair counts are updated
// incrementally from an index of the words each pair occurs in, with a max-heap of
// pairs whose stale entries are refreshed when they reach the top, as in Hugging Face
// tokenizers' BPE trainer.
func (t *Trainer) Train(ctx context.Context) (*Model, error) {
	if t.pieces == 0 {
		return nil, ErrEmpty
	}
	opt := t.opt
	m := &Model{Pattern: opt.Pattern, SpecialTokens: append([]string(nil), opt.SpecialTokens...)}
	tokID := make(map[string]int32, opt.VocabSize)
	for b := 0; b < 256; b++ {
		s := string([]byte{byte(b)})
		m.Tokens = append(m.Tokens, s)
		tokID[s] = int32(b)
	}
	wantTokens := opt.VocabSize - len(opt.SpecialTokens)
	total := wantTokens - 256

	// Words as symbol sequences with their frequencies.
	nw := len(t.words)
	syms := make([][]int32, 0, nw)
	freq := make([]int64, 0, nw)
	nsym := 0
	for w := range t.words {
		nsym += len(w)
	}
	backing := make([]int32, 0, nsym)
	for w, c := range t.words {
		if len(w) < 2 {
			continue // a single byte never takes part in a merge
		}
		start := len(backing)
		for i := 0; i < len(w); i++ {
			backing = append(backing, int32(w[i]))
		}
		syms = append(syms, backing[start:len(backing):len(backing)])
		freq = append(freq, c)
	}

	// Pair counts and where each pair occurs.
	counts := make(map[uint64]int64, 1<<16)
	where := make(map[uint64][]int32, 1<<16)
	for w, s := range syms {
		f := freq[w]
		for i := 0; i+1 < len(s); i++ {
			k := pairKey(s[i], s[i+1])
			counts[k] += f
			if l := where[k]; len(l) == 0 || l[len(l)-1] != int32(w) {
				where[k] = append(l, int32(w))
			}
		}
	}
	h := make(pairHeap, 0, len(counts))
	for k, c := range counts {
		h = append(h, heapItem{count: c, pair: k})
	}
	h.init()

	minFreq := int64(max(opt.MinFrequency, 1))
	seen := make([]int32, len(syms))
	for i := range seen {
		seen[i] = -1
	}
	grown := make(map[uint64]struct{})
	for it := int32(0); len(m.Tokens) < wantTokens; it++ {
		if it&63 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if opt.Progress != nil {
				opt.Progress(len(m.Tokens)-256, total)
			}
		}
		// The most frequent pair: refresh stale entries until the top is current.
		var top heapItem
		found := false
		for len(h) > 0 {
			top = h.pop()
			cur := counts[top.pair]
			if cur == top.count {
				found = true
				break
			}
			if cur > 0 {
				h.push(heapItem{count: cur, pair: top.pair})
			}
		}
		if !found || top.count < minFreq {
			break
		}
		a, b := int32(top.pair>>32), int32(uint32(top.pair))
		s := m.Tokens[a] + m.Tokens[b]
		id, ok := tokID[s]
		if !ok {
			id = int32(len(m.Tokens))
			m.Tokens = append(m.Tokens, s)
			tokID[s] = id
		}
		m.Merges = append(m.Merges, [2]int32{a, b})
		m.MergeCounts = append(m.MergeCounts, top.count)
		delete(counts, top.pair)
		list := where[top.pair]
		delete(where, top.pair)

		change := func(k uint64, d int64, w int32) {
			if k == top.pair {
				return
			}
			c := counts[k] + d
			if c <= 0 {
				delete(counts, k)
			} else {
				counts[k] = c
			}
			if d > 0 {
				if l := where[k]; len(l) == 0 || l[len(l)-1] != w {
					where[k] = append(l, w)
				}
				grown[k] = struct{}{}
			}
		}
		for _, w := range list {
			if seen[w] == it {
				continue
			}
			seen[w] = it
			s, f := syms[w], freq[w]
			j := 0
			for i := 0; i < len(s); {
				if i+1 < len(s) && s[i] == a && s[i+1] == b {
					if j > 0 {
						p := s[j-1]
						change(pairKey(p, a), -f, w)
						change(pairKey(p, id), f, w)
					}
					if i+2 < len(s) {
						n := s[i+2]
						change(pairKey(b, n), -f, w)
						change(pairKey(id, n), f, w)
					}
					s[j] = id
					j++
					i += 2
				} else {
					s[j] = s[i]
					j++
					i++
				}
			}
			syms[w] = s[:j]
		}
		for k := range grown {
			if c := counts[k]; c > 0 {
				h.push(heapItem{count: c, pair: k})
			}
		}
		clear(grown)
	}
	if opt.Progress != nil {
		opt.Progress(len(m.Tokens)-256, total)
	}
	return m, nil
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// heapItem is a pair with its count when pushed.
type heapItem struct {
	count int64
	pair  uint64
}

// before orders the heap: higher count first, then the smaller pair (left id, then
// right id).
func (x heapItem) before(y heapItem) bool {
	if x.count != y.count {
		return x.count > y.count
	}
	return x.pair < y.pair
}

type pairHeap []heapItem

func (h pairHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *pairHeap) push(x heapItem) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pairHeap) pop() heapItem {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	*h = s[:n]
	h.down(0)
	return top
}

func (h pairHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h[r].before(h[l]) {
			c = r
		}
		if !h[c].before(h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
