package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/masque-ai/masque/internal/cputime"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// Documentation examples cannot drift: TestDocExamples takes every example
// command of the README (its indented code lines that start with "masque"
// or "go run ./cmd/masque") and of every command's --help (indented lines
// of Example and Long that start with "masque"), checks each against the
// command tree (the command exists and runs, every flag exists and its
// value parses, the positional arguments and required flags are right),
// and runs the ones in exampleRuns in-process through the CLI root with
// small models and small real files in their place. Every example is
// either run or listed in exampleNotRun with the reason; a new example
// must be put in one of them.

// exampleNotRun are the examples that are checked but not run, and why.
// Every other documented example runs (exampleRuns).
var exampleNotRun = map[string]string{}

// docExample is one example command and where it was found.
type docExample struct {
	where, line string
}

// readmeExamples are the README's example commands.
func readmeExamples(t *testing.T) []docExample {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []docExample
	for i, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "    ") {
			continue
		}
		s := strings.TrimSpace(l)
		if strings.HasPrefix(s, "masque ") || strings.HasPrefix(s, "go run ./cmd/masque ") {
			out = append(out, docExample{fmt.Sprintf("README.md:%d", i+1), s})
		}
	}
	return out
}

// helpExamples are the example commands of every command's help.
func helpExamples(c *cobra.Command) []docExample {
	var out []docExample
	for _, text := range []string{c.Example, c.Long} {
		lines := strings.Split(text, "\n")
		for i := 0; i < len(lines); i++ {
			s := strings.TrimSpace(lines[i])
			if !strings.HasPrefix(s, "masque ") || !strings.HasPrefix(lines[i], "  ") {
				continue // prose that starts with the word
			}
			for strings.HasSuffix(s, "\\") && i+1 < len(lines) {
				i++
				s = strings.TrimSpace(strings.TrimSuffix(s, "\\")) + " " + strings.TrimSpace(lines[i])
			}
			out = append(out, docExample{c.CommandPath() + " --help", s})
		}
	}
	for _, sub := range c.Commands() {
		out = append(out, helpExamples(sub)...)
	}
	return out
}

// shellWords splits a command line as a POSIX shell would for these
// examples: single and double quotes, backslash escapes; a trailing "&",
// a "# comment" and a "> file" redirection are dropped. The example's key
// (its line without those) is returned too.
func shellWords(line string) (words []string, key string, err error) {
	words, _, key, err = shellParse(line)
	return words, key, err
}

// shellParse is shellWords that also says which words hold an unquoted
// wildcard (the shell would expand them).
func shellParse(line string) (words []string, glob []bool, key string, err error) {
	var cur strings.Builder
	inWord, quote, wild := false, byte(0), false
	end := len(line)
	flush := func() {
		words = append(words, cur.String())
		glob = append(glob, wild)
		cur.Reset()
		inWord, wild = false, false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(line):
				i++
				cur.WriteByte(line[i])
			default:
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				flush()
			}
		case (c == '#' || c == '>' || c == '&') && !inWord:
			end = i
			i = len(line)
		default:
			wild = wild || c == '*' || c == '?'
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, nil, "", fmt.Errorf("unterminated quote")
	}
	if inWord {
		flush()
	}
	return words, glob, strings.TrimSpace(line[:end]), nil
}

// checkExample checks an example's command line against the command tree
// without running it.
func checkExample(args []string) error {
	root := newRoot(strings.NewReader(""), io.Discard, io.Discard)
	c, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if c == root || !c.Runnable() {
		return fmt.Errorf("%q is not a command that runs", strings.Join(args, " "))
	}
	if err := c.ParseFlags(rest); err != nil {
		return fmt.Errorf("%s: %v", c.CommandPath(), err)
	}
	if err := c.ValidateArgs(c.Flags().Args()); err != nil {
		return fmt.Errorf("%s: %v", c.CommandPath(), err)
	}
	if err := c.ValidateRequiredFlags(); err != nil {
		return fmt.Errorf("%s: %v", c.CommandPath(), err)
	}
	return c.ValidateFlagGroups()
}

func allExamples(t *testing.T) []docExample {
	ex := readmeExamples(t)
	ex = append(ex, helpExamples(newRoot(strings.NewReader(""), io.Discard, io.Discard))...)
	return ex
}

