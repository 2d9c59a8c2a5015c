package voices

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/internal/filehash"
)

// ClassifierFile is where the classifier is kept beside its corpus.
const ClassifierFile = "classifier.bin"

// Defaults of TrainOptions.
const (
	DefaultMaxFeatures = 1 << 16
	DefaultAlpha       = 0.1
)

// classifierMagic and classifierVersion head the (gzip'd) classifier file.
const (
	classifierMagic   = "MASQVNB\x00"
	classifierVersion = 1
)

// TrainOptions tune Train.
type TrainOptions struct {
	// Features are the n-grams counted (zero value: DefaultFeatures).
	Features Features
	// MaxFeatures keeps only the most frequent hashed features: the
	// buckets with the largest total count over the training texts, the
	// lower bucket first on ties (≤ 0: DefaultMaxFeatures).
	MaxFeatures int
	// Alpha is the additive (Lidstone) smoothing of the per-voice feature
	// distributions (≤ 0: DefaultAlpha).
	Alpha float64
}

// TrainInfo records what a classifier was trained on.
type TrainInfo struct {
	// Texts is the number of training texts per voice.
	Texts map[string]int `json:"texts"`
	// Occurrences is the number of feature occurrences per voice (before
	// selection).
	Occurrences map[string]int64 `json:"occurrences"`
	// TrainSHA256 is the SHA-256 of each voice's train.jsonl when the
	// classifier was trained on a corpus (TrainCorpus).
	TrainSHA256 map[string]string `json:"train_sha256,omitempty"`
}

// Classifier is a multinomial naive Bayes voice classifier over hashed word
// and character n-grams (Features) with a uniform prior over voices:
//
//	score(v | x) = Σ_k x_k · log θ_vk,   θ_vk = (N_vk + α) / (N_v + α·K)
//
// where x_k counts the occurrences of selected feature k in the text, N_vk
// its occurrences in voice v's training texts, N_v = Σ_k N_vk and K the
// number of selected features; features outside the selection are
// ignored. The posterior is the softmax of the scores. Training and
// prediction are deterministic.
type Classifier struct {
	Voices   []string
	Features Features
	Alpha    float64
	Info     TrainInfo

	buckets []uint32   // the selected buckets, ascending
	counts  [][]uint32 // [voice][feature]

	index    map[uint32]int32
	logTheta []float64 // [feature*len(Voices) + voice]
}

// NumFeatures is the number of selected features.
func (c *Classifier) NumFeatures() int { return len(c.buckets) }

// Train fits a classifier: texts[i] are the training texts of voices[i].
func Train(voices []string, texts [][]string, o TrainOptions) (*Classifier, error) {
	if o.Features == (Features{}) {
		o.Features = DefaultFeatures
	}
	if err := o.Features.validate(); err != nil {
		return nil, err
	}
	if o.MaxFeatures <= 0 {
		o.MaxFeatures = DefaultMaxFeatures
	}
	if o.Alpha <= 0 {
		o.Alpha = DefaultAlpha
	}
	if len(voices) < 2 || len(texts) != len(voices) {
		return nil, fmt.Errorf("voices: training needs texts for at least two voices (%d voices, %d text sets)", len(voices), len(texts))
	}
	seen := map[string]bool{}
	for i, v := range voices {
		if v == "" || seen[v] {
			return nil, fmt.Errorf("voices: voice name %q is empty or repeated", v)
		}
		seen[v] = true
		if len(texts[i]) == 0 {
			return nil, fmt.Errorf("voices: no training texts for voice %q", v)
		}
	}
	B := o.Features.Buckets
	ex := newExtractor(o.Features)
	full := make([][]uint32, len(voices))
	info := TrainInfo{Texts: map[string]int{}, Occurrences: map[string]int64{}}
	for vi, ts := range texts {
		full[vi] = make([]uint32, B)
		for _, t := range ts {
			for _, b := range ex.extract(t) {
				if full[vi][b] < math.MaxUint32 {
					full[vi][b]++
				}
			}
			info.Occurrences[voices[vi]] += int64(len(ex.out))
		}
		info.Texts[voices[vi]] = len(ts)
	}
	// Select the most frequent buckets.
	type cand struct {
		b     uint32
		total uint64
	}
	var cands []cand
	for b := 0; b < B; b++ {
		var s uint64
		for vi := range full {
			s += uint64(full[vi][b])
		}
		if s > 0 {
			cands = append(cands, cand{uint32(b), s})
		}
	}
	slices.SortFunc(cands, func(x, y cand) int { return cmp.Or(cmp.Compare(y.total, x.total), cmp.Compare(x.b, y.b)) })
	cands = cands[:min(len(cands), o.MaxFeatures)]
	if len(cands) == 0 {
		return nil, errors.New("voices: the training texts have no features")
	}
	c := &Classifier{Voices: slices.Clone(voices), Features: o.Features, Alpha: o.Alpha, Info: info}
	c.buckets = make([]uint32, len(cands))
	for i, x := range cands {
		c.buckets[i] = x.b
	}
	slices.Sort(c.buckets)
	c.counts = make([][]uint32, len(voices))
	for vi := range voices {
		c.counts[vi] = make([]uint32, len(c.buckets))
		for k, b := range c.buckets {
			c.counts[vi][k] = full[vi][b]
		}
	}
	c.derive()
	return c, nil
}

