// Package study is the experiment of issue #19, "do the masks carry the
// persona?": on a model trained on the voices corpus (default
// builtin:voices), it builds training-free persona masks (package subnet:
// magnitude, Wanda, real SparseGPT; unstructured, N:M and structured FFN
// channels; a sparsity sweep) from each voice's own passages, and
// contrastive masks for pairs of opposing voices, and measures with the
// voices benchmark (eval/voices) whether a mask alone, with an empty system
// prompt, makes the model speak in the voice; whether it adds to the
// persona's own prompt; what it costs in held-out perplexity on every
// voice; how much the masks of different voices, and the two sides of each
// contrastive pair, differ; and how that tracks the voices' similarity.
// Prompting alone (the unmasked model with and without the persona prompt)
// and, optionally, a LoRA fine-tune on the same passages are the
// comparisons.
//
// Everything is cached under Config.Out by a key of its inputs (statistics,
// masks, evaluations, perplexities, adapters), so an interrupted run resumes
// where it stopped and a finished one is redone only where an input changed.
// Run writes results.json, report.html (inline SVG) and registry.yaml (a
// `masque serve` persona registry with the prompted and the masked voices
// side by side); every evaluation folder holds eval/voices' report.json,
// report.html and run.json (for `masque eval compare`).
package study

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/subnet"
)

// File names inside Config.Out.
const (
	ResultsFile  = "results.json"
	ReportFile   = "report.html"
	RegistryFile = "registry.yaml"
)

// Format names the format of results.json.
const Format = "masque-subnet-study/1"

// Granularities of the masks.
const (
	Unstructured = "unstructured" // every row keeps floor(in·(1−ρ)) entries
	FFN          = "ffn"          // whole FFN channels (rows of gate and up, columns of down)
	// An N:M pattern is written "2:4", "4:8", …
)

// DefaultPairs are the contrastive pairs of the full study: the two Bible
// translations (the same verses in archaic and modern register), and the
// definers against each other (Webster's 1913 dictionary against WordNet's
// terse glosses, and Bierce's cynical Devil's Dictionary against WordNet's
// neutral ones: the same genre with opposite temperaments, the closest
// thing in the corpus to the paper's opposite traits).
var DefaultPairs = [][2]string{{"kjv", "web"}, {"webster", "wordnet"}, {"devil", "wordnet"}}

// Pattern is one mask shape: a granularity and, except for N:M, a sparsity.
type Pattern struct {
	Granularity string  `json:"granularity"` // unstructured, ffn or N:M
	Sparsity    float64 `json:"sparsity"`    // share pruned (N:M: 1 − N/M)
	N           int     `json:"n,omitempty"`
	M           int     `json:"m,omitempty"`
}

// String names the pattern: "unstructured-0.50", "2:4", "ffn-0.30".
func (p Pattern) String() string {
	if p.M > 0 {
		return fmt.Sprintf("%d:%d", p.N, p.M)
	}
	return fmt.Sprintf("%s-%.2f", p.Granularity, p.Sparsity)
}

// Options returns subnet's options for the pattern.
func (p Pattern) Options(method subnet.Method, workers int) subnet.Options {
	o := subnet.Options{Method: method, Sparsity: p.Sparsity, Workers: workers}
	switch {
	case p.M > 0:
		o.N, o.M, o.Sparsity = p.N, p.M, 0
	case p.Granularity == FFN:
		o.Structured = true
	}
	return o
}

// Patterns crosses granularities with sparsities: unstructured and ffn
// once per sparsity, an N:M pattern once. Every sparsity must lie in
// (0, 1).
func Patterns(granularities []string, sparsities []float64) ([]Pattern, error) {
	for _, r := range sparsities {
		if math.IsNaN(r) || r <= 0 || r >= 1 {
			return nil, fmt.Errorf("study: sparsity %g is outside (0, 1)", r)
		}
	}
	var out []Pattern
	seen := map[string]bool{}
	for _, g := range granularities {
		g = strings.ToLower(strings.TrimSpace(g))
		var ps []Pattern
		switch {
		case g == Unstructured || g == FFN:
			if len(sparsities) == 0 {
				return nil, fmt.Errorf("study: granularity %s needs at least one sparsity", g)
			}
			for _, r := range sparsities {
				ps = append(ps, Pattern{Granularity: g, Sparsity: r})
			}
		case strings.Contains(g, ":"):
			n, m, err := subnet.ParseNM(g)
			if err != nil {
				return nil, fmt.Errorf("study: granularity %q: %v", g, err)
			}
			ps = append(ps, Pattern{Granularity: g, Sparsity: 1 - float64(n)/float64(m), N: n, M: m})
		default:
			return nil, fmt.Errorf("study: unknown granularity %q (want unstructured, ffn or N:M such as 2:4)", g)
		}
		for _, p := range ps {
			if !seen[p.String()] {
				seen[p.String()] = true
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("study: no mask pattern (give at least one granularity)")
	}
	return out, nil
}

// SplitList splits a comma-separated list, dropping blanks around entries
// and empty entries.
func SplitList(s string) []string {
	var o []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			o = append(o, x)
		}
	}
	return o
}

