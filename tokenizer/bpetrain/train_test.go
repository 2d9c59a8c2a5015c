package bpetrain

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/masque-ai/masque/tokenizer"
)

func train(t *testing.T, opt Options, texts ...string) *Model {
	t.Helper()
	tr, err := NewTrainer(opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range texts {
		tr.Add(s)
	}
	m, err := tr.Train(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mergeStrings(m *Model) []string {
	out := make([]string, len(m.Merges))
	for i, mg := range m.Merges {
		out[i] = m.Tokens[mg[0]] + "+" + m.Tokens[mg[1]]
	}
	return out
}

// sennrich is the classic BPE example corpus; its merges are worked out by hand in
// TestHandChecked.
const sennrich = "low low low low low lower lower newest newest newest newest newest newest widest widest widest"

// TestHandChecked: pre-tokens "low"×1, " low"×4, " lower"×2, " newest"×6, " widest"×3.
// Pair counts: e+s 9, s+t 9 (tie: e=101 < s=115, so e+s), then es+t 9, l+o 7 and
// o+w 7 (l < o), lo+w 7, then five pairs at 6 taken in id order (" "+n, " "+low, e+w,
// " n"+ew, " new"+est), then " "+w 3, d+est 3 (d=100 < i=105 < " w"=265), i+dest,
// " w"+idest, then e+r 2 (101 < " low"=261), " low"+er; then no pair is left.
func TestHandChecked(t *testing.T) {
	want := []string{"e+s", "es+t", "l+o", "lo+w", " +n", " +low", "e+w", " n+ew", " new+est",
		" +w", "d+est", "i+dest", " w+idest", "e+r", " low+er"}
	m := train(t, Options{VocabSize: 1000}, sennrich)
	if got := mergeStrings(m); !reflect.DeepEqual(got, want) {
		t.Fatalf("merges\n got %q\nwant %q", got, want)
	}
	wantCounts := []int64{9, 9, 7, 7, 6, 6, 6, 6, 6, 3, 3, 3, 3, 2, 2}
	if !reflect.DeepEqual(m.MergeCounts, wantCounts) {
		t.Fatalf("merge counts %v, want %v", m.MergeCounts, wantCounts)
	}
	if m.VocabSize() != 256+15+3 || m.Tokens[256] != "es" || m.Tokens[270] != " lower" {
		t.Fatalf("vocabulary %d, tokens 256=%q 270=%q", m.VocabSize(), m.Tokens[256], m.Tokens[270])
	}

	// The vocabulary size bounds the merges; the minimum frequency stops early.
	m = train(t, Options{VocabSize: 256 + 3 + 4}, sennrich)
	if got := mergeStrings(m); !reflect.DeepEqual(got, want[:4]) || m.VocabSize() != 263 {
		t.Fatalf("vocab 263: merges %q (vocabulary %d)", got, m.VocabSize())
	}
	m = train(t, Options{VocabSize: 1000, MinFrequency: 7}, sennrich)
	if got := mergeStrings(m); !reflect.DeepEqual(got, want[:4]) {
		t.Fatalf("min frequency 7: merges %q", got)
	}
	// Special tokens in the text are not trained on.
	m = train(t, Options{VocabSize: 1000}, sennrich+"<|im_end|><|im_end|><|im_end|>")
	if got := mergeStrings(m); !reflect.DeepEqual(got, want) {
		t.Fatalf("with special tokens in the text: merges %q", got)
	}
}

// naiveTrain is the textbook algorithm: count every pair of every word afresh, merge
// the most frequent (ties to the smaller ids), repeat.
func naiveTrain(texts []string, vocabSize, nSpecial int) []string {
	sp, _ := tokenizer.NewSplitter(tokenizer.SplitPatterns["llama3"])
	freq := map[string]int64{}
	for _, s := range texts {
		sp.Split(s, func(p string) { freq[p]++ })
	}
	var words [][]int32
	var counts []int64
	for w, c := range freq {
		s := make([]int32, len(w))
		for i := range len(w) {
			s[i] = int32(w[i])
		}
		words = append(words, s)
		counts = append(counts, c)
	}
	var toks []string
	ids := map[string]int32{}
	for b := range 256 {
		toks = append(toks, string([]byte{byte(b)}))
		ids[toks[b]] = int32(b)
	}
	var merges []string
	for len(toks)+nSpecial < vocabSize {
		pc := map[[2]int32]int64{}
		for w, s := range words {
			for i := 0; i+1 < len(s); i++ {
				pc[[2]int32{s[i], s[i+1]}] += counts[w]
			}
		}
		var best [2]int32
		var bc int64
		for p, c := range pc {
			if c > bc || c == bc && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, bc = p, c
			}
		}
		if bc == 0 {
			break
		}
		s := toks[best[0]] + toks[best[1]]
		id, ok := ids[s]
		if !ok {
			id = int32(len(toks))
			toks = append(toks, s)
			ids[s] = id
		}
		merges = append(merges, toks[best[0]]+"+"+toks[best[1]])
		for w, s := range words {
			var out []int32
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best[0] && s[i+1] == best[1] {
					out = append(out, id)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[w] = out
		}
	}
	return merges
}

// TestMatchesNaive compares the incremental trainer with the textbook algorithm on
// random texts over small alphabets (many ties, repeated symbols such as "aaaa").
func TestMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"ab ", "abc  ", "aab b\n", "xyzé, 1"}
	for trial := range 40 {
		alpha := []rune(alphabets[trial%len(alphabets)])
		var texts []string
		for range 1 + rng.IntN(30) {
			var sb strings.Builder
			for range rng.IntN(60) {
				sb.WriteRune(alpha[rng.IntN(len(alpha))])
			}
			texts = append(texts, sb.String())
		}
		vocab := 259 + rng.IntN(80)
		want := naiveTrain(texts, vocab, 3)
		if len(want) == 0 {
			continue
		}
		m := train(t, Options{VocabSize: vocab}, texts...)
		if got := mergeStrings(m); !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d (%q, vocab %d):\n got %q\nwant %q", trial, texts, vocab, got, want)
		}
	}
}

