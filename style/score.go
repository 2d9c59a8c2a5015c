package style

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/masque-ai/masque/internal/atomicfile"
)

// SemanticGate is the semantic fidelity above which a reply's style counts
// (VSS).
const SemanticGate = 0.75

// Features are a text's lexical, syntactic and (with an embedder)
// embedding features.
type Features struct {
	Counts    *Counts
	Vector    []float64
	Embedding []float32
}

// Parts are a text's similarity to one character's style, each in [0, 1]
// (Pragmatic is NaN without embeddings).
type Parts struct {
	Lexical   float64 `json:"lexical"`
	Syntactic float64 `json:"syntactic"`
	Pragmatic float64 `json:"pragmatic"`
	Style     float64 `json:"style"`
	// MeanPMI is the raw lexical evidence (the mean PMI of the text's
	// content words for the character).
	MeanPMI float64 `json:"mean_pmi"`
}

// Scorer scores texts against a profile set.
type Scorer struct {
	Set  *Set
	Lang Language
	// Embedder must be the one the profiles were built with (checked by
	// NewScorer); nil scores only the lexical and syntactic parts.
	Embedder Embedder
}

// NewScorer checks that the embedder and tag set match the profiles. tags
// may be nil (no check of a tag set file); embedder may be nil when no
// embeddings are needed.
func NewScorer(set *Set, lang Language, emb Embedder, tags *TagSet) (*Scorer, error) {
	if lang == nil {
		lang = English{}
	}
	if set.Language != lang.Name() {
		return nil, fmt.Errorf("the profiles are for language %q, not %q", set.Language, lang.Name())
	}
	if tags != nil {
		if set.Pragmatic == nil {
			return nil, errors.New("the profiles have no pragmatic part, so no tag set to check against")
		}
		if tags.SHA256 != set.Pragmatic.TagSHA256 {
			return nil, fmt.Errorf("the profiles were built with tag set %q (sha256 %.12s…), not %q (sha256 %.12s…): rebuild the profiles with this tag set",
				set.Pragmatic.TagSet, set.Pragmatic.TagSHA256, tags.Name, tags.SHA256)
		}
	}
	if emb != nil && set.Pragmatic != nil && emb.ID() != set.Pragmatic.Embedder {
		return nil, fmt.Errorf("the profiles were built with embedder %s, not %s: embeddings of different models are not comparable", set.Pragmatic.Embedder, emb.ID())
	}
	return &Scorer{Set: set, Lang: lang, Embedder: emb}, nil
}

// Features analyses a text (and embeds it when the scorer has an
// embedder and the profiles a pragmatic part).
func (s *Scorer) Features(ctx context.Context, text string) (*Features, error) {
	a := analyze(s.Lang, text)
	if a.err != nil {
		return nil, a.err
	}
	f := &Features{Counts: a.counts, Vector: a.rules.Vector()}
	if s.Embedder != nil && s.Set.Pragmatic != nil {
		vs, err := s.Embedder.Embed(ctx, []string{text})
		if err != nil {
			return nil, err
		}
		f.Embedding = vs[0]
	}
	return f, nil
}

// Parts compares a text's features with one profile:
//   - lexical = exp(−½·z²), z = (LexSelf − m)/LexSpread, m the text's mean
//     word PMI for the character (1 when m ≥ LexSelf);
//   - syntactic = exp(−½·mean_d z_d²), z_d = (v_d − profile_d)/spread_d;
//   - pragmatic = ½·(max(0, cos(e − B, centroid − B)) + 1 − mean_k |t_k(e) − t_k(centroid)|/2)
//     with B the background mean and t_k the tag scores;
//   - style = the mean of the parts present.
func (s *Scorer) Parts(f *Features, p *Profile) Parts {
	var out Parts
	m, _ := meanPMI(f.Counts, p.Lexicon, p.Words, &s.Set.Vocabulary)
	out.MeanPMI = m
	out.Lexical = 1
	if m < p.LexSelf {
		z := (p.LexSelf - m) / math.Max(p.LexSpread, LexSpreadFloor)
		out.Lexical = math.Exp(-0.5 * z * z)
	}
	syn := 0.0
	for d, v := range f.Vector {
		z := (v - p.Syntax.Vector[d]) / math.Max(p.Syntax.Spread[d], SpreadFloor)
		syn += math.Exp(-0.5 * z * z)
	}
	out.Syntactic = syn / float64(len(f.Vector))
	out.Pragmatic = math.NaN()
	n := 2.0
	sum := out.Lexical + out.Syntactic
	if ps := s.Set.Pragmatic; ps != nil && f.Embedding != nil && p.Centroid != nil {
		cen := math.Max(0, cosine(sub(f.Embedding, ps.BackgroundMean), sub(p.Centroid, ps.BackgroundMean)))
		te, tc := ps.tagScores(f.Embedding), ps.tagScores(p.Centroid)
		d := 0.0
		for k := range te {
			d += math.Abs(te[k]-tc[k]) / 2
		}
		out.Pragmatic = 0.5 * (cen + 1 - d/float64(len(te)))
		sum += out.Pragmatic
		n++
	}
	out.Style = sum / n
	return out
}

