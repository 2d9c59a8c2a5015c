// Package voices is masque's persona-fidelity benchmark over a voices corpus
// (`masque corpus voices`: DIR/personas.json and DIR/<voice>/{train,valid,
// test}.jsonl, one passage a row with its chat view in messages): does a
// model speak as the persona in its system prompt?
//
//   - A voice classifier (Classifier: multinomial naive Bayes over hashed
//     word 1–2-grams and character 3–5-grams, trained on the train split
//     and kept beside the corpus as classifier.bin) gives the ceiling: its
//     accuracy on the held-out test passages.
//   - Persona fidelity: the model answers each voice's held-out test
//     prompts (the row's system persona and user prompt, rendered with the
//     model's chat template), greedily and at temperature 0.8 (seeded);
//     fidelity is the share of answers the classifier assigns to that
//     voice, and the confusion matrix shows which persona leaks into which.
//   - Conditioning gain: the perplexity of each voice's test answers
//     (assistant tokens only) under its own persona against the mean under
//     every other voice's persona.
//   - General quality: test perplexity per voice; distinct-1/2 and the
//     repetition rate of the generations.
//
// Run writes report.json, a self-contained report.html, and run.json in
// the format of eval/roleplay so that `masque eval compare` can compare
// runs (for instance a model and its pruned or masked descendants).
package voices

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/ppl"
	"github.com/masque-ai/masque/eval/roleplay"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/internal/filehash"
	"github.com/masque-ai/masque/jsonlstore"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/train/sft"
)

// DefaultModel is the model `masque eval voices` evaluates without --model.
const DefaultModel = builtin.Voices

// Defaults of Config.
const (
	DefaultLimit       = 40
	DefaultMaxTokens   = 160
	DefaultTemperature = 0.8
)

// ReportFormat names the format of report.json.
const ReportFormat = "masque-eval-voices/1"

// File names inside the output folder.
const (
	ReportFile      = "report.json"
	HTMLFile        = "report.html"
	GenerationsFile = "generations.jsonl" // resumable cache of answers
	ScoresFile      = "nll.jsonl"         // resumable cache of log-likelihoods
)

// Targets of issue #13.
const (
	TargetClassifierAccuracy = 0.95
	TargetMeanFidelity       = 0.85
	TargetMinFidelity        = 0.60
	TargetConditioningRatio  = 0.8
)

// Num is a float64 written as JSON null when it is NaN or infinite.
type Num = roleplay.Num

// DefaultCorpus returns the folder of the evaluation kit embedded with
// builtin:voices (its personas, validation and test splits, manifest and voice
// classifier; unpacked into the cache on first use): the corpus Run uses when
// Config.Corpus is empty.
func DefaultCorpus() (string, error) { return builtin.VoicesKitDir() }

// Config is what Run needs.
type Config struct {
	// Corpus is the voices corpus folder ("": DefaultCorpus).
	Corpus string
	// Checkpoint supplies the tokenizer and chat template (required), and
	// the model unless Model is set.
	Checkpoint *checkpoint.Checkpoint
	// Model is the model to evaluate (nil: Checkpoint.Model): for instance
	// a mask applied per sequence (persona.MaskedModel) or a pruned model
	// prepared by the caller over the checkpoint's tokenizer.
	Model *model.Model
	// Fingerprint identifies Model's weights in the report and the cache
	// keys (default: Model.Fingerprint()); a caller that applies a mask
	// per sequence sets mask.FingerprintMasked, the masked weights'.
	Fingerprint string
	// ModelName is shown in the report (default: Checkpoint.Path);
	// ModelExtra is mixed into the cache keys and should identify what
	// Model adds to the weights' fingerprint (a mask file's hash, say).
	ModelName, ModelExtra string
	// Mask, when set, is a mask file (masque subnet, masque mask) applied
	// to the checkpoint's model per sequence (persona.MaskedModel; Model
	// must then be nil): it adds the
	// file's SHA-256 to ModelExtra and " + mask PATH" to the shown name,
	// and Method and Sparsity default to the mask's own.
	Mask string
	// Label, Method and Sparsity are recorded for `eval compare` (Label
	// defaults to Out's base name, Method to "dense").
	Label, Method string
	Sparsity      *float64

	// Classifier classifies the answers (nil: ClassifierPath, trained on
	// the corpus and saved there first when the file does not exist).
	Classifier *Classifier
	// ClassifierPath defaults to Corpus/classifier.bin.
	ClassifierPath string
	// TrainOptions are used when the classifier has to be trained.
	TrainOptions TrainOptions

	// Voices restricts the evaluated voices (nil: all, in corpus order).
	// The other personas of the conditioning gain are always every other
	// voice of the corpus.
	Voices []string
	// Limit is the number of test prompts per voice, the first of the
	// test split (≤ 0: DefaultLimit).
	Limit int
	// MaxTokens caps every answer (≤ 0: DefaultMaxTokens).
	MaxTokens int
	// Temperature of the sampled answers (≤ 0: DefaultTemperature); Seed
	// seeds them (each prompt gets its own stream derived from Seed and
	// the row id).
	Temperature float32
	Seed        uint64
	// System, when not nil, replaces the persona system prompt of every
	// generation and of the "ppl" perplexity ("" means no system message):
	// a neutral prompt, for instance, when a persona mask is to carry the
	// voice. The conditioning gain always compares the real personas.
	System *string
	// PPLMaxTokens caps the length of a scored conversation (≤ 0: the
	// model's context). Each answer is scored on the same number of
	// leading tokens under every persona.
	PPLMaxTokens int

	// Out, if set, receives report.json, report.html, run.json and the
	// caches that let an interrupted run resume.
	Out string
	// Progress, if set, is called as work is done, per stage.
	Progress func(stage string, done, total int)
	// Logf, if set, receives one-line notes (for example that the
	// classifier is being trained).
	Logf func(format string, a ...any)
}

