package cli

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	datavoices "github.com/masque-ai/masque/data/voices"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/generate/grammar"
)

// samplingFlags are the decoding settings shared by generate and chat.
type samplingFlags struct {
	maxTokens     int
	temperature   float32
	topK          int
	topP, minP    float32
	repeatPenalty float32
	repeatLastN   int
	freqPenalty   float32
	presPenalty   float32
	seed          int64
	stop          []string
	ignoreEOS     bool
}

func (f *samplingFlags) register(c *cobra.Command, maxTokens int) {
	fl := c.Flags()
	fl.IntVarP(&f.maxTokens, "max-tokens", "n", maxTokens, "maximum number of tokens to generate (≤0: until EOS or the end of the context)")
	fl.Float32VarP(&f.temperature, "temperature", "t", 0.8, "sampling temperature; 0 is greedy")
	fl.IntVar(&f.topK, "top-k", 40, "keep the K most likely tokens (0: off)")
	fl.Float32Var(&f.topP, "top-p", 0.95, "nucleus sampling: keep the most likely tokens up to this probability mass (1: off)")
	fl.Float32Var(&f.minP, "min-p", 0.05, "drop tokens below this fraction of the top token's probability (0: off)")
	fl.Float32Var(&f.repeatPenalty, "repeat-penalty", 1.0, "repetition penalty (1: off)")
	fl.IntVar(&f.repeatLastN, "repeat-last-n", 64, "tokens the repetition penalty looks back over (0: all)")
	fl.Float32Var(&f.freqPenalty, "frequency-penalty", 0, "OpenAI's frequency penalty: subtract count × this from the logit of every token already generated (0: off)")
	fl.Float32Var(&f.presPenalty, "presence-penalty", 0, "OpenAI's presence penalty: subtract this from the logit of every token already generated (0: off)")
	fl.Int64Var(&f.seed, "seed", -1, "random seed; the same seed gives the same output (-1: random)")
	fl.StringArrayVar(&f.stop, "stop", nil, "stop string (repeatable)")
	fl.BoolVar(&f.ignoreEOS, "ignore-eos", false, "keep generating past end-of-sequence tokens")
}

func (f *samplingFlags) options(ck *checkpoint.Checkpoint) generate.Options {
	seed := uint64(f.seed)
	if f.seed < 0 {
		seed = rand.Uint64()
	}
	o := generate.Options{
		MaxTokens: f.maxTokens, Temperature: f.temperature, TopK: f.topK, TopP: f.topP, MinP: f.minP,
		RepetitionPenalty: f.repeatPenalty, RepeatLastN: f.repeatLastN, FrequencyPenalty: f.freqPenalty, PresencePenalty: f.presPenalty,
		Seed: seed, Stop: f.stop,
		IgnoreEOS: f.ignoreEOS, SkipSpecial: true,
	}
	if !f.ignoreEOS {
		o.StopTokens = ck.StopTokens()
	}
	return o
}

