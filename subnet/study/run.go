package study

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/eval/ppl"
	"github.com/masque-ai/masque/eval/voices"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/stats"
	"github.com/masque-ai/masque/subnet"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/sft"
)

// Num is a float64 written as JSON null when it is NaN or infinite.
type Num = voices.Num

// Figures are one evaluation of one voice (eval/voices' figures).
type Figures struct {
	Fidelity          Num `json:"fidelity"`
	FidelityT08       Num `json:"fidelity_t08"`
	POwn              Num `json:"p_own"`
	PPL               Num `json:"ppl"`
	PPLOwn            Num `json:"ppl_own"`
	ConditioningRatio Num `json:"conditioning_ratio"`
	// Run is the evaluation folder (report.json, report.html, run.json).
	Run string `json:"run"`
}

// Subject kinds.
const (
	KindDense     = "dense"     // the unmasked model: prompting only
	KindMagnitude = "magnitude" // a magnitude mask, the same for every voice
	KindSingle    = "single"    // a single-persona mask (wanda, sparsegpt)
	KindContrast  = "contrast"  // one side of a contrastive pair
	KindSFT       = "sft"       // a LoRA adapter trained on the voice
	KindSculpt    = "sculpt"    // a Persona-Pruner mask learned on the voice
)

// Subject is one configuration measured: the unmasked model, a mask or an
// adapter.
type Subject struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Method  string   `json:"method"`
	Pattern *Pattern `json:"pattern,omitempty"`
	// Voice is the voice the subject is made for ("" for the dense model
	// and magnitude masks, evaluated on every voice); Pair and Side name a
	// contrastive mask's pair ("kjv:web") and side (pos or neg).
	Voice string `json:"voice,omitempty"`
	Pair  string `json:"pair,omitempty"`
	Side  string `json:"side,omitempty"`
	// Key identifies the subject's inputs; File is its mask file (or
	// adapter folder); Density the kept share of linear weights.
	Key     string  `json:"key"`
	File    string  `json:"file,omitempty"`
	Density float64 `json:"density"`
	// Empty and Prompted are eval/voices' figures per evaluated voice with
	// an empty system prompt and with the voice's own persona prompt.
	Empty    map[string]Figures `json:"empty"`
	Prompted map[string]Figures `json:"prompted"`
	// HeldOut is the perplexity of every corpus voice's held-out test
	// passages under that voice's own persona prompt (general ability);
	// HeldOutOwn the subject's voice's, HeldOutOthers the geometric mean
	// over the other voices; CostOwn and CostOthers are those divided by
	// the dense model's (1: no cost).
	HeldOut       map[string]Num `json:"held_out_ppl"`
	HeldOutOwn    Num            `json:"held_out_ppl_own"`
	HeldOutOthers Num            `json:"held_out_ppl_others"`
	CostOwn       Num            `json:"ppl_cost_own"`
	CostOthers    Num            `json:"ppl_cost_others"`

	build func(context.Context) (*model.Model, error)
	m     *model.Model
	fp    string // m's fingerprint when m applies a mask per sequence
}

// Overlap compares the masks of one method and pattern across voices.
type Overlap struct {
	Method  string   `json:"method"`
	Pattern string   `json:"pattern"`
	Voices  []string `json:"voices"`
	// Differ[i][j] is the share of linear-weight entries in which the
	// masks of voices i and j differ (mask.Diff).
	Differ [][]float64 `json:"differ"`
	// Pearson is the correlation, over voice pairs i < j, of the masks'
	// agreement (1 − Differ) with the voices' text similarity.
	Pearson Num `json:"pearson_agreement_similarity"`
}

// PairOverlap compares the two sides of a contrastive pair.
type PairOverlap struct {
	Pair    string `json:"pair"`
	Pattern string `json:"pattern"`
	// Contrast is the share of entries in which the pair's two
	// contrastive masks differ; Single the same for the two voices'
	// single-persona masks of method SingleMethod at the same pattern.
	Contrast     Num    `json:"contrast_differ"`
	Single       Num    `json:"single_differ"`
	SingleMethod string `json:"single_method,omitempty"`
}

