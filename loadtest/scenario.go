package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/masque-ai/masque/persona"
)

// A Scenario is a game-like workload read from a file (YAML, or JSON, which
// is YAML too): personas from registries, sessions mapped onto them, and
// each session a run of multi-turn conversations whose turns come after a
// think time. See ScenarioSchema for the fields.
type Scenario struct {
	// Name labels the scenario in the report.
	Name string `yaml:"name"`
	// Model is the base model of the in-process server (a masque model
	// reference, e.g. builtin:voices); not used against a running server.
	Model string `yaml:"model"`
	// Registry is the default persona registry of the personas: a YAML or
	// JSON registry file (relative to the scenario file) or
	// "builtin:voices" (the built-in model's nine voices).
	Registry string `yaml:"registry"`
	// Server holds the in-process server's limits (masque serve's flags).
	Server ServerSpec `yaml:"server"`
	// Personas are the personas the sessions talk to.
	Personas []PersonaRef `yaml:"personas"`
	// Sessions is the number of concurrent sessions (players). Without
	// per-persona counts, session i talks to persona i mod len(Personas).
	Sessions int `yaml:"sessions"`
	// Conversation describes each conversation.
	Conversation Conversation `yaml:"conversation"`
	// ThinkTime is the pause before each turn.
	ThinkTime ThinkTime `yaml:"think_time"`
	// Duration is how long sessions start turns; Conversations, if
	// positive, how many conversations each session has. At least one.
	Duration      Duration `yaml:"duration"`
	Conversations int      `yaml:"conversations"`
	// Ramp spreads the sessions' starts evenly over this time.
	Ramp Duration `yaml:"ramp"`
	// Grace is how long turns running at the end may take (default
	// DefaultGrace).
	Grace Duration `yaml:"grace"`
	// Baseline is the single-session measurement made before the run.
	Baseline Baseline `yaml:"baseline"`
	// Seed seeds the turn generators, the think times and the requests'
	// sampling seeds.
	Seed uint64 `yaml:"seed"`

	// Path is the file the scenario was read from ("" if parsed from
	// bytes); registry paths are relative to its folder.
	Path string `yaml:"-"`
}

// ServerSpec holds the limits of an in-process server; zero values take
// masque serve's defaults.
type ServerSpec struct {
	MaxSeqs       int    `yaml:"max_seqs"`
	Queue         int    `yaml:"queue"`
	BatchTokens   int    `yaml:"batch_tokens"`
	Ctx           int    `yaml:"ctx"`
	KVMemory      string `yaml:"kv_memory"`
	PromptCacheMB *int   `yaml:"prompt_cache_mb"`
	MaxTokens     int    `yaml:"max_tokens"`
}

// PersonaRef names a persona of a registry.
type PersonaRef struct {
	// Name is the persona's name in its registry (the request's model).
	Name string `yaml:"name"`
	// Registry overrides the scenario's default registry.
	Registry string `yaml:"registry"`
	// Kind, if set, is checked against the registry: prompt, ffn-mask,
	// mask, lora, mask+lora, ffn-mask+lora or model.
	Kind string `yaml:"kind"`
	// Sessions, if set (on every persona), is the persona's number of
	// sessions.
	Sessions int `yaml:"sessions"`
	// Texts and Pool override the conversation's.
	Texts []string `yaml:"texts"`
	Pool  []string `yaml:"pool"`
}

// Conversation describes the conversations of every session.
type Conversation struct {
	// Turns is the number of user turns of a conversation; then the
	// session starts a new one (a new player walks up).
	Turns int `yaml:"turns"`
	// Texts are the user turns, in order (turn k says Texts[k mod len]).
	Texts []string `yaml:"texts"`
	// Pool is a list each turn draws from at random, every session from its
	// own stream seeded by Seed; used when Texts is empty.
	Pool []string `yaml:"pool"`
	// MaxTokens is each turn's max_tokens (default 64).
	MaxTokens int `yaml:"max_tokens"`
	// Temperature is each turn's temperature (default 0.8).
	Temperature *float64 `yaml:"temperature"`
	// HistoryTurns, if positive, keeps only the latest exchanges of the
	// conversation in each request (a sliding window for short contexts).
	HistoryTurns int `yaml:"history_turns"`
}

// ThinkTime is the distribution of the pauses before turns.
type ThinkTime struct {
	// Dist is fixed (Mean), uniform (between Min and Max) or exponential
	// (mean Mean, cut at Max if set). Empty: no think time.
	Dist string   `yaml:"dist"`
	Mean Duration `yaml:"mean"`
	Min  Duration `yaml:"min"`
	Max  Duration `yaml:"max"`
}