// TestDeterministic: the same texts in another order give the same files, byte for
// byte.
func TestDeterministic(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("testdata", "kjv-genesis-1-3.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(text), "\n")
	opt := Options{VocabSize: 700}
	a := train(t, opt, lines...)
	rng := rand.New(rand.NewPCG(3, 4))
	rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	b := train(t, opt, lines...)
	ja, _ := a.TokenizerJSON()
	jb, _ := b.TokenizerJSON()
	if !bytes.Equal(ja, jb) {
		t.Fatal("tokenizer.json differs when the texts come in another order")
	}
	if len(a.Merges) != 700-259 {
		t.Fatalf("%d merges, want %d", len(a.Merges), 700-259)
	}
}

// TestTextChunks: a plain text file read in chunks gives the pre-tokens of the whole
// file.
func TestTextChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	parts := []string{"word", " word", "  ", "\n", "\r\n", "\n\n", " \n", "\t", "123456", ".", "!\n", "'s", "é", "\u00a0", "\u2028", " ", "--"}
	var sb strings.Builder
	for range 20000 {
		sb.WriteString(parts[rng.IntN(len(parts))])
	}
	text := sb.String()
	for _, pat := range []string{"llama3", "gpt2"} {
		whole, _ := NewTrainer(Options{Pattern: pat})
		whole.Add(text)
		chunked, _ := NewTrainer(Options{Pattern: pat})
		n := 0
		err := readTextChunks(context.Background(), strings.NewReader(text), "x", 97, func(s string) { n++; chunked.Add(s) }, func(int) {})
		if err != nil {
			t.Fatal(err)
		}
		if n < 100 {
			t.Fatalf("%s: only %d chunks", pat, n)
		}
		if !reflect.DeepEqual(whole.words, chunked.words) {
			t.Fatalf("%s: chunked pre-token counts differ from the whole text's", pat)
		}
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, []byte("\n{\"text\":\"\"}\n"), 0o644)
	emptyTxt := filepath.Join(dir, "empty.txt")
	os.WriteFile(emptyTxt, nil, 0o644)
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"text\":\"ok\"}\n{\"text\": oops}\n"), 0o644)
	noText := filepath.Join(dir, "notext.jsonl")
	os.WriteFile(noText, []byte("{\"prompt\":\"x\"}\n"), 0o644)
	badContent := filepath.Join(dir, "content.jsonl")
	os.WriteFile(badContent, []byte("{\"messages\":[{\"role\":\"user\",\"content\":7}]}\n"), 0o644)
	emptyDir := filepath.Join(dir, "nocorpus")
	os.Mkdir(emptyDir, 0o755)
	os.WriteFile(filepath.Join(emptyDir, "valid.jsonl"), []byte("{\"text\":\"x\"}\n"), 0o644)
	good := filepath.Join("testdata", "kjv-genesis-1-3.txt")
	outFile := filepath.Join(dir, "out-is-a-file")
	os.WriteFile(outFile, nil, 0o644)

	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty corpus", Config{Data: []string{empty, emptyTxt}}, []string{"empty", "empty.jsonl", "empty.txt"}},
		{"vocab too small", Config{Data: []string{good}, VocabSize: 258}, []string{"258", "256 byte tokens", "3 special"}},
		{"missing file", Config{Data: []string{filepath.Join(dir, "nope.txt")}}, []string{"nope.txt", "no such file"}},
		{"unreadable file", Config{Data: []string{dir + "/"}}, []string{dir, "train.jsonl"}},
		{"bad JSON", Config{Data: []string{bad}}, []string{"bad.jsonl:2", "bad JSON"}},
		{"no text", Config{Data: []string{noText}}, []string{"notext.jsonl:1", "neither \"text\" nor \"messages\""}},
		{"bad content", Config{Data: []string{badContent}}, []string{"content.jsonl:1", "messages[0]"}},
		{"folder without train split", Config{Data: []string{emptyDir}}, []string{"nocorpus", "*/train.jsonl"}},
		{"no data", Config{}, []string{"no training data"}},
		{"unknown pattern", Config{Data: []string{good}, Pattern: "bert"}, []string{"unknown pattern", "bert"}},
		{"negative min frequency", Config{Data: []string{good}, MinFrequency: -1}, []string{"negative"}},
		{"out is a file", Config{Data: []string{good}, Out: outFile}, []string{outFile, "not a folder"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "tok")
			if c.cfg.Out == "" {
				c.cfg.Out = out
			}
			_, err := Run(ctx, c.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(out); serr == nil {
				t.Errorf("output folder written despite the error")
			}
		})
	}
	if _, err := Run(ctx, Config{Data: []string{good}}); err == nil || !strings.Contains(err.Error(), "output folder") {
		t.Errorf("no --out: %v", err)
	}

	// A file that cannot be read (when not running as root).
	locked := filepath.Join(dir, "locked.txt")
	os.WriteFile(locked, []byte("text"), 0o000)
	if f, err := os.Open(locked); err == nil {
		f.Close() // root reads anything
	} else if _, err := Run(ctx, Config{Data: []string{locked}, Out: filepath.Join(dir, "o")}); err == nil ||
		!strings.Contains(err.Error(), "locked.txt") || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("unreadable file: %v", err)
	}

	// A cancelled context stops the run.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(cctx, Config{Data: []string{good}, Out: filepath.Join(dir, "c")}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestCorpusFolder: a corpus folder contributes its train split only, and each row