// Similarity is how alike the studied voices' texts are.
type Similarity struct {
	// Measure says what Matrix holds.
	Measure string      `json:"measure"`
	Voices  []string    `json:"voices"`
	Matrix  [][]float64 `json:"matrix"`
}

// Results is results.json.
type Results struct {
	Format      string   `json:"format"`
	Model       string   `json:"model"`
	Fingerprint string   `json:"fingerprint"`
	Corpus      string   `json:"corpus"`
	Voices      []string `json:"voices"`
	// CorpusVoices are every voice of the corpus (the held-out
	// perplexities cover them all).
	CorpusVoices []string      `json:"corpus_voices"`
	Settings     Settings      `json:"settings"`
	Similarity   Similarity    `json:"similarity"`
	Dense        *Subject      `json:"dense"`
	Subjects     []*Subject    `json:"subjects"`
	Overlaps     []Overlap     `json:"overlaps"`
	Pairs        []PairOverlap `json:"pairs"`
	// Registry is the `masque serve` registry written (relative to Out).
	Registry string `json:"registry,omitempty"`
	// Jobs counts the work: Computed now, Cached found on disk.
	Computed int       `json:"jobs_computed"`
	Cached   int       `json:"jobs_cached"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
}

// runner holds a study's state.
type runner struct {
	cfg     Config
	set     Settings
	pats    []Pattern
	ck      *checkpoint.Checkpoint
	m       *model.Model
	fp      string
	corp    *voices.Corpus
	cl      *voices.Classifier
	studied []string
	track   *tracker
	logf    func(string, ...any)

	calibs   map[string]*calib.Set
	calibTxt map[string][]string
	stats    map[string]*stats.Stats
	seqs     map[string][]train.Sequence // trainSeqs' per voice
	held     map[string][]ppl.Sample
	dense    *Subject
}

// Run runs the study (see the package documentation).
func Run(ctx context.Context, cfg Config) (*Results, error) {
	start := time.Now()
	set, pats, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, set: set, pats: pats, ck: cfg.Checkpoint, m: cfg.Checkpoint.Model, logf: cfg.Logf,
		calibs: map[string]*calib.Set{}, calibTxt: map[string][]string{}, stats: map[string]*stats.Stats{},
		seqs: map[string][]train.Sequence{}}
	if r.logf == nil {
		r.logf = func(string, ...any) {}
	}
	if _, err := r.ck.NeedTokenizer(); err != nil {
		return nil, err
	}
	r.fp = r.m.Fingerprint()
	if err := r.openCorpus(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	res := &Results{Format: Format, Model: r.ck.Path, Fingerprint: r.fp, Corpus: r.corp.Dir, Voices: r.studied,
		CorpusVoices: r.corp.Names(), Settings: r.set, Started: start.UTC()}
	for _, v := range r.studied {
		if err := r.calibration(v); err != nil {
			return nil, err
		}
	}
	res.Similarity = r.similarity()
	if err := r.heldOutSamples(); err != nil {
		return nil, err
	}
	r.track = newTracker(cfg.Progress, start)
	r.plan()

	// Prompting only: the unmasked model.
	r.dense = &Subject{ID: "dense", Kind: KindDense, Method: "dense", Key: "dense", Density: 1,
		build: func(context.Context) (*model.Model, error) { return r.m, nil }}
	res.Dense = r.dense
	if err := r.measure(ctx, r.dense, r.studied); err != nil {
		return nil, err
	}
	// Magnitude masks: one per pattern, every voice.
	if slices.Contains(cfg.Methods, subnet.Magnitude) {
		for _, p := range pats {
			s, err := r.single(ctx, "", subnet.Magnitude, p)
			if err != nil {
				return nil, err
			}
			if err := r.measure(ctx, s, r.studied); err != nil {
				return nil, err
			}
			res.Subjects = append(res.Subjects, s)
		}
	}
	// Single-persona masks.
	for _, v := range r.studied {
		for _, meth := range cfg.Methods {
			if meth == subnet.Magnitude {
				continue
			}
			for _, p := range pats {
				if meth == subnet.SparseGPT && p.Granularity == FFN {
					continue
				}
				s, err := r.single(ctx, v, meth, p)
				if err != nil {
					return nil, err
				}
				if err := r.measure(ctx, s, []string{v}); err != nil {
					return nil, err
				}
				res.Subjects = append(res.Subjects, s)
			}
		}
	}
	// Contrastive pairs.
	for _, pair := range r.set.Pairs {
		for _, p := range pats {
			pos, neg, err := r.contrast(ctx, pair, p)
			if err != nil {
				return nil, err
			}
			for _, s := range []*Subject{pos, neg} {
				if err := r.measure(ctx, s, []string{s.Voice}); err != nil {
					return nil, err
				}
				res.Subjects = append(res.Subjects, s)
			}
		}
	}
	// LoRA fine-tuning on the same passages.
	if cfg.SFT {
		for _, v := range r.studied {
			s, err := r.sft(ctx, v)
			if err != nil {
				return nil, err
			}
			if err := r.measure(ctx, s, []string{v}); err != nil {
				return nil, err
			}
			res.Subjects = append(res.Subjects, s)
		}
	}
	// Persona-Pruner on the same passages.
	if cfg.Sculpt {
		for _, v := range r.studied {
			for _, p := range r.sculptPatterns() {
				s, err := r.sculpted(ctx, v, p)
				if err != nil {
					return nil, err
				}
				if err := r.measure(ctx, s, []string{v}); err != nil {
					return nil, err
				}
				res.Subjects = append(res.Subjects, s)
			}
		}
	}
	if res.Overlaps, err = r.overlaps(res.Subjects, res.Similarity); err != nil {
		return nil, err
	}
	if res.Pairs, err = r.pairOverlaps(res.Subjects); err != nil {
		return nil, err
	}
	if err := r.writeRegistry(res); err != nil {
		return nil, err
	}
	res.Computed, res.Cached = r.track.done-r.track.cached, r.track.cached
	res.Finished = time.Now().UTC()
	res.Seconds = time.Since(start).Seconds()
	if err := res.Save(cfg.Out); err != nil {
		return res, err
	}
	return res, nil
}

// openCorpus opens the corpus and checks the voices, the pairs and the
// calibration split.
func (r *runner) openCorpus() error {
	dir := r.cfg.Corpus
	if dir == "" {
		var err error
		if dir, err = voices.DefaultCorpus(); err != nil {
			return err
		}
	}
	corp, err := voices.OpenCorpus(dir)
	if err != nil {
		return err
	}
	r.corp = corp
	names := corp.Names()
	r.studied = nil
	for _, v := range r.cfg.Voices {
		if !hasVoice(names, v) {
			return fmt.Errorf("study: unknown voice %q: the corpus %s has %s", v, corp.Dir, strings.Join(names, ", "))
		}
		if !hasVoice(r.studied, v) {
			r.studied = append(r.studied, v)
		}
	}
	if r.cfg.Voices == nil {
		r.studied = names
	}
	if len(r.studied) == 0 {
		return errors.New("study: no voice to study")
	}
	pairs := r.cfg.Pairs
	if pairs == nil {
		for _, p := range DefaultPairs {
			if hasVoice(r.studied, p[0]) && hasVoice(r.studied, p[1]) {
				pairs = append(pairs, p)
			}
		}
	}
	r.set.Pairs = [][2]string{}
	for _, p := range pairs {
		for _, v := range p {
			if !hasVoice(r.studied, v) {
				return fmt.Errorf("study: contrastive pair %s:%s: voice %q is not among the studied voices (%s)", p[0], p[1], v, strings.Join(r.studied, ", "))
			}
		}
		r.set.Pairs = append(r.set.Pairs, p)
	}
	split := r.cfg.CalibSplit
	if split == "" {
		split = voices.SplitTrain
		for _, v := range r.studied {
			if _, err := os.Stat(corp.SplitPath(v, voices.SplitTrain)); err != nil {
				split = voices.SplitValid
				break
			}
		}
	}
	if split != voices.SplitTrain && split != voices.SplitValid {
		return fmt.Errorf("study: calibration split %q: want train or valid (test is for evaluation)", split)
	}
	r.set.CalibSplit = split
	clPath := filepath.Join(corp.Dir, voices.ClassifierFile)
	if _, err := os.Stat(clPath); err == nil {
		if r.cl, err = voices.LoadClassifier(clPath); err != nil {
			return err
		}
	}
	return nil
}

// turns returns a row's system prompt, user prompt and answer.
func turns(row *voices.Row) (sys, user, ans string) {
	for _, m := range row.Messages {
		switch {
		case m.Role == "system" && sys == "":
			sys = m.Content
		case m.Role == "user" && user == "":
			user = m.Content
		case m.Role == "assistant" && ans == "":
			ans = m.Content
		}
	}
	if user == "" {
		user = row.Prompt
	}
	if ans == "" {
		ans = row.Text
	}
	return sys, user, ans
}

// calibration builds a voice's calibration set from its passages.
func (r *runner) calibration(v string) error {
	rows, err := r.corp.Rows(v, r.set.CalibSplit)
	if err != nil {
		return err
	}
	rows = rows[:min(len(rows), r.cfg.CalibSamples)]
	var convs [][]chattemplate.Message
	var texts []string
	for i := range rows {
		sys, user, ans := turns(&rows[i])
		var c []chattemplate.Message
		if r.cfg.CalibSystem && sys != "" {
			c = append(c, chattemplate.Message{Role: "system", Content: sys})
		}
		c = append(c, chattemplate.Message{Role: "user", Content: user}, chattemplate.Message{Role: "assistant", Content: ans})
		convs = append(convs, c)
		texts = append(texts, ans)
	}
	s, err := calib.FromChats(v+"/"+r.set.CalibSplit, "voices", convs, r.ck.ChatEncoder(), calib.Options{MaxTokens: r.cfg.CalibMaxTokens})
	if err != nil {
		return err
	}
	r.calibs[v], r.calibTxt[v] = s, texts
	return nil
}

// statsOf returns a voice's activation statistics, collected once and
// cached on disk.
func (r *runner) statsOf(ctx context.Context, v string) (*stats.Stats, error) {
	if st := r.stats[v]; st != nil {
		return st, nil
	}
	set := r.calibs[v]
	dir := filepath.Join(r.cfg.Out, "stats", v+"-"+key("stats", r.fp, set.Hash()))
	if _, err := os.Stat(filepath.Join(dir, stats.ManifestFile)); err == nil {
		st, err := stats.Load(dir)
		if err == nil {
			err = st.Check(r.m)
		}
		if err != nil {
			return nil, fmt.Errorf("study: cached statistics %s: %w (delete the folder to collect them again)", dir, err)
		}
		r.stats[v] = st
		return st, nil
	}
	st, err := stats.Collect(ctx, r.m, set.Samples, set.Record(), stats.Options{}, func(d, n int) { r.track.step("statistics "+v, d, n) })
	if err != nil {
		return nil, err
	}
	st.Manifest.Model = r.ck.Path
	if err := st.Save(dir); err != nil {
		return nil, err
	}
	r.stats[v] = st
	return st, nil
}

// key hashes parts (JSON-encoded) into a short hex key.
func key(parts ...any) string {
	b, err := json.Marshal(parts)
	if err != nil { // unreachable for the plain values used here
		b = []byte(fmt.Sprint(parts...))
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])[:16]
}

// slug makes an ID safe as a file name.
func slug(id string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			return c
		}
		return '_'
	}, id)
}

// loadMask reads a cached mask file, or returns nil when there is none.
func (r *runner) loadMask(path string) (*mask.Mask, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil
	}
	mk, err := mask.Load(path)
	if err == nil {
		err = mk.Check(r.m)
	}
	if err != nil {
		return nil, fmt.Errorf("study: cached mask %s: %w (delete it to build it again)", path, err)
	}
	return mk, nil
}

// single returns a single-persona mask (voice "" for magnitude), built or
// read from the cache.
func (r *runner) single(ctx context.Context, v string, meth subnet.Method, p Pattern) (*Subject, error) {
	id := string(meth) + "/" + p.String()
	calibHash := ""
	if v != "" {
		id = v + "/" + id
		calibHash = r.calibs[v].Hash()
	}
	pc := p
	s := &Subject{ID: id, Kind: KindSingle, Method: string(meth), Pattern: &pc, Voice: v}
	if meth == subnet.Magnitude {
		s.Kind = KindMagnitude
	}
	s.Key = key("mask", r.fp, meth, p, calibHash)
	s.File = filepath.Join(r.cfg.Out, "masks", slug(id)+"-"+s.Key+".safetensors")
	build := func(ctx context.Context) (*subnet.Result, error) {
		o := p.Options(meth, r.cfg.Workers)
		o.Progress = func(d, n int) { r.track.step("mask", d, n) }
		switch meth {
		case subnet.Magnitude:
			return subnet.Prune(r.m, nil, o)
		case subnet.Wanda:
			st, err := r.statsOf(ctx, v)
			if err != nil {
				return nil, err
			}
			return subnet.Prune(r.m, st, o)
		}
		set := r.calibs[v]
		o.Progress = nil
		return subnet.SparseGPTSequential(ctx, r.m, set.Samples, set.Record(), o, func(d, n int) { r.track.step("sparsegpt passes", d, n) })
	}
	r.track.begin("mask", id)
	t0 := time.Now()
	mk, err := r.loadMask(s.File)
	if err != nil {
		return nil, err
	}
	var weights mask.Weights
	cached := mk != nil
	if !cached {
		res, err := build(ctx)
		if err != nil {
			return nil, fmt.Errorf("study: mask %s: %w", id, err)
		}
		mk, weights = res.Mask, res.Weights
		if mk.Info.Calibration == "" && v != "" {
			mk.Info.Calibration = r.calibs[v].Name + " " + calibHash[:12]
		}
		mk.Info.Model = r.ck.Path
		if err := os.MkdirAll(filepath.Dir(s.File), 0o755); err != nil {
			return nil, fmt.Errorf("study: %w", err)
		}
		if err := mk.Save(s.File); err != nil {
			return nil, err
		}
	}
	r.track.end("mask", cached, time.Since(t0))
	s.Density = mk.Density()
	s.build = func(ctx context.Context) (*model.Model, error) {
		if meth == subnet.SparseGPT && weights == nil {
			// The updated weights are not kept on disk; recompute them
			// (deterministic) when an evaluation still needs them.
			r.logf("recomputing SparseGPT's updated weights for %s", id)
			res, err := build(ctx)
			if err != nil {
				return nil, err
			}
			if !sameMask(res.Mask, mk) {
				return nil, fmt.Errorf("study: SparseGPT mask %s recomputed differs from the cached %s (delete it)", id, s.File)
			}
			weights = res.Weights
		}
		if weights != nil {
			// SparseGPT's updated weights change the model itself: a copy.
			return mask.Masked(r.m, mk, weights)
		}
		return r.maskedView(s, mk)
	}
	return s, nil
}

// maskedView returns the base model with mk applied per sequence
// (persona.MaskedModel, nothing copied) and records in s the fingerprint of
// the masked weights, which the evaluation's report and caches name.
func (r *runner) maskedView(s *Subject, mk *mask.Mask) (*model.Model, error) {
	fp, err := mask.FingerprintMasked(r.m, mk)
	if err != nil {
		return nil, err
	}
	m, err := persona.MaskedModel(r.m, mk)
	if err != nil {
		return nil, err
	}
	s.fp = fp
	return m, nil
}

// sameMask reports whether two masks keep the same entries.
func sameMask(a, b *mask.Mask) bool {
	d, err := mask.Diff(a, b)
	return err == nil && d.Total.Differ == 0
}

// contrast returns the two masks of a contrastive pair at a pattern.
func (r *runner) contrast(ctx context.Context, pair [2]string, p Pattern) (pos, neg *Subject, err error) {
	name := pair[0] + ":" + pair[1]
	method := "contrast-" + string(r.cfg.Variant)
	k := key("contrast", r.fp, r.cfg.Variant, r.cfg.Phi, p, r.calibs[pair[0]].Hash(), r.calibs[pair[1]].Hash())
	mkSub := func(side, v string) *Subject {
		pc := p
		id := v + "/" + method + "(" + name + ")/" + p.String()
		return &Subject{ID: id, Kind: KindContrast, Method: method, Pattern: &pc, Voice: v, Pair: name, Side: side, Key: k + "-" + side,
			File: filepath.Join(r.cfg.Out, "masks", slug(pair[0]+"_vs_"+pair[1]+"-"+method+"-"+p.String())+"-"+k+"-"+side+".safetensors")}
	}
	pos, neg = mkSub("pos", pair[0]), mkSub("neg", pair[1])
	r.track.begin("mask", "contrast "+name+" "+p.String())
	t0 := time.Now()
	a, err := r.loadMask(pos.File)
	if err != nil {
		return nil, nil, err
	}
	b, err := r.loadMask(neg.File)
	if err != nil {
		return nil, nil, err
	}
	cached := a != nil && b != nil
	if !cached {
		sp, err := r.statsOf(ctx, pair[0])
		if err != nil {
			return nil, nil, err
		}
		sn, err := r.statsOf(ctx, pair[1])
		if err != nil {
			return nil, nil, err
		}
		o := p.Options("", r.cfg.Workers)
		o.Progress = func(d, n int) { r.track.step("contrast", d, n) }
		if a, b, err = subnet.Contrast(r.m, sp, sn, subnet.ContrastOptions{Options: o, Variant: r.cfg.Variant, Phi: r.cfg.Phi}); err != nil {
			return nil, nil, fmt.Errorf("study: contrastive pair %s, %s: %w", name, p, err)
		}
		if err := os.MkdirAll(filepath.Dir(pos.File), 0o755); err != nil {
			return nil, nil, fmt.Errorf("study: %w", err)
		}
		for _, x := range []struct {
			mk *mask.Mask
			s  *Subject
		}{{a, pos}, {b, neg}} {
			x.mk.Info.Model = r.ck.Path
			if err := x.mk.Save(x.s.File); err != nil {
				return nil, nil, err
			}
		}
	}
	r.track.end("mask", cached, time.Since(t0))
	pos.Density, neg.Density = a.Density(), b.Density()
	pos.build = func(context.Context) (*model.Model, error) { return r.maskedView(pos, a) }
	neg.build = func(context.Context) (*model.Model, error) { return r.maskedView(neg, b) }
	return pos, neg, nil
}

// model returns the subject's model, built on first use.
func (s *Subject) model(ctx context.Context) (*model.Model, error) {
	if s.m == nil {
		m, err := s.build(ctx)
		if err != nil {
			return nil, err
		}
		s.m = m
	}
	return s.m, nil
}

// measure evaluates a subject on the given voices (empty prompt, then own
// prompt) and measures its held-out perplexities, then drops its model.
func (r *runner) measure(ctx context.Context, s *Subject, evVoices []string) error {
	defer func() {
		if s != r.dense {
			s.m = nil
		}
	}()
	s.Empty, s.Prompted = map[string]Figures{}, map[string]Figures{}
	var emptyDir string
	for _, mode := range []string{"empty", "prompted"} {
		ek := key("eval", s.Key, r.fp, mode, evVoices, r.corp.Dir, r.set.EvalLimit, r.set.EvalMaxTokens, r.set.Temperature, r.set.Seed, r.set.PPLMaxTokens)
		dir := filepath.Join(r.cfg.Out, "evals", slug(s.ID)+"-"+mode+"-"+ek)
		what := map[string]string{"empty": "empty prompt", "prompted": "own prompt"}[mode]
		r.track.begin("eval", s.ID+" ("+what+")")
		t0 := time.Now()
		rep, err := voices.ReadReport(dir)
		cached := err == nil
		if !cached {
			if mode == "prompted" && emptyDir != "" {
				// The perplexities under every persona are the same in
				// both runs: start from the empty-prompt run's cache.
				if err := copyIfAbsent(filepath.Join(emptyDir, voices.ScoresFile), filepath.Join(dir, voices.ScoresFile)); err != nil {
					return err
				}
			}
			m, err := s.model(ctx)
			if err != nil {
				return fmt.Errorf("study: %s: %w", s.ID, err)
			}
			vc := voices.Config{Corpus: r.corp.Dir, Checkpoint: r.ck, Model: m, Fingerprint: s.fp, ModelName: r.ck.Path + " " + s.ID, ModelExtra: s.Key,
				Label: s.ID + " (" + what + ")", Method: s.Method, Classifier: r.cl, Voices: evVoices,
				Limit: r.set.EvalLimit, MaxTokens: r.set.EvalMaxTokens, Temperature: r.set.Temperature, Seed: r.set.Seed,
				PPLMaxTokens: r.set.PPLMaxTokens, Out: dir, Progress: func(stage string, d, n int) { r.track.step(stage, d, n) }, Logf: r.logf}
			if s.Pattern != nil {
				sp := s.Pattern.Sparsity
				vc.Sparsity = &sp
			}
			if mode == "empty" {
				empty := ""
				vc.System = &empty
			}
			if rep, err = voices.Run(ctx, vc); err != nil {
				return fmt.Errorf("study: evaluating %s (%s): %w", s.ID, what, err)
			}
		}
		r.track.end("eval", cached, time.Since(t0))
		rel, _ := filepath.Rel(r.cfg.Out, dir)
		for _, v := range evVoices {
			vr := rep.Voices[v]
			if vr == nil {
				return fmt.Errorf("study: %s has no figures of voice %s", filepath.Join(dir, voices.ReportFile), v)
			}
			f := Figures{Fidelity: vr.Fidelity, FidelityT08: vr.FidelityT08, POwn: vr.POwn, PPL: vr.PPL, PPLOwn: vr.PPLOwn,
				ConditioningRatio: vr.ConditioningRatio, Run: rel}
			if mode == "empty" {
				s.Empty[v] = f
			} else {
				s.Prompted[v] = f
			}
		}
		emptyDir = dir
	}
	return r.heldOut(ctx, s)
}

// copyIfAbsent copies src to dst unless dst exists or src does not.
func copyIfAbsent(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return nil
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("study: %w", err)
	}
	return atomicfile.WriteFile(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// heldOutSamples prepares the held-out perplexity samples of every corpus
// voice: its first PPLRows test passages under its own persona prompt,
// the answer's tokens scored, cut at PPLMaxTokens.
func (r *runner) heldOutSamples() error {
	r.held = map[string][]ppl.Sample{}
	for _, vo := range r.corp.Voices {
		rows, err := r.corp.Rows(vo.Name, voices.SplitTest)
		if err != nil {
			return err
		}
		rows = rows[:min(len(rows), r.set.PPLRows)]
		for i := range rows {
			_, user, ans := turns(&rows[i])
			msgs := []chattemplate.Message{{Role: "system", Content: vo.Persona}, {Role: "user", Content: user}, {Role: "assistant", Content: ans}}
			s, ok, err := ppl.ChatSample(msgs, sft.NewEncoder(r.ck.Template, r.ck.Tokenizer, r.ck.TemplateConfig, r.ck.HasTemplate))
			if err != nil {
				return fmt.Errorf("study: %s, row %s: %w", r.corp.SplitPath(vo.Name, voices.SplitTest), rows[i].ID, err)
			}
			if !ok {
				continue
			}
			n := min(len(s.IDs), r.set.PPLMaxTokens)
			s.IDs, s.Score = s.IDs[:n], s.Score[:n]
			if !slices.Contains(s.Score, true) {
				continue // the prompt alone fills the window
			}
			r.held[vo.Name] = append(r.held[vo.Name], s)
		}
		if len(r.held[vo.Name]) == 0 {
			return fmt.Errorf("study: voice %s: no test passage has an answer token within %d tokens (raise the perplexity window)", vo.Name, r.set.PPLMaxTokens)
		}
	}
	return nil
}

// heldOut measures (or reads) a subject's held-out perplexities.
func (r *runner) heldOut(ctx context.Context, s *Subject) error {
	path := filepath.Join(r.cfg.Out, "ppl", slug(s.ID)+"-"+key("ppl", s.Key, r.fp, r.corp.Dir, r.set.PPLRows, r.set.PPLMaxTokens)+".json")
	r.track.begin("ppl", s.ID)
	t0 := time.Now()
	var got map[string]float64
	cached := false
	if data, err := os.ReadFile(path); err == nil {
		cached = json.Unmarshal(data, &got) == nil && len(got) == len(r.corp.Voices)
	}
	if !cached {
		m, err := s.model(ctx)
		if err != nil {
			return fmt.Errorf("study: %s: %w", s.ID, err)
		}
		got = map[string]float64{}
		sc := ppl.NewScorer(m) // a voice's passages share its system prompt
		for i, vo := range r.corp.Voices {
			var nll float64
			var n int
			for _, smp := range r.held[vo.Name] {
				l, k, err := sc.NLL(ctx, vo.Name, smp)
				if err != nil {
					return fmt.Errorf("study: held-out perplexity of %s on %s: %w", s.ID, vo.Name, err)
				}
				nll, n = nll+l, n+k
			}
			if n == 0 {
				return fmt.Errorf("study: held-out perplexity of %s on %s: no token to score", s.ID, vo.Name)
			}
			got[vo.Name] = math.Exp(nll / float64(n))
			r.track.step("held-out perplexity", i+1, len(r.corp.Voices))
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("study: %w", err)
		}
		if err := atomicfile.WriteFile(path, func(w io.Writer) error { return json.NewEncoder(w).Encode(got) }); err != nil {
			return err
		}
	}
	r.track.end("ppl", cached, time.Since(t0))
	s.HeldOut = map[string]Num{}
	for v, x := range got {
		s.HeldOut[v] = Num(x)
	}
	r.summariseHeldOut(s)
	return nil
}

// summariseHeldOut fills the own/others perplexities and their costs.
func (r *runner) summariseHeldOut(s *Subject) {
	nan := Num(math.NaN())
	s.HeldOutOwn, s.HeldOutOthers, s.CostOwn, s.CostOthers = nan, nan, nan, nan
	geo := func(sub *Subject, skip string) float64 {
		var sum float64
		n := 0
		for _, v := range r.corp.Names() {
			if v != skip {
				sum += math.Log(float64(sub.HeldOut[v]))
				n++
			}
		}
		return math.Exp(sum / float64(max(n, 1)))
	}
	s.HeldOutOthers = Num(geo(s, s.Voice))
	if s.Voice != "" {
		s.HeldOutOwn = s.HeldOut[s.Voice]
	}
	if d := r.dense; d != nil && d.HeldOut != nil {
		s.CostOthers = Num(float64(s.HeldOutOthers) / geo(d, s.Voice))
		if s.Voice != "" {
			s.CostOwn = Num(float64(s.HeldOutOwn) / float64(d.HeldOut[s.Voice]))
		}
	}
}

// Save writes results.json and report.html into dir.
func (res *Results) Save(dir string) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("study: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ResultsFile), func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	}); err != nil {
		return err
	}
	page, err := res.HTML()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, ReportFile), func(w io.Writer) error {
		_, err := w.Write(page)
		return err
	})
}

// ReadResults reads results.json, given the file or its folder.
func ReadResults(path string) (*Results, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ResultsFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("study: %s: %v", path, err)
	}
	if res.Format != Format {
		return nil, fmt.Errorf("study: %s: format %q, want %q", path, res.Format, Format)
	}
	return &res, nil
}
