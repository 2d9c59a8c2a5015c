package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/mask"
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
var exampleNotRun = map[string]string{
	// Need the network or a service.
	"masque pull Qwen/Qwen2.5-0.5B-Instruct": "downloads from the Hugging Face hub (pull_cli_test.go covers pull against a local hub)",
	"masque pull HuggingFaceTB/SmolLM2-135M-Instruct --revision main --include '*.json' --include '*.safetensors'":                                                                                                                                               "downloads from the Hugging Face hub",
	"masque pull bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M":                                                                                                                                                                                                    "downloads from the Hugging Face hub",
	"masque pull Qwen/Qwen2.5-0.5B-Instruct-GGUF qwen2.5-0.5b-instruct-q5_k_m.gguf":                                                                                                                                                                              "downloads from the Hugging Face hub",
	"masque generate --model Qwen/Qwen2.5-0.5B-Instruct --prompt \"Hello\"":                                                                                                                                                                                      "needs the model pulled from the hub",
	"masque eval run --model ./pruned-25 --method persona-pruner --sparsity 0.25 --judge-url http://127.0.0.1:8080/v1 --judge-model base --out runs/pp-25":                                                                                                       "needs a judge endpoint (eval/roleplay tests run it against a judge server)",
	"masque eval run --model ./Llama-3.2-3B-Instruct --set data/evalset --personas pirate-captain --limit 5 --judge-url https://api.openai.com/v1 --judge-model gpt-4o-mini --judges pp,gym --out runs/dense":                                                    "needs OpenAI's API",
	"masque synth profiles --personas persona.jsonl --out run1 --teacher-url https://api.openai.com/v1 --teacher-model gpt-4o-mini":                                                                                                                              "needs OpenAI's API",
	"masque synth persona-data --persona \"A grumpy lighthouse keeper\" --model ./Llama-3.2-3B-Instruct --instructions alpaca.json --exclude eval_questions.txt --top 2000 --out lighthouse --teacher-url https://api.openai.com/v1 --teacher-model gpt-4o-mini": "needs OpenAI's API",
	"masque loadtest --url http://127.0.0.1:8080 --concurrency 32 --duration 60s --personas pirate,bard,ranger":                                                                                                                                                  "needs a running server for a minute (loadtest tests run it against one)",
	"masque loadtest --scenario loadtest/scenarios/npc64.yaml --duration 60s --json":                                                                                                                                                                             "needs the masks and adapters of scripts/npc64-setup.sh and a minute of 64 sessions (loadtest's TestScenarioAgainstServer and the CLI test run small scenarios)",
	"masque synth style-rewrite --data lines.jsonl --profile style.json --out sr --teacher-url http://127.0.0.1:8080/v1 --teacher-model base":                                                                                                                    "needs a running teacher server and a profile (synth's TestStyleRewriteAgainstMasqueServe runs the stage against masque serve)",
	"masque synth style-rewrite --data /work/corpus/voices --pairs-from web --character kjv --split train --max-words 40 --profile voices-style.json --out kjv-train":                                                                                            "needs the voices corpus and a profile of it (synth_style_cli_test.go runs the parallel mode on a small corpus)",
	"masque synth profiles --personas personas.txt --out run1 --teacher-engine ./Qwen2.5-7B-Instruct":                                                                                                                                                            "a 7B teacher (synth_cli_test.go runs synth profiles with the built-in engine)",
	"masque synth answers --strategy g --characters run1/synthetic_character.jsonl --instructions alpaca.json --out run1":                                                                                                                                        "needs a teacher and the profiles of the example above",
	// Servers run until stopped.
	"masque serve": "a server runs until stopped (serve_cli_test.go starts and stops one)",
	"masque serve --model ./Qwen2.5-0.5B-Instruct --personas personas.yaml":                                        "a server runs until stopped",
	"masque serve --personas personas.yaml --api-key sk-local --admin-key sk-admin --kv-memory 2GiB --max-seqs 16": "a server runs until stopped",
	"masque serve --model ./Llama-3.1-8B-Instruct --addr 127.0.0.1:8080":                                           "a server runs until stopped",
	"masque serve --model builtin:voices --personas study-voices/registry.yaml":                                    "a server runs until stopped",
	// Long jobs: minutes of CPU each (their own tests run them small).
	"masque eval voices --out runs/voices-dense":                                                                                                              "minutes: answers to every voice's test prompts (evalvoices_cli_test.go runs it with --limit)",
	"masque eval voices --corpus corpus/voices --model runs/voices-base --json":                                                                               "needs a voices corpus and a pretrained model",
	"masque eval voices --corpus corpus/voices --mask kjv.mask.safetensors --system \"\" --out runs/voices-kjv-mask":                                          "needs a voices corpus and a mask",
	"masque eval compare runs/voices-dense runs/voices-kjv-mask --metric fidelity --out runs/voices-compare":                                                  "needs the runs of the examples above",
	"masque eval compare runs/dense runs/pp-25 runs/pp-50 runs/llmp-25 runs/llmp-50 --baseline llm-pruner --out runs/compare":                                 "needs the runs of eval run",
	"go run ./cmd/masque sculpt --persona devil --ratio 0.25 --steps 60 --out runs/devil-25":                                                                  "minutes: the README's main job (sculpt_cli_test.go runs sculpt small)",
	"masque sculpt --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/kjv-25":                                                "minutes, and a voices corpus",
	"masque sculpt --model builtin:voices --data persona.jsonl --ratio 0.5 --steps 400 --out runs/p50":                                                        "minutes of mask learning",
	"masque sculpt --model builtin:voices --global --corpus corpus/voices --ratio 0.25 --out runs/global-25":                                                  "minutes, and a voices corpus",
	"masque sculpt --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.5 --recover lora --recover-steps 200 --out runs/kjv-50-rec":          "minutes, and a voices corpus",
	"masque sculpt baseline --method magnitude --ratio 0.25 --out runs/mag-25":                                                                                "runs the sculpt evaluation on builtin:voices: minutes",
	"masque sculpt baseline --model builtin:voices --method wanda --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/wanda-kjv-25":                  "minutes, and a voices corpus",
	"masque sculpt baseline --model builtin:voices --method taylor --calib generic --persona kjv --corpus corpus/voices --ratio 0.5 --out runs/taylor-gen-50": "minutes, and a voices corpus",
	"masque sculpt compare --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.25 --out runs/cmp-kjv-25 --json":                             "minutes, and a voices corpus",
	"masque sculpt compare --model builtin:voices --persona kjv --corpus corpus/voices --ratio 0.5 --methods magnitude,wanda,depth --out runs/cmp-kjv-50":     "minutes, and a voices corpus",
	"masque sculpt report --out runs/report runs/cmp-kjv-25 runs/cmp-kjv-50 runs/cmp-web-25 runs/cmp-web-50":                                                  "needs the runs of sculpt compare",
	"masque sculpt report --corpus corpus/voices --out runs/report runs/cmp-*-25 runs/kjv-25-seed2":                                                           "needs the runs of sculpt compare",
	"masque sculpt analyze --corpus corpus/voices --out runs/analysis runs/kjv-25 runs/kjv-25-seed2 runs/web-25 runs/jargon-25":                               "needs sculpt runs",
	"masque sculpt export --model builtin:voices --keep runs/kjv-25/keep_indices.json --out runs/kjv-25-again":                                                "needs a sculpt run's keep indices",
	"masque subnet study --out study-quick --preset quick":                                                                                                    "minutes (subnetstudy_cli_test.go runs a small study)",
	"masque subnet study --out study-voices": "hours: the full study",
	"masque subnet study --out study-kw --voices kjv,web --methods wanda,sparsegpt --granularity unstructured,2:4 --sft":                                                                                                               "hours: a study with SFT",
	"masque subnet --method sparsegpt --nm 2:4 --stats stats/generic --out sgpt.mask.safetensors --model-out ./pruned":                                                                                                                 "needs the statistics of masque stats on a real model",
	"masque style profile --data /work/corpus/voices --model ./voices-base --out voices.json":                                                                                                                                          "needs a voices corpus",
	"masque style profile --data /work/corpus/voices --model builtin --out voices.json":                                                                                                                                                "needs a voices corpus",
	"masque style classify --profile voices.json --corpus /work/corpus/voices --model builtin":                                                                                                                                         "needs a voices corpus and its profiles",
	"masque stats --model ./Llama-3.2-1B-Instruct --calib-persona \"A shy librarian who loves old maps.\" --out stats/librarian":                                                                                                       "30 s to 2 min of CPU each (calibration statistics over generated persona text); subnet_cli_test.go runs stats and subnet on small inputs",
	"masque subnet --method wanda --sparsity 0.5 --calib-persona \"An outgoing tour guide\" --out guide.mask.safetensors":                                                                                                              "30 s to 2 min of CPU each (calibration statistics over generated persona text); subnet_cli_test.go runs stats and subnet on small inputs",
	"masque subnet --method wanda --sparsity 0.1,0.3,0.5 --eval testdata/persona-evals/extraversion.jsonl --report report.html --out m.safetensors":                                                                                    "30 s to 2 min of CPU each (calibration statistics over generated persona text); subnet_cli_test.go runs stats and subnet on small inputs",
	"masque subnet contrast --pos persona:\"An outgoing, talkative party host\" --neg persona:\"A quiet, reserved bookworm\" --out-pos extro.safetensors --out-neg intro.safetensors --eval testdata/persona-evals/extraversion.jsonl": "30 s to 2 min of CPU each (calibration statistics over generated persona text); subnet_cli_test.go runs stats and subnet on small inputs",
	"masque random --arch qwen2 --preset qwen2.5-0.5b --out /tmp/qwen25-05b":                                                                                                                                                           "writes a 2 GB model (randmodel tests cover the presets)",
	"masque random --preset smollm2-135m --dtype bf16 --out /tmp/smollm2":                                                                                                                                                              "writes a 270 MB model",
}

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
	var cur strings.Builder
	inWord, quote := false, byte(0)
	end := len(line)
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
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case (c == '#' || c == '>' || c == '&') && !inWord:
			end = i
			i = len(line)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, "", fmt.Errorf("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, strings.TrimSpace(line[:end]), nil
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

// substitute puts small models and real files in place of what an example
// names: any model but a built-in one becomes builtin:stories260K, outputs
// go to dir, and the inputs are made there (or taken from testdata).
func substitute(t *testing.T, args []string, dir string) []string {
	out := slices.Clone(args)
	for i := 0; i+1 < len(out); i++ {
		v := out[i+1]
		switch out[i] {
		case "--model":
			if !strings.HasPrefix(v, "builtin") {
				out[i+1] = "builtin:stories260K"
			}
		case "--out", "--out-pos", "--out-neg", "--model-out", "--report":
			out[i+1] = filepath.Join(dir, filepath.Base(v))
		case "--tests", "--eval":
			if strings.HasPrefix(v, "testdata/") {
				out[i+1] = filepath.Join("..", "..", v)
			}
		case "--data", "--desc", "--input", "--json-schema", "--mask", "--background":
			out[i+1] = exampleInput(t, dir, v)
		}
	}
	return out
}

// exampleInput makes a small real file for an input an example names.
func exampleInput(t *testing.T, dir, name string) string {
	p := filepath.Join(dir, filepath.Base(name))
	write := func(s string) string {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	switch {
	case strings.HasSuffix(name, "rolebench-eng/test.jsonl"):
		return filepath.Join("..", "..", "eval", "roleplay", "testdata", "rolebench", "test.jsonl")
	case strings.HasSuffix(name, "desc.json"):
		return filepath.Join("..", "..", "eval", "roleplay", "testdata", "rolebench", "desc.json")
	case strings.HasSuffix(name, ".schema.json"):
		return write(`{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer"}},"required":["name","age"]}`)
	case strings.HasSuffix(name, ".safetensors"):
		ck, err := checkpoint.Open("builtin:stories260K", checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m := mask.New(ck.Model)
		if err := m.Save(p); err != nil {
			t.Fatal(err)
		}
		return p
	case strings.HasSuffix(name, ".txt"):
		return write("The lantern swung in the wind.\nA quiet girl read old maps by the fire.\nThe sea was calm and grey.\n")
	}
	t.Fatalf("no small stand-in for %s", name)
	return ""
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
		run := exampleRuns[key]
		switch {
		case skip && run != nil:
			t.Errorf("%s: %q is both run and listed as not run", ex.where, key)
		case !skip && run == nil:
			t.Errorf("%s: %q is neither run (exampleRuns) nor listed as not run with a reason (exampleNotRun)", ex.where, key)
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
	for _, ex := range examples {
		words, key, _ := shellWords(ex.line)
		r := exampleRuns[key]
		if r == nil {
			continue
		}
		t.Run(strings.Join(words[1:min(3, len(words))], "_"), func(t *testing.T) {
			dir := t.TempDir()
			args := substitute(t, exampleArgs(words), dir)
			code, out, errs := run(t, r.stdin, args...)
			if code != 0 {
				t.Fatalf("%s: %q as %q: exit %d\n%s", ex.where, key, args, code, errs)
			}
			if r.check != nil {
				if err := r.check(out, dir); err != nil {
					t.Fatalf("%s: %q: %v\nstdout: %.500s\nstderr: %.500s", ex.where, key, err, out, errs)
				}
			}
		})
	}
}

// exampleRun is how an example is run: its standard input and a check of
// what it printed or wrote.
type exampleRun struct {
	stdin string
	check func(stdout, dir string) error
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

func nonEmpty(out, _ string) error {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			return nil
		}
	}
	return fmt.Errorf("printed nothing")
}

// exampleRuns are the examples run in-process (see substitute).
var exampleRuns = map[string]*exampleRun{
	"masque generate --persona wordnet --prompt \"lantern\" --temperature 0":                                                                     {check: nonEmpty},
	"masque generate --model builtin:stories260K --prompt \"Once upon a time\" --max-tokens 60 --temperature 0 --json":                           {check: printed(`"prompt_ids"`)},
	"masque inspect --model ~/models/Qwen2.5-0.5B-Instruct":                                                                                      {check: nonEmpty},
	"masque chat --model ~/models/SmolLM2-135M-Instruct --system \"You are a grumpy blacksmith.\"":                                               {stdin: "Hello there.\n"},
	"masque embed --text \"Hello there.\" --text \"Good evening.\"":                                                                              {check: printed(`"embedding"`)},
	"masque embed --model ./voices-base --input lines.txt":                                                                                       {check: printed(`"embedding"`)},
	"masque eval mc --model ./Qwen2.5-0.5B-Instruct --tests testdata/persona-evals/extraversion.jsonl --mask extro.safetensors --out extro.json": {check: wrote("extro.json")},
	"masque eval rolebench --model ./pruned-25 --data rolebench-eng/test.jsonl --desc profiles-eng/desc.json --out runs/rb-pp25":                 {check: wrote("rb-pp25/run.json")},
	"masque generate --persona devil --prompt \"Define: PEACE.\" --temperature 0":                                                                {check: nonEmpty},
	"masque generate --model builtin:stories260K --prompt \"Once upon a time\"":                                                                  {check: nonEmpty},
	"masque generate --model ./Qwen2.5-0.5B-Instruct --chat --system \"You are a pirate.\" --prompt \"Hello\" --temperature 0":                   {},
	"masque generate --model ./Qwen2.5-0.5B-Instruct --chat --prompt \"Describe an NPC as JSON\" --json-schema npc.schema.json":                  {check: printed(`"name"`)},
	"masque style profile --data lines.txt --name alice --background neutral.txt --out alice.json":                                               {check: wrote("alice.json")},
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