// TrainCorpus trains on the train split of every voice of the corpus
// (field text) and records the split files' SHA-256.
func TrainCorpus(corp *Corpus, o TrainOptions) (*Classifier, error) {
	names := corp.Names()
	texts := make([][]string, len(names))
	sums := map[string]string{}
	for i, v := range names {
		rows, err := corp.Rows(v, SplitTrain)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			texts[i] = append(texts[i], r.Text)
		}
		if sums[v], err = filehash.SHA256(corp.SplitPath(v, SplitTrain)); err != nil {
			return nil, fmt.Errorf("voices: %w", err)
		}
	}
	c, err := Train(names, texts, o)
	if err != nil {
		return nil, err
	}
	c.Info.TrainSHA256 = sums
	return c, nil
}

// derive computes the lookup index and log θ from the counts.
func (c *Classifier) derive() {
	V, K := len(c.Voices), len(c.buckets)
	c.index = make(map[uint32]int32, K)
	for k, b := range c.buckets {
		c.index[b] = int32(k)
	}
	c.logTheta = make([]float64, K*V)
	for vi := range c.Voices {
		var n float64
		for _, x := range c.counts[vi] {
			n += float64(x)
		}
		den := math.Log(n + c.Alpha*float64(K))
		for k, x := range c.counts[vi] {
			c.logTheta[k*V+vi] = math.Log(float64(x)+c.Alpha) - den
		}
	}
}

// Prediction is the classification of one text.
type Prediction struct {
	// Voice is the index of the most probable voice (the lower index on
	// ties), or -1 when the text has no selected feature.
	Voice int
	// Posterior is the probability of each voice (uniform when Voice is
	// -1).
	Posterior []float64
	// LogLik is Σ_k x_k log θ_vk for each voice.
	LogLik []float64
	// Features counts the selected feature occurrences found.
	Features int
}

// Name is the predicted voice's name ("" when none).
func (p Prediction) Name(voices []string) string {
	if p.Voice < 0 {
		return ""
	}
	return voices[p.Voice]
}

// predictor classifies texts; it holds the extraction buffers, so one
// predictor serves one goroutine.
type predictor struct {
	c  *Classifier
	ex *extractor
}

func (c *Classifier) newPredictor() *predictor { return &predictor{c: c, ex: newExtractor(c.Features)} }

// Predict classifies text.
func (c *Classifier) Predict(text string) Prediction { return c.newPredictor().predict(text) }

func (p *predictor) predict(text string) Prediction {
	c := p.c
	V := len(c.Voices)
	pr := Prediction{Voice: -1, LogLik: make([]float64, V), Posterior: make([]float64, V)}
	for _, b := range p.ex.extract(text) {
		k, ok := c.index[b]
		if !ok {
			continue
		}
		pr.Features++
		row := c.logTheta[int(k)*V : int(k)*V+V]
		for v, l := range row {
			pr.LogLik[v] += l
		}
	}
	if pr.Features == 0 {
		for v := range pr.Posterior {
			pr.Posterior[v] = 1 / float64(V)
		}
		return pr
	}
	best := 0
	for v := 1; v < V; v++ {
		if pr.LogLik[v] > pr.LogLik[best] {
			best = v
		}
	}
	pr.Voice = best
	var z float64
	for v, l := range pr.LogLik {
		pr.Posterior[v] = math.Exp(l - pr.LogLik[best])
		z += pr.Posterior[v]
	}
	for v := range pr.Posterior {
		pr.Posterior[v] /= z
	}
	return pr
}

// VoiceIndex returns the index of voice name, or -1.
func (c *Classifier) VoiceIndex(name string) int { return slices.Index(c.Voices, name) }

