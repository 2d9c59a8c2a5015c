package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/style"
	"github.com/masque-ai/masque/synth"
	"github.com/masque-ai/masque/synth/teacher"
)

func (e *env) synthStyleCmd(mode synthMode) *cobra.Command {
	var cf synthCommon
	var tf synthTeacherFlags
	var data, character, split, pairsFrom, profile, personas string
	var maxWords, keywords, sample, retries int
	var trace, noPersona bool
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
			com, err := cf.common()
			if err != nil {
				return err
			}
			if data == "" {
				return usagef("--data is required")
			}
			var lines []synth.StyleLine
			var probs []synth.Problem
			if pairsFrom != "" {
				if character == "" {
					return usagef("--pairs-from needs --character (the styled voice)")
				}
				lines, probs, err = synth.ReadVoicePairs(data, pairsFrom, character, split, maxWords)
			} else {
				lines, probs, err = synth.ReadStyleLines(data, character, split)
			}
			if err != nil {
				return err
			}
			lines = synth.SampleStyleLines(lines, sample)
			e.synthProblems(probs)
			if len(lines) == 0 {
				return fmt.Errorf("no usable lines in %s", data)
			}
			hints := map[string]synth.StyleHint{}
			if !noPersona {
				if personas == "" {
					if st, err := os.Stat(data); err == nil && st.IsDir() {
						personas = data
					}
				}
				if personas != "" {
					vs, err := synth.ReadVoicePersonas(personas)
					if err != nil {
						return err
					}
					for _, v := range vs {
						hints[v.Name] = synth.StyleHint{Persona: v.Persona}
					}
				}
			}
			if profile != "" {
				set, err := style.Load(profile)
				if err != nil {
					return err
				}
				for _, p := range set.Characters {
					h := hints[p.Name]
					h.Tags, h.Keywords = p.OnTags(), p.KeywordWords(keywords)
					hints[p.Name] = h
				}
			}
			needTeacher := trace
			for _, l := range lines {
				needTeacher = needTeacher || l.Neutral == ""
			}
			ui := &synthUI{e: e, quiet: cf.quiet}
			com.Progress, com.Logf = ui.progress, ui.logf
			var t *teacher.Opened
			if needTeacher || mode != synthLive {
				if t, err = tf.open(cmd, e, mode, cf.out); err != nil {
					return err
				}
				defer t.Close()
				com.Teacher, com.TeacherModel = t.Teacher, t.Model
				if com.Workers == 0 {
					com.Workers = max(t.Workers, 4)
				}
			}
			sum, err := synth.RunStyleRewrite(cmd.Context(), synth.StyleConfig{Common: com, Lines: lines, Hints: hints,
				Trace: trace, Retries: retries, Problems: probs})
			ui.done()
			if err == nil && t != nil {
				err = finishBatch(e, t)
			}
			return e.synthReport(&cf, sum, err)
		},
	}
	cf.register(c)
	tf.register(c, mode)
	fl := c.Flags()
	fl.StringVar(&data, "data", "", "stylised lines: a voices corpus folder, a .jsonl of {character,text[,neutral]} rows, or a text file")
	fl.StringVar(&character, "character", "", "the character: of a text file, of JSONL rows without one, the voice of a corpus (the styled voice with --pairs-from)")
	fl.StringVar(&split, "split", "train", "voices corpus split to read")
	fl.StringVar(&pairsFrom, "pairs-from", "", "voices corpus: the neutral voice paired by contrast key with --character (parallel data, no teacher)")
	fl.IntVar(&maxWords, "max-words", 0, "with --pairs-from: cut each pair into sentence-aligned segments of at most N words (0: whole passages)")
	fl.IntVar(&sample, "sample", 0, "keep N lines chosen evenly through the input (0: all)")
	fl.StringVar(&profile, "profile", "", "style profile (masque style profile) whose tags and keywords go into the prompts")
	fl.IntVar(&keywords, "keywords", 10, "keywords of the profile put in each prompt")
	fl.StringVar(&personas, "personas", "", "voices corpus folder whose personas.json opens the system prompts (default: --data when it is one)")
	fl.BoolVar(&noPersona, "no-persona", false, `system prompts say "You are NAME." instead of the persona text`)
	fl.BoolVar(&trace, "trace", false, "ask the teacher for a reasoning trace of parallel lines too")
	fl.IntVar(&retries, "rewrite-retries", 2, "extra attempts at a malformed answer (needs --temperature > 0; -1: none)")
	return c
}
