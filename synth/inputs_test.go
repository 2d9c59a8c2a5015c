package synth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/masque-ai/masque/persona"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pngWithText returns a 1×1 PNG with a tEXt chunk key=value before IEND.
func pngWithText(t *testing.T, key, value string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	iend := bytes.LastIndex(data, []byte("IEND")) - 4
	body := append([]byte(key+"\x00"), value...)
	chunk := make([]byte, 8+len(body)+4)
	binary.BigEndian.PutUint32(chunk, uint32(len(body)))
	copy(chunk[4:], "tEXt")
	copy(chunk[8:], body)
	binary.BigEndian.PutUint32(chunk[8+len(body):], crc32.ChecksumIEEE(chunk[4:8+len(body)]))
	out := append([]byte{}, data[:iend]...)
	out = append(out, chunk...)
	return append(out, data[iend:]...)
}

const cardV2 = `{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Mira","description":"{{char}} is a sky pirate who talks to {{user}} in riddles.","personality":"sly, loyal","scenario":"","first_mes":"Ahoy","mes_example":"","tags":["pirate"]}}`

func TestReadPersonas(t *testing.T) {
	dir := t.TempDir()
	pngPath := filepath.Join(dir, "mira.png")
	os.WriteFile(pngPath, pngWithText(t, "chara", base64.StdEncoding.EncodeToString([]byte(cardV2))), 0o644)
	noChunk := filepath.Join(dir, "plain.png")
	os.WriteFile(noChunk, pngWithText(t, "Comment", "hello"), 0o644)
	tests := []struct {
		name, file, content, format string
		want                        []string
		wantProblems                []string // "line:substring"
	}{
		{"persona hub", "p.jsonl", `{"persona": "A chef"}` + "\n\n" + `{"persona": ` + "\n" + `{"input persona": "A pilot"}` + "\n" + `{"other": 1}` + "\n" + `{"persona": 3}`, "",
			[]string{"A chef", "A pilot"}, []string{"3:malformed JSON", "5:no \"persona\"", "6:not a string"}},
		{"text", "p.txt", "A chef\n\n  A pilot  \r\n", "", []string{"A chef", "A pilot"}, nil},
		{"card v2 json", "c.json", cardV2, "", []string{"Mira: Mira is a sky pirate who talks to the user in riddles. Personality: sly, loyal"}, nil},
		{"card v1 json", "c1.json", `{"name":"Bo","description":"A bard."}`, "", []string{"Bo: A bard."}, nil},
		{"card without name", "c2.json", `{"data":{"description":"x"}}`, "", nil, []string{"0:no name"}},
		{"json array", "a.json", "[\n\"A chef\",\n{\"persona\":\"A pilot\"},\n7\n]", "", []string{"A chef", "A pilot"}, []string{"4:neither"}},
		{"forced text", "p.jsonl", `{"persona": "x"}`, "text", []string{`{"persona": "x"}`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), tc.file, tc.content)
			got, probs, err := ReadPersonas(p, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			checkPersonas(t, got, tc.want)
			checkProblems(t, probs, p, tc.wantProblems)
		})
	}
	t.Run("png card", func(t *testing.T) {
		got, probs, err := ReadPersonas(pngPath, "")
		if err != nil || len(probs) > 0 {
			t.Fatal(err, probs)
		}
		checkPersonas(t, got, []string{"Mira: Mira is a sky pirate who talks to the user in riddles. Personality: sly, loyal"})
		if got[0].Card == nil || got[0].Card.Tags[0] != "pirate" {
			t.Fatalf("card %+v", got[0].Card)
		}
	})
	t.Run("png without chara", func(t *testing.T) {
		got, probs, _ := ReadPersonas(noChunk, "")
		checkPersonas(t, got, nil)
		checkProblems(t, probs, noChunk, []string{`0:no "chara"`})
	})
	t.Run("png bad crc", func(t *testing.T) {
		data := pngWithText(t, "chara", base64.StdEncoding.EncodeToString([]byte(cardV2)))
		data[len(data)-20] ^= 0xff // inside the tEXt chunk or its CRC
		if _, err := persona.ParseCard(data); err == nil {
			t.Fatal("corrupt PNG accepted")
		}
	})
}

func checkPersonas(t *testing.T, got []Persona, want []string) {
	t.Helper()
	var texts []string
	for _, p := range got {
		texts = append(texts, p.Text)
	}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Fatalf("personas %q, want %q", texts, want)
	}
}

func checkProblems(t *testing.T, probs []Problem, file string, want []string) {
	t.Helper()
	if len(probs) != len(want) {
		t.Fatalf("problems %v, want %v", probs, want)
	}
	for i, w := range want {
		line, sub, _ := strings.Cut(w, ":")
		p := probs[i]
		if p.File != file || strconv.Itoa(p.Line) != line || !strings.Contains(p.Msg, sub) {
			t.Errorf("problem %v, want line %s with %q", p, line, sub)
		}
		if !strings.HasPrefix(p.Error(), file) {
			t.Errorf("problem %q does not name its file", p.Error())
		}
	}
}

