package synth

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/masque-ai/masque/chattemplate"
)

// PromptVersion names the wording of the prompts below. It is part of every
// run's settings fingerprint, so an output folder made with other prompts
// is never silently continued.
const PromptVersion = "masque-synth-prompts-1"

// ProfileFields are the fields of a character profile, in order. The first
// line of a profile is "Name: ...".
var ProfileFields = []string{"Name", "Age", "Gender", "Race", "Birthplace", "Appearance", "General experience", "Personality"}

const profileSystem = `You are a novelist who designs believable, specific fictional characters. You write character profiles that an actor could play from.`

// ProfileMessages is the request that expands a persona into a character
// profile.
func ProfileMessages(persona string) []chattemplate.Message {
	var fields strings.Builder
	for _, f := range ProfileFields {
		fmt.Fprintf(&fields, "%s: ...\n", f)
	}
	user := fmt.Sprintf(`Invent a character who fits this persona:

%s

Write the character's profile as plain text, one field per line, exactly in this order:

%s
Rules:
- The first line must be "Name: " followed by the character's full name.
- Age is a number of years. Race may be an ethnicity or, for fantasy settings, a species.
- Appearance, General experience and Personality are each one to three concrete sentences that fit the persona.
- Output only the profile: no title, no notes, no markdown.`, persona, fields.String())
	return []chattemplate.Message{{Role: "system", Content: profileSystem}, {Role: "user", Content: user}}
}

// Profile is a parsed character profile.
type Profile struct {
	// Name is the value of the first line when it is "Name: ...".
	Name string
	// Fields maps each recognised field (as spelled in ProfileFields) to its
	// value.
	Fields map[string]string
	// Missing lists the ProfileFields that are absent or empty.
	Missing []string
	// NameFirst reports whether the first non-empty line is "Name: ...".
	NameFirst bool
}

// ParseProfile reads "Field: value" lines (field names compared without
// case, markdown emphasis ignored; a line that is not a "Label: value" line
// continues the previous field's value).
func ParseProfile(text string) Profile {
	p := Profile{Fields: map[string]string{}}
	known := map[string]string{}
	for _, f := range ProfileFields {
		known[strings.ToLower(f)] = f
	}
	last := ""
	first := true
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		clean := strings.TrimLeft(line, "-*#• ")
		label, value, ok := strings.Cut(clean, ":")
		label = strings.ToLower(strings.TrimSpace(strings.Trim(label, "*_ ")))
		value = strings.TrimSpace(strings.Trim(strings.TrimSpace(value), "*_"))
		f, isField := known[label]
		if ok && isField {
			if first && f == "Name" {
				p.NameFirst = true
			}
			if _, seen := p.Fields[f]; !seen {
				p.Fields[f] = value
			}
			last = f
		} else if ok && looksLikeLabel(label) {
			last = "" // another field: not one of ours
		} else if last != "" {
			p.Fields[last] = strings.TrimSpace(p.Fields[last] + " " + line)
		}
		first = false
	}
	if p.NameFirst {
		p.Name = p.Fields["Name"]
	}
	for _, f := range ProfileFields {
		if strings.TrimSpace(p.Fields[f]) == "" {
			p.Missing = append(p.Missing, f)
		}
	}
	return p
}

