package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/synth"
	"github.com/masque-ai/masque/synth/teacher"
)

func (e *env) synthStyleCmd(mode synthMode) *cobra.Command {
	var cf synthCommon
	var tf synthTeacherFlags
	var in synth.StyleInput
	var retries int
	var trace bool
	c := &cobra.Command{
		Use:   synthUse(mode, "style-rewrite") + " --data LINES --out DIR",
		Short: "Style-rewrite training data: neutral rewrite + reasoning trace → styled line (style_rewrite.chat.jsonl)",
		Long: `Turn a character's stylised lines into style-rewrite training rows (METHODS §3).
For each line the teacher writes a neutral rewrite (same meaning; no particles,
interjections, emotion or identity) and a reasoning trace of at most 100 words
on how emotion and motive shape the line. Each row's prompt holds the
character (its persona), its style tags and keywords (from --profile, a
"masque style profile" file) and the neutral content; its target is
"<think>trace</think>" followed by the original line.

Parallel data needs no teacher: JSONL rows with a "neutral" field, or
--pairs-from VOICE on a voices corpus, which pairs the rows of VOICE (neutral)
and --character (styled) that share a contrast key (e.g. --pairs-from web
--character kjv: the same verses in the World English Bible and the King
James Bible), cut into sentence-aligned segments of at most --max-words words.
Such rows have no trace (--trace asks the teacher for one).

--data: a voices corpus folder (rows of --split; --character picks one voice),
a JSONL of {"character","text"[,"neutral"][,"source"]} rows, or a text file of
one character's lines (--character). Outputs: <out>/style_rewrite.jsonl
{"character","neutral","styled","trace","source","system","user"} and
<out>/style_rewrite.chat.jsonl {"messages":[system,user,assistant]} for
masque finetune. Without --profile the prompts carry the persona alone (for
a vanilla-SFT baseline).`,
		Example: `  masque synth style-rewrite --data lines.jsonl --profile style.json --out sr --teacher-url http://127.0.0.1:8080/v1 --teacher-model base
  masque synth style-rewrite --data /work/corpus/voices --pairs-from web --character kjv --split train --max-words 40 --profile voices-style.json --out kjv-train`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.synthStyleRun(cmd, mode, &cf, &tf, in, trace, retries)
		},
	}
	cf.register(c)
	tf.register(c, mode)
	fl := c.Flags()
	fl.StringVar(&in.Data, "data", "", "stylised lines: a voices corpus folder, a .jsonl of {character,text[,neutral]} rows, or a text file")
	fl.StringVar(&in.Character, "character", "", "the character: of a text file, of JSONL rows without one, the voice of a corpus (the styled voice with --pairs-from)")
	fl.StringVar(&in.Split, "split", "train", "voices corpus split to read")
	fl.StringVar(&in.PairsFrom, "pairs-from", "", "voices corpus: the neutral voice paired by contrast key with --character (parallel data, no teacher)")
	fl.IntVar(&in.MaxWords, "max-words", 0, "with --pairs-from: cut each pair into sentence-aligned segments of at most N words (0: whole passages)")
	fl.IntVar(&in.Sample, "sample", 0, "keep N lines chosen evenly through the input (0: all)")
	fl.StringVar(&in.Profile, "profile", "", "style profile (masque style profile) whose tags and keywords go into the prompts")
	fl.IntVar(&in.Keywords, "keywords", 10, "keywords of the profile put in each prompt")
	fl.StringVar(&in.Personas, "personas", "", "voices corpus folder whose personas.json opens the system prompts (default: --data when it is one)")
	fl.BoolVar(&in.NoPersona, "no-persona", false, `system prompts say "You are NAME." instead of the persona text`)
	fl.BoolVar(&trace, "trace", false, "ask the teacher for a reasoning trace of parallel lines too")
	fl.IntVar(&retries, "rewrite-retries", 2, "extra attempts at a malformed answer (needs --temperature > 0; -1: none)")
	return c
}

// synthStyleRun reads the inputs, opens the teacher when one is needed, runs
// the style-rewrite stage and prints its summary.
func (e *env) synthStyleRun(cmd *cobra.Command, mode synthMode, cf *synthCommon, tf *synthTeacherFlags, in synth.StyleInput, trace bool, retries int) error {
	com, err := cf.common()
	if err != nil {
		return err
	}
	if in.Data == "" {
		return usagef("--data is required")
	}
	if in.PairsFrom != "" && in.Character == "" {
		return usagef("--pairs-from needs --character (the styled voice)")
	}
	lines, probs, hints, err := synth.LoadStyleInput(in)
	if err != nil {
		return err
	}
	e.synthProblems(probs)
	if len(lines) == 0 {
		return fmt.Errorf("no usable lines in %s", in.Data)
	}
	needTeacher := synth.StyleNeedsTeacher(lines, trace)
	ui := &synthUI{e: e, quiet: cf.quiet}
	com.Progress, com.Logf = ui.progress, ui.logf
	var t *teacher.Opened
	if needTeacher || mode != synthLive {
		if t, err = tf.open(cmd, e, mode, cf.out); err != nil {
			return err
		}
		defer t.Close()
		com.UseTeacher(t)
	}
	sum, err := synth.RunStyleRewrite(cmd.Context(), synth.StyleConfig{Common: com, Lines: lines, Hints: hints,
		Trace: trace, Retries: retries, Problems: probs})
	ui.done()
	if err == nil && t != nil {
		err = finishBatch(e, t)
	}
	return e.synthReport(cf, sum, err)
}