// Baseline is the single-session measurement.
type Baseline struct {
	// Turns is the number of turns of the lone session (default twice
	// Conversation.Turns, at least 4).
	Turns int `yaml:"turns"`
	// Skip leaves the baseline out.
	Skip bool `yaml:"skip"`
}

// Duration is a time.Duration read from "1.5s", "200ms" or a number of
// seconds.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 2s or 500ms", n.Line)
	}
	if v, err := time.ParseDuration(n.Value); err == nil {
		*d = Duration(v)
		return nil
	}
	if v, err := strconv.ParseFloat(n.Value, 64); err == nil && v >= 0 && v < MaxDuration.Seconds()*1000 {
		*d = Duration(v * float64(time.Second))
		return nil
	}
	return fmt.Errorf("line %d: bad duration %q (want e.g. 2s, 500ms or a number of seconds)", n.Line, n.Value)
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Persona kinds a scenario names (finer than persona's: a mask is an
// FFN-channel mask or an unstructured one).
const (
	KindPrompt      = "prompt"
	KindFFNMask     = "ffn-mask"
	KindMask        = "mask"
	KindLoRA        = "lora"
	KindMaskLoRA    = "mask+lora"
	KindFFNMaskLoRA = "ffn-mask+lora"
	KindModel       = "model"
)

var scenarioKinds = []string{KindPrompt, KindFFNMask, KindMask, KindLoRA, KindMaskLoRA, KindFFNMaskLoRA, KindModel}

// VoicesRegistry names the built-in voices as a registry.
const VoicesRegistry = "builtin:voices"

// Bounds of a scenario.
const (
	MaxSessions      = MaxConcurrency
	MaxTurns         = 1000
	MaxScenarioBytes = 4 << 20
)

// LoadScenario reads and checks a scenario file. Every problem is an error
// naming the file and the field.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if len(data) > MaxScenarioBytes {
		return nil, fmt.Errorf("scenario %s: larger than %d bytes", path, MaxScenarioBytes)
	}
	return ParseScenario(data, path)
}

// Check checks the scenario again (after a caller changed it, e.g. the
// duration) and fills in its defaults; errors name the file and field.
func (s *Scenario) Check() error {
	if err := s.check(); err != nil {
		name := s.Path
		if name == "" {
			name = "(scenario)"
		}
		return fmt.Errorf("scenario %s: %w", name, err)
	}
	return nil
}

// ParseScenario parses and checks a scenario's text (YAML or JSON); path
// names it in errors and anchors relative registry paths.
func ParseScenario(data []byte, path string) (*Scenario, error) {
	name := path
	if name == "" {
		name = "(scenario)"
	}
	var s Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("scenario %s: empty file", name)
		}
		return nil, fmt.Errorf("scenario %s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	s.Path = path
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return &s, nil
}

