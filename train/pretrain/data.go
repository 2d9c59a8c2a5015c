package pretrain

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/tokenizer"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/sft"
)

// EndOfText separates plain-text documents.
const EndOfText = "<|endoftext|>"

// docMaker turns rows into training documents (train.Sequence values of at
// most seqLen tokens).
type docMaker struct {
	tok       *tokenizer.Tokenizer
	enc       *sft.Encoder
	eot       int
	seqLen    int
	chatRatio float64
	seed      uint64
}

// Stats count what the data became.
type Stats struct {
	Rows      int   `json:"rows"`
	ChatRows  int   `json:"chat_rows"`
	TextRows  int   `json:"text_rows"`
	Sequences int   `json:"sequences"` // after splitting documents longer than the sequence length
	Tokens    int64 `json:"tokens"`
	Targets   int64 `json:"targets"` // tokens that carry loss
}

func (s *Stats) add(o Stats) {
	s.Rows += o.Rows
	s.ChatRows += o.ChatRows
	s.TextRows += o.TextRows
	s.Sequences += o.Sequences
	s.Tokens += o.Tokens
	s.Targets += o.Targets
}

// row is a corpus row (CORPUS.md); other keys are ignored.
type row struct {
	ID    string `json:"id"`
	Voice string `json:"voice"`
	Text  *string
	Msgs  json.RawMessage
}

// useChat decides, from the seed and the row's identity alone, whether a
// row that has both views is trained as chat: a fraction chatRatio of such
// rows, independent of file order and of the other rows.
func (d *docMaker) useChat(key string) bool {
	h := fnv.New64a()
	h.Write([]byte(key))
	u := splitmix(h.Sum64() ^ splitmix(d.seed^0x636861747261)) // "chatra"
	return float64(u>>11)/(1<<53) < d.chatRatio
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// textDoc is the plain language-model view of a passage: <|endoftext|>
// followed by its tokens, each position predicting the next, the last one
// predicting <|endoftext|> (so documents are separated by it, and every
// token including the first carries loss).
func (d *docMaker) textDoc(text string) train.Sequence {
	ids := d.tok.Encode(text, false)
	toks := make([]int, 0, len(ids)+1)
	toks = append(toks, d.eot)
	toks = append(toks, ids...)
	tg := make([]int, len(toks))
	copy(tg, toks[1:])
	tg[len(tg)-1] = d.eot
	return train.Sequence{Tokens: toks, Targets: tg}
}

// split cuts a document into pieces of at most seqLen tokens (each
// position keeps its target, so nothing is lost at the cuts) and drops
// pieces without any target.
func (d *docMaker) split(s train.Sequence, out []train.Sequence, st *Stats) []train.Sequence {
	for i := 0; i < len(s.Tokens); i += d.seqLen {
		j := min(len(s.Tokens), i+d.seqLen)
		piece := train.Sequence{Tokens: s.Tokens[i:j], Targets: s.Targets[i:j]}
		n := 0
		for _, t := range piece.Targets {
			if t != train.IgnoreIndex {
				n++
			}
		}
		if n == 0 {
			continue
		}
		out = append(out, piece)
		st.Sequences++
		st.Tokens += int64(len(piece.Tokens))
		st.Targets += int64(n)
	}
	return out
}

// group is the data of one voice (or one extra file).
type group struct {
	name  string
	seqs  []train.Sequence
	stats Stats
}

// readFile reads a training or validation file: JSONL rows with "text"
// and/or "messages" (grouped by their "voice", else under defName), or
// plain text (.txt: documents separated by lines holding only
// <|endoftext|>, or the whole file one document).
func (d *docMaker) readFile(path, defName string, add func(voice string, s train.Sequence, chat bool)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading training data: %w", err)
	}
	if strings.EqualFold(filepath.Ext(path), ".txt") {
		for _, doc := range splitTextDocs(string(data)) {
			add(defName, d.textDoc(doc), false)
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		fail := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, a...))
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return fail("malformed JSON: %v", err)
		}
		var r row
		for k, dst := range map[string]*string{"id": &r.ID, "voice": &r.Voice} {
			if v, ok := raw[k]; ok && string(v) != "null" {
				if err := json.Unmarshal(v, dst); err != nil {
					return fail("%q is not a string", k)
				}
			}
		}
		if v, ok := raw["text"]; ok && string(v) != "null" {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return fail("\"text\" is not a string")
			}
			if strings.TrimSpace(s) != "" {
				r.Text = &s
			}
		}
		_, hasMsgs := raw["messages"]
		if r.Text == nil && !hasMsgs {
			return fail("the row has neither a non-empty \"text\" nor \"messages\"")
		}
		key := r.ID
		if key == "" {
			key = fmt.Sprintf("%s:%d", filepath.Base(path), line)
		}
		voice := r.Voice
		if voice == "" {
			voice = defName
		}
		if hasMsgs && (r.Text == nil || d.useChat(key)) {
			msgs, err := chatdata.ParseRow(b, chatdata.ReadOptions{Format: chatdata.FormatMessages})
			if err != nil {
				return fail("%v", err)
			}
			e, err := d.enc.Encode(msgs)
			if err != nil {
				return fail("%v", err)
			}
			add(voice, e.Seq, true)
			continue
		}
		add(voice, d.textDoc(*r.Text), false)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// splitTextDocs cuts a text file at lines holding only <|endoftext|>.