func TestReadInstructions(t *testing.T) {
	tests := []struct {
		name, file, content, format string
		want                        []string // "question=>reference"
		wantProblems                []string
	}{
		{"alpaca json", "alpaca.json", `[
  {"instruction": "Add", "input": "2 and 3", "output": "5"},
  {"instruction": "Name a colour", "input": "", "output": "Blue"},
  {"instruction": "", "output": "x"}
]`, "", []string{"Add\n\n2 and 3=>5", "Name a colour=>Blue"}, []string{"4:empty question"}},
		{"alpaca json syntax error", "bad.json", "[\n{\"instruction\": \"A\", \"output\": \"B\"},\n{\"instruction\": \n]", "",
			[]string{"A=>B"}, []string{"3:malformed JSON"}},
		{"alpaca jsonl", "a.jsonl", `{"instruction": "Q1", "output": "A1"}` + "\n" + `{"instruction": "Q2", "output": "A2"` + "\n" + `{"instruction": "Q3", "input": "ctx", "output": "A3"}`, "",
			[]string{"Q1=>A1", "Q3\n\nctx=>A3"}, []string{"2:malformed JSON"}},
		{"chat jsonl", "c.jsonl", `{"messages":[{"role":"system","content":"s"},{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello."},{"role":"user","content":"more"}]}` + "\n" +
			`{"conversations":[{"from":"human","value":"Q"},{"from":"gpt","value":"A"}]}` + "\n" +
			`{"messages":[{"role":"user","content":[{"type":"text","text":"Parts"}]}]}` + "\n" +
			`{"messages":[{"role":"assistant","content":"no user"}]}` + "\n" +
			`{"messages":"nope"}`, "",
			[]string{"Hi?=>Hello.", "Q=>A", "Parts=>"}, []string{"4:no user turn", "5:not a list"}},
		{"questions", "q.txt", "What is love?\n\nWhy?\n", "", []string{"What is love?=>", "Why?=>"}, nil},
		{"qa jsonl", "qa.jsonl", `{"question": "Q", "answer": "A"}` + "\n" + `{"foo": 1}`, "", []string{"Q=>A"}, []string{"2:cannot tell"}},
		{"forced chat", "x.jsonl", `{"instruction": "Q", "output": "A"}`, "chat", nil, []string{`1:no "messages"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), tc.file, tc.content)
			got, probs, err := ReadInstructions(p, tc.format, "")
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, in := range got {
				s = append(s, in.Question+"=>"+in.Reference)
				if in.Source != strings.TrimSuffix(tc.file, filepath.Ext(tc.file)) || in.File != p || in.Line == 0 {
					t.Errorf("instruction %+v", in)
				}
			}
			if strings.Join(s, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", s, tc.want)
			}
			checkProblems(t, probs, p, tc.wantProblems)
		})
	}
	if _, _, err := ReadInstructions("/nonexistent/x.json", "", ""); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, _, err := ReadInstructions(writeFile(t, t.TempDir(), "a.txt", "q"), "yaml", ""); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestReadCharacters(t *testing.T) {
	dir := t.TempDir()
	jl := writeFile(t, dir, "synthetic_character.jsonl",
		`{"character_id":"c1","persona":"p1","character":"Name: A\nAge: 3"}`+"\n"+
			`{"persona":"p2","character":"Name: B"}`+"\n"+
			`{"character_id":"c3","persona":"p3"}`+"\n"+"{oops\n")
	got, probs, err := ReadCharacters(jl)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "c1" || got[1].ID != CharacterID("p2") || got[0].Name() != "A" {
		t.Fatalf("%+v", got)
	}
	checkProblems(t, probs, jl, []string{"3:no \"character\"", "4:malformed"})
	card := writeFile(t, dir, "mira.json", cardV2)
	got, probs, err = ReadCharacters(card)
	if err != nil || len(probs) > 0 || len(got) != 1 {
		t.Fatal(err, probs)
	}
	if !strings.HasPrefix(got[0].Profile, "Name: Mira\n") || got[0].Name() != "Mira" {
		t.Fatalf("profile %q", got[0].Profile)
	}
}

func TestReadQuestionSet(t *testing.T) {
	p := writeFile(t, t.TempDir(), "eval.txt", "What  is LOVE?\nWhy?\n")
	set, _, err := ReadQuestionSet(p)
	if err != nil {
		t.Fatal(err)
	}
	if !set["what is love?"] || !set["why?"] || len(set) != 2 {
		t.Fatalf("%v", set)
	}
}

// TestReadFiles: the plural readers join files in order with all their
// problems, and stop at a file that cannot be read.
func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.txt", "A grumpy lighthouse keeper\n")
	b := writeFile(t, dir, "b.jsonl", `{"persona":"A cheerful baker"}`+"\nnot json\n")
	ps, probs, err := ReadPersonaFiles([]string{a, b}, "")
	if err != nil || len(ps) != 2 || ps[0].Text != "A grumpy lighthouse keeper" || ps[1].Text != "A cheerful baker" || len(probs) != 1 {
		t.Fatalf("personas %+v, problems %v, %v", ps, probs, err)
	}
	if _, _, err := ReadPersonaFiles([]string{a, filepath.Join(dir, "missing.txt")}, ""); err == nil {
		t.Error("missing file: no error")
	}
	q1 := writeFile(t, dir, "q1.txt", "Why is the sky blue?\n")
	q2 := writeFile(t, dir, "q2.txt", "What is rain?\nWhere is Paris?\n")
	ins, _, err := ReadInstructionFiles([]string{q1, q2}, InstructionQuestions, "")
	if err != nil || len(ins) != 3 || ins[0].Source != "q1" || ins[2].Source != "q2" {
		t.Fatalf("instructions %+v, %v", ins, err)
	}
	card := writeFile(t, dir, "mira.json", cardV2)
	chars, _, err := ReadCharacterFiles([]string{card, card})
	if err != nil || len(chars) != 2 {
		t.Fatalf("characters %+v, %v", chars, err)
	}
}

func TestParseModes(t *testing.T) {
	if m, err := ParseModes(" rewrite, ,direct"); err != nil || strings.Join(m, ",") != "rewrite,direct" {
		t.Errorf("%v %v", m, err)
	}
	if _, err := ParseModes("rewrite,paraphrase"); err == nil || !strings.Contains(err.Error(), `"paraphrase"`) {
		t.Errorf("paraphrase: %v", err)
	}
}