// exampleArgs turns an example into masque's arguments.
func exampleArgs(words []string) []string {
	if len(words) >= 3 && words[0] == "go" && words[1] == "run" {
		return words[3:]
	}
	return words[1:]
}

func TestDocExamples(t *testing.T) {
	examples := allExamples(t)
	if len(examples) < 40 {
		t.Fatalf("only %d examples found", len(examples))
	}
	seen := map[string]bool{}
	for _, ex := range examples {
		words, key, err := shellWords(ex.line)
		if err != nil {
			t.Errorf("%s: %q: %v", ex.where, ex.line, err)
			continue
		}
		seen[key] = true
		args := exampleArgs(words)
		if err := checkExample(args); err != nil {
			t.Errorf("%s: %q does not parse: %v", ex.where, key, err)
			continue
		}
		_, skip := exampleNotRun[key]
		r := exampleRuns[key]
		switch {
		case skip && r != nil:
			t.Errorf("%s: %q is both run and listed as not run", ex.where, key)
		case !skip && r == nil:
			t.Errorf("%s: %q is neither run (exampleRuns) nor listed as not run with a reason (exampleNotRun)", ex.where, key)
		}
		// What the table appends must parse too.
		if r != nil && len(r.add) > 0 {
			if err := checkExample(append(slices.Clone(args), expandAdd(r.add, "http://127.0.0.1:1")...)); err != nil {
				t.Errorf("%s: %q with %q appended does not parse: %v", ex.where, key, r.add, err)
			}
		}
	}
	for k := range exampleNotRun {
		if !seen[k] {
			t.Errorf("exampleNotRun lists %q, which no document shows any more", k)
		}
	}
	for k := range exampleRuns {
		if !seen[k] {
			t.Errorf("exampleRuns lists %q, which no document shows any more", k)
		}
	}
	if t.Failed() {
		return
	}
	// Run them, in the order of the documents, those that read what
	// others write (stage 1) last.
	var runs []docExample
	for _, ex := range examples {
		if _, key, _ := shellWords(ex.line); exampleRuns[key] != nil {
			runs = append(runs, ex)
		}
	}
	slices.SortStableFunc(runs, func(a, b docExample) int {
		_, ka, _ := shellWords(a.line)
		_, kb, _ := shellWords(b.line)
		return exampleRuns[ka].stage - exampleRuns[kb].stage
	})
	ran := map[string]bool{}
	env := newExampleEnv(t)
	t0, cpu0 := time.Now(), cputime.Used()
	for _, ex := range runs {
		words, glob, key, _ := shellParse(ex.line)
		if ran[key] {
			continue // shown in two places
		}
		ran[key] = true
		r := exampleRuns[key]
		name := strings.Join(words[1:min(3, len(words))], "_")
		c0 := cputime.Used()
		if !t.Run(name, func(t *testing.T) {
			env.run(t, ex.where, key, words, glob, r)
			t.Logf("CPU %.1f s", (cputime.Used() - c0).Seconds())
		}) {
			t.Logf("%s: %q failed; later examples may read what it should have written", ex.where, key)
		}
	}
	t.Logf("%d of %d examples run in %.1f s (CPU %.1f s)", len(ran), len(seen), time.Since(t0).Seconds(), (cputime.Used() - cpu0).Seconds())
}

// exampleRun is how an example is run in the shared work folder (see
// newExampleEnv for what it holds and how arguments are substituted).
type exampleRun struct {
	// stage 1: run after every stage-0 example (it reads their outputs).
	stage int
	// add are the flags appended to scale the example down to seconds
	// (a flag given twice takes the last value); "{local}" stands for the
	// in-process server that takes the place of 127.0.0.1:8080.
	add []string
	// files are inputs written before the run, by path (when an input's
	// name means different contents in different examples).
	files map[string]string
	// prep are masque commands run first (unless their --out exists) to
	// make inputs the example reads that no other example writes.
	prep [][]string
	// clear are paths removed first (an earlier example's run in the same
	// --out folder, made with other settings).
	clear []string
	// server: the example is a server: it is started, asked /health and
	// one chat completion, and stopped.
	server bool
	stdin  string
	check  func(stdout, dir string) error
}

func printed(what string) func(string, string) error {
	return func(out, _ string) error {
		if !strings.Contains(out, what) {
			return fmt.Errorf("stdout lacks %q", what)
		}
		return nil
	}
}