func splitTextDocs(s string) []string {
	var docs []string
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			docs = append(docs, t)
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.TrimSpace(line) == EndOfText {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

// readGroups reads files into per-voice groups, in the order voices first
// appear (or the order of names, when given).
func (d *docMaker) readGroups(files []string, defNames []string, names []string) ([]*group, error) {
	byName := map[string]*group{}
	var order []*group
	get := func(name string) *group {
		g := byName[name]
		if g == nil {
			g = &group{name: name}
			byName[name] = g
			order = append(order, g)
		}
		return g
	}
	for _, n := range names {
		get(n)
	}
	for i, f := range files {
		err := d.readFile(f, defNames[i], func(voice string, s train.Sequence, chat bool) {
			g := get(voice)
			g.stats.Rows++
			if chat {
				g.stats.ChatRows++
			} else {
				g.stats.TextRows++
			}
			g.seqs = d.split(s, g.seqs, &g.stats)
		})
		if err != nil {
			return nil, err
		}
	}
	var out []*group
	for _, g := range order {
		if len(g.seqs) > 0 {
			out = append(out, g)
		}
	}
	return out, nil
}

// capTokens keeps a seeded random subset of seqs of about budget tokens
// (all of them when budget ≤ 0 or they fit), in their original order.
func capTokens(seqs []train.Sequence, budget int, seed uint64) []train.Sequence {
	total := 0
	for _, s := range seqs {
		total += len(s.Tokens)
	}
	if budget <= 0 || total <= budget {
		return seqs
	}
	perm := rand.New(rand.NewPCG(seed, 0x6576616c)).Perm(len(seqs)) // "eval"
	keep := make([]bool, len(seqs))
	n := 0
	for _, i := range perm {
		if n >= budget {
			break
		}
		keep[i] = true
		n += len(seqs[i].Tokens)
	}
	var out []train.Sequence
	for i, s := range seqs {
		if keep[i] {
			out = append(out, s)
		}
	}
	return out
}

// corpusFiles lists the voices of a corpus folder (CORPUS.md) in canonical
// order: personas.json's order when present, else the sub-folders with a
// train.jsonl, sorted.
func corpusVoices(dir string) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("corpus: %s is not a folder", dir)
	}
	pj := filepath.Join(dir, "personas.json")
	if b, err := os.ReadFile(pj); err == nil {
		var p struct {
			Voices []struct {
				Name string `json:"name"`
			} `json:"voices"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("%s: malformed JSON: %v", pj, err)
		}
		var out []string
		for i, v := range p.Voices {
			if v.Name == "" || strings.ContainsAny(v.Name, `/\`) || v.Name == "." || v.Name == ".." {
				return nil, fmt.Errorf("%s: voice %d has a bad name %q", pj, i, v.Name)
			}
			out = append(out, v.Name)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: no voices", pj)
		}
		return out, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "train.jsonl")); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("corpus: %s has no personas.json and no VOICE/train.jsonl", dir)
	}
	return out, nil
}

// chatEncoder makes the sft encoder of a tokenizer folder's chat template.
func chatEncoder(tok *tokenizer.Tokenizer, dir string) (*sft.Encoder, *chattemplate.Config, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	if _, err := os.Stat(cfgPath); err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %s: %w (the chat template lives there)", dir, err)
	}
	cfg, err := chattemplate.LoadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	if cfg.ChatTemplate == "" {
		return nil, nil, fmt.Errorf("tokenizer: %s has no chat_template", cfgPath)
	}
	tpl, err := cfg.Template()
	if err != nil {
		return nil, nil, err
	}
	return sft.NewEncoder(tpl, tok, cfg, true), cfg, nil
}
