package synth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/masque-ai/masque/chattemplate"
)

// StageStyle: stylised line → neutral rewrite, reasoning trace and a
// style-rewrite training row (METHODS §3).
const StageStyle = "style-rewrite"

// Deliverables of the style-rewrite stage.
const (
	// FileStyleRows holds one object per row: character, neutral, styled,
	// trace, source and the chat prompt (system, user).
	FileStyleRows = "style_rewrite.jsonl"
	// FileStyleChat holds the same rows as chat JSONL for masque finetune:
	// {"messages": [system, user, assistant]}.
	FileStyleChat = "style_rewrite.chat.jsonl"
)

// StylePromptVersion names the wording of the style-rewrite prompts (the
// teacher's and the training rows'); it is part of the stage's settings
// fingerprint.
const StylePromptVersion = "masque-style-rewrite-1"

// MaxTraceWords is the longest reasoning trace kept (METHODS §3: ≤ 100).
const MaxTraceWords = 100

// Quality reasons of the style-rewrite stage.
const (
	// ReasonMalformedRewrite: the teacher's answer has no "Neutral:" line
	// (or, when only a trace was asked for, no trace).
	ReasonMalformedRewrite = "malformed_rewrite"
	// ReasonLongTrace: the reasoning trace is over MaxTraceWords words.
	ReasonLongTrace = "trace_too_long"
)

// StyleLine is one stylised line of a character, with its neutral
// counterpart when one is known (parallel data: no teacher rewrite).
type StyleLine struct {
	// Character names the speaker (the key of StyleConfig.Hints).
	Character string
	// Styled is the line as the character said it.
	Styled string
	// Neutral is the same content in neutral words; empty: the teacher
	// writes it.
	Neutral string
	// Source says where the line came from (file:line, or a corpus key).
	Source string
}

// StyleHint is what a training prompt says about a character.
type StyleHint struct {
	// Persona is a persona text opening the system prompt ("" : "You are
	// <character>.").
	Persona string
	// Tags are the character's pragmatic style tags and Keywords its
	// lexical signature (from a style profile); both may be empty (then
	// the prompt has no profile conditioning).
	Tags     []string
	Keywords []string
}

// StyleSystemPrompt is the system prompt of a style-rewrite training row:
// the persona (or "You are NAME."), then the style tags and keywords when
// the hint has them.
func StyleSystemPrompt(character string, h StyleHint) string {
	var b strings.Builder
	if p := strings.TrimSpace(h.Persona); p != "" {
		b.WriteString(p)
	} else {
		fmt.Fprintf(&b, "You are %s.", character)
	}
	if len(h.Tags) > 0 {
		fmt.Fprintf(&b, "\nStyle: %s.", strings.Join(h.Tags, ", "))
	}
	if len(h.Keywords) > 0 {
		fmt.Fprintf(&b, "\nKeywords: %s.", strings.Join(h.Keywords, ", "))
	}
	return b.String()
}

// StyleUserPrompt is the user turn of a style-rewrite training row: the
// neutral content to say in the character's voice.
func StyleUserPrompt(neutral string) string {
	return "Rewrite in your own voice: " + oneLine(neutral)
}

// StyleTarget is the assistant turn of a style-rewrite training row:
// "<think>trace</think>" (when there is a trace) followed by the styled
// line.
func StyleTarget(trace, styled string) string {
	if trace = strings.TrimSpace(trace); trace == "" {
		return styled
	}
	return "<think>" + trace + "</think>" + styled
}

const styleTeacherSystem = `You are a literary editor. You separate what a character says from how the character says it.`

// StyleRewriteMessages is the request that has the teacher rewrite a
// stylised line neutrally and explain its style.
func StyleRewriteMessages(character string, h StyleHint, line string) []chattemplate.Message {
	user := fmt.Sprintf(`Character: %s
%sLine: %s

Do two things.
1. Rewrite the line as plain neutral English with exactly the same meaning: no particles, interjections, exclamations, emotion, forms of address or anything that shows who is speaking.
2. In at most %d words, explain how the character's emotion and motive shape the line: its sentence pattern, tone and choice of words.

Answer in exactly this form, with nothing else:
Neutral: <the neutral rewrite>
Reasoning: <the explanation>`, character, hintLines(h), oneLine(line), MaxTraceWords)
	return []chattemplate.Message{{Role: "system", Content: styleTeacherSystem}, {Role: "user", Content: user}}
}