// Settings records the run's parameters.
type Settings struct {
	Limit        int     `json:"limit"`
	MaxTokens    int     `json:"max_tokens"`
	Temperature  float32 `json:"temperature"`
	Seed         uint64  `json:"seed"`
	PPLMaxTokens int     `json:"ppl_max_tokens"`
}

// ClassifierReport describes the classifier used.
type ClassifierReport struct {
	Path  string `json:"path,omitempty"`
	Bytes int    `json:"bytes"`
	// SHA256 identifies the classifier (of its encoding): fidelities of
	// runs are comparable when it is the same.
	SHA256   string    `json:"sha256"`
	Features Features  `json:"features"`
	Selected int       `json:"selected_features"`
	Alpha    float64   `json:"alpha"`
	Test     *Accuracy `json:"test"`
}

// VoiceResult holds one voice's figures.
type VoiceResult struct {
	Title   string `json:"title"`
	Prompts int    `json:"prompts"`
	// Fidelity and FidelityT08 are the shares of greedy and sampled
	// answers classified as this voice; POwn the mean posterior of this
	// voice over the greedy answers.
	Fidelity    Num `json:"fidelity"`
	FidelityT08 Num `json:"fidelity_t08"`
	POwn        Num `json:"p_own"`
	// PPL is the perplexity of the test answers under the system prompt of
	// this run (the own persona, or Config.System); PPLOwn under the own
	// persona; PPLOtherPersonas the mean over the other personas of the
	// perplexity under each; ConditioningRatio = PPLOwn /
	// PPLOtherPersonas.
	PPL               Num            `json:"ppl"`
	PPLOwn            Num            `json:"ppl_own"`
	PPLOtherPersonas  Num            `json:"ppl_other_personas"`
	ConditioningRatio Num            `json:"conditioning_ratio"`
	PPLUnder          map[string]Num `json:"ppl_under_persona"`
	ScoredTokens      int            `json:"scored_tokens"`
	// Distinct-n over the greedy (sampled) answers together; repetition
	// rate (RepetitionN-grams) averaged over the answers.
	Distinct1     Num     `json:"distinct1"`
	Distinct2     Num     `json:"distinct2"`
	Repetition    Num     `json:"repetition"`
	Distinct1T08  Num     `json:"distinct1_t08"`
	Distinct2T08  Num     `json:"distinct2_t08"`
	RepetitionT08 Num     `json:"repetition_t08"`
	MeanTokens    float64 `json:"mean_tokens"`
	MeanTokensT08 float64 `json:"mean_tokens_t08"`
	// ClassifierAccuracy is the classifier's accuracy on this voice's
	// held-out test passages.
	ClassifierAccuracy float64 `json:"classifier_accuracy"`
}