func (s *Scenario) check() error {
	if len(s.Personas) == 0 {
		return errors.New("personas: name at least one persona")
	}
	counted := 0
	sum := 0
	seen := map[string]bool{}
	for i, p := range s.Personas {
		f := fmt.Sprintf("personas[%d]", i)
		if p.Name == "" {
			return fmt.Errorf("%s.name: missing", f)
		}
		if err := persona.ValidName(p.Name); err != nil && p.Name != "base" {
			return fmt.Errorf("%s.name: %v", f, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("%s.name: persona %s is listed twice", f, p.Name)
		}
		seen[p.Name] = true
		if p.Registry == "" && s.Registry == "" {
			return fmt.Errorf("%s.registry: persona %s has no registry (set registry at the top or on the persona)", f, p.Name)
		}
		if p.Kind != "" && !contains(scenarioKinds, p.Kind) {
			return fmt.Errorf("%s.kind: unknown kind %q (want one of %s)", f, p.Kind, strings.Join(scenarioKinds, ", "))
		}
		if p.Sessions < 0 {
			return fmt.Errorf("%s.sessions: %d is negative", f, p.Sessions)
		}
		if p.Sessions > 0 {
			counted++
			sum += p.Sessions
		}
		if len(p.Texts) == 0 && len(p.Pool) == 0 && len(s.Conversation.Texts) == 0 && len(s.Conversation.Pool) == 0 {
			return fmt.Errorf("%s: persona %s has no turns: set conversation.texts or conversation.pool (or texts/pool on the persona)", f, p.Name)
		}
		if err := nonEmpty(f+".texts", p.Texts); err != nil {
			return err
		}
		if err := nonEmpty(f+".pool", p.Pool); err != nil {
			return err
		}
	}
	switch {
	case counted > 0 && counted < len(s.Personas):
		return errors.New("personas[].sessions: set it on every persona or on none")
	case counted > 0 && s.Sessions == 0:
		s.Sessions = sum
	case counted > 0 && s.Sessions != sum:
		return fmt.Errorf("sessions: %d, but the personas' sessions add up to %d", s.Sessions, sum)
	}
	if s.Sessions < 1 || s.Sessions > MaxSessions {
		return fmt.Errorf("sessions: %d outside [1, %d]", s.Sessions, MaxSessions)
	}
	c := &s.Conversation
	if c.Turns < 1 || c.Turns > MaxTurns {
		return fmt.Errorf("conversation.turns: %d outside [1, %d]", c.Turns, MaxTurns)
	}
	if err := nonEmpty("conversation.texts", c.Texts); err != nil {
		return err
	}
	if err := nonEmpty("conversation.pool", c.Pool); err != nil {
		return err
	}
	if c.MaxTokens < 0 {
		return fmt.Errorf("conversation.max_tokens: %d is negative", c.MaxTokens)
	}
	if c.MaxTokens == 0 {
		c.MaxTokens = 64
	}
	if c.Temperature != nil && (*c.Temperature < 0 || *c.Temperature > 2) {
		return fmt.Errorf("conversation.temperature: %g outside [0, 2]", *c.Temperature)
	}
	if c.HistoryTurns < 0 {
		return fmt.Errorf("conversation.history_turns: %d is negative", c.HistoryTurns)
	}
	if err := s.ThinkTime.check(); err != nil {
		return err
	}
	switch {
	case s.Duration < 0 || s.Duration.Std() > MaxDuration:
		return fmt.Errorf("duration: %v outside (0, %v]", s.Duration.Std(), MaxDuration)
	case s.Conversations < 0 || s.Conversations > MaxTurns:
		return fmt.Errorf("conversations: %d outside [0, %d]", s.Conversations, MaxTurns)
	case s.Duration == 0 && s.Conversations == 0:
		return errors.New("duration, conversations: set at least one (how long the sessions talk, or how many conversations each has)")
	case s.Ramp < 0 || s.Ramp.Std() > MaxDuration:
		return fmt.Errorf("ramp: %v outside [0, %v]", s.Ramp.Std(), MaxDuration)
	case s.Duration > 0 && s.Ramp >= s.Duration:
		return fmt.Errorf("ramp: %v is not shorter than the duration %v: the last sessions would never start", s.Ramp.Std(), s.Duration.Std())
	case s.Grace < 0 || s.Grace.Std() > MaxDuration:
		return fmt.Errorf("grace: %v outside [0, %v]", s.Grace.Std(), MaxDuration)
	case s.Baseline.Turns < 0 || s.Baseline.Turns > MaxTurns:
		return fmt.Errorf("baseline.turns: %d outside [0, %d]", s.Baseline.Turns, MaxTurns)
	}
	if s.Baseline.Turns == 0 {
		s.Baseline.Turns = max(2*c.Turns, 4)
	}
	v := &s.Server
	for _, x := range []struct {
		f string
		v int
	}{{"server.max_seqs", v.MaxSeqs}, {"server.queue", v.Queue}, {"server.batch_tokens", v.BatchTokens}, {"server.ctx", v.Ctx}, {"server.max_tokens", v.MaxTokens}} {
		if x.v < 0 {
			return fmt.Errorf("%s: %d is negative", x.f, x.v)
		}
	}
	if v.PromptCacheMB != nil && *v.PromptCacheMB < 0 {
		return fmt.Errorf("server.prompt_cache_mb: %d is negative (0 turns the cache off)", *v.PromptCacheMB)
	}
	return nil
}

func (t *ThinkTime) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("think_time.%s", fmt.Sprintf(format, a...))
	}
	for _, d := range []struct {
		f string
		v Duration
	}{{"mean", t.Mean}, {"min", t.Min}, {"max", t.Max}} {
		if d.v < 0 || d.v.Std() > MaxDuration {
			return bad("%s: %v outside [0, %v]", d.f, d.v.Std(), MaxDuration)
		}
	}
	switch t.Dist {
	case "", "none":
		if t.Mean != 0 || t.Min != 0 || t.Max != 0 {
			return bad("dist: missing (fixed, uniform or exponential) while times are set")
		}
	case "fixed":
		if t.Min != 0 || t.Max != 0 {
			return bad("min, max: not used by a fixed think time (set mean)")
		}
	case "uniform":
		if t.Mean != 0 {
			return bad("mean: not used by a uniform think time (set min and max)")
		}
		if t.Max < t.Min || t.Max == 0 {
			return bad("max: %v must be positive and at least min %v", t.Max.Std(), t.Min.Std())
		}
	case "exponential":
		if t.Mean <= 0 {
			return bad("mean: an exponential think time needs a positive mean")
		}
		if t.Min != 0 {
			return bad("min: not used by an exponential think time")
		}
		if t.Max != 0 && t.Max < t.Mean {
			return bad("max: %v (the cut-off) is below the mean %v", t.Max.Std(), t.Mean.Std())
		}
	default:
		return bad("dist: unknown distribution %q (want fixed, uniform or exponential)", t.Dist)
	}
	return nil
}