func (e *env) generateCmd() *cobra.Command {
	st := &generateRun{}
	st.mf = modelFlags{withLoRA: true, withMask: true, withCache: true}
	c := &cobra.Command{
		Use:   "generate --prompt TEXT [flags]",
		Short: "Generate text from a prompt, streaming",
		Long: `Generate text from a prompt and stream it to standard output.

With --chat (or --system, or --persona) the prompt becomes a user message
rendered with the model's chat template. --persona NAME takes the system prompt
of a voice of builtin:voices (kjv, web, spurgeon, sotu, jargon, webster,
wordnet, wesnoth, devil), the prompt that model was trained to follow. With --json the result is printed as one object
{"prompt_ids":[...],"ids":[...],"text":"..."} where ids are the generated tokens only.

--grammar json (any JSON value), --grammar json-object (a JSON object) and
--json-schema FILE (a value of that JSON schema: type, properties, required,
additionalProperties, items, enum, const, min/maxLength, min/maxItems)
constrain decoding so that the output always parses (unless --max-tokens cuts
it short).

--hide-reasoning removes a leading <think>…</think> block (the reasoning trace
of a style-rewrite model) from the output; streamed text is held back until
the block closes.

--mask FILE applies a weight mask (written by masque subnet or masque sculpt)
per sequence over the model, as serve applies a persona's mask: the output is
that of the masked model that masque mask apply would export, without
writing it. Without --model the base the mask records is opened; a model
other than that base (or one of its GGUF conversions) is refused. With --lora
too, the adapter's correction is added to the masked projections.`,
		Example: `  masque generate --persona devil --prompt "Define: PEACE." --temperature 0
  masque generate --model builtin:stories260K --prompt "Once upon a time"
  masque generate --model ./Qwen2.5-0.5B-Instruct --chat --system "You are a pirate." --prompt "Hello" --temperature 0
  masque generate --model ./Qwen2.5-0.5B-Instruct --chat --prompt "Describe an NPC as JSON" --json-schema npc.schema.json
  masque generate --mask kjv.mask.safetensors --persona kjv --prompt "Who made the sea?" --temperature 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return e.runGenerate(cmd, st) },
	}
	st.mf.register(c)
	st.sf.register(c, 256)
	c.Flags().StringVarP(&st.prompt, "prompt", "p", "", "the prompt")
	c.Flags().BoolVar(&st.chat, "chat", false, "wrap the prompt as a user message in the chat template")
	c.Flags().StringVar(&st.system, "system", "", "system prompt (implies --chat)")
	c.Flags().StringVar(&st.voice, "persona", "", "the system prompt of this voice of builtin:voices (implies --chat)")
	c.Flags().BoolVar(&st.asJSON, "json", false, `print {"prompt_ids":[...],"ids":[...],"text":"..."} instead of streaming`)
	c.Flags().BoolVar(&st.stats, "stats", false, "print timing statistics to standard error")
	c.Flags().StringVar(&st.gram, "grammar", "", "constrain the output: json (any JSON value) or json-object")
	c.Flags().StringVar(&st.schemaFile, "json-schema", "", "constrain the output to a value of the JSON schema in `FILE`")
	c.Flags().BoolVar(&st.hideReasoning, "hide-reasoning", false, "remove a leading <think>…</think> block from the output")
	return c
}

// generateRun holds the flags of generateCmd.
type generateRun struct {
	mf                                      modelFlags
	sf                                      samplingFlags
	prompt, system, voice, gram, schemaFile string
	chat, asJSON, stats, hideReasoning      bool
}

func (e *env) runGenerate(cmd *cobra.Command, st *generateRun) error {
	if err := voicePrompt(st.voice, &st.system); err != nil {
		return err
	}
	ck, err := st.mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	var ids []int
	if st.chat || st.system != "" {
		var msgs []chattemplate.Message
		if st.system != "" {
			msgs = append(msgs, chattemplate.Message{Role: "system", Content: st.system})
		}
		msgs = append(msgs, chattemplate.Message{Role: "user", Content: st.prompt})
		if ids, err = ck.EncodeChat(msgs, true, nil); err != nil {
			return err
		}
	} else {
		tok, err := ck.NeedTokenizer()
		if err != nil {
			return err
		}
		ids = tok.Encode(st.prompt, true)
	}
	if len(ids) == 0 {
		return usagef("the prompt is empty and the tokenizer adds no BOS token: give --prompt")
	}
	o := st.sf.options(ck)
	if o.Constraint, err = grammarConstraint(ck, st.gram, st.schemaFile); err != nil {
		return err
	}
	var onText func(string) error
	var rf generate.ReasoningFilter
	if !st.asJSON {
		onText = func(s string) error {
			if st.hideReasoning {
				s = rf.Feed(s)
			}
			_, err := fmt.Fprint(e.stdout, s)
			return err
		}
	}
	res, err := generate.Generate(cmd.Context(), st.mf.run(ck), generate.FromTokenizer(ck.Tokenizer), ids, o, onText)
	if err != nil {
		return err
	}
	if st.hideReasoning {
		res.Text = generate.StripReasoning(res.Text)
		if !st.asJSON {
			fmt.Fprint(e.stdout, rf.Flush())
		}
	}
	if st.asJSON {
		out := res.IDs
		if out == nil {
			out = []int{}
		}
		return writeJSON(e.stdout, map[string]any{"prompt_ids": ids, "ids": out, "text": res.Text, "finish_reason": res.FinishReason})
	}
	fmt.Fprintln(e.stdout)
	if st.stats {
		printStats(e, res)
	}
	return nil
}

// grammarConstraint returns the constraint of --grammar or --json-schema
// over the model's vocabulary (nil for neither).
func grammarConstraint(ck *checkpoint.Checkpoint, gram, schemaFile string) (generate.Constraint, error) {
	var s *grammar.Schema
	switch {
	case gram != "" && schemaFile != "":
		return nil, usagef("give --grammar or --json-schema, not both")
	case schemaFile != "":
		b, err := os.ReadFile(schemaFile)
		if err != nil {
			return nil, fmt.Errorf("--json-schema: %w", err)
		}
		if s, err = grammar.Compile(b); err != nil {
			return nil, fmt.Errorf("--json-schema %s: %w", schemaFile, err)
		}
	case gram == "json":
		s = grammar.JSONValue()
	case gram == "json-object":
		s = grammar.JSONObject()
	case gram != "":
		return nil, usagef("--grammar %q: use json or json-object (or --json-schema FILE)", gram)
	default:
		return nil, nil
	}
	tok, err := ck.NeedTokenizer()
	if err != nil {
		return nil, err
	}
	v, err := grammar.TokenizerVocab(tok, ck.Model.Config.Vocab)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ck.Path, err)
	}
	return s.Constraint(v), nil
}

func printStats(e *env, res *generate.Result) {
	rate := func(n int, d time.Duration) float64 {
		if d <= 0 {
			return 0
		}
		return float64(n) / d.Seconds()
	}
	fmt.Fprintf(e.stderr, "prompt %d tokens in %v (%.1f tok/s), generated %d tokens in %v (%.1f tok/s), finish: %s\n",
		res.PromptTokens, res.PrefillDur.Round(time.Millisecond), rate(res.PromptTokens, res.PrefillDur),
		res.CompletionTokens, res.DecodeDur.Round(time.Millisecond), rate(res.CompletionTokens, res.DecodeDur), res.FinishReason)
}

func (e *env) chatCmd() *cobra.Command {
	st := &chatRun{}
	st.mf = modelFlags{withLoRA: true, withMask: true, withCache: true}
	c := &cobra.Command{
		Use:   "chat [--system TEXT | --persona VOICE]",
		Short: "Chat with a model interactively (streaming)",
		Long: `Chat with a model. Each line you type is a user message; the reply streams
back. The conversation is rendered with the model's chat template, and the KV
cache is reused between turns. Commands: /reset clears the conversation, /exit quits.
--persona NAME takes the system prompt of a voice of builtin:voices.

--mask FILE applies a weight mask (written by masque subnet or masque sculpt)
per sequence over the model, as serve applies a persona's mask; without
--model the base the mask records is opened, and another model is refused.
With --lora too, the adapter's correction is added to the masked projections.`,
		Example: `  masque chat --mask kjv.mask.safetensors --persona kjv`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return e.runChat(cmd, st) },
	}
	st.mf.register(c)
	st.sf.register(c, 512)
	c.Flags().StringVar(&st.system, "system", "", "system prompt")
	c.Flags().StringVar(&st.voice, "persona", "", "the system prompt of this voice of builtin:voices")
	c.Flags().BoolVar(&st.stats, "stats", false, "print timing statistics after each reply")
	return c
}