// ParsePairs parses a comma-separated list of pairs (ParsePair); "none" is
// no pair (an empty, non-nil list).
func ParsePairs(s string) ([][2]string, error) {
	out := [][2]string{}
	if s == "none" {
		return out, nil
	}
	for _, p := range SplitList(s) {
		pp, err := ParsePair(p)
		if err != nil {
			return nil, err
		}
		out = append(out, pp)
	}
	return out, nil
}

// ParsePair parses "kjv:web" (or "kjv+web").
func ParsePair(s string) ([2]string, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		a, b, ok = strings.Cut(s, "+")
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if !ok || a == "" || b == "" || a == b {
		return [2]string{}, fmt.Errorf("study: bad contrastive pair %q (want two different voices, e.g. kjv:web)", s)
	}
	return [2]string{a, b}, nil
}

// Config is one study.
type Config struct {
	// Checkpoint is the model with its tokenizer and chat template
	// (required; its Model is never modified).
	Checkpoint *checkpoint.Checkpoint
	// Corpus is a voices corpus folder ("": the evaluation kit embedded
	// with builtin:voices, see voices.DefaultCorpus).
	Corpus string
	// CalibSplit is the split whose passages calibrate each voice's masks
	// (and train the SFT comparison): "" picks train when every voice of
	// the study has one, else valid (the kit has no train split).
	// Evaluation always uses the test split.
	CalibSplit string
	// Voices are the voices studied (nil: every voice of the corpus).
	Voices []string
	// Methods are the single-persona scorers (nil: magnitude, wanda,
	// sparsegpt). Magnitude ignores the calibration data: its masks are
	// made once and evaluated on every voice, a control for what pruning
	// alone does.
	Methods []subnet.Method
	// Sparsities (nil: 0.3, 0.5, 0.7) and Granularities (nil:
	// unstructured, 2:4, ffn) span the patterns (see Patterns). SparseGPT
	// has no structured variant: its ffn patterns are skipped.
	Sparsities    []float64
	Granularities []string
	// Pairs are the contrastive pairs (nil: DefaultPairs, those whose two
	// voices are studied; an empty non-nil slice: none). Variant and Phi
	// select the contrastive scoring (zero: wanda, relu).
	Pairs   [][2]string
	Variant subnet.Variant
	Phi     subnet.Phi
	// CalibSamples passages per voice (≤ 0: 64), each truncated at
	// CalibMaxTokens (≤ 0: 512). A calibration sample is the passage's
	// conversation without its system message (the user prompt and the
	// answer in the voice), the form of the evaluation's empty-prompt runs;
	// CalibSystem keeps the persona's system message.
	CalibSamples   int
	CalibMaxTokens int
	CalibSystem    bool
	// EvalLimit test prompts per voice (≤ 0: 12), EvalMaxTokens per answer
	// (≤ 0: 64), sampled at Temperature (≤ 0: 0.8) with Seed.
	EvalLimit     int
	EvalMaxTokens int
	Temperature   float32
	Seed          uint64
	// PPLRows test passages of every corpus voice (≤ 0: 4), each cut at
	// PPLMaxTokens tokens (≤ 0: 256), measure held-out perplexity under
	// that voice's own persona prompt. PPLMaxTokens also bounds the
	// conversations the voices benchmark scores under every persona (its
	// conditioning ratio), the bulk of an evaluation's cost.
	PPLRows      int
	PPLMaxTokens int
	// SFT also trains, per voice, a LoRA adapter (rank SFTRank, ≤ 0: 8;
	// SFTSteps steps, ≤ 0: 80; learning rate SFTLR, 0: 2e-4) on the
	// calibration passages (without system prompt, like the masks), and
	// evaluates it like a mask.
	SFT      bool
	SFTRank  int
	SFTSteps int
	SFTLR    float64
	// Sculpt also learns, per voice, a Persona-Pruner mask (package
	// sculpt, SculptSteps steps, ≤ 0: DefaultSculptSteps) on the
	// calibration passages at each of SculptSparsities (nil: the
	// sparsities of the study's ffn patterns, or Sparsities when there is
	// none), and evaluates it like the ffn-channel masks it competes with.
	Sculpt           bool
	SculptSparsities []float64
	SculptSteps      int
	// Workers for mask construction and training (≤ 0: GOMAXPROCS).
	Workers int
	// Out receives everything (required).
	Out string
	// Progress, if set, is called as work is done; Logf receives one-line
	// notes.
	Progress func(Progress)
	Logf     func(format string, a ...any)
}

