package voices

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/internal/filehash"
)

const testCorpus = "testdata/corpus"

func TestTokenize(t *testing.T) {
	got := wordTokens("Don't stop—the LORD's 3 cats!  'Tis  ")
	want := []string{"don't", "stop", "—", "the", "lord's", "3", "cats", "!", "'", "tis"}
	if !slices.Equal(got, want) {
		t.Fatalf("tokens %q, want %q", got, want)
	}
}

func TestFeatureCounts(t *testing.T) {
	// " ab c " has 6 characters: 4 trigrams, 3 four-grams; 2 words: 2
	// unigrams and 1 bigram.
	e := newExtractor(Features{WordMin: 1, WordMax: 2, CharMin: 3, CharMax: 4, Buckets: 1 << 20})
	if n := len(e.extract("ab\n\t c")); n != 4+3+2+1 {
		t.Fatalf("%d features, want 10", n)
	}
	// The same text in other white space gives the same features.
	a := slices.Clone(e.extract("ab\n\t c"))
	b := e.extract(" ab c ")
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Fatal("white space changes the features")
	}
	if len(e.extract("")) != 0 {
		t.Fatal("features of an empty text")
	}
}

// TestNaiveBayesByHand checks the probabilities on a tiny example worked
// out by hand. Word unigrams only, α = 1:
//
//	voice A: "a a b"  → N_a=2, N_b=1, N_c=0, N_A=3; θ_A = (3/6, 2/6, 1/6)
//	voice B: "b c"    → N_a=0, N_b=1, N_c=1, N_B=2; θ_B = (1/5, 2/5, 2/5)
//
// "a c": L_A = 1/2·1/6 = 1/12, L_B = 1/5·2/5 = 2/25, P(A) = 25/49.
// "b":   L_A = 1/3, L_B = 2/5, P(A) = 5/11.
// "c c": L_A = 1/36, L_B = 4/25, P(A) = 25/169.
func TestNaiveBayesByHand(t *testing.T) {
	c, err := Train([]string{"A", "B"}, [][]string{{"a a b"}, {"b c"}},
		TrainOptions{Features: Features{WordMin: 1, WordMax: 1, Buckets: 1 << 20}, Alpha: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.NumFeatures() != 3 {
		t.Fatalf("%d features, want 3 (a hash collision?)", c.NumFeatures())
	}
	for _, tc := range []struct {
		text  string
		voice int
		pA    float64
	}{{"a c", 0, 25.0 / 49}, {"b", 1, 5.0 / 11}, {"c c", 1, 25.0 / 169}, {"A, C", 0, 25.0 / 49}} {
		p := c.Predict(tc.text)
		if p.Voice != tc.voice || math.Abs(p.Posterior[0]-tc.pA) > 1e-12 || math.Abs(p.Posterior[0]+p.Posterior[1]-1) > 1e-12 {
			t.Errorf("%q: voice %d P(A)=%.15f, want voice %d P(A)=%.15f", tc.text, p.Voice, p.Posterior[0], tc.voice, tc.pA)
		}
	}
	if l := c.Predict("a c").LogLik; math.Abs(l[0]-math.Log(1.0/12)) > 1e-12 || math.Abs(l[1]-math.Log(2.0/25)) > 1e-12 {
		t.Errorf("log-likelihoods %v, want log(1/12), log(2/25)", l)
	}
	// Nothing known: no voice, uniform posterior.
	if p := c.Predict("zzz ... "); p.Voice != -1 || p.Features != 0 || p.Posterior[0] != 0.5 || p.Name(c.Voices) != "" {
		t.Errorf("unknown text: %+v", p)
	}
	// Feature selection keeps the most frequent: with K = 1 only "b"
	// (count 2; a has 2 as well, the lower bucket wins, so check the kept
	// one is one of them).
	c1, err := Train([]string{"A", "B"}, [][]string{{"a a b"}, {"b c"}},
		TrainOptions{Features: Features{WordMin: 1, WordMax: 1, Buckets: 1 << 20}, Alpha: 1, MaxFeatures: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c1.NumFeatures() != 1 || c1.Predict("c").Voice != -1 {
		t.Errorf("K=1 kept %d features; c is known: %v", c1.NumFeatures(), c1.Predict("c").Voice != -1)
	}
}

func trainTestCorpus(t *testing.T) (*Corpus, *Classifier) {
	t.Helper()
	corp, err := OpenCorpus(testCorpus)
	if err != nil {
		t.Fatal(err)
	}
	c, err := TrainCorpus(corp, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return corp, c
}

func TestClassifierHeldOut(t *testing.T) {
	corp, c := trainTestCorpus(t)
	a, err := c.EvaluateCorpus(corp, SplitTest, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 4 held-out passages per voice of three very different voices.
	if a.Texts != 12 || a.Accuracy < 11.0/12 {
		t.Fatalf("held-out accuracy %.3f on %d texts: %+v", a.Accuracy, a.Texts, a.Confusion)
	}
	sum := 0
	for _, row := range a.Confusion {
		for _, n := range row {
			sum += n
		}
	}
	if sum != 12 || len(a.Confusion[0]) != 4 {
		t.Fatalf("confusion %v", a.Confusion)
	}
	if c.Info.Texts["gloss"] != 12 || len(c.Info.TrainSHA256) != 3 {
		t.Fatalf("train info %+v", c.Info)
	}
}

func TestClassifierRoundTrip(t *testing.T) {
	corp, c := trainTestCorpus(t)
	path := filepath.Join(t.TempDir(), ClassifierFile)
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	d, err := LoadClassifier(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Voices, c.Voices) || d.Features != c.Features || d.Alpha != c.Alpha || !slices.Equal(d.buckets, c.buckets) {
		t.Fatal("header or features differ after the round trip")
	}
	for _, v := range corp.Names() {
		for _, split := range []string{SplitTrain, SplitTest} {
			rows, _ := corp.Rows(v, split)
			for _, r := range rows {
				p, q := c.Predict(r.Text), d.Predict(r.Text)
				if p.Voice != q.Voice || !slices.Equal(p.LogLik, q.LogLik) {
					t.Fatalf("%s: predictions differ after the round trip", r.ID)
				}
			}
		}
	}
	// Training is deterministic: the same bytes again.
	_, c2 := trainTestCorpus(t)
	b1, _ := c.Marshal()
	b2, _ := c2.Marshal()
	if !bytes.Equal(b1, b2) {
		t.Fatal("two trainings gave different files")
	}
	if err := d.Check(corp); err != nil {
		t.Fatal(err)
	}
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func gunzip(t *testing.T, b []byte) []byte {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	return out
}

func TestClassifierBadFiles(t *testing.T) {
	_, c := trainTestCorpus(t)
	good, _ := c.Marshal()
	raw := gunzip(t, good)
	version := slices.Clone(raw)
	binary.LittleEndian.PutUint32(version[8:], 7)
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"not gzip":  {[]byte("hello"), "not gzip"},
		"magic":     {gz(append([]byte("NOTMAGIC"), raw[8:]...)), "wrong magic"},
		"version":   {gz(version), "format version 7"},
		"truncated": {gz(raw[:len(raw)-5]), "truncated"},
		"trailing":  {gz(append(slices.Clone(raw), 1, 2)), "trailing"},
	} {
		_, err := Unmarshal(tc.data, "x.bin")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "x.bin") {
			t.Errorf("%s: error %v, want one naming x.bin and saying %q", name, err, tc.want)
		}
	}
	if _, err := LoadClassifier(filepath.Join(t.TempDir(), "none.bin")); err == nil {
		t.Error("a missing file loaded")
	}
}

// copyCorpus copies the test corpus to a temporary folder.
func copyCorpus(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "corpus")
	if err := os.CopyFS(dst, os.DirFS(testCorpus)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestClassifierCheck(t *testing.T) {
	dir := copyCorpus(t)
	corp, err := OpenCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A classifier for another voice set.
	other, err := Train([]string{"scripture", "gloss"}, [][]string{{"thou art"}, {"a word"}}, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Check(corp); err == nil || !strings.Contains(err.Error(), "knows the voices scripture,gloss") {
		t.Errorf("voice set mismatch: %v", err)
	}
	// A changed train split.
	c, err := TrainCorpus(corp, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, "slang", "train.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"x","voice":"slang","text":"more"}` + "\n")
	f.Close()
	if err := c.Check(corp); err == nil || !strings.Contains(err.Error(), filepath.Join("slang", "train.jsonl")) || !strings.Contains(err.Error(), "retrain") {
		t.Errorf("stale classifier: %v", err)
	}
}

func TestCorpusErrors(t *testing.T) {
	dir := copyCorpus(t)
	if _, err := OpenCorpus(filepath.Join(dir, "gloss")); err == nil || !strings.Contains(err.Error(), "personas.json is missing") {
		t.Errorf("no personas.json: %v", err)
	}
	corp, err := OpenCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "gloss", "valid.jsonl"))
	if _, err := corp.Rows("gloss", SplitValid); err == nil || !strings.Contains(err.Error(), filepath.Join("gloss", "valid.jsonl")) || !strings.Contains(err.Error(), "no valid split") {
		t.Errorf("missing split: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "gloss", "test.jsonl"), []byte(`{"id":"a","voice":"gloss","text":"t"}`+"\n{oops\n"), 0o644)
	if _, err := corp.Rows("gloss", SplitTest); err == nil || !strings.Contains(err.Error(), "test.jsonl:2: malformed JSON") {
		t.Errorf("malformed line: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "gloss", "test.jsonl"), []byte(`{"id":"a","voice":"slang","text":"t"}`+"\n"), 0o644)
	if _, err := corp.Rows("gloss", SplitTest); err == nil || !strings.Contains(err.Error(), `voice is "slang"`) {
		t.Errorf("wrong voice: %v", err)
	}
	os.WriteFile(filepath.Join(dir, PersonasFile), []byte(`{"voices":[{"name":"a","persona":"x"},{"name":"a","persona":"y"}]}`), 0o644)
	if _, err := OpenCorpus(dir); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("duplicate voice: %v", err)
	}
	os.WriteFile(filepath.Join(dir, PersonasFile), []byte(`{"voices":[{"name":"../a","persona":"x"},{"name":"b","persona":"y"}]}`), 0o644)
	if _, err := OpenCorpus(dir); err == nil || !strings.Contains(err.Error(), "not a plain folder name") {
		t.Errorf("path in a voice name: %v", err)
	}
}

func TestDistinctRepetition(t *testing.T) {
	if d := Distinct([]string{"a b a b", "a c"}, 1); math.Abs(d-3.0/6) > 1e-12 {
		t.Errorf("distinct-1 %g, want 0.5", d)
	}
	if d := Distinct([]string{"a b a b", "a c"}, 2); math.Abs(d-3.0/4) > 1e-12 { // ab ba ab | ac
		t.Errorf("distinct-2 %g, want 0.75", d)
	}
	// 8 words, 5 four-grams, one a repeat ("a b c d" twice): 1 − 4/5.
	if r := Repetition("a b c d a b c d", 4); math.Abs(r-0.2) > 1e-12 {
		t.Errorf("repetition %g, want 0.2", r)
	}
	if r := Repetition("a b c", 4); !math.IsNaN(r) {
		t.Errorf("repetition of a short text %g, want NaN", r)
	}
}

// An evaluation kit ships without train splits: the classifier is checked
// against the digests its MANIFEST.json records.
func TestClassifierCheckKit(t *testing.T) {
	dir := copyCorpus(t)
	corp, err := OpenCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := TrainCorpus(corp, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type output struct {
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
	}
	var outs []output
	for _, v := range corp.Names() {
		sum, err := filehash.SHA256(corp.SplitPath(v, SplitTrain))
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, output{v + "/train.jsonl", sum})
		if err := os.Remove(corp.SplitPath(v, SplitTrain)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Check(corp); err == nil || !strings.Contains(err.Error(), "train.jsonl") {
		t.Fatalf("kit without a manifest: %v", err)
	}
	writeManifest := func(outs []output) {
		data, _ := json.Marshal(map[string]any{"outputs": outs})
		if err := os.WriteFile(filepath.Join(dir, "MANIFEST.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeManifest(outs)
	if err := c.Check(corp); err != nil {
		t.Fatalf("kit with the right manifest: %v", err)
	}
	outs[0].SHA256 = strings.Repeat("0", 64)
	writeManifest(outs)
	if err := c.Check(corp); err == nil || !strings.Contains(err.Error(), "retrain") {
		t.Fatalf("kit whose manifest records another train split: %v", err)
	}
}

// TestTrainClassifierFile: the file it saves loads back as the classifier
// it returns, whose test accuracy it reports.
func TestTrainClassifierFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cl.bin")
	run, err := TrainClassifierFile(testCorpus, out, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	corp, c := trainTestCorpus(t)
	want, err := c.EvaluateCorpus(corp, SplitTest, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil || run.Path != out || run.Bytes != st.Size() || run.Test.Accuracy != want.Accuracy || !slices.Equal(run.Voices, corp.Names()) {
		t.Fatalf("run %+v (file %v), want accuracy %v", run, err, want.Accuracy)
	}
	back, err := LoadClassifier(out)
	if err != nil || back.NumFeatures() != run.Classifier.NumFeatures() {
		t.Errorf("saved classifier: %v", err)
	}
	if _, err := TrainClassifierFile(filepath.Join(t.TempDir(), "none"), "", TrainOptions{}); err == nil {
		t.Error("missing corpus: no error")
	}
}