// its text and distinct message contents.
func TestCorpusFolder(t *testing.T) {
	files, err := ResolveInputs([]string{filepath.Join("testdata", "corpus")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.ToSlash(f.Path))
		if !f.JSONL {
			t.Errorf("%s not read as JSONL", f.Path)
		}
	}
	want := []string{"testdata/corpus/devil/train.jsonl", "testdata/corpus/kjv/train.jsonl"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("inputs %q, want %q", names, want)
	}

	var texts []string
	f, _ := os.Open(filepath.Join("testdata", "corpus", "devil", "train.jsonl"))
	defer f.Close()
	if err := readJSONL(context.Background(), f, "x", func(s string) { texts = append(texts, s) }, func(int) {}); err != nil {
		t.Fatal(err)
	}
	// 20 rows: text, system, user (the assistant turn repeats the text).
	if len(texts) != 60 || !strings.HasPrefix(texts[0], "A decent and customary") ||
		!strings.HasPrefix(texts[1], "You are Ambrose Bierce") || texts[2] != "What does abasement mean?" {
		t.Fatalf("%d texts, first %q", len(texts), texts[:min(3, len(texts))])
	}

	res, err := Run(context.Background(), Config{Data: []string{filepath.Join("testdata", "corpus")}, Out: t.TempDir(), VocabSize: 600})
	if err != nil {
		t.Fatal(err)
	}
	// Only the train files were read.
	var size int64
	for _, n := range want {
		st, _ := os.Stat(n)
		size += st.Size()
	}
	if res.Bytes != size {
		t.Fatalf("read %d bytes, the train files have %d", res.Bytes, size)
	}
	if res.Texts != 60+6*3 {
		t.Fatalf("%d texts, want %d", res.Texts, 60+6*3)
	}
}