// Confusion counts answers by persona prompted (rows) and voice classified
// (columns; the last column, "none", counts answers without a feature).
type Confusion struct {
	Rows   []string `json:"rows"`
	Cols   []string `json:"cols"`
	Greedy [][]int  `json:"greedy"`
	T08    [][]int  `json:"t08"`
}

// Targets are issue #13's thresholds and whether this run meets them.
type Targets struct {
	ClassifierAccuracy float64         `json:"classifier_accuracy"`
	MeanFidelity       float64         `json:"mean_fidelity"`
	MinFidelity        float64         `json:"min_fidelity"`
	ConditioningRatio  float64         `json:"conditioning_ratio"`
	Met                map[string]bool `json:"met"`
}

// Answer is one generated answer.
type Answer struct {
	Text   string `json:"text"`
	Tokens int    `json:"tokens"`
	Finish string `json:"finish_reason"`
	// Voice is the voice the classifier assigns ("" when none); POwn the
	// posterior of the persona's own voice.
	Voice string  `json:"classified"`
	POwn  float64 `json:"p_own"`
}

// Item is one test prompt of one voice.
type Item struct {
	ID        string `json:"id"`
	Voice     string `json:"voice"`
	Prompt    string `json:"prompt"`
	Reference string `json:"reference"`
	Greedy    Answer `json:"greedy"`
	T08       Answer `json:"t08"`
	// ScoredTokens is the number of reference answer tokens scored under
	// every persona; NLL maps each persona (and "system" for the override)
	// to the mean negative log-likelihood per scored token.
	ScoredTokens int                `json:"scored_tokens"`
	NLL          map[string]float64 `json:"nll"`
}

// Report is the content of report.json.
type Report struct {
	Format      string   `json:"format"`
	Model       string   `json:"model"`
	Fingerprint string   `json:"fingerprint"`
	Corpus      string   `json:"corpus"`
	Label       string   `json:"label"`
	Method      string   `json:"method"`
	Sparsity    *float64 `json:"sparsity,omitempty"`
	// SystemOverride is Config.System.
	SystemOverride *string  `json:"system_override,omitempty"`
	Settings       Settings `json:"settings"`

	ClassifierAccuracy      float64          `json:"classifier_accuracy"`
	ClassifierAccuracyMacro float64          `json:"classifier_accuracy_macro"`
	Classifier              ClassifierReport `json:"classifier"`

	MeanFidelity    Num `json:"mean_fidelity"`
	MinFidelity     Num `json:"min_fidelity"`
	MeanFidelityT08 Num `json:"mean_fidelity_t08"`
	// MeanConditioningRatio is the mean over voices; MaxConditioningRatio
	// the worst voice.
	MeanConditioningRatio Num `json:"mean_conditioning_ratio"`
	MaxConditioningRatio  Num `json:"max_conditioning_ratio"`

	VoiceOrder []string                `json:"voice_order"`
	Voices     map[string]*VoiceResult `json:"voices"`
	Confusion  Confusion               `json:"confusion"`
	Targets    Targets                 `json:"targets"`
	Items      []Item                  `json:"items"`

	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
}

// systemKey names the override's entry of Item.NLL (the others are voice
// names).
const systemKey = "system"

// applyMask loads cfg.Mask over the checkpoint's model (see Config.Mask).
func applyMask(cfg *Config) error {
	if cfg.Model != nil {
		return errors.New("voices: a mask and a prepared model are exclusive")
	}
	mk, err := mask.Load(cfg.Mask)
	if err != nil {
		return err
	}
	if cfg.Model, err = persona.MaskedModel(cfg.Checkpoint.Model, mk); err != nil {
		return err
	}
	if cfg.Fingerprint, err = mask.FingerprintMasked(cfg.Checkpoint.Model, mk); err != nil {
		return err
	}
	sum, err := filehash.SHA256(cfg.Mask)
	if err != nil {
		return err
	}
	cfg.ModelExtra += "mask:" + sum
	cfg.ModelName += " + mask " + cfg.Mask
	if cfg.Method == "" {
		cfg.Method = "mask"
		if mk.Info.Method != "" {
			cfg.Method = mk.Info.Method
		}
	}
	if cfg.Sparsity == nil {
		s := mk.Info.Sparsity
		cfg.Sparsity = &s
	}
	return nil
}