// chatRun holds the flags of chatCmd.
type chatRun struct {
	mf            modelFlags
	sf            samplingFlags
	system, voice string
	stats         bool
}

func (e *env) runChat(cmd *cobra.Command, st *chatRun) error {
	if err := voicePrompt(st.voice, &st.system); err != nil {
		return err
	}
	ck, err := st.mf.open()
	if err != nil {
		return err
	}
	defer ck.Close()
	if _, err := ck.NeedTokenizer(); err != nil {
		return err
	}
	var msgs []chattemplate.Message
	reset := func() {
		msgs = msgs[:0]
		if st.system != "" {
			msgs = append(msgs, chattemplate.Message{Role: "system", Content: st.system})
		}
	}
	reset()
	sess := generate.NewSession(st.mf.run(ck), 0) // reuses the cached prefix between turns
	in := bufio.NewScanner(e.stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	fmt.Fprintf(e.stderr, "masque chat with %s: type a message, /reset or /exit\n", ck.Path)
	for {
		fmt.Fprint(e.stdout, "> ")
		if !in.Scan() {
			fmt.Fprintln(e.stdout)
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			reset()
			continue
		}
		msgs = append(msgs, chattemplate.Message{Role: "user", Content: line})
		ids, err := ck.EncodeChat(msgs, true, nil)
		if err != nil {
			return err
		}
		if len(ids) >= sess.Cache.Max() {
			return fmt.Errorf("the conversation (%d tokens) no longer fits the context (%d): /reset", len(ids), sess.Cache.Max())
		}
		res, err := sess.Generate(cmd.Context(), generate.FromTokenizer(ck.Tokenizer), ids, st.sf.options(ck),
			func(s string) error { _, err := fmt.Fprint(e.stdout, s); return err })
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
		if st.stats {
			printStats(e, res)
		}
		msgs = append(msgs, chattemplate.Message{Role: "assistant", Content: res.Text})
		if res.FinishReason == generate.FinishCancelled {
			return nil
		}
	}
}

// voicePrompt sets *system to the system prompt of the builtin:voices voice
// named by --persona (an error with --system too, or for an unknown voice).
func voicePrompt(voice string, system *string) error {
	if voice == "" {
		return nil
	}
	if *system != "" {
		return usagef("give --system or --persona, not both")
	}
	p, err := datavoices.SystemPrompt(voice)
	if err != nil {
		return usagef("--persona: %v", err)
	}
	*system = p
	return nil
}