// Check verifies that the classifier fits the corpus: the same set of
// voices and, when recorded, the same train split files.
func (c *Classifier) Check(corp *Corpus) error {
	a, b := slices.Clone(c.Voices), corp.Names()
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		return fmt.Errorf("voices: the classifier knows the voices %s, the corpus %s has %s: train one for this corpus (masque eval voices classifier train --corpus %s)",
			strings.Join(c.Voices, ","), corp.Dir, strings.Join(corp.Names(), ","), corp.Dir)
	}
	for v, want := range c.Info.TrainSHA256 {
		got, err := corp.SplitSHA256(v, SplitTrain)
		if err != nil {
			return fmt.Errorf("voices: %w", err)
		}
		if got != want {
			return fmt.Errorf("voices: the classifier was trained on another %s (SHA-256 %.12s…, now %.12s…): retrain it (masque eval voices classifier train --corpus %s)",
				corp.SplitPath(v, SplitTrain), want, got, corp.Dir)
		}
	}
	return nil
}

// header is the JSON part of the classifier file.
type header struct {
	Voices   []string  `json:"voices"`
	Features Features  `json:"features"`
	Alpha    float64   `json:"alpha"`
	Selected int       `json:"selected"`
	Info     TrainInfo `json:"train"`
}

// Marshal encodes the classifier: gzip of the magic "MASQVNB\0", a
// little-endian uint32 version (1), a uint32 length and that many bytes of
// JSON header (voices, features, alpha, number of selected features K,
// training info), then K uvarint gaps between the ascending selected
// buckets (the first from 0), then for every voice K uvarint counts.
func (c *Classifier) Marshal() ([]byte, error) {
	var raw bytes.Buffer
	raw.WriteString(classifierMagic)
	hdr, err := json.Marshal(header{Voices: c.Voices, Features: c.Features, Alpha: c.Alpha, Selected: len(c.buckets), Info: c.Info})
	if err != nil {
		return nil, err
	}
	var u32 [4]byte
	binary.LittleEndian.PutUint32(u32[:], classifierVersion)
	raw.Write(u32[:])
	binary.LittleEndian.PutUint32(u32[:], uint32(len(hdr)))
	raw.Write(u32[:])
	raw.Write(hdr)
	var vb [binary.MaxVarintLen64]byte
	prev := uint32(0)
	for _, b := range c.buckets {
		raw.Write(vb[:binary.PutUvarint(vb[:], uint64(b-prev))])
		prev = b
	}
	for _, row := range c.counts {
		for _, x := range row {
			raw.Write(vb[:binary.PutUvarint(vb[:], uint64(x))])
		}
	}
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	zw.Write(raw.Bytes())
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Unmarshal decodes a classifier written by Marshal; name is used in
// errors.
func Unmarshal(data []byte, name string) (*Classifier, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("voices: %s: not a valid voice classifier: %s", name, fmt.Sprintf(format, a...))
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, bad("not gzip data (%v)", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, bad("%v", err)
	}
	if len(raw) < len(classifierMagic)+8 || string(raw[:len(classifierMagic)]) != classifierMagic {
		return nil, bad("wrong magic")
	}
	raw = raw[len(classifierMagic):]
	if v := binary.LittleEndian.Uint32(raw); v != classifierVersion {
		return nil, bad("format version %d, this masque reads version %d", v, classifierVersion)
	}
	n := int(binary.LittleEndian.Uint32(raw[4:]))
	raw = raw[8:]
	if n > len(raw) {
		return nil, bad("truncated header")
	}
	var h header
	if err := json.Unmarshal(raw[:n], &h); err != nil {
		return nil, bad("header: %v", err)
	}
	raw = raw[n:]
	if err := h.Features.validate(); err != nil {
		return nil, bad("%v", err)
	}
	seen := map[string]bool{}
	for _, v := range h.Voices {
		if v == "" || seen[v] {
			return nil, bad("voice %q empty or repeated", v)
		}
		seen[v] = true
	}
	if len(h.Voices) < 2 || h.Selected <= 0 || h.Selected > h.Features.Buckets || !(h.Alpha > 0) {
		return nil, bad("%d voices, %d features, alpha %g", len(h.Voices), h.Selected, h.Alpha)
	}
	br := bytes.NewReader(raw)
	c := &Classifier{Voices: h.Voices, Features: h.Features, Alpha: h.Alpha, Info: h.Info, buckets: make([]uint32, h.Selected)}
	var b uint64
	for k := range c.buckets {
		gap, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, bad("truncated feature list")
		}
		if k > 0 && gap == 0 {
			return nil, bad("feature buckets not ascending")
		}
		b += gap
		if b >= uint64(h.Features.Buckets) {
			return nil, bad("feature bucket %d outside the hash space", b)
		}
		c.buckets[k] = uint32(b)
	}
	c.counts = make([][]uint32, len(h.Voices))
	for vi := range c.counts {
		c.counts[vi] = make([]uint32, h.Selected)
		for k := range c.counts[vi] {
			x, err := binary.ReadUvarint(br)
			if err != nil {
				return nil, bad("truncated counts")
			}
			if x > math.MaxUint32 {
				return nil, bad("count out of range")
			}
			c.counts[vi][k] = uint32(x)
		}
	}
	if br.Len() != 0 {
		return nil, bad("%d trailing bytes", br.Len())
	}
	c.derive()
	return c, nil
}