// Progress reports the study's state.
type Progress struct {
	// Job is what is being done ("mask", "eval", "ppl", "sft", "stats")
	// and Item which one.
	Job, Item string
	// Done of Total jobs (masks, evaluations, perplexities, adapters),
	// Cached of them found on disk.
	Done, Total, Cached int
	// Step is the current job's stage, StepDone of StepTotal.
	Step                string
	StepDone, StepTotal int
	Elapsed             time.Duration
	// ETA estimates the time left from the mean time per kind of job
	// computed so far (-1: not known yet).
	ETA time.Duration
}

// Preset returns the settings of a named preset: "full" (the defaults) or
// "quick" (2 voices, Wanda only, one sparsity, unstructured, the kjv:web
// pair, few prompts and tokens: minutes on the real model, seconds on a
// tiny one).
func Preset(name string) (Config, error) {
	switch name {
	case "", "full":
		return Config{}, nil
	case "quick":
		return Config{Voices: []string{"kjv", "web"}, Methods: []subnet.Method{subnet.Wanda}, Sparsities: []float64{0.5},
			Granularities: []string{Unstructured}, Pairs: [][2]string{{"kjv", "web"}},
			CalibSamples: 8, CalibMaxTokens: 128, EvalLimit: 3, EvalMaxTokens: 16, PPLRows: 2, PPLMaxTokens: 192}, nil
	}
	return Config{}, fmt.Errorf("study: unknown preset %q (want full or quick)", name)
}

// PresetNames lists the presets.
func PresetNames() []string { return []string{"full", "quick"} }

// settings are the resolved parameters, recorded in results.json.
type Settings struct {
	CalibSplit     string      `json:"calib_split"`
	CalibSamples   int         `json:"calib_samples"`
	CalibMaxTokens int         `json:"calib_max_tokens"`
	CalibSystem    bool        `json:"calib_system"`
	Methods        []string    `json:"methods"`
	Patterns       []string    `json:"patterns"`
	Pairs          [][2]string `json:"pairs"`
	Variant        string      `json:"contrast_variant"`
	Phi            string      `json:"contrast_phi"`
	EvalLimit      int         `json:"eval_limit"`
	EvalMaxTokens  int         `json:"eval_max_tokens"`
	Temperature    float32     `json:"temperature"`
	Seed           uint64      `json:"seed"`
	PPLRows        int         `json:"ppl_rows"`
	PPLMaxTokens   int         `json:"ppl_max_tokens"`
	SFT            bool        `json:"sft"`
	SFTRank        int         `json:"sft_rank,omitempty"`
	SFTSteps       int         `json:"sft_steps,omitempty"`
	SFTLR          float64     `json:"sft_lr,omitempty"`
	Sculpt         bool        `json:"sculpt,omitempty"`
	SculptPatterns []string    `json:"sculpt_patterns,omitempty"`
	SculptSteps    int         `json:"sculpt_steps,omitempty"`
}

func orInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// resolve fills the defaults and checks what can be checked without the
// corpus.
func (cfg *Config) resolve() (Settings, []Pattern, error) {
	var s Settings
	if cfg.Checkpoint == nil || cfg.Checkpoint.Model == nil {
		return s, nil, errors.New("study: no model (Config.Checkpoint)")
	}
	if cfg.Out == "" {
		return s, nil, errors.New("study: no output folder (Config.Out)")
	}
	if cfg.Methods == nil {
		cfg.Methods = []subnet.Method{subnet.Magnitude, subnet.Wanda, subnet.SparseGPT}
	}
	for _, m := range cfg.Methods {
		if _, err := subnet.ParseMethod(string(m)); err != nil {
			return s, nil, fmt.Errorf("study: %v", err)
		}
		s.Methods = append(s.Methods, string(m))
	}
	if cfg.Sparsities == nil {
		cfg.Sparsities = []float64{0.3, 0.5, 0.7}
	}
	if cfg.Granularities == nil {
		cfg.Granularities = []string{Unstructured, "2:4", FFN}
	}
	pats, err := Patterns(cfg.Granularities, cfg.Sparsities)
	if err != nil {
		return s, nil, err
	}
	for _, p := range pats {
		o := p.Options(subnet.Wanda, 0)
		if err := o.Validate(&cfg.Checkpoint.Model.Config); err != nil {
			return s, nil, fmt.Errorf("study: pattern %s: %v", p, err)
		}
		s.Patterns = append(s.Patterns, p.String())
	}
	if cfg.Variant == "" {
		cfg.Variant = subnet.VariantNorms
	}
	if cfg.Phi == "" {
		cfg.Phi = subnet.ReLU
	}
	if cfg.Variant, err = subnet.ParseVariant(string(cfg.Variant)); err != nil {
		return s, nil, fmt.Errorf("study: %v", err)
	}
	if cfg.Phi, err = subnet.ParsePhi(string(cfg.Phi)); err != nil {
		return s, nil, fmt.Errorf("study: %v", err)
	}
	for _, p := range cfg.Pairs {
		if p[0] == "" || p[1] == "" || p[0] == p[1] {
			return s, nil, fmt.Errorf("study: bad contrastive pair %q:%q (want two different voices)", p[0], p[1])
		}
	}
	if cfg.Temperature < 0 || cfg.SFTLR < 0 {
		return s, nil, errors.New("study: negative temperature or learning rate")
	}
	cfg.CalibSamples = orInt(cfg.CalibSamples, 64)
	cfg.CalibMaxTokens = orInt(cfg.CalibMaxTokens, 512)
	cfg.EvalLimit = orInt(cfg.EvalLimit, 12)
	cfg.EvalMaxTokens = orInt(cfg.EvalMaxTokens, 64)
	if cfg.Temperature == 0 {
		cfg.Temperature = 0.8
	}
	cfg.PPLRows = orInt(cfg.PPLRows, 4)
	cfg.PPLMaxTokens = orInt(cfg.PPLMaxTokens, 256)
	if cfg.SFT {
		cfg.SFTRank = orInt(cfg.SFTRank, 8)
		cfg.SFTSteps = orInt(cfg.SFTSteps, 80)
		if cfg.SFTLR == 0 {
			cfg.SFTLR = 2e-4
		}
	}
	if cfg.Sculpt {
		cfg.SculptSteps = orInt(cfg.SculptSteps, DefaultSculptSteps)
		if cfg.SculptSparsities == nil {
			for _, p := range pats {
				if p.Granularity == FFN {
					cfg.SculptSparsities = append(cfg.SculptSparsities, p.Sparsity)
				}
			}
		}
		if cfg.SculptSparsities == nil {
			cfg.SculptSparsities = cfg.Sparsities
		}
		for _, x := range cfg.SculptSparsities {
			if math.IsNaN(x) || x <= 0 || x >= 1 {
				return s, nil, fmt.Errorf("study: Persona-Pruner sparsity %g is outside (0, 1)", x)
			}
		}
	}
	s = Settings{CalibSamples: cfg.CalibSamples, CalibMaxTokens: cfg.CalibMaxTokens, CalibSystem: cfg.CalibSystem,
		Methods: s.Methods, Patterns: s.Patterns, Variant: string(cfg.Variant), Phi: string(cfg.Phi),
		EvalLimit: cfg.EvalLimit, EvalMaxTokens: cfg.EvalMaxTokens, Temperature: cfg.Temperature, Seed: cfg.Seed,
		PPLRows: cfg.PPLRows, PPLMaxTokens: cfg.PPLMaxTokens, SFT: cfg.SFT}
	if cfg.SFT {
		s.SFTRank, s.SFTSteps, s.SFTLR = cfg.SFTRank, cfg.SFTSteps, cfg.SFTLR
	}
	if cfg.Sculpt {
		s.Sculpt, s.SculptSteps = true, cfg.SculptSteps
		for _, x := range cfg.SculptSparsities {
			s.SculptPatterns = append(s.SculptPatterns, Pattern{Granularity: FFN, Sparsity: x}.String())
		}
	}
	return s, pats, nil
}

// hasVoice reports whether name is in list.
func hasVoice(list []string, name string) bool { return slices.Contains(list, name) }