// StyleTraceMessages is the request for a reasoning trace alone, for a
// line whose neutral counterpart is known.
func StyleTraceMessages(character string, h StyleHint, neutral, line string) []chattemplate.Message {
	user := fmt.Sprintf(`Character: %s
%sNeutral content: %s
The character's line: %s

In at most %d words, explain how the character's emotion and motive turn the neutral content into this line: its sentence pattern, tone and choice of words.

Answer in exactly this form, with nothing else:
Reasoning: <the explanation>`, character, hintLines(h), oneLine(neutral), oneLine(line), MaxTraceWords)
	return []chattemplate.Message{{Role: "system", Content: styleTeacherSystem}, {Role: "user", Content: user}}
}

func hintLines(h StyleHint) string {
	var b strings.Builder
	if len(h.Tags) > 0 {
		fmt.Fprintf(&b, "Style tags: %s\n", strings.Join(h.Tags, ", "))
	}
	if len(h.Keywords) > 0 {
		fmt.Fprintf(&b, "Keywords: %s\n", strings.Join(h.Keywords, ", "))
	}
	return b.String()
}

// styleLabel matches a "Neutral:" or "Reasoning:" label at the start of a
// line, with optional list markers and markdown emphasis.
var styleLabel = regexp.MustCompile(`(?im)^[\s>*#\-•\d.]*\**\s*(neutral(?: rewrite| sentence| version)?|reasoning|trace)\s*\**\s*:\s*\**`)

// ParseStyleRewrite reads a teacher's answer: the text after "Neutral:"
// and after "Reasoning:" (labels without case, markdown emphasis and list
// markers ignored; each runs to the next label). Missing labels give empty
// strings.
func ParseStyleRewrite(text string) (neutral, trace string) {
	text = cleanOutput(text)
	locs := styleLabel.FindAllStringSubmatchIndex(text, -1)
	for i, m := range locs {
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		val := strings.TrimSpace(strings.Trim(strings.TrimSpace(text[m[1]:end]), "*"))
		val = oneLine(val)
		label := strings.ToLower(text[m[2]:m[3]])
		switch {
		case strings.HasPrefix(label, "neutral"):
			if neutral == "" {
				neutral = val
			}
		default:
			if trace == "" {
				trace = val
			}
		}
	}
	return strings.Trim(neutral, `"`), trace
}

// StyleConfig configures RunStyleRewrite.
type StyleConfig struct {
	Common
	// Lines are the stylised lines (identical character, line and neutral
	// triples are done once). A line with Neutral is parallel data; one
	// without is rewritten by the teacher.
	Lines []StyleLine
	// Hints describe each character in the training prompts (a missing
	// character gets "You are NAME." only).
	Hints map[string]StyleHint
	// Trace asks the teacher for a reasoning trace of parallel lines too
	// (needs a teacher); without it parallel rows have no trace.
	Trace bool
	// Retries is how many more times a malformed answer is asked for, with
	// a new seed (only when Temperature > 0; default 2, < 0: none).
	Retries int
	// Problems are input problems to carry into the summary.
	Problems []Problem
}

// styleRow is a line of the style-rewrite log.
type styleRow struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Neutral  string   `json:"neutral"`
	Styled   string   `json:"styled"`
	Trace    string   `json:"trace,omitempty"`
	Source   string   `json:"source,omitempty"`
	System   string   `json:"system"`
	User     string   `json:"user"`
	Parallel bool     `json:"parallel,omitempty"`
	Attempts int      `json:"attempts,omitempty"`
	Finish   string   `json:"finish_reason,omitempty"`
	Flags    []string `json:"flags,omitempty"`
}

func (r *styleRow) setFlags(f []string) { r.Flags = f }

// StyleRowID is the row id of a stylised line (with its known neutral
// counterpart, "" when the teacher writes it).
func StyleRowID(character, styled, neutral string) string {
	return RowID("style-rewrite", character, styled, neutral)
}