// Run runs the benchmark.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	start := time.Now()
	if cfg.Checkpoint == nil {
		return nil, errors.New("voices: no checkpoint")
	}
	ck := cfg.Checkpoint
	if cfg.ModelName == "" {
		cfg.ModelName = ck.Path
	}
	if cfg.Mask != "" {
		if err := applyMask(&cfg); err != nil {
			return nil, err
		}
	} else if cfg.Sparsity == nil && (cfg.Method == "" || cfg.Method == "dense") {
		zero := 0.0
		cfg.Sparsity = &zero
	}
	m := cfg.Model
	if m == nil {
		m = ck.Model
	}
	if m == nil {
		return nil, fmt.Errorf("voices: %s has no model weights", ck.Path)
	}
	if cfg.Fingerprint == "" {
		cfg.Fingerprint = m.Fingerprint()
	}
	tok, err := ck.NeedTokenizer()
	if err != nil {
		return nil, err
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.Temperature <= 0 {
		cfg.Temperature = DefaultTemperature
	}
	ctxLen := m.Config.MaxSeq
	if ctxLen <= 0 {
		ctxLen = 2048
	}
	if cfg.PPLMaxTokens <= 0 || cfg.PPLMaxTokens > ctxLen {
		cfg.PPLMaxTokens = ctxLen
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string, int, int) {}
	}

	if cfg.Corpus == "" {
		if cfg.Corpus, err = DefaultCorpus(); err != nil {
			return nil, err
		}
	}
	corp, err := OpenCorpus(cfg.Corpus)
	if err != nil {
		return nil, err
	}
	names := corp.Names()
	voices := names
	if len(cfg.Voices) > 0 {
		voices = nil
		for _, v := range cfg.Voices {
			if !slices.Contains(names, v) {
				return nil, fmt.Errorf("voices: the corpus %s has no voice %q (it has %v)", corp.Dir, v, names)
			}
			if !slices.Contains(voices, v) {
				voices = append(voices, v)
			}
		}
	}
	// Read the test rows first: a corpus without them fails early.
	rows := map[string][]Row{}
	for _, v := range voices {
		r, err := corp.Rows(v, SplitTest)
		if err != nil {
			return nil, err
		}
		rows[v] = r[:min(len(r), cfg.Limit)]
	}

	// The classifier.
	cl, clPath, clData, err := classifierFor(corp, cfg, logf)
	if err != nil {
		return nil, err
	}
	if err := cl.Check(corp); err != nil {
		return nil, err
	}
	acc, err := cl.EvaluateCorpus(corp, SplitTest, func(d, t int) { progress("classifier test", d, t) })
	if err != nil {
		return nil, err
	}

	rep := &Report{Format: ReportFormat, Model: cfg.ModelName, Fingerprint: cfg.Fingerprint, Corpus: corp.Dir,
		Label: cfg.Label, Method: cfg.Method, Sparsity: cfg.Sparsity, SystemOverride: cfg.System,
		Settings:           Settings{Limit: cfg.Limit, MaxTokens: cfg.MaxTokens, Temperature: cfg.Temperature, Seed: cfg.Seed, PPLMaxTokens: cfg.PPLMaxTokens},
		ClassifierAccuracy: acc.Accuracy, ClassifierAccuracyMacro: acc.Macro,
		Classifier: ClassifierReport{Path: clPath, Bytes: len(clData), SHA256: fmt.Sprintf("%x", sha256.Sum256(clData)), Features: cl.Features, Selected: cl.NumFeatures(), Alpha: cl.Alpha, Test: acc},
		VoiceOrder: voices, Voices: map[string]*VoiceResult{}, Started: start.UTC()}
	if rep.Model == "" {
		rep.Model = ck.Path
	}
	if rep.Label == "" {
		rep.Label = filepath.Base(cfg.Out)
		if cfg.Out == "" {
			rep.Label = filepath.Base(rep.Model)
		}
	}
	if rep.Method == "" {
		rep.Method = "dense"
	}

	var gens, scores *jsonlstore.Store
	if cfg.Out != "" {
		if gens, err = jsonlstore.Open(filepath.Join(cfg.Out, GenerationsFile)); err != nil {
			return nil, err
		}
		defer gens.Close()
		if scores, err = jsonlstore.Open(filepath.Join(cfg.Out, ScoresFile)); err != nil {
			return nil, err
		}
		defer scores.Close()
	}
	g := &runner{ck: ck, m: m, tok: generate.FromTokenizer(tok), stops: ck.StopTokens(), maxSeq: ctxLen,
		key: jsonlstore.Key("voices/1", rep.Fingerprint, cfg.ModelExtra), gens: gens, scores: scores, cl: cl.newPredictor(), classifier: cl}

	// Items and generations.
	type turn struct{ sys, user, ans string }
	var turns []turn
	for _, v := range voices {
		for _, r := range rows[v] {
			sys, user, ans, err := rowTurns(&r)
			if err != nil {
				return nil, fmt.Errorf("voices: %s: %v", corp.SplitPath(v, SplitTest), err)
			}
			rep.Items = append(rep.Items, Item{ID: r.ID, Voice: v, Prompt: user, Reference: ans})
			turns = append(turns, turn{sys, user, ans})
		}
	}
	total := len(rep.Items)
	for pass, stage := range []string{"greedy", "sampled"} {
		// The items are answered in fixed chunks of answerChunk, by index,
		// whatever the caches hold (see answerChunk).
		for lo := 0; lo < total; lo += answerChunk {
			hi := min(lo+answerChunk, total)
			qs := make([]question, hi-lo)
			for i := lo; i < hi; i++ {
				it := &rep.Items[i]
				sys := turns[i].sys
				if cfg.System != nil {
					sys = *cfg.System
				}
				o := generate.Options{MaxTokens: cfg.MaxTokens}
				if pass == 1 {
					o.Temperature = cfg.Temperature
					o.Seed = itemSeed(cfg.Seed, it.Voice+"\x00"+it.ID)
				}
				qs[i-lo] = question{voice: it.Voice, row: it.ID, system: sys, user: turns[i].user, o: o}
			}
			answers, err := g.answers(ctx, qs)
			if err != nil {
				return nil, err
			}
			for i := lo; i < hi; i++ {
				it := &rep.Items[i]
				a := answers[i-lo]
				pr := g.cl.predict(a.Text)
				a.Voice = pr.Name(cl.Voices)
				a.POwn = pr.Posterior[cl.VoiceIndex(it.Voice)]
				if pass == 0 {
					it.Greedy = a
				} else {
					it.T08 = a
				}
				progress(stage, i+1, total)
			}
		}
	}

	// Perplexities.
	for i := range rep.Items {
		it := &rep.Items[i]
		sys, user, ans := turns[i].sys, turns[i].user, turns[i].ans
		type cond struct{ key, system string }
		conds := []cond{{it.Voice, sys}}
		for _, vo := range corp.Voices {
			if vo.Name != it.Voice {
				conds = append(conds, cond{vo.Name, vo.Persona})
			}
		}
		if cfg.System != nil {
			conds = append(conds, cond{systemKey, *cfg.System})
		}
		samples := make([]ppl.Sample, len(conds))
		for ci, c := range conds {
			s, err := g.sample(c.system, user, ans)
			if err != nil {
				return nil, fmt.Errorf("voices: %s, row %s, persona %s: %w", it.Voice, it.ID, c.key, err)
			}
			samples[ci] = s
		}
		n, err := equalize(samples, cfg.PPLMaxTokens)
		if err != nil {
			return nil, fmt.Errorf("voices: %s, row %s: %w", it.Voice, it.ID, err)
		}
		it.ScoredTokens = n
		it.NLL = map[string]float64{}
		for ci, c := range conds {
			nll, err := g.nll(ctx, c.system, samples[ci])
			if err != nil {
				return nil, fmt.Errorf("voices: %s, row %s, persona %s: %w", it.Voice, it.ID, c.key, err)
			}
			it.NLL[c.key] = nll / float64(n)
		}
		progress("perplexity", i+1, total)
	}

	aggregate(rep, corp, acc, cfg.System != nil)
	rep.Finished = time.Now().UTC()
	rep.Seconds = time.Since(start).Seconds()
	if cfg.Out != "" {
		if err := rep.Save(cfg.Out); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// classifierFor returns the classifier of cfg, its path and its encoding,
// training and saving it first when needed.
func classifierFor(corp *Corpus, cfg Config, logf func(string, ...any)) (*Classifier, string, []byte, error) {
	if cfg.Classifier != nil {
		data, err := cfg.Classifier.Marshal()
		return cfg.Classifier, "", data, err
	}
	path := cfg.ClassifierPath
	if path == "" {
		path = filepath.Join(corp.Dir, ClassifierFile)
	}
	data, err := os.ReadFile(path)
	if err == nil {
		cl, err := Unmarshal(data, path)
		return cl, path, data, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, "", nil, fmt.Errorf("voices: %w", err)
	}
	logf("training the voice classifier on %s (no %s yet)", corp.Dir, path)
	cl, err := TrainCorpus(corp, cfg.TrainOptions)
	if err != nil {
		return nil, "", nil, err
	}
	if data, err = cl.Marshal(); err != nil {
		return nil, "", nil, err
	}
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return nil, "", nil, err
	}
	logf("saved %s (%d bytes)", path, len(data))
	return cl, path, data, nil
}

