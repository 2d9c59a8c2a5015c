package style

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/masque-ai/masque/internal/cputime"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("%s = %.15g, want %.15g", what, got, want)
	}
}

func mustAnalyze(t *testing.T, text string) [][]Token {
	t.Helper()
	s, err := English{}.Analyze(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPMIHand checks PMI and the keyword ranking on a text small enough to
// compute by hand.
func TestPMIHand(t *testing.T) {
	char, bg := NewCounts(), NewCounts()
	char.Add(English{}, mustAnalyze(t, "The cat sat. The cat ran."))
	bg.Add(English{}, mustAnalyze(t, "A dog sat."))
	// Content words (the, a are stopwords): char cat×2 sat ran (N=4); bg dog sat (N=2).
	if char.Total != 4 || bg.Total != 2 || char.Stem["cat"] != 2 {
		t.Fatalf("counts: char %v (%d), bg %v (%d)", char.Stem, char.Total, bg.Stem, bg.Total)
	}
	pmi := PMI(char, bg, 1)
	near(t, "PMI(cat)", pmi["cat"], math.Log2((2.0/4)/(2.0/6)))
	near(t, "PMI(sat)", pmi["sat"], math.Log2((1.0/4)/(2.0/6)))
	near(t, "PMI(ran)", pmi["ran"], math.Log2((1.0/4)/(1.0/6)))
	if _, ok := PMI(char, bg, 2)["sat"]; ok {
		t.Error("min support 2 kept a word used once")
	}
	ks := Keywords(char, pmi, 25)
	if len(ks) != 2 || ks[0].Word != "cat" || ks[1].Word != "ran" {
		t.Fatalf("keywords %+v, want cat then ran (sat has negative PMI)", ks)
	}
	near(t, "score(cat)", ks[0].Score, (1+math.Log(2))*math.Log2(1.5))
	near(t, "score(ran)", ks[1].Score, math.Log2(1.5))

	// The same through Run, where the background is the pool's remainder.
	set, err := Run(context.Background(), Config{Characters: []Character{{Name: "c", Lines: []string{"The cat sat.", "The cat ran."}}},
		Background: []string{"A dog sat."}, MinCount: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Characters[0]
	near(t, "Run PMI(cat)", p.Lexicon["cat"], math.Log2(1.5))
	lexSelf := (2*math.Log2(1.5) + math.Log2(0.75) + math.Log2(1.5)) / 4
	near(t, "lex_self", p.LexSelf, lexSelf)

	// Chunks of 3 words: each line is one; their mean word PMIs are
	// (PMI(cat)+PMI(sat))/2 and (PMI(cat)+PMI(ran))/2, whose sample SD is
	// |difference|/√2. A text with a word the pool knows but the character
	// never used ("dog") gets log2((½/N_c)/p(dog)) for it.
	set, err = Run(context.Background(), Config{Characters: []Character{{Name: "c", Lines: []string{"The cat sat.", "The cat ran."}}},
		Background: []string{"A dog sat."}, MinCount: 1, Workers: 1, ChunkWords: 3})
	if err != nil {
		t.Fatal(err)
	}
	p = set.Characters[0]
	m1, m2 := (math.Log2(1.5)+math.Log2(0.75))/2, math.Log2(1.5)
	near(t, "lex_spread", p.LexSpread, math.Abs(m1-m2)/math.Sqrt2)
	if set.Vocabulary.Words != 6 || set.Vocabulary.Stems["dog"] != 1 || set.Vocabulary.Stems["cat"] != 2 {
		t.Fatalf("vocabulary %+v", set.Vocabulary)
	}
	sc, err := NewScorer(set, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := sc.Features(context.Background(), "A dog sat.")
	if err != nil {
		t.Fatal(err)
	}
	parts := sc.Parts(f, p)
	m := (math.Log2((0.5/4)/(1.0/6)) + math.Log2(0.75)) / 2
	near(t, "mean word PMI", parts.MeanPMI, m)
	z := (lexSelf - m) / p.LexSpread
	near(t, "lexical similarity", parts.Lexical, math.Exp(-z*z/2))
	if f, _ = sc.Features(context.Background(), "The cat ran, the cat ran."); sc.Parts(f, p).Lexical != 1 {
		t.Errorf("a text above the character's own mean PMI: lexical %v, want 1", sc.Parts(f, p).Lexical)
	}
}

// TestStopwordsAndPunctuation: stopwords, punctuation, numbers and clitics
// never count.
func TestStopwordsAndPunctuation(t *testing.T) {
	c := NewCounts()
	c.Add(English{}, mustAnalyze(t, "I don't know, and 1999 was -- well -- the best year!"))
	for s := range c.Stem {
		if !isWord(s) || English.Stopword(English{}, s) || strings.ContainsAny(s, "'’") {
			t.Errorf("counted %q", s)
		}
	}
	if c.Stem["year"] != 1 || c.Stem["know"] != 1 {
		t.Errorf("counts %v", c.Stem)
	}
}

func tagged(s string) []Token {
	var out []Token
	for _, wt := range strings.Fields(s) {
		w, tag, _ := strings.Cut(wt, "/")
		out = append(out, Token{Text: w, Tag: tag})
	}
	return out
}

// TestRulesHand counts the rules of three hand-tagged sentences and their
// 14-D vector, computed by hand.
func TestRulesHand(t *testing.T) {
	r := Rules{}
	r.Add([][]Token{
		tagged("The/DT old/JJ man/NN saw/VBD a/DT dog/NN in/IN the/DT park/NN ./."),
		tagged("He/PRP came/VBD because/IN she/PRP called/VBD and/CC they/PRP left/VBD ./."),
		tagged("Oh/UH ,/, all/DT three/CD soldiers/NNS ran/VBD quickly/RB and/CC bravely/RB ./."),
	})
	want := Rules{
		"NP → DT JJ NN": 1, "NP → DT NN": 2, "VP → VBD": 5, "PP → IN NP": 1, "ROOT → NP VP NP PP .": 1,
		"NP → PRP": 3, "SBAR → IN S": 1, "S → NP VP": 2, "S → NP VP SBAR": 1, "ROOT → S CC S .": 1,
		"INTJ → UH": 1, "NP → QT CD NNS": 1, "ADVP → RB": 2, "ADVP → ADVP CC ADVP": 1, "ROOT → INTJ , NP VP ADVP .": 1,
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("rules\n got %v\nwant %v", r, want)
	}
	norm := r.Normalized()
	near(t, "P(NP → PRP | NP)", norm["NP → PRP"], 3.0/7)
	near(t, "P(S → NP VP | S)", norm["S → NP VP"], 2.0/3)
	v := r.Vector()
	wantV := []float64{3.0 / 7, 1.0 / 3, 1, 0, 1.0 / 3, 2.0 / 3, 2.0 / 3, 3.0 / 15, 13.0 / 7, 1.0 / 3, 0, 0, 4.0 / 6, 1.0 / 7}
	for d := range wantV {
		near(t, Dimensions[d], v[d], wantV[d])
	}
	// Fronting, fragments, embedding and questions.
	r = Rules{}
	r.Add([][]Token{
		tagged("In/IN the/DT beginning/NN ,/, God/NNP created/VBD the/DT heaven/NN ./."),
		tagged("What/WP a/DT day/NN !/!"),
		tagged("I/PRP know/VBP the/DT man/NN who/WP came/VBD ./."),
		tagged("Who/WP came/VBD ?/?"),
	})
	for _, k := range []string{"ROOT → PP , NP VP NP .", "ROOT → WP NP !", "SBAR → WP S", "S → VP", "ROOT → NP VP NP SBAR .", "ROOT → WP VP ?"} {
		if r[k] != 1 {
			t.Errorf("no rule %q in %v", k, r)
		}
	}
	v = r.Vector()
	near(t, "topic fronting", v[10], 1.0/4)
	near(t, "fragments", v[11], 1.0/4)
	near(t, "clausal embedding", v[3], 1.0/4)
	near(t, "declarativity", v[2], 2.0/4)
}

// TestVectorDeterministic: the same text gives the same bits, run after run
// and in parallel.
func TestVectorDeterministic(t *testing.T) {
	chars, err := LoadCharacters("testdata/voices-mini", DataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for i := 0; i < 3; i++ {
		set, err := Run(context.Background(), Config{Characters: chars, Workers: 1 + i})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(set)
		if i == 0 {
			first = b
			if len(set.Characters[0].Syntax.Vector) != 14 {
				t.Fatalf("vector %v", set.Characters[0].Syntax.Vector)
			}
		} else if string(b) != string(first) {
			t.Fatalf("run %d differs from run 0", i)
		}
	}
}

func TestGateAndHarmonic(t *testing.T) {
	if VSS(0.76, 0.5, SemanticGate) != 0.5 || VSS(0.75, 0.5, SemanticGate) != 0 || VSS(0.2, 0.9, SemanticGate) != 0 {
		t.Error("VSS gate")
	}
	near(t, "H", Harmonic(0.8, 0.4), 2*0.8*0.4/1.2)
	near(t, "H(negative semantic)", Harmonic(-0.3, 0.4), 0)
	near(t, "H(0,0)", Harmonic(0, 0), 0)
}

func TestBadText(t *testing.T) {
	for _, s := range []string{"", "   ", "12 34 -- !"} {
		if _, err := (English{}).Analyze(s); !errors.Is(err, ErrEmpty) {
			t.Errorf("%q: %v, want ErrEmpty", s, err)
		}
	}
	for _, s := range []string{"Это предложение написано по-русски, а не по-английски.", "这是一个中文句子，不是英文。"} {
		_, err := (English{}).Analyze(s)
		if err == nil || !strings.Contains(err.Error(), "cannot tag") {
			t.Errorf("%q: %v, want a 'cannot tag' error", s, err)
		}
	}
	_, err := Run(context.Background(), Config{Characters: []Character{{Name: "x", Lines: []string{"Hello there, friend."}}}})
	if err == nil || !strings.Contains(err.Error(), "background") {
		t.Errorf("one character without background: %v", err)
	}
	_, err = Run(context.Background(), Config{Characters: []Character{{Name: "x", Lines: []string{"Hello there.", "Привет, как дела у тебя сегодня?"}}}, Background: []string{"A line."}})
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "cannot tag") {
		t.Errorf("non-English line: %v", err)
	}
	_, err = Run(context.Background(), Config{Characters: []Character{{Name: "x", Lines: []string{"the and of it"}}}, Background: []string{"A line."}})
	if err == nil || !strings.Contains(err.Error(), "no content words") {
		t.Errorf("stopwords only: %v", err)
	}
}

func TestTagSetFile(t *testing.T) {
	ts := DefaultTagSet()
	if ts.Threshold != 0.4 || len(ts.Tags) < 6 {
		t.Fatalf("default tag set %+v", ts)
	}
	for _, bad := range []string{"name: x\ntags:\n  - name: a\n    prototypes: [\"p\"]\n", "name: x\ntags:\n  - name: a\n  - name: b\n    prototypes: [\"q\"]\n", "tags: []\n", "name: x\nthreshold: 2\ntags:\n  - name: a\n    prototypes: [\"p\"]\n  - name: b\n    prototypes: [\"q\"]\n"} {
		if _, err := ParseTagSet([]byte(bad), "t.yaml"); err == nil || !strings.HasPrefix(err.Error(), "t.yaml: ") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func builtinEmbedder(t testing.TB) *ModelEmbedder {
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return &ModelEmbedder{Model: ck.Model, Tokenizer: ck.Tokenizer, Name: ck.Path}
}

// TestPragmaticAndScore builds profiles with the built-in model as
// embedder and scores texts; a profile is refused for another tag set or
// embedder.
func TestPragmaticAndScore(t *testing.T) {
	ctx := context.Background()
	emb := builtinEmbedder(t)
	chars, err := LoadCharacters("testdata/voices-mini", DataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := Run(ctx, Config{Characters: chars, Embedder: emb, EmbedLines: 2})
	if err != nil {
		t.Fatal(err)
	}
	ps := set.Pragmatic
	if ps == nil || ps.Dim != emb.Model.Config.Hidden || len(ps.Prototypes) != len(DefaultTagSet().Tags) {
		t.Fatalf("pragmatic part %+v", ps)
	}
	for _, p := range set.Characters {
		if len(p.Tags) != len(ps.Tags) || len(p.Centroid) != ps.Dim {
			t.Fatalf("%s: tags %v", p.Name, p.Tags)
		}
		for _, tg := range p.Tags {
			if tg.On != (tg.Score > ps.Threshold) || tg.Score < -1 || tg.Score > 1 {
				t.Errorf("%s: %+v", p.Name, tg)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "p.json")
	if err := set.Save(path); err != nil {
		t.Fatal(err)
	}
	set, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewScorer(set, nil, emb, DefaultTagSet())
	if err != nil {
		t.Fatal(err)
	}
	kjv, _ := set.Character("kjv")
	same := "And God said, Let there be light: and there was light."
	s, err := sc.ScorePair(ctx, kjv, same, same, SemanticGate)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "semantic of a text with itself", s.Semantic, 1)
	if s.VSS != s.Style || s.Style <= 0 || s.Style > 1 || math.IsNaN(s.Parts.Pragmatic) {
		t.Errorf("score %+v", s)
	}
	// The KJV line is closer to kjv than to sotu.
	f, _ := sc.Features(ctx, "And he said unto them, Verily I say unto thee, thou shalt not go hence.")
	sotu, _ := set.Character("sotu")
	if a, b := sc.Parts(f, kjv), sc.Parts(f, sotu); a.Style <= b.Style || a.Lexical <= b.Lexical {
		t.Errorf("kjv %+v vs sotu %+v", a, b)
	}
	if _, err := sc.ScorePair(ctx, kjv, same, "", SemanticGate); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty output: %v", err)
	}
	other, err := ParseTagSet([]byte("name: other\ntags:\n  - name: a\n    prototypes: [\"p\"]\n  - name: b\n    prototypes: [\"q\"]\n"), "other.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewScorer(set, nil, emb, other); err == nil || !strings.Contains(err.Error(), "tag set") {
		t.Errorf("another tag set: %v", err)
	}
	if _, err := NewScorer(set, nil, &OpenAIEmbedder{BaseURL: "http://x/v1", Model: "m"}, nil); err == nil || !strings.Contains(err.Error(), "embedder") {
		t.Errorf("another embedder: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"bad.json": "{", "old.json": `{"version":99}`, "empty.json": `{"version":1,"dimensions":[]}`} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", name, err)
		}
	}
	p := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(p, []byte(`{"character":"a","text":"x"}`+"\n"+`{"text":"y"}`+"\n"), 0o644)
	if _, err := LoadCharacters(p, DataOptions{}); err == nil || !strings.Contains(err.Error(), "rows.jsonl:2") {
		t.Errorf("row without character: %v", err)
	}
}

func TestChunks(t *testing.T) {
	words := func(n int) string { return strings.TrimSpace(strings.Repeat("w ", n)) + "." }
	text := words(60) + " " + words(50) + " " + words(30) + " " + words(10)
	cs := Chunks(text, 100)
	if len(cs) != 1 {
		t.Fatalf("%d chunks, want 1 (the 40-word tail joins)", len(cs))
	}
	cs = Chunks(text+" "+words(70), 100)
	if len(cs) != 2 || len(strings.Fields(cs[1])) != 110 {
		t.Fatalf("chunks of %v words", len(cs))
	}
}

// BenchmarkProfile measures lexical + syntactic profiling (tagging,
// counting, rules; one worker) in words per second of wall time and per
// CPU-second of the process (the honest figure on a busy machine), over
// voices-mini's train split, or over $MASQUE_STYLE_BENCH_CORPUS (a voices
// corpus folder) thinned to $MASQUE_STYLE_BENCH_WORDS words per voice
// (default 20000):
//
//	MASQUE_STYLE_BENCH_CORPUS=/work/corpus/voices go test ./style/ -run '^$' -bench Profile -benchtime 3x
func BenchmarkProfile(b *testing.B) {
	chars, err := LoadCharacters("testdata/voices-mini", DataOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if dir := os.Getenv("MASQUE_STYLE_BENCH_CORPUS"); dir != "" {
		n := 20000
		if s := os.Getenv("MASQUE_STYLE_BENCH_WORDS"); s != "" {
			if n, err = strconv.Atoi(s); err != nil {
				b.Fatalf("MASQUE_STYLE_BENCH_WORDS: %v", err)
			}
		}
		if chars, err = LoadCharacters(dir, DataOptions{MaxWords: n}); err != nil {
			b.Fatal(err)
		}
	}
	words := 0
	for _, c := range chars {
		for _, l := range c.Lines {
			words += len(strings.Fields(l))
		}
	}
	if _, err := tagger(); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	cpu0 := cputime.Used()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Run(context.Background(), Config{Characters: chars, Workers: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	total := float64(words) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "words/s")
	if cpu := (cputime.Used() - cpu0).Seconds(); cpu > 0 {
		b.ReportMetric(total/cpu, "words/cpu-s")
	}
	b.ReportMetric(float64(words), "words/op")
}

// TestSyntacticSimilarity: the mean over the 14 dimensions of
// exp(−½ z_d²), on a profile made by hand.
func TestSyntacticSimilarity(t *testing.T) {
	v := make([]float64, len(Dimensions))
	sp := make([]float64, len(Dimensions))
	for d := range sp {
		v[d], sp[d] = 0.5, 0.1
	}
	p := &Profile{Name: "x", Syntax: Syntax{Vector: v, Spread: sp}}
	sc := &Scorer{Set: &Set{}, Lang: English{}}
	fv := append([]float64(nil), v...)
	fv[3] += 0.1 // one spread away
	fv[7] -= 0.2 // two spreads away
	got := sc.Parts(&Features{Counts: NewCounts(), Vector: fv}, p)
	near(t, "syntactic", got.Syntactic, (12+math.Exp(-0.5)+math.Exp(-2))/14)
	near(t, "style without embeddings", got.Style, (got.Lexical+got.Syntactic)/2)
}

func TestThin(t *testing.T) {
	var lines []string
	for i := 0; i < 100; i++ {
		lines = append(lines, "one two three four five six seven eight nine ten")
	}
	cs := Thin([]Character{{Name: "a", Lines: lines}, {Name: "b", Lines: lines[:5]}}, 200)
	if len(cs[0].Lines) != 20 || len(cs[1].Lines) != 5 {
		t.Fatalf("kept %d and %d lines, want 20 (200 words) and 5 (fewer words than the cap)", len(cs[0].Lines), len(cs[1].Lines))
	}
}

func TestPick(t *testing.T) {
	one := &Set{Characters: []*Profile{{Name: "kjv"}}}
	two := &Set{Characters: []*Profile{{Name: "kjv"}, {Name: "web"}}}
	for _, c := range []struct {
		set       *Set
		name, def string
		want      string
	}{{one, "", "", "kjv"}, {two, "web", "kjv", "web"}, {two, "", "web", "web"}, {two, "kjv", "", "kjv"}} {
		if p, err := c.set.Pick(c.name, c.def); err != nil || p.Name != c.want {
			t.Errorf("Pick(%q, %q): %v %v, want %s", c.name, c.def, p, err, c.want)
		}
	}
	if _, err := two.Pick("", ""); !errors.Is(err, ErrWhichCharacter) {
		t.Errorf("no name, two characters: %v", err)
	}
	if _, err := one.Pick("web", ""); err == nil || !strings.Contains(err.Error(), `no character "web"`) {
		t.Errorf("unknown character: %v", err)
	}
}
