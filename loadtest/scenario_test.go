package loadtest

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve"
)

const goodScenario = `
name: t
registry: personas.yaml
personas:
  - name: a
  - name: b
    kind: prompt
sessions: 4
conversation:
  turns: 2
  pool: ["Tell me a story.", "What happened next?"]
  max_tokens: 8
think_time:
  dist: fixed
  mean: 100ms
conversations: 1
`

func TestParseScenario(t *testing.T) {
	s, err := ParseScenario([]byte(goodScenario), "dir/s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Sessions != 4 || s.Conversation.Turns != 2 || s.ThinkTime.Mean.Std() != 100*time.Millisecond || s.Baseline.Turns != 4 {
		t.Fatalf("parsed %+v", s)
	}
	if got := s.registryPath(s.Registry); got != filepath.Join("dir", "personas.yaml") {
		t.Errorf("registry path %q", got)
	}
	if got := s.SessionPersonas(); len(got) != 4 || got[0] != 0 || got[1] != 1 || got[2] != 0 {
		t.Errorf("sessions map to %v", got)
	}
	// The same scenario as JSON, with per-persona session counts.
	js := `{"registry":"builtin:voices","personas":[{"name":"kjv","sessions":3},{"name":"devil","sessions":1,"texts":["Define war."]}],
	        "conversation":{"turns":3,"texts":["Speak."]},"duration":"2s","think_time":{"dist":"exponential","mean":1.5,"max":"4s"}}`
	s, err = ParseScenario([]byte(js), "s.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Sessions != 4 || s.Duration.Std() != 2*time.Second || s.ThinkTime.Mean.Std() != 1500*time.Millisecond {
		t.Fatalf("parsed %+v", s)
	}
	if got := s.SessionPersonas(); len(got) != 4 || got[0] != 0 || got[1] != 1 || got[2] != 0 || got[3] != 0 {
		t.Errorf("sessions map to %v", got)
	}
}

func TestScenarioErrors(t *testing.T) {
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"unknown field", "sesions: 3", "field sesions not found"},
		{"no personas", "personas: []", "personas: name at least one"},
		{"persona without name", "personas: [{kind: lora}]", "personas[0].name: missing"},
		{"bad kind", "personas: [{name: a, kind: adapter}]", `personas[0].kind: unknown kind "adapter"`},
		{"twice", "personas: [{name: a}, {name: a}]", "personas[1].name: persona a is listed twice"},
		{"sessions some", "personas: [{name: a, sessions: 2}, {name: b}]", "every persona or on none"},
		{"sessions sum", "personas: [{name: a, sessions: 2}, {name: b, sessions: 1}]", "sessions: 4, but the personas' sessions add up to 3"},
		{"too many sessions", "sessions: 5000", "sessions: 5000 outside"},
		{"no turns", "conversation: {turns: 0, pool: [x]}", "conversation.turns: 0 outside"},
		{"no texts", "conversation: {turns: 2}", "has no turns: set conversation.texts"},
		{"empty text", `conversation: {turns: 2, texts: ["hi", " "]}`, "conversation.texts[1]: empty text"},
		{"negative tokens", "conversation: {turns: 2, pool: [x], max_tokens: -1}", "conversation.max_tokens: -1 is negative"},
		{"bad dist", "think_time: {dist: gauss, mean: 1s}", `think_time.dist: unknown distribution "gauss"`},
		{"uniform without max", "think_time: {dist: uniform, min: 2s}", "think_time.max"},
		{"exponential without mean", "think_time: {dist: exponential}", "think_time.mean: an exponential think time needs a positive mean"},
		{"bad duration", "duration: soon", `bad duration "soon"`},
		{"no end", "conversations: 0", "duration, conversations: set at least one"},
		{"ramp too long", "ramp: 10s\nduration: 5s", "ramp: 10s is not shorter than the duration 5s"},
		{"no registry", "registry: ''", "personas[0].registry: persona a has no registry"},
		{"negative cache", "server: {prompt_cache_mb: -1}", "server.prompt_cache_mb: -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A later key replaces the earlier one in the mapping: decode
			// the good scenario with the edit appended as a second document
			// would not; instead replace the top-level key.
			text := replaceKey(goodScenario, tc.edit)
			_, err := ParseScenario([]byte(text), "scen/bad.yaml")
			if err == nil {
				t.Fatalf("no error for\n%s", text)
			}
			if !strings.Contains(err.Error(), "scenario scen/bad.yaml") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want the file and %q", err, tc.want)
			}
		})
	}
	if _, err := LoadScenario(filepath.Join(t.TempDir(), "none.yaml")); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// replaceKey replaces the top-level key of edit ("key: value") in doc, or