// Score is the result of scoring one (neutral input, styled output) pair.
type Score struct {
	Semantic float64 `json:"semantic"`
	Style    float64 `json:"style"`
	VSS      float64 `json:"vss"`
	H        float64 `json:"h"`
	Parts    Parts   `json:"parts"`
}

// ScorePair scores output as a rewrite of input in character p's style:
// semantic = cos(embedding(input), embedding(output)); style = Parts.Style
// of the output; VSS = style if semantic > gate, else 0; H = the harmonic
// mean of semantic (floored at 0) and style.
func (s *Scorer) ScorePair(ctx context.Context, p *Profile, input, output string, gate float64) (*Score, error) {
	if s.Embedder == nil {
		return nil, errors.New("semantic fidelity needs an embedder (--model or --embed-url)")
	}
	fo, err := s.Features(ctx, output)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	vs, err := s.Embedder.Embed(ctx, []string{input})
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	if fo.Embedding == nil {
		if fo.Embedding, err = s.embedOne(ctx, output); err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
	}
	sc := &Score{Semantic: cosine(vs[0], fo.Embedding), Parts: s.Parts(fo, p)}
	sc.Style = sc.Parts.Style
	sc.VSS = VSS(sc.Semantic, sc.Style, gate)
	sc.H = Harmonic(sc.Semantic, sc.Style)
	return sc, nil
}

func (s *Scorer) embedOne(ctx context.Context, t string) ([]float32, error) {
	vs, err := s.Embedder.Embed(ctx, []string{t})
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

// VSS is the valid style score: style when semantic > gate, else 0.
func VSS(semantic, style, gate float64) float64 {
	if semantic > gate {
		return style
	}
	return 0
}

// Harmonic is the harmonic mean of semantic (floored at 0) and style.
func Harmonic(semantic, style float64) float64 {
	a, b := math.Max(0, semantic), math.Max(0, style)
	if a+b == 0 {
		return 0
	}
	return 2 * a * b / (a + b)
}

// Save writes the profile set as indented JSON, atomically.
func (s *Set) Save(path string) error {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error { _, err := w.Write(append(b, '\n')); return err })
}

// Load reads a profile set and checks it.
func Load(path string) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Set
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: not a style profile file: %v", path, err)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("%s: profile format version %d, this masque reads version %d", path, s.Version, Version)
	}
	if len(s.Characters) == 0 {
		return nil, fmt.Errorf("%s: the profile file has no characters", path)
	}
	if len(s.Dimensions) != len(Dimensions) {
		return nil, fmt.Errorf("%s: %d syntactic dimensions, this masque has %d", path, len(s.Dimensions), len(Dimensions))
	}
	for _, p := range s.Characters {
		if len(p.Syntax.Vector) != len(Dimensions) || len(p.Syntax.Spread) != len(Dimensions) {
			return nil, fmt.Errorf("%s: character %q: syntactic vector or spread is not %d-dimensional", path, p.Name, len(Dimensions))
		}
		if s.Pragmatic != nil && (len(p.Centroid) != s.Pragmatic.Dim || len(p.Tags) != len(s.Pragmatic.Tags)) {
			return nil, fmt.Errorf("%s: character %q: pragmatic part does not match the file's (%d-D embeddings, %d tags)", path, p.Name, s.Pragmatic.Dim, len(s.Pragmatic.Tags))
		}
	}
	return &s, nil
}
