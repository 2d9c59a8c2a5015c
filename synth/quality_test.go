package synth

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCheckText(t *testing.T) {
	en := QualityOptions{Language: "en"}
	tests := []struct {
		name   string
		o      QualityOptions
		text   string
		finish string
		want   []string
	}{
		{"fine", en, "Arr, the capital of France be Paris, matey, and a fine port it is.", "stop", nil},
		{"empty", en, "  \n ", "stop", []string{ReasonEmpty}},
		{"too short", QualityOptions{MinChars: 10}, "Aye.", "stop", []string{ReasonEmpty}},
		{"truncated", en, "The capital of France is Paris and the", "length", []string{ReasonTruncated}},
		{"truncated allowed", QualityOptions{AllowTruncated: true}, "The capital of France is", "length", nil},
		{"as an ai", en, "As an AI language model, I think the capital of France is Paris.", "stop", []string{ReasonBreaksCharacter}},
		{"i am a language model", en, "Well, I'm just a language model, but Paris is lovely.", "stop", []string{ReasonBreaksCharacter}},
		{"no feelings", en, "I don't have personal feelings about it, but the answer is Paris.", "stop", []string{ReasonBreaksCharacter}},
		{"ai as a topic is fine", en, "Language models and AI systems are tools; my forge needs none of them.", "stop", nil},
		{"refusal", en, "I'm sorry, but I can't help with that request.", "stop", []string{ReasonRefusal}},
		{"refusal plain", en, "I cannot assist with this because it would be wrong of me to do so.", "stop", []string{ReasonRefusal}},
		{"in-character can't", en, "Oh, I can't believe you asked that! The capital of France is Paris, of course.", "stop", nil},
		{"refusal check off", QualityOptions{SkipRefusalCheck: true}, "I'm sorry, but I can't help with that.", "stop", nil},
		{"wrong language", en, "Bonjour! La capitale de la France est Paris, et c'est une ville très belle pour les artistes.", "stop", []string{ReasonWrongLanguage}},
		{"any language", QualityOptions{Language: "any"}, "La capitale de la France est Paris, et c'est une ville très belle.", "stop", nil},
		{"several", en, "As an AI, I cannot help with that, sorry to say so to you now", "length", []string{ReasonTruncated, ReasonBreaksCharacter, ReasonRefusal}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.o.CheckText(tc.text, tc.finish)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDetectLanguage(t *testing.T) {
	tests := []struct{ text, want string }{
		{"The quick brown fox jumps over the lazy dog and it was happy with the day.", "en"},
		{"Le renard brun saute par-dessus le chien paresseux et il est très content.", "fr"},
		{"Der schnelle braune Fuchs springt über den faulen Hund und ist nicht müde.", "de"},
		{"El rápido zorro marrón salta sobre el perro perezoso y está muy contento.", "es"},
		{"Il veloce volpe marrone salta sopra il cane pigro e non è stanco della vita.", "it"},
		{"De snelle bruine vos springt over de luie hond en is niet moe van het werk.", "nl"},
		{"Быстрая коричневая лиса прыгает через ленивую собаку.", "ru"},
		{"敏捷的棕色狐狸跳过了懒惰的狗，它非常高兴。今天天气很好。", "zh"},
		{"素早い茶色の狐がのろまな犬を飛び越えた。とても嬉しいです。", "ja"},
		{"빠른 갈색 여우가 게으른 개를 뛰어넘었습니다. 정말 기쁩니다.", "ko"},
		{"Short.", ""},
		{"Xylophone zebra quartz jackdaw vexing wizards.", ""},
	}
	for _, tc := range tests {
		if got := DetectLanguage(tc.text); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestParseProfile(t *testing.T) {
	full := "Name: Ada Brook\nAge: 34\nGender: Female\nRace: Human\nBirthplace: Leeds\nAppearance: Tall, with ink-stained hands.\nGeneral experience: Ran a print shop\nfor ten years.\nPersonality: Wry and patient."
	tests := []struct {
		name, text string
		valid      bool
		wantName   string
		problem    string
	}{
		{"full", full, true, "Ada Brook", ""},
		{"markdown", "**Name:** Ada\n- **Age:** 3\n**Gender:** f\n**Race:** elf\n**Birthplace:** Oak\n**Appearance:** small\n**General Experience:** none\n**Personality:** shy", true, "Ada", ""},
		{"name not first", "Age: 34\nName: Ada", false, "", "first line"},
		{"missing fields", "Name: Ada\nAge: 3", false, "Ada", "missing fields: Gender"},
		{"story", "Once upon a time there was a girl.", false, "", "first line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ParseProfile(tc.text)
			if p.Valid() != tc.valid || p.Name != tc.wantName || !strings.Contains(p.Problem(), tc.problem) {
				t.Fatalf("%+v: valid %v problem %q", p, p.Valid(), p.Problem())
			}
		})
	}
	if p := ParseProfile(full); p.Fields["General experience"] != "Ran a print shop for ten years." {
		t.Fatalf("continuation: %q", p.Fields["General experience"])
	}
	if got := NormalizeProfile("```\nHere is the profile:\nName: Ada\nAge: 3\n```"); got != "Name: Ada\nAge: 3" {
		t.Fatalf("normalized %q", got)
	}
}

func TestNearDuplicates(t *testing.T) {
	base := "The harbour was quiet that night, and the old captain counted the ships one by one while the tide turned slowly against the pier."
	texts := map[string]string{
		"a": base,
		"b": base + " Then he slept.",                    // near duplicate of a
		"c": strings.Replace(base, "quiet", "silent", 1), // near duplicate of a
		"d": "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside the chloroplasts of green plants.",
		"e": "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside the chloroplasts of green plants!", // same words as d
	}
	sigs := map[string]*Signature{}
	for id, s := range texts {
		sig := MinHash(s)
		sigs[id] = &sig
	}
	tests := []struct {
		threshold float64
		want      map[string]string
	}{
		{0, map[string]string{}},
		{0.7, map[string]string{"b": "a", "c": "a", "e": "d"}},
		{0.99, map[string]string{"e": "d"}},
	}
	for _, tc := range tests {
		got := NearDuplicates(sigs, tc.threshold)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("threshold %v: got %v, want %v", tc.threshold, got, tc.want)
		}
	}
}

func TestShard(t *testing.T) {
	tests := []struct {
		in      string
		want    Shard
		wantErr bool
	}{
		{"", Shard{0, 1}, false},
		{"0/1", Shard{0, 1}, false},
		{"3/4", Shard{3, 4}, false},
		{"4/4", Shard{}, true},
		{"-1/4", Shard{}, true},
		{"1/0", Shard{}, true},
		{"a/b", Shard{}, true},
		{"2", Shard{}, true},
	}
	for _, tc := range tests {
		got, err := ParseShard(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("%q: got %v %v", tc.in, got, err)
		}
	}
	// Every id is in exactly one shard, and shards are roughly balanced.
	const n = 4
	counts := make([]int, n)
	for i := range 4000 {
		id := RowID("x", fmt.Sprint(i))
		in := 0
		for s := range n {
			if (Shard{s, n}).Has(id) {
				in++
				counts[s]++
			}
		}
		if in != 1 {
			t.Fatalf("id %s in %d shards", id, in)
		}
	}
	for _, c := range counts {
		if c < 850 || c > 1150 {
			t.Fatalf("unbalanced shards %v", counts)
		}
	}
}

func TestRowIDAndPairing(t *testing.T) {
	if RowID("a", "bc") == RowID("a", "b", "c") || RowID("a", "b") == RowID("ab") {
		t.Fatal("row ids collide across different part lists")
	}
	if RowID("k", "x") != RowID("k", "x") || len(RowID("k")) != 16 {
		t.Fatal("row id not stable")
	}
	tests := []struct{ count, n, want int }{{10, 3, 3}, {2, 3, 2}, {5, 5, 5}, {100, 1, 1}}
	for _, tc := range tests {
		p1 := PairCharacters(7, "q1", tc.count, tc.n)
		p2 := PairCharacters(7, "q1", tc.count, tc.n)
		if len(p1) != tc.want || !slices.Equal(p1, p2) || len(slices.Compact(slices.Clone(p1))) != tc.want {
			t.Errorf("%+v: %v %v", tc, p1, p2)
		}
	}
	// Different seeds or questions spread over the characters.
	seen := map[int]bool{}
	for i := range 50 {
		for _, k := range PairCharacters(uint64(i), "q", 20, 3) {
			seen[k] = true
		}
	}
	if len(seen) < 18 {
		t.Fatalf("pairing uses only %d of 20 characters", len(seen))
	}
}

func TestLogTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log.jsonl")
	l, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := l.Append(fmt.Sprint("r", i), map[string]any{"id": fmt.Sprint("r", i), "v": i}); err != nil {
			t.Fatal(err)
		}
	}
	l.Append("r1", map[string]any{"id": "r1", "v": 99}) // already there: ignored
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"r3","v":`)
	f.Close()
	l, err = OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 3 || l.Has("r3") || len(l.Problems) != 1 || !strings.Contains(l.Problems[0].Msg, "torn") || l.Problems[0].Line != 4 {
		t.Fatalf("len %d problems %v", l.Len(), l.Problems)
	}
	if err := l.Append("r3", map[string]any{"id": "r3", "v": 3}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	data, _ := os.ReadFile(path)
	want := `{"id":"r0","v":0}` + "\n" + `{"id":"r1","v":1}` + "\n" + `{"id":"r2","v":2}` + "\n" + `{"id":"r3","v":3}` + "\n"
	if string(data) != want {
		t.Fatalf("log:\n%s", data)
	}
}