// itemSeed derives a sampling seed per prompt.
func itemSeed(seed uint64, id string) uint64 {
	h := fnv.New64a()
	io.WriteString(h, id)
	return seed ^ h.Sum64()
}

// runner generates and scores with the model, through the caches.
type runner struct {
	ck         *checkpoint.Checkpoint
	m          *model.Model
	tok        generate.Tokenizer
	stops      []int
	maxSeq     int
	key        string
	gens       *jsonlstore.Store
	scores     *jsonlstore.Store
	cl         *predictor
	classifier *Classifier
	scorer     *ppl.Scorer // made on first use
}

func messages(system, user, answer string) []chattemplate.Message {
	var msgs []chattemplate.Message
	if system != "" {
		msgs = append(msgs, chattemplate.Message{Role: "system", Content: system})
	}
	msgs = append(msgs, chattemplate.Message{Role: "user", Content: user})
	if answer != "" {
		msgs = append(msgs, chattemplate.Message{Role: "assistant", Content: answer})
	}
	return msgs
}

// answerChunk is the number of items answered together, in one
// generate.GenerateBatch. Batched answers equal sequential ones only up to
// float rounding, so a batch's composition is part of what determines its
// answers: Run cuts the items into fixed chunks by index (items 0–15,
// 16–31, …) and regenerates a whole chunk when any of its answers is
// missing from the cache, so that a resumed run gives the same answers as
// an uninterrupted one. Changing it changes the answers: answerKey's tag
// must change with it.
const answerChunk = 16

