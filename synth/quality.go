package synth

import (
	"regexp"
	"strings"
	"unicode"
)

// Quality reasons: why an output is dropped (or flagged).
const (
	ReasonEmpty            = "empty"
	ReasonTruncated        = "truncated"
	ReasonBreaksCharacter  = "breaks_character"
	ReasonRefusal          = "refusal"
	ReasonWrongLanguage    = "wrong_language"
	ReasonNearDuplicate    = "near_duplicate"
	ReasonMalformedProfile = "malformed_profile"
	ReasonTooLong          = "prompt_too_long"
	ReasonRequestRejected  = "request_rejected"
)

// QualityOptions choose the checks run on every output.
type QualityOptions struct {
	// Language is the expected language code ("en", "fr", ...; "" or "any":
	// no language check). See DetectLanguage for what can be detected.
	Language string
	// MinChars is the shortest acceptable answer after trimming (default 1).
	MinChars int
	// AllowTruncated keeps outputs that stopped at the token limit
	// (finish_reason "length").
	AllowTruncated bool
	// SkipCharacterCheck and SkipRefusalCheck turn those checks off.
	SkipCharacterCheck, SkipRefusalCheck bool
}

// aiPatterns are first-person statements of being an AI or a model: a
// character that says them has broken character. Mentions of AI as a topic
// ("language models are...") are not matched.
var aiPatterns = regexp.MustCompile(`(?i)\b(` +
	`as an? (ai|a\.i\.|artificial intelligence|language model|large language model|llm|chatbot|virtual assistant|ai assistant|ai language model)` +
	`|i(?:'m| am) (?:just |only |merely |simply )?(?:an? )?(ai|a\.i\.|artificial intelligence|language model|large language model|llm|chatbot|virtual assistant|ai assistant|ai model|ai language model)\b` +
	`|i(?:'m| am) not (?:a real )?(?:person|human)\b.{0,40}\b(ai|model|program)` +
	`|(?:trained|created|developed|made) by (openai|anthropic|google|meta|mistral)` +
	`|my (training data|knowledge cutoff|knowledge cut-off|programming)\b` +
	`|i (?:do not|don't) have (?:personal )?(?:feelings|emotions|a body|personal experiences|consciousness)\b` +
	`)`)

// refusalPatterns are refusals; they are looked for in the first 300
// characters only, where a refusal begins, so that an in-character "I
// cannot believe it" later on does not count.
var refusalPatterns = regexp.MustCompile(`(?i)(` +
	`^\W*(i'm sorry|i am sorry|sorry|i apologi[sz]e|unfortunately)\b[^.!?]{0,60}\b(can't|cannot|can not|unable|won't|will not|not able)\b` +
	`|\bi (?:can't|cannot|can not|won't|will not|am unable to|am not able to|must decline to|have to decline to) (?:help|assist|comply|provide|fulfil+|do that|answer|engage|create|write|generate|support|continue|participate|role-?play)\b` +
	`|\b(?:this|that|your) request (?:is|goes) against\b` +
	`|\bi must (?:respectfully )?decline\b` +
	`)`)

// CheckText runs the quality checks on one output and returns the reasons
// it fails (nil when it passes). finish is the backend's finish reason.
func (o QualityOptions) CheckText(text, finish string) []string {
	var out []string
	t := strings.TrimSpace(text)
	minChars := max(o.MinChars, 1)
	if len([]rune(t)) < minChars {
		return []string{ReasonEmpty}
	}
	if finish == "length" && !o.AllowTruncated {
		out = append(out, ReasonTruncated)
	}
	if !o.SkipCharacterCheck && aiPatterns.MatchString(t) {
		out = append(out, ReasonBreaksCharacter)
	}
	if !o.SkipRefusalCheck {
		head := t
		if len(head) > 300 {
			head = head[:300]
		}
		if refusalPatterns.MatchString(head) {
			out = append(out, ReasonRefusal)
		}
	}
	if lang := strings.ToLower(o.Language); lang != "" && lang != "any" {
		if got := DetectLanguage(t); got != "" && got != lang {
			out = append(out, ReasonWrongLanguage)
		}
	}
	return out
}

