package synth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ReadStyleLines reads stylised lines from path:
//   - a voices corpus folder (personas.json and VOICE/SPLIT.jsonl): every
//     row of split ("train" when empty) of every voice, or of the voice
//     named character, the voice being the character;
//   - a .jsonl file: rows {"character", "text"} (or "styled" or "line" for
//     the text), with an optional "neutral" counterpart (parallel data) and
//     "source"; rows without a character get character;
//   - any other file: plain text, one line of character per line.
//
// Unusable rows come back as problems; err is for a file that cannot be
// read at all.
func ReadStyleLines(path, character, split string) ([]StyleLine, []Problem, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		return readVoiceLines(path, character, split)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	jsonl := strings.EqualFold(filepath.Ext(path), ".jsonl") || strings.EqualFold(filepath.Ext(path), ".ndjson")
	if !jsonl && character == "" {
		return nil, nil, fmt.Errorf("%s: a plain-text file holds one character's lines: name the character", path)
	}
	var out []StyleLine
	var probs []Problem
	err = eachLine(f, func(line int, data []byte, tooLong bool) {
		src := fmt.Sprintf("%s:%d", path, line)
		if tooLong {
			probs = append(probs, Problem{path, line, "line too long"})
			return
		}
		if !jsonl {
			if t := strings.TrimSpace(string(data)); t != "" {
				out = append(out, StyleLine{Character: character, Styled: t, Source: src})
			}
			return
		}
		if strings.TrimSpace(string(data)) == "" {
			return
		}
		var row map[string]json.RawMessage
		if err := json.Unmarshal(data, &row); err != nil {
			probs = append(probs, Problem{path, line, "not a JSON object: " + err.Error()})
			return
		}
		var l StyleLine
		var errs []error
		get := func(keys ...string) string {
			s, err := stringField(row, keys...)
			errs = append(errs, err)
			return strings.TrimSpace(s)
		}
		l.Character, l.Styled, l.Neutral, l.Source = get("character"), get("styled", "text", "line"), get("neutral"), get("source")
		if err := errors.Join(errs...); err != nil {
			probs = append(probs, Problem{path, line, err.Error()})
			return
		}
		if l.Character == "" {
			l.Character = character
		}
		switch {
		case l.Character == "":
			probs = append(probs, Problem{path, line, `the row has no "character" (or give a default character)`})
		case l.Styled == "":
			probs = append(probs, Problem{path, line, `the row has no "text" (or "styled")`})
		default:
			if l.Source == "" {
				l.Source = src
			}
			out = append(out, l)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, probs, nil
}

// voiceRow is the part of a voices-corpus row that synth reads.
type voiceRow struct {
	ID    string `json:"id"`
	Voice string `json:"voice"`
	Key   string `json:"key"`
	Text  string `json:"text"`
}

// VoicePersona is a voice of a voices corpus's personas.json.
type VoicePersona struct {
	Name    string `json:"name"`
	Persona string `json:"persona"`
}

// ReadVoicePersonas reads the personas.json of a voices corpus folder.
func ReadVoicePersonas(dir string) ([]VoicePersona, error) {
	path := filepath.Join(dir, "personas.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s is not a voices corpus folder: %v", dir, err)
	}
	var p struct {
		Voices []VoicePersona `json:"voices"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(p.Voices) == 0 {
		return nil, fmt.Errorf("%s lists no voices", path)
	}
	return p.Voices, nil
}

func readVoiceRows(dir, voice, split string) ([]voiceRow, []Problem, error) {
	path := filepath.Join(dir, voice, split+".jsonl")
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var out []voiceRow
	var probs []Problem
	err = eachLine(f, func(line int, data []byte, tooLong bool) {
		var r voiceRow
		switch {
		case tooLong:
			probs = append(probs, Problem{path, line, "line too long"})
		case json.Unmarshal(data, &r) != nil:
			probs = append(probs, Problem{path, line, "not a voices corpus row"})
		case strings.TrimSpace(r.Text) != "":
			out = append(out, r)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, probs, nil
}

func readVoiceLines(dir, character, split string) ([]StyleLine, []Problem, error) {
	if split == "" {
		split = "train"
	}
	ps, err := ReadVoicePersonas(dir)
	if err != nil {
		return nil, nil, err
	}
	var out []StyleLine
	var probs []Problem
	found := false
	for _, p := range ps {
		if character != "" && p.Name != character {
			continue
		}
		found = true
		rows, pr, err := readVoiceRows(dir, p.Name, split)
		if err != nil {
			return nil, nil, err
		}
		probs = append(probs, pr...)
		for _, r := range rows {
			out = append(out, StyleLine{Character: p.Name, Styled: r.Text, Source: r.ID})
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("%s: no voice %q in personas.json", dir, character)
	}
	return out, probs, nil
}

// ReadVoicePairs pairs the rows of two voices of a voices corpus that
// share a contrast key (e.g. the WEB and KJV renderings of the same verses)
// in split: each pair is a parallel StyleLine of the styled voice whose
// neutral counterpart is the neutral voice's text. With maxWords > 0 each
// pair is cut into aligned segments of at most about maxWords words (see
// AlignSentences; a single aligned bead may be longer); the source is then
// "KEY#i". Keys found in one voice only are reported as problems.
func ReadVoicePairs(dir, neutralVoice, styledVoice, split string, maxWords int) ([]StyleLine, []Problem, error) {
	if split == "" {
		split = "train"
	}
	nrows, p1, err := readVoiceRows(dir, neutralVoice, split)
	if err != nil {
		return nil, nil, err
	}
	srows, p2, err := readVoiceRows(dir, styledVoice, split)
	if err != nil {
		return nil, nil, err
	}
	probs := append(p1, p2...)
	byKey := map[string]string{}
	for _, r := range nrows {
		if r.Key != "" {
			byKey[r.Key] = r.Text
		}
	}
	var out []StyleLine
	used := map[string]bool{}
	for _, r := range srows {
		n, ok := byKey[r.Key]
		if r.Key == "" || !ok {
			probs = append(probs, Problem{filepath.Join(dir, styledVoice, split+".jsonl"), 0, fmt.Sprintf("row %s: no %s row with key %q", r.ID, neutralVoice, r.Key)})
			continue
		}
		used[r.Key] = true
		if maxWords <= 0 {
			out = append(out, StyleLine{Character: styledVoice, Styled: r.Text, Neutral: n, Source: r.Key})
			continue
		}
		for i, seg := range Segments(AlignSentences(SplitSentences(n), SplitSentences(r.Text)), maxWords) {
			out = append(out, StyleLine{Character: styledVoice, Neutral: seg[0], Styled: seg[1], Source: fmt.Sprintf("%s#%d", r.Key, i+1)})
		}
	}
	for _, r := range nrows {
		if !used[r.Key] {
			probs = append(probs, Problem{filepath.Join(dir, neutralVoice, split+".jsonl"), 0, fmt.Sprintf("row %s: no %s row with key %q", r.ID, styledVoice, r.Key)})
		}
	}
	if len(out) == 0 {
		return nil, probs, fmt.Errorf("%s: no %s and %s rows share a key in the %s split", dir, neutralVoice, styledVoice, split)
	}
	return out, probs, nil
}

// sentenceEnd is the end of a sentence: ., ! or ? (with closing quotes or
// brackets) before white space.
var sentenceEnd = regexp.MustCompile(`[.!?]["'”’)\]]*\s+`)

// SplitSentences cuts text at sentence ends (., ! or ?, with any closing
// quotes or brackets, followed by white space).
func SplitSentences(text string) []string {
	text = strings.TrimSpace(text)
	var out []string
	last := 0
	for _, m := range sentenceEnd.FindAllStringIndex(text, -1) {
		if s := strings.TrimSpace(text[last:m[1]]); s != "" {
			out = append(out, s)
		}
		last = m[1]
	}
	if s := strings.TrimSpace(text[last:]); s != "" {
		out = append(out, s)
	}
	return out
}

// alignBeads are the bead shapes AlignSentences allows (sentences of a,
// sentences of b) with their prior probabilities: Gale and Church's (1993)
// 1-1 0.89, 2-1 and 1-2 0.089 together, 2-2 0.011, and 3-1/1-3 at 0.005
// each for long sentences split in three. 1-0 and 0-1 are left out: both
// texts render the same verses.
var alignBeads = []struct {
	a, b  int
	prior float64
}{{1, 1, 0.89}, {2, 1, 0.0445}, {1, 2, 0.0445}, {2, 2, 0.011}, {3, 1, 0.005}, {1, 3, 0.005}}

// AlignSentences aligns two renderings of the same text sentence by
// sentence (Gale and Church 1993, "A program for aligning sentences in
// bilingual corpora"): dynamic programming over beads of 1–3 sentences,
// each costing −log prior − log P(length match), where the length match of
// l1 and l2 characters is 2(1 − Φ(|δ|)), δ = (l2 − c·l1)/√(s²·(l1 + l2/c)/2),
// s² = 6.8 and c the ratio of the two texts' lengths. It returns the aligned
// pairs of joined sentences (nil when either side is empty).
func AlignSentences(a, b []string) [][2]string {
	if len(a) == 0 || len(b) == 0 {
		return nil
	}
	la, lb := lengths(a), lengths(b)
	c := float64(lb[len(b)]) / float64(max(la[len(a)], 1)) // l2 ≈ c·l1
	if c <= 0 {
		c = 1
	}
	const s2 = 6.8
	inf := math.Inf(1)
	cost := make([][]float64, len(a)+1)
	back := make([][]int, len(a)+1)
	for i := range cost {
		cost[i] = make([]float64, len(b)+1)
		back[i] = make([]int, len(b)+1)
		for j := range cost[i] {
			cost[i][j] = inf
		}
	}
	cost[0][0] = 0
	for i := 0; i <= len(a); i++ {
		for j := 0; j <= len(b); j++ {
			if i == 0 && j == 0 {
				continue
			}
			for k, bd := range alignBeads {
				if bd.a > i || bd.b > j || math.IsInf(cost[i-bd.a][j-bd.b], 1) {
					continue
				}
				l1 := float64(la[i] - la[i-bd.a])
				l2 := float64(lb[j] - lb[j-bd.b])
				mean := (l1 + l2/c) / 2
				delta := 0.0
				if mean > 0 {
					delta = (l2 - c*l1) / math.Sqrt(s2*mean)
				}
				p := math.Erfc(math.Abs(delta) / math.Sqrt2)
				x := cost[i-bd.a][j-bd.b] - math.Log(bd.prior) - math.Log(math.Max(p, 1e-300))
				if x < cost[i][j] {
					cost[i][j], back[i][j] = x, k
				}
			}
		}
	}
	if math.IsInf(cost[len(a)][len(b)], 1) {
		// Only reachable with shapes the beads cannot tile: one pair.
		return [][2]string{{strings.Join(a, " "), strings.Join(b, " ")}}
	}
	var out [][2]string
	for i, j := len(a), len(b); i > 0 || j > 0; {
		bd := alignBeads[back[i][j]]
		out = append(out, [2]string{strings.Join(a[i-bd.a:i], " "), strings.Join(b[j-bd.b:j], " ")})
		i, j = i-bd.a, j-bd.b
	}
	for l, r := 0, len(out)-1; l < r; l, r = l+1, r-1 {
		out[l], out[r] = out[r], out[l]
	}
	return out
}

// lengths returns the cumulative character counts of the sentences.
func lengths(ss []string) []int {
	out := make([]int, len(ss)+1)
	for i, s := range ss {
		out[i+1] = out[i] + len([]rune(s))
	}
	return out
}

// Segments joins consecutive aligned pairs into segments of at most
// maxWords words on either side (a pair longer than that on its own is one
// segment).
func Segments(pairs [][2]string, maxWords int) [][2]string {
	var out [][2]string
	var cur [2][]string
	wa, wb := 0, 0
	flush := func() {
		if len(cur[0]) > 0 {
			out = append(out, [2]string{strings.Join(cur[0], " "), strings.Join(cur[1], " ")})
		}
		cur, wa, wb = [2][]string{}, 0, 0
	}
	for _, p := range pairs {
		na, nb := len(strings.Fields(p[0])), len(strings.Fields(p[1]))
		if len(cur[0]) > 0 && (wa+na > maxWords || wb+nb > maxWords) {
			flush()
		}
		cur[0], cur[1] = append(cur[0], p[0]), append(cur[1], p[1])
		wa, wb = wa+na, wb+nb
	}
	flush()
	return out
}

// SampleStyleLines keeps n of the lines chosen evenly through them, in
// order (all of them when n <= 0 or there are not more than n).
func SampleStyleLines(lines []StyleLine, n int) []StyleLine {
	if n <= 0 || len(lines) <= n {
		return lines
	}
	out := make([]StyleLine, n)
	for i := range out {
		out[i] = lines[i*len(lines)/n]
	}
	return out
}