// appends it.
func replaceKey(doc, edit string) string {
	key := edit[:strings.Index(edit, ":")+1]
	var out []string
	skipping := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, key) {
			skipping = true
			out = append(out, edit)
			continue
		}
		if skipping && (strings.HasPrefix(line, " ") || line == "") {
			continue
		}
		skipping = false
		out = append(out, line)
	}
	if !strings.Contains(strings.Join(out, "\n"), edit) {
		out = append(out, edit)
	}
	return strings.Join(out, "\n")
}

func TestDrawThink(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		tt       ThinkTime
		lo, hi   time.Duration
		meanNear time.Duration
	}{
		{ThinkTime{Dist: "fixed", Mean: Duration(time.Second)}, time.Second, time.Second, time.Second},
		{ThinkTime{Dist: "uniform", Min: Duration(time.Second), Max: Duration(3 * time.Second)}, time.Second, 3 * time.Second, 2 * time.Second},
		{ThinkTime{Dist: "exponential", Mean: Duration(time.Second), Max: Duration(20 * time.Second)}, 0, 20 * time.Second, time.Second},
		{ThinkTime{}, 0, 0, 0},
	} {
		var sum time.Duration
		const n = 4000
		for i := 0; i < n; i++ {
			d := drawThink(&tc.tt, rng)
			if d < tc.lo || d > tc.hi {
				t.Fatalf("%s: %v outside [%v, %v]", tc.tt.Dist, d, tc.lo, tc.hi)
			}
			sum += d
		}
		mean := sum / n
		if diff := mean - tc.meanNear; diff > tc.meanNear/10 || -diff > tc.meanNear/10 {
			t.Errorf("%s: mean %v, want about %v", tc.tt.Dist, mean, tc.meanNear)
		}
	}
}