// Save writes the classifier to path atomically.
func (c *Classifier) Save(path string) error {
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, data)
}

// LoadClassifier reads a classifier file.
func LoadClassifier(path string) (*Classifier, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("voices: %w", err)
	}
	return Unmarshal(data, path)
}

// VoiceAccuracy is the classifier's accuracy on one voice's texts.
type VoiceAccuracy struct {
	Texts    int     `json:"texts"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
}

// Accuracy is the classifier's accuracy on labelled texts.
type Accuracy struct {
	Split string `json:"split,omitempty"`
	Texts int    `json:"texts"`
	// Accuracy is the share of all texts classified correctly; Macro the
	// mean of the per-voice accuracies.
	Accuracy float64                  `json:"accuracy"`
	Macro    float64                  `json:"macro_accuracy"`
	PerVoice map[string]VoiceAccuracy `json:"per_voice"`
	// Confusion[i][j] counts texts of voice i classified as voice j; the
	// last column counts texts without a selected feature.
	Voices    []string `json:"voices"`
	Confusion [][]int  `json:"confusion"`
}

// Evaluate classifies texts[i], labelled voices[i] (names of c.Voices).
// progress, if set, is called now and then.
func (c *Classifier) Evaluate(voices []string, texts [][]string, progress func(done, total int)) (*Accuracy, error) {
	V := len(c.Voices)
	a := &Accuracy{Voices: slices.Clone(c.Voices), PerVoice: map[string]VoiceAccuracy{}, Confusion: make([][]int, V)}
	for i := range a.Confusion {
		a.Confusion[i] = make([]int, V+1)
	}
	total := 0
	for _, ts := range texts {
		total += len(ts)
	}
	p := c.newPredictor()
	correct, done := 0, 0
	for i, name := range voices {
		vi := c.VoiceIndex(name)
		if vi < 0 {
			return nil, fmt.Errorf("voices: the classifier does not know voice %q", name)
		}
		va := VoiceAccuracy{Texts: len(texts[i])}
		for _, t := range texts[i] {
			pr := p.predict(t)
			col := pr.Voice
			if col < 0 {
				col = V
			}
			a.Confusion[vi][col]++
			if pr.Voice == vi {
				va.Correct++
			}
			done++
			if progress != nil && (done%256 == 0 || done == total) {
				progress(done, total)
			}
		}
		if va.Texts > 0 {
			va.Accuracy = float64(va.Correct) / float64(va.Texts)
		}
		a.PerVoice[name] = va
		a.Texts += va.Texts
		correct += va.Correct
		a.Macro += va.Accuracy
	}
	if a.Texts == 0 {
		return nil, errors.New("voices: no texts to classify")
	}
	a.Accuracy = float64(correct) / float64(a.Texts)
	a.Macro /= float64(len(voices))
	return a, nil
}

// EvaluateCorpus classifies the text of every row of one split of every
// voice of the corpus.
func (c *Classifier) EvaluateCorpus(corp *Corpus, split string, progress func(done, total int)) (*Accuracy, error) {
	names := corp.Names()
	texts := make([][]string, len(names))
	for i, v := range names {
		rows, err := corp.Rows(v, split)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			texts[i] = append(texts[i], r.Text)
		}
	}
	a, err := c.Evaluate(names, texts, progress)
	if a != nil {
		a.Split = split
	}
	return a, err
}

// ClassifierRun is a classifier trained on a corpus file by
// TrainClassifierFile: where it was saved, its size, and its accuracy on the
// corpus's test split.
type ClassifierRun struct {
	Classifier *Classifier
	Voices     []string // the corpus's voices, in its order
	Path       string
	Bytes      int64
	Test       *Accuracy
}

// TrainClassifierFile trains the voice classifier on the train split of the
// corpus in dir (TrainCorpus), saves it to out ("": dir/classifier.bin) and
// measures it on the test split.
func TrainClassifierFile(dir, out string, o TrainOptions) (*ClassifierRun, error) {
	corp, err := OpenCorpus(dir)
	if err != nil {
		return nil, err
	}
	cl, err := TrainCorpus(corp, o)
	if err != nil {
		return nil, err
	}
	if out == "" {
		out = filepath.Join(dir, ClassifierFile)
	}
	if err := cl.Save(out); err != nil {
		return nil, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	acc, err := cl.EvaluateCorpus(corp, SplitTest, nil)
	if err != nil {
		return nil, err
	}
	return &ClassifierRun{Classifier: cl, Voices: corp.Names(), Path: out, Bytes: st.Size(), Test: acc}, nil
}