func nonEmpty(field string, texts []string) error {
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("%s[%d]: empty text", field, i)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// registryPath resolves a registry reference against the scenario's folder.
func (s *Scenario) registryPath(reg string) string {
	if reg == VoicesRegistry || filepath.IsAbs(reg) || s.Path == "" {
		return reg
	}
	return filepath.Join(filepath.Dir(s.Path), reg)
}

// SessionPersonas returns the persona index of every session.
func (s *Scenario) SessionPersonas() []int {
	out := make([]int, 0, s.Sessions)
	if s.Personas[0].Sessions > 0 {
		// Interleave the personas' counts so that sessions started in order
		// (ramp) reach every persona early.
		left := make([]int, len(s.Personas))
		for i, p := range s.Personas {
			left[i] = p.Sessions
		}
		for len(out) < s.Sessions {
			for i := range left {
				if left[i] > 0 {
					left[i]--
					out = append(out, i)
				}
			}
		}
		return out
	}
	for i := 0; i < s.Sessions; i++ {
		out = append(out, i%len(s.Personas))
	}
	return out
}

// ScenarioSchema documents the scenario file for --help and the docs.
const ScenarioSchema = `name: npc64                      # label in the report
model: builtin:voices            # base of the in-process server (not used with --url)
registry: personas.json          # default registry of the personas: a YAML/JSON file
                                 # (relative to this file) or builtin:voices
server:                          # in-process server (masque serve's flags; 0: default)
  max_seqs: 64
  queue: 128
  kv_memory: 2GiB
  prompt_cache_mb: 256           # 0 turns prompt caching off
  ctx: 512
  batch_tokens: 512
  max_tokens: 1024
personas:                        # who the sessions talk to
  - name: kjv                    # the persona's name in its registry
    kind: prompt                 # optional, checked against the registry: prompt,
                                 # ffn-mask, mask (unstructured), lora, mask+lora,
                                 # ffn-mask+lora, model
  - name: devil-lora
    registry: other.yaml         # overrides the default registry
    sessions: 4                  # sessions of this persona (on every persona or none;
                                 # none: session i talks to persona i mod len(personas))
    pool: ["Define peace."]      # its own turns (overrides the conversation's)
sessions: 64                     # concurrent sessions (players)
conversation:
  turns: 6                       # user turns per conversation; then a new one starts
  texts: ["Hello.", "Why?"]      # turn k says texts[k mod len], or:
  pool: ["Tell me of ...", ...]  # each turn draws from this list (seeded per session)
  max_tokens: 48                 # per turn
  temperature: 0.8
  history_turns: 0               # latest exchanges kept in a request (0: the whole
                                 # conversation, so the prompt cache sees it grow)
think_time:                      # pause before every turn (seeded per session)
  dist: exponential              # fixed (mean), uniform (min..max), exponential (mean,
  mean: 2s                       # cut at max if set); durations: 2s, 500ms or seconds
  max: 10s
duration: 60s                    # how long sessions start turns, and/or
conversations: 0                 # conversations per session (0: until duration)
ramp: 5s                         # session starts spread over this time
grace: 30s                       # time turns running at the end may take
baseline:
  turns: 12                      # one session alone, no think time, before the run
  skip: false                    # (default turns: 2 x conversation.turns, at least 4)
seed: 1                          # turn draws, think times and sampling seeds`