func TestResolveKinds(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "personas.yaml"), []byte("personas:\n  - name: a\n    description: A.\n  - name: b\n    description: B.\n"), 0o644)
	s, err := ParseScenario([]byte(replaceKey(goodScenario, "personas: [{name: a}, {name: b, kind: lora}]")), filepath.Join(dir, "s.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = resolvePersonas(s, true, t.Logf)
	if err == nil || !strings.Contains(err.Error(), "personas[1] (b): kind lora, but registry personas.yaml makes it a prompt persona") {
		t.Fatalf("error %v", err)
	}
	s, _ = ParseScenario([]byte(replaceKey(goodScenario, "personas: [{name: a}, {name: c}]")), filepath.Join(dir, "s.yaml"))
	if _, err = resolvePersonas(s, true, t.Logf); err == nil || !strings.Contains(err.Error(), "no persona c in registry personas.yaml (it has: a, b)") {
		t.Fatalf("error %v", err)
	}
	s, _ = ParseScenario([]byte(replaceKey(goodScenario, "personas: [{name: kjv, registry: builtin:voices}, {name: a}]")), filepath.Join(dir, "s.yaml"))
	r, err := resolvePersonas(s, true, t.Logf)
	if err != nil || r[0].kind != KindPrompt || r[0].spec == nil || r[0].spec.SystemPrompt == "" {
		t.Fatalf("%+v, %v", r, err)
	}
}

// TestScenarioAgainstServer runs a real scenario on an in-process server
// on builtin:stories260K: 4 sessions of 2 turns, a fixed think time.
func TestScenarioAgainstServer(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "personas.yaml"), []byte("personas:\n  - name: a\n    description: A sailor.\n  - name: b\n    description: A baker.\n"), 0o644)
	path := filepath.Join(dir, "s.yaml")
	os.WriteFile(path, []byte(goodScenario+"baseline: {turns: 3}\n"), 0o644)
	sc, err := LoadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var mu sync.Mutex
	var recs []TurnRecord
	rep, err := RunScenario(context.Background(), ScenarioConfig{Scenario: sc, Base: ck, OnTurn: func(r TurnRecord) {
		mu.Lock()
		recs = append(recs, r)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep)
	if rep.Errors != 0 || rep.Turns != 8 || rep.Baseline == nil || rep.Baseline.Turns != 3 {
		t.Fatalf("report %+v", rep)
	}
	// The conversations: turn 1 sends turn 0's exchange back (the history
	// grows), after the think time, and the server finds the shared prefix
	// in its prompt cache.
	first := map[int]TurnRecord{}
	runTokens, baseTokens := 0, 0
	for _, r := range recs {
		if r.Phase == "baseline" {
			baseTokens += r.Tokens
			continue
		}
		runTokens += r.Tokens
		if r.Turn == 0 {
			first[r.Session] = r
		}
	}
	if baseTokens != rep.Baseline.Tokens || runTokens != rep.Tokens {
		t.Errorf("tokens: the turns say %d and %d, the report %d and %d", baseTokens, runTokens, rep.Baseline.Tokens, rep.Tokens)
	}
	seen := 0
	for _, r := range recs {
		if r.Phase != "run" || r.Turn != 1 {
			continue
		}
		seen++
		f := first[r.Session]
		if f.Messages != 1 || r.Messages != 3 {
			t.Errorf("session %d sent %d then %d messages, want 1 then 3", r.Session, f.Messages, r.Messages)
		}
		if r.PromptTokens <= f.PromptTokens {
			t.Errorf("session %d: prompt of turn 1 (%d tokens) not longer than turn 0's (%d)", r.Session, r.PromptTokens, f.PromptTokens)
		}
		if r.CachedTokens == 0 {
			t.Errorf("session %d: turn 1 used no cached prompt tokens", r.Session)
		}
		if r.Think != 100*time.Millisecond || r.Gap < r.Think || r.Start.Sub(f.End) < r.Think {
			t.Errorf("session %d: think %v, gap %v (%v after turn 0 ended)", r.Session, r.Think, r.Gap, r.Start.Sub(f.End))
		}
		if r.Persona != f.Persona || r.Conversation != 0 {
			t.Errorf("session %d changed persona or conversation: %+v", r.Session, r)
		}
	}
	if seen != 4 || len(first) != 4 {
		t.Fatalf("%d second turns, %d first turns; want 4 each", seen, len(first))
	}
	// The report's figures agree with each other.
	sum := func(get func(i int) int, n int) int {
		s := 0
		for i := 0; i < n; i++ {
			s += get(i)
		}
		return s
	}
	if s := sum(func(i int) int { return rep.PerSession[i].Tokens }, len(rep.PerSession)); s != rep.Tokens {
		t.Errorf("sessions' tokens add up to %d, report %d", s, rep.Tokens)
	}
	if s := sum(func(i int) int { return rep.PerPersona[i].Tokens }, len(rep.PerPersona)); s != rep.Tokens {
		t.Errorf("personas' tokens add up to %d, report %d", s, rep.Tokens)
	}
	if len(rep.PerKind) != 1 || rep.PerKind[0].Tokens != rep.Tokens || rep.PerKind[0].Sessions != 4 || rep.PerKind[0].Name != KindPrompt {
		t.Errorf("per kind %+v", rep.PerKind)
	}
	for _, s := range rep.PerSession {
		if s.Turns != 2 || s.Conversations != 1 || s.MaxMessages != 3 || s.CachedTokens == 0 {
			t.Errorf("session %+v", s)
		}
	}
	if rep.ElapsedS < 0.1 || rep.TokensPerSec <= 0 || abs(rep.TokensPerSec*rep.ElapsedS-float64(rep.Tokens)) > 1e-6*float64(rep.Tokens)+1e-9 {
		t.Errorf("throughput %.2f tokens/s over %.3fs for %d tokens", rep.TokensPerSec, rep.ElapsedS, rep.Tokens)
	}
	if want := rep.TokensPerSec / rep.Baseline.TokensPerSec; abs(rep.VsOneSession-want) > 1e-9 {
		t.Errorf("vs one session %g, want %g", rep.VsOneSession, want)
	}
	f := rep.Fairness
	if f.MinTokens > f.MaxTokens || f.JainTokens <= 0 || f.JainTokens > 1 || f.JainTurns != 1 || f.MinTurns != 2 || f.Starved != 0 {
		t.Errorf("fairness %+v", f)
	}
	if rep.TTFT.N != 8 || rep.TTFT.P50 > rep.TTFT.P95 || rep.TTFT.P95 > rep.TTFT.P99 || rep.TTFT.P99 > rep.TTFT.Max || rep.ThinkMeanS != 0.1 {
		t.Errorf("ttft %+v, think %g", rep.TTFT, rep.ThinkMeanS)
	}
	if rep.CachedTokens == 0 || rep.CachedTokens > rep.PromptTokens {
		t.Errorf("prompt %d, cached %d", rep.PromptTokens, rep.CachedTokens)
	}
	js, err := json.Marshal(rep)
	if err != nil || !strings.Contains(string(js), `"p99_ms"`) || !strings.Contains(string(js), `"jain_tokens"`) {
		t.Errorf("JSON %s, %v", js, err)
	}
	for _, want := range []string{"one session", "first token", "inter-token", "Jain", "per persona"} {
		if !strings.Contains(rep.String(), want) {
			t.Errorf("text report lacks %q", want)
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestShippedScenario: the scenario of issue 18's targets parses, with 64
// sessions over 16 personas of every kind, four sessions each.
func TestShippedScenario(t *testing.T) {
	s, err := LoadScenario("scenarios/npc64.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, p := range s.Personas {
		kinds[p.Kind]++
		if len(p.Pool) == 0 {
			t.Errorf("persona %s has no pool", p.Name)
		}
	}
	if s.Sessions != 64 || len(s.Personas) != 16 || kinds[KindPrompt] != 9 || kinds[KindFFNMask] != 3 || kinds[KindMask] != 2 || kinds[KindLoRA] != 2 {
		t.Fatalf("%d sessions, %d personas, kinds %v", s.Sessions, len(s.Personas), kinds)
	}
	per := map[int]int{}
	for _, p := range s.SessionPersonas() {
		per[p]++
	}
	for i := range s.Personas {
		if per[i] != 4 {
			t.Errorf("persona %s has %d sessions", s.Personas[i].Name, per[i])
		}
	}
}

// TestSchemaDocumented: docs/LOADTEST.md shows the schema of --help.
func TestSchemaDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/LOADTEST.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), ScenarioSchema) {
		t.Error("docs/LOADTEST.md does not hold ScenarioSchema as it is: copy it there")
	}
	// And the schema parses as a scenario, its placeholders aside.
	text := strings.ReplaceAll(ScenarioSchema, `pool: ["Tell me of ...", ...]  # each`, `# each`)
	text = strings.ReplaceAll(text, "registry: other.yaml", "registry: builtin:voices")
	text = strings.ReplaceAll(text, "name: kjv                    # the", "sessions: 60\n    name: kjv                    # the")
	if _, err := ParseScenario([]byte(text), "schema.yaml"); err != nil {
		t.Errorf("the documented schema does not parse: %v", err)
	}
}

// TestScenarioAgainstRunningServer drives a running server by URL: a
// persona it does not serve is refused before the run; a registry that is
// not on this machine leaves the kinds as the scenario declares them.
func TestScenarioAgainstRunningServer(t *testing.T) {
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	srv, err := serve.New(serve.Options{Base: ck, Personas: []persona.Spec{{Name: "a", Description: "A."}}, APIKey: "k", Ctx: 256, KVBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	text := replaceKey(replaceKey(goodScenario, "registry: elsewhere/personas.yaml"), "personas: [{name: a, kind: prompt}, {name: zzz, kind: lora}]")
	sc, err := ParseScenario([]byte(text), "remote.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = RunScenario(context.Background(), ScenarioConfig{Scenario: sc, URL: ts.URL, APIKey: "k", NoBaseline: true, Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "does not serve zzz (it serves: ") {
		t.Fatalf("error %v", err)
	}
	sc, err = ParseScenario([]byte(replaceKey(replaceKey(text, "personas: [{name: a, kind: prompt}]"), "sessions: 1")), "remote.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := RunScenario(context.Background(), ScenarioConfig{Scenario: sc, URL: ts.URL, APIKey: "k", NoBaseline: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if rep.InProcess || rep.URL != ts.URL || rep.Turns != 2 || rep.Errors != 0 || rep.Baseline != nil || rep.VsOneSession != 0 ||
		len(rep.PerPersona) != 1 || rep.PerPersona[0].Kind != KindPrompt || rep.Server != nil {
		t.Fatalf("report %+v", rep)
	}
}