func wrote(names ...string) func(string, string) error {
	return func(_, dir string) error {
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				return err
			}
		}
		return nil
	}
}

// npc64Ran checks the npc64 scenario's JSON report: every one of its 16
// personas was talked to, without errors.
func npc64Ran(out, _ string) error {
	var rep struct {
		Sessions   int `json:"sessions"`
		Turns      int `json:"turns"`
		Errors     int `json:"errors"`
		Tokens     int `json:"tokens"`
		PerPersona []struct {
			Name  string `json:"name"`
			Turns int    `json:"turns"`
		} `json:"per_persona"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return fmt.Errorf("not a JSON report: %v", err)
	}
	if rep.Sessions != 64 || rep.Turns == 0 || rep.Tokens == 0 || rep.Errors != 0 || len(rep.PerPersona) != 16 {
		return fmt.Errorf("sessions %d, turns %d, tokens %d, errors %d, %d personas", rep.Sessions, rep.Turns, rep.Tokens, rep.Errors, len(rep.PerPersona))
	}
	return nil
}

func nonEmpty(out, _ string) error {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			return nil
		}
	}
	return fmt.Errorf("printed nothing")
}

func join(parts ...[]string) []string { return slices.Concat(parts...) }

func words(s string) []string { return strings.Fields(s) }

// The scale-down flags shared by several examples.
var (
	// Mask learning on the small model: 2 steps of a 256-token batch, 2
	// calibration conversations, 4 training rows.
	sculptSmall = words("--steps 2 --batch-tokens 256 --calib-samples 2 --max-rows 4 --threads 2 --model builtin:stories260K")
	// sculpt compare's persona-fidelity benchmark: 1 prompt of 4 tokens;
	// 1 row of each other voice for the generic perplexity.
	compareSmall = words("--fidelity-limit 1 --fidelity-max-tokens 4 --generic-rows 1")
	// The study: one sparsity, one test prompt of 4 tokens, one held-out
	// passage, 4 calibration passages of 128 tokens, no contrastive pairs;
	// the perplexity window is raised because the small model's tokenizer
	// (512 tokens) spells a voice's system prompt in more than the default.
	studySmall = words("--model builtin:stories260K --corpus corpus/voices --sparsity 0.5 --pairs none --eval-limit 1 --eval-max-tokens 4 --ppl-rows 1 --ppl-max-tokens 512 --calib-samples 4 --calib-max-tokens 128 --workers 2")
	// eval run: builtin:voices answers (the persona prompts overflow
	// stories260K's 512-token context), one question of each kind, 8
	// tokens, and the compact judge prompts (the in-process judge is
	// builtin:voices, whose context is 512 tokens).
	evalRunSmall = words("--model builtin:voices --limit 1 -n 8 --judge-prompts compact")
	// Calibration by generated persona answers: 2 answers of 8 tokens.
	personaCalibSmall = words("--calib-samples 2 --calib-gen-tokens 8")
	// synth against the in-process teacher (builtin:voices, which writes
	// neither JSON profiles nor long answers): short completions, kept
	// and flagged instead of dropped.
	synthSmall = words("--max-tokens 16 --on-reject flag")
)

const chatRows = `{"messages":[{"role":"system","content":"You are a grumpy lighthouse keeper."},{"role":"user","content":"How was the night?"},{"role":"assistant","content":"Long. The lamp needed trimming twice and the gulls would not hush."}]}
{"messages":[{"role":"system","content":"You are a grumpy lighthouse keeper."},{"role":"user","content":"Do you like visitors?"},{"role":"assistant","content":"Visitors track sand up my stairs. Mind the rail and be brief."}]}
{"messages":[{"role":"system","content":"You are a grumpy lighthouse keeper."},{"role":"user","content":"What do you eat?"},{"role":"assistant","content":"Salt fish, hard bread, and tea strong enough to stand a spoon in."}]}
`

// exampleRuns says how every example is run (none is left out): what is
// appended to scale it down, what it reads that is made for it, and what
// it must print or write. The substitutions that apply to every example
// are in newExampleEnv's comment.
var exampleRuns = map[string]*exampleRun{
	// README
	"go run ./cmd/masque sculpt --persona devil --ratio 0.25 --steps 60 --out runs/devil-25": {add: sculptSmall, check: wrote("runs/devil-25/model.gguf", "runs/devil-25/report.html")},
	"masque generate --persona wordnet --prompt \"lantern\" --temperature 0":                 {check: nonEmpty},
	"masque eval voices --out runs/voices-dense":                                             {add: words("--voices kjv --limit 1 -n 4"), check: wrote("runs/voices-dense/report.json")},
	"masque serve": {server: true},
	"masque generate --model builtin:stories260K --prompt \"Once upon a time\" --max-tokens 60 --temperature 0 --json": {check: printed(`"prompt_ids"`)},
	"masque inspect --model ~/models/Qwen2.5-0.5B-Instruct":                                                            {check: nonEmpty},
	"masque chat --model ~/models/SmolLM2-135M-Instruct --system \"You are a grumpy blacksmith.\"":                     {stdin: "Hello there.\n"},

	// pull, against the test hub.
	"masque pull Qwen/Qwen2.5-0.5B-Instruct": {check: printed("models--Qwen--Qwen2.5-0.5B-Instruct")},
	"masque pull HuggingFaceTB/SmolLM2-135M-Instruct --revision main --include '*.json' --include '*.safetensors'": {check: printed("models--HuggingFaceTB--SmolLM2-135M-Instruct")},
	"masque pull bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M":                                                      {check: printed("SmolLM2-135M-Instruct-Q4_K_M.gguf")},
	"masque pull Qwen/Qwen2.5-0.5B-Instruct-GGUF qwen2.5-0.5b-instruct-q5_k_m.gguf":                                {check: printed("qwen2.5-0.5b-instruct-q5_k_m.gguf")},
	"masque generate --model Qwen/Qwen2.5-0.5B-Instruct --prompt \"Hello\"":                                        {stage: 1, check: nonEmpty},

	// generate, chat, embed, inspect
	"masque embed --text \"Hello there.\" --text \"Good evening.\"":                                                             {check: printed(`"embedding"`)},
	"masque embed --model ./voices-base --input lines.txt":                                                                      {check: printed(`"embedding"`)},
	"masque generate --persona devil --prompt \"Define: PEACE.\" --temperature 0":                                               {check: nonEmpty},
	"masque generate --model builtin:stories260K --prompt \"Once upon a time\"":                                                 {check: nonEmpty},
	"masque generate --model ./Qwen2.5-0.5B-Instruct --chat --system \"You are a pirate.\" --prompt \"Hello\" --temperature 0":  {},
	"masque generate --model ./Qwen2.5-0.5B-Instruct --chat --prompt \"Describe an NPC as JSON\" --json-schema npc.schema.json": {check: printed(`"name"`)},
	// kjv.mask.safetensors is a mask of builtin:voices, which it opens.
	"masque generate --mask kjv.mask.safetensors --persona kjv --prompt \"Who made the sea?\" --temperature 0": {add: words("-n 8"), check: nonEmpty},
	"masque chat --mask kjv.mask.safetensors --persona kjv":                                                    {add: words("-n 8"), stdin: "Who made the sea?\n", check: nonEmpty},

	// eval
	"masque eval mc --model ./Qwen2.5-0.5B-Instruct --tests testdata/persona-evals/extraversion.jsonl --mask extro.safetensors --out extro.json": {stage: 1, check: wrote("extro.json")},
	"masque eval rolebench --model ./pruned-25 --data rolebench-eng/test.jsonl --desc profiles-eng/desc.json --out runs/rb-pp25":                 {check: wrote("runs/rb-pp25/run.json")},
	"masque serve --model ./Llama-3.1-8B-Instruct --addr 127.0.0.1:8080":                                                                         {server: true},
	"masque eval run --model ./pruned-25 --method persona-pruner --sparsity 0.25 --judge-url http://127.0.0.1:8080/v1 --judge-model base --out runs/pp-25": {
		add: join(evalRunSmall, words("--personas pirate-captain")), check: wrote("runs/pp-25/run.json", "runs/pp-25/report.html")},
	"masque eval run --model ./Llama-3.2-3B-Instruct --set data/evalset --personas pirate-captain --limit 5 --judge-url https://api.openai.com/v1 --judge-model gpt-4o-mini --judges pp,gym --out runs/dense": {
		add: evalRunSmall, check: wrote("runs/dense/run.json")},
	"masque eval compare runs/dense runs/pp-25 runs/pp-50 runs/llmp-25 runs/llmp-50 --baseline llm-pruner --out runs/compare": {stage: 1,
		prep: [][]string{
			join(words("eval run --method persona-pruner --sparsity 0.5 --judge-url {local} --judge-model base --personas pirate-captain --out runs/pp-50"), evalRunSmall),
			join(words("eval run --method llm-pruner --sparsity 0.25 --judge-url {local} --judge-model base --personas pirate-captain --out runs/llmp-25"), evalRunSmall),
			join(words("eval run --method llm-pruner --sparsity 0.5 --judge-url {local} --judge-model base --personas pirate-captain --out runs/llmp-50"), evalRunSmall),
		},
		check: wrote("runs/compare/compare.json")},
	"masque eval voices --corpus corpus/voices --model runs/voices-base --json": {add: words("--limit 1 -n 4"), check: printed(`"mean_fidelity"`)},
	"masque eval voices --corpus corpus/voices --mask kjv.mask.safetensors --system \"\" --out runs/voices-kjv-mask": {
		add: words("--voices kjv --limit 1 -n 4"), check: wrote("runs/voices-kjv-mask/report.json")},
	"masque eval compare runs/voices-dense runs/voices-kjv-mask --metric fidelity --out runs/voices-compare": {stage: 1, check: wrote("runs/voices-compare/compare.json")},
	// npc64: the real scenario over its registry (see fixtures), its masks
	// and adapters made small by prep, 6 s of its 64 sessions (its ramp is 5 s).
	"masque loadtest --scenario loadtest/scenarios/npc64.yaml --duration 60s --json": {prep: npc64Prep(),
		add: words("--duration 6s --no-baseline"), check: npc64Ran},
	"masque loadtest --url http://127.0.0.1:8080 --concurrency 32 --duration 60s --personas pirate,bard,ranger": {
		add: words("--concurrency 2 --duration 1s --max-tokens 4"), check: nonEmpty},

	// sculpt
	"masque sculpt --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/kjv-25": {add: sculptSmall, check: wrote("runs/kjv-25/keep_indices.json")},
	"masque sculpt --model builtin:voices --data persona.jsonl --ratio 0.5 --steps 400 --out runs/p50": {
		add: sculptSmall, files: map[string]string{"persona.jsonl": chatRows}, check: wrote("runs/p50/run.json")},
	"masque sculpt --model builtin:voices --global --corpus corpus/voices --ratio 0.25 --out runs/global-25": {add: sculptSmall, check: wrote("runs/global-25/run.json")},
	"masque sculpt --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.5 --recover lora --recover-steps 200 --out runs/kjv-50-rec": {
		add: join(sculptSmall, words("--recover-steps 2")), check: wrote("runs/kjv-50-rec/run.json")},
	"masque sculpt baseline --method magnitude --ratio 0.25 --out runs/mag-25": {check: wrote("runs/mag-25/keep_indices.json")},
	"masque sculpt baseline --model builtin:voices --method wanda --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/wanda-kjv-25": {
		add: words("--calib-samples 2 --max-rows 4 --threads 2 --model builtin:stories260K"), check: wrote("runs/wanda-kjv-25/keep_indices.json")},
	"masque sculpt baseline --model builtin:voices --method taylor --calib generic --persona kjv --corpus corpus/voices --ratio 0.5 --out runs/taylor-gen-50": {
		add: words("--batch-tokens 256 --calib-samples 2 --max-rows 4 --threads 2 --model builtin:stories260K"), check: wrote("runs/taylor-gen-50/keep_indices.json")},
	// Every method; the global mask is the one of the --global example.
	"masque sculpt compare --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/cmp-kjv-25 --json": {stage: 1,
		add: join(sculptSmall, compareSmall, words("--global-run runs/global-25")), check: printed(`"methods"`)},
	"masque sculpt compare --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.5 --methods magnitude,wanda,depth --out runs/cmp-kjv-50": {
		add: join(sculptSmall, compareSmall), check: wrote("runs/cmp-kjv-50/compare.json")},
	"masque sculpt report --out runs/report runs/cmp-kjv-25 runs/cmp-kjv-50 runs/cmp-web-25 runs/cmp-web-50": {stage: 1,
		prep: [][]string{
			join(words("sculpt compare --persona web --corpus corpus/voices --ratio 0.25 --methods magnitude --no-fidelity --out runs/cmp-web-25"), sculptSmall),
			join(words("sculpt compare --persona web --corpus corpus/voices --ratio 0.5 --methods magnitude --no-fidelity --out runs/cmp-web-50"), sculptSmall),
		},
		check: wrote("runs/report/summary.html")},
	"masque sculpt report --corpus corpus/voices --out runs/report runs/cmp-*-25 runs/kjv-25-seed2": {stage: 1,
		prep:  [][]string{join(words("sculpt --persona kjv --corpus corpus/voices --ratio 0.25 --seed 2 --no-export --out runs/kjv-25-seed2"), sculptSmall)},
		check: wrote("runs/report/summary.html")},
	"masque sculpt analyze --corpus corpus/voices --out runs/analysis runs/kjv-25 runs/kjv-25-seed2 runs/web-25 runs/jargon-25": {stage: 1,
		prep: [][]string{
			join(words("sculpt --persona kjv --corpus corpus/voices --ratio 0.25 --seed 2 --no-export --out runs/kjv-25-seed2"), sculptSmall),
			join(words("sculpt --persona web --corpus corpus/voices --ratio 0.25 --no-export --out runs/web-25"), sculptSmall),
			join(words("sculpt --persona jargon --corpus corpus/voices --ratio 0.25 --no-export --out runs/jargon-25"), sculptSmall),
		},
		check: wrote("runs/analysis/analysis.html")},
	"masque sculpt export --model builtin:voices --keep runs/kjv-25/keep_indices.json --out runs/kjv-25-again": {stage: 1,
		add: words("--model builtin:stories260K"), check: wrote("runs/kjv-25-again/model.gguf")},

	// stats and subnet
	"masque stats --model ./Llama-3.2-1B-Instruct --calib-persona \"A shy librarian who loves old maps.\" --out stats/librarian": {add: personaCalibSmall, check: wrote("stats/librarian")},
	"masque subnet --method wanda --sparsity 0.5 --calib-persona \"An outgoing tour guide\" --out guide.mask.safetensors":        {add: personaCalibSmall, check: wrote("guide.mask.safetensors")},
	"masque subnet --method wanda --sparsity 0.1,0.3,0.5 --eval testdata/persona-evals/extraversion.jsonl --report report.html --out m.safetensors": {
		add: join(personaCalibSmall, words("--eval-limit 4")), check: wrote("report.html", "m-s0.50.safetensors")},
	"masque subnet contrast --pos persona:\"An outgoing, talkative party host\" --neg persona:\"A quiet, reserved bookworm\" --out-pos extro.safetensors --out-neg intro.safetensors --eval testdata/persona-evals/extraversion.jsonl": {
		add: join(personaCalibSmall, words("--eval-limit 4")), check: wrote("extro.safetensors", "intro.safetensors")},
	"masque subnet --method sparsegpt --nm 2:4 --stats stats/generic --out sgpt.mask.safetensors --model-out ./pruned": {
		prep: [][]string{words("stats --gram --calib-limit 4 --out stats/generic")}, check: wrote("sgpt.mask.safetensors", "pruned/config.json")},
	"masque subnet study --out study-quick --preset quick": {add: studySmall, check: wrote("study-quick/registry.yaml")},
	"masque subnet study --out study-voices":               {add: join(studySmall, words("--voices kjv --methods wanda --granularity unstructured")), check: wrote("study-voices/registry.yaml")},
	"masque subnet study --out study-kw --voices kjv,web --methods wanda,sparsegpt --granularity unstructured,2:4 --sft": {
		add: join(studySmall, words("--voices kjv --sft-steps 2 --sft-rank 2")), check: wrote("study-kw/results.json")},
	"masque subnet study --out study-voices --sft --sculpt --sculpt-sparsity 0.5": {
		add: join(studySmall, words("--voices kjv --methods wanda --granularity ffn --sparsity 0.5 --sft-steps 2 --sft-rank 2 --sculpt-steps 2")), check: wrote("study-voices/results.json")},
	"masque serve --model builtin:voices --personas study-voices/registry.yaml": {stage: 1, server: true, add: words("--model builtin:stories260K")},

	// serve
	"masque serve --model ./Qwen2.5-0.5B-Instruct --personas personas.yaml":                                        {server: true},
	"masque serve --personas personas.yaml --api-key sk-local --admin-key sk-admin --kv-memory 2GiB --max-seqs 16": {server: true},

	// style
	"masque style profile --data lines.txt --name alice --background neutral.txt --out alice.json": {check: wrote("alice.json")},
	"masque style profile --data corpus/voices --model ./voices-base --out voices.json":            {check: wrote("voices.json")},
	"masque style profile --data corpus/voices --model builtin --out voices.json":                  {check: wrote("voices.json")},
	"masque style classify --profile voices.json --corpus corpus/voices --model builtin":           {stage: 1, add: words("--per-voice 2"), check: nonEmpty},

	// synth, against the in-process teachers (or the built-in engine).
	"masque synth profiles --personas persona.jsonl --out run1 --teacher-url https://api.openai.com/v1 --teacher-model gpt-4o-mini": {
		add: synthSmall, files: map[string]string{"persona.jsonl": "{\"persona\":\"A retired sailor who tells tall tales.\"}\n{\"persona\":\"A shy librarian.\"}\n"},
		check: wrote("run1/synthetic_character.jsonl")},
	"masque synth profiles --personas personas.txt --out run1 --teacher-engine ./Qwen2.5-7B-Instruct": {
		clear: []string{"run1"}, add: join(synthSmall, words("--teacher-truncate")), check: wrote("run1/synthetic_character.jsonl")},
	"masque synth answers --strategy g --characters run1/synthetic_character.jsonl --instructions alpaca.json --out run1": {stage: 1,
		add: join(words("--teacher-url {local} --teacher-model base"), synthSmall), check: wrote("run1/synthetic_dialogue.jsonl")},
	"masque synth persona-data --persona \"A grumpy lighthouse keeper\" --model ./Llama-3.2-3B-Instruct --instructions alpaca.json --exclude eval_questions.txt --top 2000 --out lighthouse --teacher-url https://api.openai.com/v1 --teacher-model gpt-4o-mini": {
		add: synthSmall, check: wrote("lighthouse/persona_data.jsonl")},
	"masque synth style-rewrite --data lines.jsonl --profile style.json --out sr --teacher-url http://127.0.0.1:8080/v1 --teacher-model base": {
		prep: [][]string{words("style profile --data lines.jsonl --min-count 1 --out style.json")}, add: synthSmall, check: wrote("sr")},
	"masque synth style-rewrite --data corpus/voices --pairs-from web --character kjv --split train --max-words 40 --profile voices-style.json --out kjv-train": {
		prep: [][]string{words("style profile --data corpus/voices --out voices-style.json")}, check: wrote("kjv-train")},

	// random: the tiny preset in place of a 0.5B model (2 GB) and SmolLM2 (270 MB).
	"masque random --arch qwen2 --preset qwen2.5-0.5b --out /tmp/qwen25-05b": {add: words("--arch llama --preset tiny"), check: wrote("tmp/qwen25-05b/config.json")},
	"masque random --preset smollm2-135m --dtype bf16 --out /tmp/smollm2":    {add: words("--preset tiny"), check: wrote("tmp/smollm2/config.json")},
}

// TestCheckExampleCatchesDrift: the drift issue 17 found (eval ppl --text
// for --data, serve --port for --addr) and other kinds are caught.
func TestCheckExampleCatchesDrift(t *testing.T) {
	for _, bad := range [][]string{
		{"eval", "ppl", "--text", "x.txt"},
		{"serve", "--port", "8080"},
		{"generate", "--max-tokens", "many"},
		{"inspect", "extra-arg"},
		{"mask"},
	} {
		if err := checkExample(bad); err == nil {
			t.Errorf("%q passes", bad)
		}
	}
	if err := checkExample([]string{"eval", "ppl", "--data", "x.txt"}); err != nil {
		t.Errorf("a right example fails: %v", err)
	}
	words, key, err := shellWords(`masque embed --text "a b" --text 'c d' > out.json   # note`)
	if err != nil || key != `masque embed --text "a b" --text 'c d'` || len(words) != 6 || words[3] != "a b" || words[5] != "c d" {
		t.Errorf("%q %q %v", words, key, err)
	}
}