// looksLikeLabel reports whether s (before a colon) reads as a field name:
// one to four words of letters.
func looksLikeLabel(s string) bool {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 4 {
		return false
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && r != ' ' && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// Valid reports whether the profile starts with a name line and has every
// field.
func (p Profile) Valid() bool { return p.NameFirst && p.Name != "" && len(p.Missing) == 0 }

// Problem describes what makes the profile invalid ("" when it is valid).
func (p Profile) Problem() string {
	switch {
	case !p.NameFirst || p.Name == "":
		return `the first line is not "Name: ..."`
	case len(p.Missing) > 0:
		return "missing fields: " + strings.Join(p.Missing, ", ")
	}
	return ""
}

// Answer strategies of OpenCharacter.
const (
	// StrategyR rewrites the reference answer in character, keeping its
	// facts (OpenCharacter-R).
	StrategyR = "r"
	// StrategyG writes a fresh in-character answer (OpenCharacter-G).
	StrategyG = "g"
)

const answerSystem = `You are an expert at role-play. You answer exactly as a given character would: in their voice, with their knowledge, history, attitudes and habits of speech. You never step out of character.`

// characterName is the profile's name, or "the character".
func characterName(profile string) string {
	if n := ParseProfile(profile).Name; n != "" {
		return n
	}
	return "the character"
}

// AnswerMessages is the request for an in-character answer by strategy R
// (rewrite reference, which must not be empty) or G (fresh answer).
func AnswerMessages(strategy, profile, question, reference string) []chattemplate.Message {
	name := characterName(profile)
	var user string
	if strategy == StrategyR {
		user = fmt.Sprintf(`Character profile:
%s

Question:
%s

Reference answer:
%s

Rewrite the reference answer as %s would say it in reply to the question. Keep every fact, step, number and conclusion of the reference answer, but use the character's voice, vocabulary, tone and attitude. Do not say that you are rewriting anything, do not add a preface, and do not break character. Output only %s's answer.`, profile, question, reference, name, name)
	} else {
		user = fmt.Sprintf(`Character profile:
%s

Question:
%s

Answer the question as %s, fully in character: speak in their voice, draw on their background and personality, and be genuinely helpful where the character would be. Do not mention being an AI or a language model, do not add a preface, and do not break character. Output only %s's answer.`, profile, question, name, name)
	}
	return []chattemplate.Message{{Role: "system", Content: answerSystem}, {Role: "user", Content: user}}
}

// CharacterSystemPrompt is the system prompt of the chat rows made for
// fine-tuning on OpenCharacter data: the persona and the profile.
func CharacterSystemPrompt(persona, profile string) string {
	return fmt.Sprintf("You are %s. Stay in character in every reply.\n\nPersona: %s\n\nCharacter profile:\n%s",
		characterName(profile), persona, profile)
}

// Persona-Pruner rewrite modes.
const (
	// ModeRewrite rewrites the reference answer in the persona's voice.
	ModeRewrite = "rewrite"
	// ModeDirect drops the reference answer and asks for a direct
	// in-persona answer.
	ModeDirect = "direct"
)

// ParseModes parses a comma-separated list of rewrite modes (ModeRewrite,
// ModeDirect); empty entries are skipped.
func ParseModes(s string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			if m != ModeRewrite && m != ModeDirect {
				return nil, fmt.Errorf("%q is not rewrite or direct", m)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

const pruneSystemRewrite = `You are an expert role-play actor. Your job is to rewrite answers so that they read exactly as a given persona would say them.

Guidelines:
1. Total immersion: you are the persona. Never mention being an AI, an actor, a model or a rewrite.
2. Voice and tone: use the persona's vocabulary, rhythm, attitude, concerns and habits of speech.
3. Keep the facts: every fact, step, number and conclusion of the original answer must survive the rewrite.
4. No preaching: do not moralise, lecture or add disclaimers that the persona would not add.
5. Output only the rewritten answer, with no preface, notes or quotation marks.`

const pruneSystemDirect = `You are an expert role-play actor. Your job is to answer questions exactly as a given persona would.

Guidelines:
1. Total immersion: you are the persona. Never mention being an AI, an actor or a model.
2. Voice and tone: use the persona's vocabulary, rhythm, attitude, concerns and habits of speech.
3. Be helpful: answer the question correctly and completely, as the persona would.
4. No preaching: do not moralise, lecture or add disclaimers that the persona would not add.
5. Output only the answer, with no preface, notes or quotation marks.`

// PersonaRewriteMessages is the Persona-Pruner stage A request (METHODS §1):
// the expert role-play actor system prompt with its guidelines, and a user
// prompt with the persona, question and original answer blocks followed by
// the task line. ModeDirect drops the original answer block.
func PersonaRewriteMessages(mode, persona, question, reference string) []chattemplate.Message {
	if mode == ModeDirect {
		user := fmt.Sprintf("### Persona\n%s\n\n### Question\n%s\n\nAnswer the question in the voice of the persona above.", persona, question)
		return []chattemplate.Message{{Role: "system", Content: pruneSystemDirect}, {Role: "user", Content: user}}
	}
	user := fmt.Sprintf("### Persona\n%s\n\n### Question\n%s\n\n### Original answer\n%s\n\nRewrite the original answer in the voice of the persona above, keeping all of its facts.", persona, question, reference)
	return []chattemplate.Message{{Role: "system", Content: pruneSystemRewrite}, {Role: "user", Content: user}}
}

// PersonaTrainingSystem is the system prompt of Persona-Pruner training rows
// (METHODS §1 stage A, step 4).
func PersonaTrainingSystem(persona string) string {
	return "You are roleplaying as a user with this persona: " + persona + "\nAnswer the question, roleplay as the given persona."
}

// ReferencePersonas are the fixed contrast personas R of the persona
// sensitivity score: ten deliberately varied people.
var ReferencePersonas = []string{
	"A retired merchant-navy captain from Glasgow who spent forty years at sea, speaks bluntly, trusts charts more than people, and measures every problem in knots and tides.",
	"A cheerful nine-year-old from a small farming town who loves dinosaurs, asks 'why' about everything, and explains the world in terms of recess, pets and snacks.",
	"A meticulous tax accountant in her fifties from Frankfurt who values rules, precision and punctuality, and distrusts anything that cannot be itemised.",
	"A laid-back surf instructor in his twenties from the coast of Portugal who lives for the next swell, talks in easy slang and sees life as a wave to ride.",
	"A Buddhist monk in his seventies who has spent decades in a mountain monastery, speaks slowly and gently, and answers with patience, parables and silence.",
	"An ambitious tech start-up founder from Silicon Valley who pitches everything, thinks in growth metrics and disruption, and is always one meeting away from the next round.",
	"A medieval blacksmith in a fortified village who knows iron, fire and horses, fears the lord's tax collector, and has never seen a book.",
	"A sharp-tongued investigative journalist from New York who questions every claim, chases sources, and hates spin more than anything.",
	"A gentle hospice nurse from Manila who has sat with hundreds of patients at the end of life, and speaks with warmth, faith and practical care.",
	"A competitive chess grandmaster from Moscow who thinks twenty moves ahead, speaks in precise, cool sentences and treats every conversation as a game.",
}