// answerKey tags the cache keys of answers: "b16" for answers generated in
// chunks of 16 (the untagged "answer" keys were sequential answers).
const answerKey = "answer/b16"

// question is one answer to generate: the item (for errors), its system
// prompt and user prompt, and the options.
type question struct {
	voice, row   string
	system, user string
	o            generate.Options
}

// answers returns the model's answers to qs (one chunk, see answerChunk):
// from the cache when it holds every one of them, otherwise by generating
// all of them together (the cached ones keep their cached value, which a
// deterministic run reproduces anyway, and items with the same key get the
// first one's answer). Errors name the item.
func (g *runner) answers(ctx context.Context, qs []question) ([]Answer, error) {
	out := make([]Answer, len(qs))
	keys := make([]string, len(qs))
	cached := make([]bool, len(qs))
	missing := 0
	for i, q := range qs {
		opt, _ := json.Marshal(q.o)
		keys[i] = jsonlstore.Key(g.key, answerKey, q.system, q.user, string(opt))
		if g.gens != nil && g.gens.Get(keys[i], &out[i]) {
			cached[i] = true
		} else {
			missing++
		}
	}
	if missing == 0 {
		return out, nil
	}
	reqs := make([]generate.BatchRequest, len(qs))
	for i, q := range qs {
		ids, err := g.ck.EncodeChat(messages(q.system, q.user, ""), true, nil)
		if err != nil {
			return nil, fmt.Errorf("voices: %s, row %s: %w", q.voice, q.row, err)
		}
		if len(ids) >= g.maxSeq {
			return nil, fmt.Errorf("voices: %s, row %s: the prompt has %d tokens, the model's context is %d", q.voice, q.row, len(ids), g.maxSeq)
		}
		o := q.o
		o.StopTokens = g.stops
		o.SkipSpecial = true
		reqs[i] = generate.BatchRequest{Prompt: ids, Options: o}
	}
	res, err := generate.GenerateBatch(ctx, g.m, g.tok, reqs)
	if err != nil {
		return nil, fmt.Errorf("voices: answering %s, row %s … %s, row %s: %w", qs[0].voice, qs[0].row, qs[len(qs)-1].voice, qs[len(qs)-1].row, err)
	}
	for i, r := range res {
		if r.FinishReason == generate.FinishCancelled {
			return nil, fmt.Errorf("voices: %s, row %s: %w", qs[i].voice, qs[i].row, ctx.Err())
		}
	}
	first := map[string]int{} // key → the first item with it
	for i, r := range res {
		if cached[i] {
			continue
		}
		// Items with the same key (the same prompts and options) get the
		// answer of the first, as they would from the cache.
		if j, dup := first[keys[i]]; dup {
			out[i] = out[j]
			continue
		}
		first[keys[i]] = i
		out[i] = Answer{Text: r.Text, Tokens: len(r.IDs), Finish: r.FinishReason}
		if g.gens != nil {
			if err := g.gens.Put(keys[i], out[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// sample renders system, user and answer and marks the answer's tokens:
// those finetune would train on (see ppl.ChatSample).
func (g *runner) sample(system, user, answer string) (ppl.Sample, error) {
	enc := sft.NewEncoder(g.ck.Template, g.ck.Tokenizer, g.ck.TemplateConfig, g.ck.HasTemplate)
	s, ok, err := ppl.ChatSample(messages(system, user, answer), enc)
	if err != nil {
		return ppl.Sample{}, err
	}
	if !ok {
		return ppl.Sample{}, errors.New("the answer has no tokens")
	}
	return s, nil
}

// equalize cuts every sample to the same number n of scored (answer)
// tokens, the most that fit within maxLen tokens in all of them, and
// returns n.
func equalize(samples []ppl.Sample, maxLen int) (int, error) {
	n := math.MaxInt
	for _, s := range samples {
		k := 0
		for j := 0; j < min(len(s.IDs), maxLen); j++ {
			if s.Score[j] {
				k++
			}
		}
		n = min(n, k)
	}
	if n <= 0 {
		return 0, fmt.Errorf("no answer token fits in %d tokens after the prompt", maxLen)
	}
	for i := range samples {
		s := &samples[i]
		k := 0
		for j := range s.IDs {
			if !s.Score[j] {
				continue
			}
			k++
			if k == n {
				s.IDs, s.Score = s.IDs[:j+1], s.Score[:j+1]
				break
			}
		}
	}
	return n, nil
}

// nll returns the summed negative log-likelihood of the sample's scored
// tokens; system is the system prompt the sample starts with (its samples
// share their prefix, which is computed once: ppl.Scorer).
func (g *runner) nll(ctx context.Context, system string, s ppl.Sample) (float64, error) {
	key := jsonlstore.Key(g.key, "nll", s.IDs, s.Score)
	var v struct {
		NLL    float64 `json:"nll"`
		Tokens int     `json:"tokens"`
	}
	if g.scores != nil && g.scores.Get(key, &v) {
		return v.NLL, nil
	}
	if g.scorer == nil {
		g.scorer = ppl.NewScorer(g.m)
	}
	nll, n, err := g.scorer.NLL(ctx, system, s)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errors.New("voices: no token to score")
	}
	v.NLL, v.Tokens = nll, n
	if g.scores != nil {
		if err := g.scores.Put(key, v); err != nil {
			return 0, err
		}
	}
	return v.NLL, nil
}

// aggregate fills the per-voice figures, the confusion matrices and the
// summary from the items.
func aggregate(rep *Report, corp *Corpus, acc *Accuracy, override bool) {
	cols := append(slices.Clone(acc.Voices), "none")
	rep.Confusion = Confusion{Rows: rep.VoiceOrder, Cols: cols}
	nan := Num(math.NaN())
	var fid, fid08, ratios []float64
	for _, v := range rep.VoiceOrder {
		vo, _ := corp.Voice(v)
		vr := &VoiceResult{Title: vo.Title, PPLUnder: map[string]Num{}, ClassifierAccuracy: acc.PerVoice[v].Accuracy}
		rowG, rowT := make([]int, len(cols)), make([]int, len(cols))
		var greedy, sampled []string
		var hitG, hitT int
		var pown float64
		nllSum := map[string]float64{}
		var toksG, toksT int
		for _, it := range rep.Items {
			if it.Voice != v {
				continue
			}
			vr.Prompts++
			greedy, sampled = append(greedy, it.Greedy.Text), append(sampled, it.T08.Text)
			toksG += it.Greedy.Tokens
			toksT += it.T08.Tokens
			rowG[colOf(cols, it.Greedy.Voice)]++
			rowT[colOf(cols, it.T08.Voice)]++
			if it.Greedy.Voice == v {
				hitG++
			}
			if it.T08.Voice == v {
				hitT++
			}
			pown += it.Greedy.POwn
			vr.ScoredTokens += it.ScoredTokens
			for k, x := range it.NLL {
				nllSum[k] += x * float64(it.ScoredTokens)
			}
		}
		rep.Confusion.Greedy = append(rep.Confusion.Greedy, rowG)
		rep.Confusion.T08 = append(rep.Confusion.T08, rowT)
		n := float64(vr.Prompts)
		vr.Fidelity, vr.FidelityT08, vr.POwn = Num(float64(hitG)/n), Num(float64(hitT)/n), Num(pown/n)
		vr.MeanTokens, vr.MeanTokensT08 = float64(toksG)/n, float64(toksT)/n
		pplOf := func(k string) Num { return Num(math.Exp(nllSum[k] / float64(vr.ScoredTokens))) }
		var others float64
		k := 0
		for _, vo := range corp.Voices {
			p := pplOf(vo.Name)
			vr.PPLUnder[vo.Name] = p
			if vo.Name != v {
				others += float64(p)
				k++
			}
		}
		vr.PPLOwn = vr.PPLUnder[v]
		vr.PPL = vr.PPLOwn
		if override {
			vr.PPL = pplOf(systemKey)
		}
		vr.PPLOtherPersonas = Num(others / float64(k))
		vr.ConditioningRatio = vr.PPLOwn / vr.PPLOtherPersonas
		vr.Distinct1, vr.Distinct2 = Num(Distinct(greedy, 1)), Num(Distinct(greedy, 2))
		vr.Distinct1T08, vr.Distinct2T08 = Num(Distinct(sampled, 1)), Num(Distinct(sampled, 2))
		vr.Repetition, vr.RepetitionT08 = Num(meanRepetition(greedy)), Num(meanRepetition(sampled))
		rep.Voices[v] = vr
		fid = append(fid, float64(vr.Fidelity))
		fid08 = append(fid08, float64(vr.FidelityT08))
		ratios = append(ratios, float64(vr.ConditioningRatio))
	}
	mean := func(v []float64) Num {
		if len(v) == 0 {
			return nan
		}
		var s float64
		for _, x := range v {
			s += x
		}
		return Num(s / float64(len(v)))
	}
	rep.MeanFidelity, rep.MeanFidelityT08, rep.MeanConditioningRatio = mean(fid), mean(fid08), mean(ratios)
	rep.MinFidelity, rep.MaxConditioningRatio = nan, nan
	if len(fid) > 0 {
		rep.MinFidelity = Num(slices.Min(fid))
		rep.MaxConditioningRatio = Num(slices.Max(ratios))
	}
	rep.Targets = Targets{ClassifierAccuracy: TargetClassifierAccuracy, MeanFidelity: TargetMeanFidelity, MinFidelity: TargetMinFidelity,
		ConditioningRatio: TargetConditioningRatio, Met: map[string]bool{
			"classifier_accuracy": rep.ClassifierAccuracy >= TargetClassifierAccuracy,
			"mean_fidelity":       rep.MeanFidelity.Valid() && float64(rep.MeanFidelity) >= TargetMeanFidelity,
			"min_fidelity":        rep.MinFidelity.Valid() && float64(rep.MinFidelity) >= TargetMinFidelity,
			"conditioning_ratio":  rep.MaxConditioningRatio.Valid() && float64(rep.MaxConditioningRatio) <= TargetConditioningRatio,
		}}
}

func colOf(cols []string, voice string) int {
	if i := slices.Index(cols[:len(cols)-1], voice); i >= 0 {
		return i
	}
	return len(cols) - 1
}

// Save writes report.json, report.html and run.json into dir, each
// atomically.
func (r *Report) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("voices: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, ReportFile), append(data, '\n')); err != nil {
		return err
	}
	page, err := r.HTML()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, HTMLFile), page); err != nil {
		return err
	}
	return roleplay.WriteRun(filepath.Join(dir, roleplay.RunFile), r.Run())
}

// ReadReport reads a report.json, given the file or its folder.
func ReadReport(path string) (*Report, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ReportFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("voices: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("voices: %s: malformed JSON: %v", path, err)
	}
	if r.Format != ReportFormat {
		return nil, fmt.Errorf("voices: %s: format %q, want %q", path, r.Format, ReportFormat)
	}
	return &r, nil
}