// RunStyleRewrite turns stylised lines into style-rewrite training rows
// (METHODS §3): for a line without a neutral counterpart the teacher
// writes a neutral rewrite and a reasoning trace of at most MaxTraceWords
// words; a parallel line (Neutral given) needs no teacher, and gets a
// trace only with Trace. Each row's prompt holds the character (persona),
// its style tags and keywords (Hints) and the neutral content; its target
// is "<think>trace</think>" + the original line (the line alone without a
// trace). Kept rows go to the style-rewrite log; when the run covers the
// whole job, style_rewrite.jsonl and style_rewrite.chat.jsonl are built
// from it. Resumption, the response cache, sharding and batch export work
// as in the other stages.
func RunStyleRewrite(ctx context.Context, cfg StyleConfig) (*Summary, error) {
	byID := map[string]StyleLine{}
	var ids []string
	needTeacher := false
	problems := cfg.Problems
	for _, l := range cfg.Lines {
		l.Styled, l.Neutral = strings.TrimSpace(l.Styled), strings.TrimSpace(l.Neutral)
		if l.Styled == "" || strings.TrimSpace(l.Character) == "" {
			problems = append(problems, Problem{l.Source, 0, "a style line needs a character and a non-empty line; skipped"})
			continue
		}
		id := StyleRowID(l.Character, l.Styled, l.Neutral)
		if _, ok := byID[id]; ok {
			continue
		}
		byID[id] = l
		ids = append(ids, id)
		if l.Neutral == "" || cfg.Trace {
			needTeacher = true
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no style lines")
	}
	if needTeacher && cfg.Teacher == nil {
		if cfg.Trace {
			return nil, errors.New("traces need a teacher")
		}
		return nil, errors.New("lines without a neutral counterpart need a teacher to rewrite them (or give parallel data)")
	}
	retries := cfg.Retries
	if retries == 0 {
		retries = 2
	}
	if retries < 0 || cfg.Temperature <= 0 {
		retries = 0
	}
	settings := cfg.settings()
	settings["stage"] = StageStyle
	settings["style_prompts"] = StylePromptVersion
	settings["retries"] = fmt.Sprint(retries)
	settings["trace"] = fmt.Sprint(cfg.Trace)
	settings["hints"] = hintsKey(cfg.Hints)
	if !needTeacher {
		// No request is made: the teacher's settings do not shape the rows.
		for _, k := range []string{"teacher", "seed", "max_tokens", "temperature", "top_p", "retries"} {
			delete(settings, k)
		}
	}
	r, err := openRunner(&cfg.Common, StageStyle, settings, ids)
	if err != nil {
		return nil, err
	}
	runErr := r.run(ctx, func(ctx context.Context, id string) (outcome, error) {
		l := byID[id]
		h := cfg.Hints[l.Character]
		row := &styleRow{ID: id, Name: l.Character, Styled: l.Styled, Neutral: l.Neutral, Source: l.Source,
			System: StyleSystemPrompt(l.Character, h), Parallel: l.Neutral != ""}
		if row.Parallel && !cfg.Trace {
			// Given data, not generated: no quality checks.
			row.User = StyleUserPrompt(row.Neutral)
			return outcome{row: row}, nil
		}
		var reasons []string
		for attempt := 0; attempt <= retries; attempt++ {
			var msgs []chattemplate.Message
			if row.Parallel {
				msgs = StyleTraceMessages(l.Character, h, l.Neutral, l.Styled)
			} else {
				msgs = StyleRewriteMessages(l.Character, h, l.Styled)
			}
			resp, err := cfg.Teacher.Complete(ctx, cfg.request(msgs, id, attempt, 384))
			if err != nil {
				return outcome{}, err
			}
			neutral, trace := ParseStyleRewrite(resp.Text)
			row.Attempts, row.Finish, row.Trace = attempt+1, resp.FinishReason, trace
			if !row.Parallel {
				row.Neutral = neutral
			}
			reasons = cfg.Quality.CheckText(row.Neutral+"\n"+row.Trace, resp.FinishReason)
			if row.Neutral == "" || (row.Parallel && row.Trace == "") {
				reasons = append(reasons, ReasonMalformedRewrite)
			}
			if len(strings.Fields(row.Trace)) > MaxTraceWords {
				reasons = append(reasons, ReasonLongTrace)
			}
			if len(reasons) == 0 {
				break
			}
		}
		row.User = StyleUserPrompt(row.Neutral)
		return outcome{row: row, reasons: reasons}, nil
	})
	sum, err := r.finish(problems)
	if runErr != nil {
		return sum, runErr
	}
	return sum, err
}

// hintsKey fingerprints the hints.
func hintsKey(h map[string]StyleHint) string {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		x := h[n]
		parts = append(parts, n, x.Persona, strings.Join(x.Tags, "\x1f"), strings.Join(x.Keywords, "\x1f"))
	}
	return RowID("style-hints", parts...)
}