// stopwords are very frequent function words of the Latin-script languages
// DetectLanguage tells apart. Words shared by several of these lists count
// for each.
var stopwords = map[string][]string{
	"en": strings.Fields("the and of to is in that it you was for on are with as his they be at this have from or had by not but what all were we when your can there an which their if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than been its who now people my over down only way did get"),
	"fr": strings.Fields("le la les de des du un une et est en que qui dans pour pas sur au aux avec ce cette il elle ils nous vous je tu ne se sont mais ou où son sa ses leur plus par comme être avoir fait très"),
	"de": strings.Fields("der die das und ist nicht ein eine einen mit sich auf für dem den des zu von im auch es ich du wir sie er war sind aber oder wie wenn noch nur bei aus nach so kann hat haben werden"),
	"es": strings.Fields("el la los las de del que y en un una es por con para no se su sus al lo como más pero mi muy ya está son fue ser hay también yo tú nosotros ellos esto eso donde cuando porque"),
	"it": strings.Fields("il lo la gli le di del della che e è un una per non con si su sono ma come più mi ti ci anche io tu noi voi loro questo quello nel alla dei delle perché quando molto"),
	"pt": strings.Fields("o a os as de do da dos das que e é um uma para com não se em no na por mais como mas ao seu sua eu você nós eles isso este esta muito quando também são foi ser"),
	"nl": strings.Fields("de het een en van is dat niet in op te voor met zijn er aan ook als maar om dan wat die was bij nog wel ik je we ze hij zij geen kan naar heeft worden hebben"),
}

var stopwordSets = func() map[string]map[string]bool {
	m := map[string]map[string]bool{}
	for lang, ws := range stopwords {
		s := map[string]bool{}
		for _, w := range ws {
			s[w] = true
		}
		m[lang] = s
	}
	return m
}()

// DetectLanguage guesses the language of text with a deliberately simple
// method, documented here because quality filtering depends on it:
//
//  1. Count letters by Unicode script. Text whose letters are mostly
//     Han is "zh" ("ja" if any Hiragana/Katakana is present), Hangul
//     "ko", Cyrillic "ru" (standing for any Cyrillic-script language),
//     Greek "el", Arabic "ar", Hebrew "he", Devanagari "hi", Thai "th".
//  2. Mostly Latin letters: count the words that are stopwords of English,
//     French, German, Spanish, Italian, Portuguese and Dutch; the language
//     with the most hits wins, if it has at least 2 hits and clearly more
//     (by a quarter) than the runner-up.
//
// It returns "" (unknown) for text with fewer than 12 letters, Latin text
// that the stopwords cannot decide, or any other script; unknown never
// counts as the wrong language.
func DetectLanguage(text string) string {
	counts := map[string]int{}
	letters := 0
	kana := false
	for _, r := range text {
		if !unicode.IsLetter(r) {
			continue
		}
		letters++
		switch {
		case unicode.Is(unicode.Latin, r):
			counts["latin"]++
		case unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r):
			kana = true
			counts["han"]++
		case unicode.Is(unicode.Han, r):
			counts["han"]++
		case unicode.Is(unicode.Hangul, r):
			counts["ko"]++
		case unicode.Is(unicode.Cyrillic, r):
			counts["ru"]++
		case unicode.Is(unicode.Greek, r):
			counts["el"]++
		case unicode.Is(unicode.Arabic, r):
			counts["ar"]++
		case unicode.Is(unicode.Hebrew, r):
			counts["he"]++
		case unicode.Is(unicode.Devanagari, r):
			counts["hi"]++
		case unicode.Is(unicode.Thai, r):
			counts["th"]++
		default:
			counts["other"]++
		}
	}
	if letters < 12 {
		return ""
	}
	best, bestN := "", 0
	for s, n := range counts {
		if n > bestN || (n == bestN && s < best) {
			best, bestN = s, n
		}
	}
	if bestN*2 <= letters {
		return "" // no script is the majority
	}
	switch best {
	case "han":
		if kana {
			return "ja"
		}
		return "zh"
	case "other":
		return ""
	case "latin":
	default:
		return best
	}
	hits := map[string]int{}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' }) {
		for lang, set := range stopwordSets {
			if set[w] {
				hits[lang]++
			}
		}
	}
	first, second, lang := 0, 0, ""
	for l, n := range hits {
		switch {
		case n > first || (n == first && l < lang):
			second = max(second, first)
			first, lang = n, l
		case n > second:
			second = n
		}
	}
	if first < 2 || float64(first) < 1.25*float64(second) {
		return ""
	}
	return lang
}
