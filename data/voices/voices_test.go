package voices

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
)

const testSources = "testdata/sources"

// extractTest reads one voice from the test slices (never the system's files).
func extractTest(t *testing.T, v string) map[string]*document {
	t.Helper()
	docs, err := extract(v, newSources(testSources, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*document{}
	for _, d := range docs {
		m[d.id] = d
	}
	return m
}

func block0(t *testing.T, docs map[string]*document, id string, i int) string {
	t.Helper()
	d := docs[id]
	if d == nil {
		ids := []string{}
		for k := range docs {
			ids = append(ids, k)
		}
		t.Fatalf("no document %q (have %q)", id, ids)
	}
	if i >= len(d.blocks) {
		t.Fatalf("%s has %d blocks, want more than %d", id, len(d.blocks), i)
	}
	return d.blocks[i].text
}

func allText(d *document) string {
	var b strings.Builder
	for _, x := range d.blocks {
		b.WriteString(x.text)
		b.WriteString("\n")
	}
	return b.String()
}

// The expectations below were checked by hand against the source slices.
func TestExtractScripture(t *testing.T) {
	kjv := extractTest(t, "kjv")
	if got := block0(t, kjv, "Genesis 1", 2); got != "And God said, Let there be light: and there was light." {
		t.Errorf("kjv Genesis 1:3 = %q", got)
	}
	if d := kjv["Psalms 23"]; d == nil || len(d.blocks) != 6 || d.blocks[5].ref != "6" {
		t.Errorf("kjv Psalm 23: %+v", d)
	}
	web := extractTest(t, "web")
	// OSIS <w> markup and the footnote on "God" removed, words kept apart
	if got := block0(t, web, "Genesis 1", 0); got != "In the beginning, God created the heavens and the earth." {
		t.Errorf("web Genesis 1:1 = %q", got)
	}
	if got := block0(t, web, "Genesis 1", 2); got != "God said, “Let there be light,” and there was light." {
		t.Errorf("web Genesis 1:3 = %q", got)
	}
	// the WEB glossary that follows the last verse is not part of it
	if got := block0(t, web, "Revelation 22", 0); got != "The grace of the Lord Jesus Christ be with all the saints. Amen." {
		t.Errorf("web Revelation 22:21 = %q", got)
	}
	// the deuterocanon, the preface (Genesis 0:0) and psalm titles (23:0) are dropped
	if len(web) != 4 {
		t.Errorf("web documents: %d, want 4 (Genesis 1, Psalms 23, John 3, Revelation 22)", len(web))
	}
	for _, d := range web {
		for _, b := range d.blocks {
			if b.ref == "0" || strings.ContainsAny(b.text, "<>") {
				t.Errorf("web %s:%s not clean: %q", d.id, b.ref, b.text)
			}
		}
	}
	if strings.Contains(allText(web["Psalms 23"]), "Psalm by David") {
		t.Error("web: the psalm title was kept")
	}
}

func TestExtractSpurgeon(t *testing.T) {
	docs := extractTest(t, "spurgeon")
	if len(docs) != 1 || docs["Psalm 117"] == nil {
		t.Fatalf("spurgeon documents: %v, want only Psalm 117 (the preface is dropped)", len(docs))
	}
	d := docs["Psalm 117"]
	if d.extra["psalm"] != "117" {
		t.Errorf("psalm number %q", d.extra["psalm"])
	}
	if got := block0(t, docs, "Psalm 117", 0); !strings.HasPrefix(got, "Verse 1. O praise the LORD, all ye nations. This is an exhortation to the Gentiles") {
		t.Errorf("first paragraph %q", got)
	}
	text := allText(d)
	for _, bad := range []string{"A very short Psalm if you regard the words", "The universal kingdom", "My Preface shall", "EXPLANATORY", "<"} {
		if strings.Contains(text, bad) {
			t.Errorf("spurgeon keeps %q (notes, hints, preface or markup)", bad)
		}
	}
}

func TestExtractSOTU(t *testing.T) {
	docs := extractTest(t, "sotu")
	if len(docs) != 3 {
		t.Fatalf("sotu: %d addresses, want 3", len(docs))
	}
	got := block0(t, docs, "2021 Joseph R Biden", 0)
	if !strings.HasPrefix(got, "Thank you. Thank you. Thank you. Good to be back.") || strings.Contains(strings.ToLower(got), "applause") {
		t.Errorf("stage directions kept: %.200q", got)
	}
	if !strings.Contains(got, "Madam Vice President—no President has ever said those words") {
		t.Errorf("dash around a stage direction: %.300q", got)
	}
	if got := block0(t, docs, "1790 George Washington", 0); !strings.HasPrefix(got, "Fellow-Citizens of the Senate and House of Representatives: In meeting you again") {
		t.Errorf("1790: %.100q", got)
	}
}

func TestExtractJargon(t *testing.T) {
	docs := extractTest(t, "jargon")
	if got := block0(t, docs, "AI", 0); got != "AI, n. Abbreviation for ‘Artificial Intelligence’, so common that the full form is almost never written or spoken among hackers." {
		t.Errorf("AI = %q", got)
	}
	if d := docs["AI"]; d.key != "ai" || d.head != "AI" {
		t.Errorf("AI key %q head %q", d.key, d.head)
	}
	if got := block0(t, docs, "/dev/null", 0); !strings.HasPrefix(got, "/dev/null, n. [from the Unix null device, used as a data sink] A notional ‘black hole’") {
		t.Errorf("/dev/null = %q", got)
	}
	if got := block0(t, docs, "gweep", 1); !strings.HasPrefix(got, "1. v. To hack, usually at night.") {
		t.Errorf("gweep sense 1 = %q (cross-reference braces must go)", got)
	}
	// the last entry stops before the appendices; the letter index is no entry
	if d := docs["zorkmid"]; len(d.blocks) != 1 {
		t.Errorf("zorkmid has %d paragraphs: %q", len(d.blocks), allText(d))
	}
	if len(docs) != 10 {
		t.Errorf("%d entries, want 10", len(docs))
	}
	for _, d := range docs {
		if strings.ContainsAny(allText(d), "│─{}") {
			t.Errorf("%s keeps a box table or braces", d.id)
		}
	}
}

func TestExtractWebster(t *testing.T) {
	docs := extractTest(t, "webster")
	// pronunciation, respelling and the head's bracketed inflections and etymology go
	if got := block0(t, docs, "Abandon", 0); got != "Abandon, v. t. 1. To cast or drive out; to banish; to expel; to reject. [Obs.]" {
		t.Errorf("Abandon = %q", got)
	}
	if got := block0(t, docs, "Abandon", 1); got != "That he might . . . abandon them from him. --Udall." {
		t.Errorf("Abandon citation = %q", got)
	}
	// the three Abandon entries are one document
	if !strings.Contains(allText(docs["Abandon"]), "Abandon, n. Abandonment; relinquishment. [Obs.]") {
		t.Errorf("Abandon, n. missing: %q", allText(docs["Abandon"]))
	}
	hack := allText(docs["Hack"])
	for _, bad := range []string{"(Computers)", "taxicab", "To kick the shins", "\\", "[1913 Webster]", "{"} {
		if strings.Contains(hack, bad) {
			t.Errorf("Hack keeps %q ([PJC]/Suppl. blocks, another entry, markup or tags)", bad)
		}
	}
	if _, ok := docs["taxicab"]; ok {
		t.Error("taxicab (a [PJC] entry) kept")
	}
	// letter codes: a["e]roplane (Suppl., dropped); the 1913 text has none left
	for id, d := range docs {
		if gcideCode.MatchString(strings.NewReplacer("[Obs.]", "", "[R.]", "", "[Prov. Eng.]", "", "[Obs. & R.]", "").Replace(allText(d))) {
			t.Logf("%s: bracketed tag left: %q", id, gcideCode.FindString(allText(d)))
		}
	}
	if docs["Cynic"].head != "cynic" || docs["Cynic"].key != "cynic" {
		t.Errorf("Cynic head %q key %q", docs["Cynic"].head, docs["Cynic"].key)
	}
}

func TestGcideText(t *testing.T) {
	for in, want := range map[string]string{
		`caf['e]`:         "café",
		`a["e]rolite`:     "aërolite",
		`[ae]sthetic`:     "æsthetic",
		`45[deg]`:         "45°",
		`b[a^]nk [Obs.]`:  "bănk [Obs.]",
		`{Hack saw}, a s`: `{Hack saw}, a s`,
	} {
		if got := gcideText(in); got != want {
			t.Errorf("gcideText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExtractWordNet(t *testing.T) {
	docs := extractTest(t, "wordnet")
	if got := block0(t, docs, "bank", 0); got != `noun: sloping land (especially the slope beside a body of water); "they pulled the canoe up on the bank"; "he sat on the bank of the river and watched the currents"` {
		t.Errorf("bank = %q", got)
	}
	if d := docs["bank"]; len(d.blocks) != 18 {
		t.Errorf("bank: %d senses, want 18 (10 nouns, 8 verbs)", len(d.blocks))
	}
	if got := block0(t, docs, "cynically", 0); got != `adverb: with cynicism; in a cynical manner; "Larsen's frost-blackened lips curved cynically"` {
		t.Errorf("cynically = %q", got)
	}
	if d := docs["depository financial institution"]; d == nil || d.key != "depository financial institution" {
		t.Error("multi-word lemma: underscores not turned into spaces")
	}
}

func TestExtractWesnoth(t *testing.T) {
	docs := extractTest(t, "wesnoth")
	d := docs["Heir To The Throne/The Elves Besieged"]
	if d == nil || d.extra["scenario"] != "The Elves Besieged" || d.extra["campaign"] != "Heir To The Throne" {
		t.Fatalf("scenario document: %+v", d)
	}
	want := []block{
		{speaker: "narrator", text: "Twenty years into her rule, Asheviere turned her attention to the wood elves living in the great forest southwest of Wesnoth, whom she despised. Orcish mercenaries were hired and dispatched to bring about their ruin."},
		{speaker: "Konrad", text: "Master Delfador! Look, there are orcs coming from all directions! What shall we do?"},
		{speaker: "Delfador", text: "There are too many to fight, far too many. We must escape!"},
	}
	for i, w := range want {
		if d.blocks[i] != w {
			t.Errorf("line %d = %+v, want %+v", i, d.blocks[i], w)
		}
	}
	for _, b := range d.blocks {
		if strings.ContainsAny(b.text, "$\"{}<>^") && !strings.Contains(b.text, "“") {
			t.Errorf("markup or variables kept: %q", b.text)
		}
	}
}

func TestExtractDevil(t *testing.T) {
	docs := extractTest(t, "devil")
	if len(docs) != 6 {
		t.Errorf("devil: %d entries, want 6 (the 00-database preamble dropped)", len(docs))
	}
	if got := block0(t, docs, "ACADEMY", 0); got != "ACADEMY, n. [from ACADEME] A modern school where football is taught." {
		t.Errorf("ACADEMY = %q", got)
	}
	if got := block0(t, docs, "ZEAL", 1); got != "When Zeal sought Gratitude for his reward\nHe went away exclaiming: \"O my Lord!\"\n\"What do you want?\" the Lord asked, bending down.\n\"An ointment for my cracked and bleeding crown.\"\nJum Coople" {
		t.Errorf("ZEAL verse = %q", got)
	}
	if d := docs["ZEAL"]; d.key != "zeal" || d.head != "zeal" {
		t.Errorf("ZEAL key %q head %q", d.key, d.head)
	}
}

func TestCutAndSentences(t *testing.T) {
	s := sentences("Mr. Smith went to Washington. He said: “No!” Then he left? Yes. v. t. is a verb.")
	want := []string{"Mr. Smith went to Washington.", "He said: “No!”", "Then he left?", "Yes. v. t. is a verb."}
	if strings.Join(s, "|") != strings.Join(want, "|") {
		t.Errorf("sentences = %q", s)
	}
	long := strings.Repeat("One two three four five six seven eight nine. ", 30) // 270 words
	paras := []string{"Short first paragraph here.", long, "Tail."}
	ps := cut(paras, 50, "\n\n")
	total := 0
	for i, p := range ps {
		n := words(p)
		total += n
		if n > 50 {
			t.Errorf("passage %d has %d words", i, n)
		}
		if !strings.HasSuffix(p, ".") {
			t.Errorf("passage %d does not end at a sentence: %q", i, p)
		}
	}
	if total != 4+270+1 {
		t.Errorf("words lost: %d", total)
	}
	if !strings.HasPrefix(ps[0], "Short first paragraph here.\n\nOne two") {
		t.Errorf("paragraphs not packed: %q", ps[0])
	}
	// a sentence longer than the cap is cut at words
	if ps := cut([]string{strings.Repeat("w ", 25)}, 10, "\n\n"); len(ps) != 3 || words(ps[2]) != 5 {
		t.Errorf("long sentence: %q", ps)
	}
}

func TestTopicWords(t *testing.T) {
	got := topicWords(3, "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God divided the light from the darkness. Darkness!")
	if strings.Join(got, ",") != "light,god,darkness" {
		t.Errorf("topicWords = %q", got)
	}
	if andList([]string{"a", "b", "c"}) != "a, b and c" || andList([]string{"a"}) != "a" {
		t.Error("andList")
	}
}

// runTest builds the corpus from the test slices into a new folder.
func runTest(t *testing.T, mod func(*Config)) (string, *Result) {
	t.Helper()
	cfg := Config{Out: t.TempDir(), Sources: testSources, System: t.TempDir(), Seed: 7}
	if mod != nil {
		mod(&cfg)
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Out, res
}

func readRows(t *testing.T, dir, voice, split string) []Row {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, voice, split+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []Row
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !bytes.HasPrefix(line, []byte(`{"id":"`)) {
			t.Fatalf("%s/%s: row does not start with the id key: %.80s", voice, split, line)
		}
		var r Row
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s/%s: %v", voice, split, err)
		}
		// keys in the documented order
		var keys []string
		kd := json.NewDecoder(bytes.NewReader(line))
		kd.Token()
		for kd.More() {
			k, _ := kd.Token()
			keys = append(keys, k.(string))
			var skip json.RawMessage
			kd.Decode(&skip)
		}
		if strings.Join(keys, ",") != "id,voice,doc,key,prompt,text,messages" {
			t.Fatalf("key order %v", keys)
		}
		rows = append(rows, r)
	}
	return rows
}

func TestRunCorpus(t *testing.T) {
	dir, res := runTest(t, func(c *Config) { c.MaxWords = 60 })
	if len(res.Voices) != len(Voices) {
		t.Fatalf("%d voices", len(res.Voices))
	}
	splitOfKey := map[string]string{} // contrast key → split, across voices
	for _, st := range res.Voices {
		v := st.Name
		persona := personaOf(v).Persona
		docSplit := map[string]string{}
		words, passages := 0, 0
		for _, s := range Splits {
			rows := readRows(t, dir, v, s)
			sw := 0
			for _, r := range rows {
				if r.Voice != v || !strings.HasPrefix(r.Doc, v+":") || !strings.HasPrefix(r.ID, v+"/") {
					t.Errorf("row %s: voice/doc/id %q %q", r.ID, r.Voice, r.Doc)
				}
				if len(r.Messages) != 3 || !sameTurn(r.Messages[0], "system", persona) || !sameTurn(r.Messages[1], "user", r.Prompt) || !sameTurn(r.Messages[2], "assistant", r.Text) {
					t.Errorf("row %s: messages %+v", r.ID, r.Messages)
				}
				if n := len(strings.Fields(r.Text)); n > 60 || n == 0 {
					t.Errorf("row %s: %d words", r.ID, n)
				}
				if r.Prompt == "" {
					t.Errorf("row %s: empty prompt", r.ID)
				}
				if prev, ok := docSplit[r.Doc]; ok && prev != s {
					t.Errorf("document %s in %s and %s", r.Doc, prev, s)
				}
				docSplit[r.Doc] = s
				if r.Key != "" {
					k := r.Key
					if definers[v] {
						k = "word:" + k
					}
					if prev, ok := splitOfKey[k]; ok && prev != s {
						t.Errorf("key %q in %s in one voice and %s in %s", r.Key, prev, s, v)
					}
					splitOfKey[k] = s
				} else if definers[v] || v == "kjv" || v == "web" {
					t.Errorf("row %s has no key", r.ID)
				}
				sw += len(strings.Fields(r.Text))
			}
			if sw != st.Splits[s].Words || len(rows) != st.Splits[s].Passages {
				t.Errorf("%s/%s: counts %d words %d rows, manifest %+v", v, s, sw, len(rows), st.Splits[s])
			}
			words += sw
			passages += len(rows)
		}
		if words != st.Words || passages != st.Passages || st.Words == 0 {
			t.Errorf("%s: %d words %d passages, stats %+v", v, words, passages, st)
		}
	}
	// KJV and WEB cut chapters at the same verses
	kjvKeys, webKeys := map[string]string{}, map[string]string{}
	for _, s := range Splits {
		for _, r := range readRows(t, dir, "kjv", s) {
			kjvKeys[r.Key] = r.Prompt
		}
		for _, r := range readRows(t, dir, "web", s) {
			webKeys[r.Key] = r.Prompt
		}
	}
	if len(kjvKeys) != len(webKeys) {
		t.Errorf("kjv keys %v, web keys %v", kjvKeys, webKeys)
	}
	for k, p := range kjvKeys {
		if webKeys[k] != p {
			t.Errorf("verse range %s: kjv prompt %q, web %q", k, p, webKeys[k])
		}
	}
	// Genesis 1:1-8, cut at 60 words by the longer rendering of each verse
	for _, k := range []string{"Genesis 1:1-3", "Genesis 1:4-5", "Genesis 1:6-7", "Genesis 1:8", "Psalm 23:1-3", "John 3:16-17", "Revelation 22:21"} {
		if _, ok := kjvKeys[k]; !ok {
			t.Errorf("no passage %s: %v", k, kjvKeys)
		}
	}
	// definer prompts
	found := false
	for _, r := range readRows(t, dir, "devil", "train") {
		if r.Key == "academy" {
			found = true
			if r.Prompt != "What does academy mean?" && r.Prompt != "Define academy." && r.Prompt != "What is the meaning of academy?" {
				t.Errorf("academy prompt %q", r.Prompt)
			}
		}
	}
	for _, s := range Splits {
		for _, r := range readRows(t, dir, "devil", s) {
			found = found || r.Key == "academy"
		}
	}
	if !found {
		t.Error("devil: academy missing")
	}
	// the manifest
	var man Manifest
	data, err := os.ReadFile(filepath.Join(dir, "MANIFEST.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &man); err != nil {
		t.Fatal(err)
	}
	if man.Seed != 7 || man.Budget != 250000 || man.Packages["dict-gcide"] != "0.48.5+nmu2" || len(man.Voices) != 9 {
		t.Errorf("manifest head: seed %d budget %d packages %v", man.Seed, man.Budget, man.Packages)
	}
	if len(man.Outputs) != 1+3*9 {
		t.Errorf("%d outputs", len(man.Outputs))
	}
	for _, o := range man.Outputs {
		b, err := os.ReadFile(filepath.Join(dir, o.Path))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != o.SHA256 || len(b) != o.Bytes {
			t.Errorf("%s: sha256/bytes do not match the manifest", o.Path)
		}
	}
	srcs := map[string]bool{}
	for _, s := range man.Sources {
		srcs[s.Path] = true
		if len(s.SHA256) != 64 || s.Package == "" {
			t.Errorf("source %+v", s)
		}
	}
	for _, p := range []string{"SOURCES/kjv/bible.txt", "SOURCES/webster/gcide.dict.dz", "SOURCES/wordnet/data.noun", "SOURCES/sotu/package/data/1790_george_washington_n.txt",
		"SOURCES/wesnoth/root/usr/share/games/wesnoth/1.16/data/campaigns/Heir_To_The_Throne/scenarios/01_The_Elves_Besieged.cfg"} {
		if !srcs[p] {
			t.Errorf("manifest lacks source %s", p)
		}
	}
	var ps struct{ Voices []Persona }
	data, _ = os.ReadFile(filepath.Join(dir, "personas.json"))
	if err := json.Unmarshal(data, &ps); err != nil || len(ps.Voices) != 9 || ps.Voices[2].Name != "spurgeon" {
		t.Errorf("personas.json: %v %+v", err, ps)
	}
}

func TestPersonasDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i, p := range Personas {
		if p.Name != Voices[i] || p.Persona == "" || p.Licence == "" || p.Source == "" || p.Title == "" {
			t.Errorf("persona %d: %+v", i, p)
		}
		if seen[p.Persona] || !strings.HasPrefix(p.Persona, "You are ") {
			t.Errorf("persona %s: duplicate or not a 'You are' description", p.Name)
		}
		seen[p.Persona] = true
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := filepath.Rel(dir, p)
			m[r] = b
		}
		return nil
	})
	return m
}

func TestDeterministic(t *testing.T) {
	a, _ := runTest(t, nil)
	b, _ := runTest(t, nil)
	ta, tb := readTree(t, a), readTree(t, b)
	if len(ta) != 29 || len(ta) != len(tb) {
		t.Fatalf("%d and %d files", len(ta), len(tb))
	}
	for k, v := range ta {
		if !bytes.Equal(v, tb[k]) {
			t.Errorf("%s differs between two runs", k)
		}
	}
	// another seed makes other choices
	c, _ := runTest(t, func(c *Config) { c.Seed = 8 })
	if bytes.Equal(readTree(t, c)["wesnoth/train.jsonl"], ta["wesnoth/train.jsonl"]) && bytes.Equal(readTree(t, c)["kjv/train.jsonl"], ta["kjv/train.jsonl"]) {
		t.Error("seed has no effect")
	}
}

func TestBudget(t *testing.T) {
	_, res := runTest(t, func(c *Config) { c.Budget = 400 })
	for _, st := range res.Voices {
		if st.Words > 400 {
			t.Errorf("%s: %d words over the budget", st.Name, st.Words)
		}
		if st.Name == "kjv" && st.Documents == 0 {
			t.Error("kjv: no chapter fits 400 words")
		}
	}
}

func TestSelectionPrefersSharedHeadwords(t *testing.T) {
	// a budget of exactly the two headwords defined in three voices keeps those two
	docs := extractTest(t, "webster")
	kv := map[string]int{"zeal": 3, "cynic": 3, "hack": 2, "bank": 2}
	var list []*document
	for _, d := range docs {
		d.voice = "webster"
		d.count()
		list = append(list, d)
	}
	cfg := Config{Budget: docs["Zeal"].words + docs["Cynic"].words, Seed: 7}
	sel := selectDocs(list, cfg, kv)
	if len(sel) != 2 || sel[0].key != "cynic" || sel[1].key != "zeal" {
		var keys []string
		for _, d := range sel {
			keys = append(keys, d.key)
		}
		t.Errorf("selected %v, want [cynic zeal] (source order)", keys)
	}
	// WordNet: a sense given under one headword is not repeated under another
	wn := extractTest(t, "wordnet")
	var wl []*document
	for _, d := range wn {
		d.voice = "wordnet"
		d.count()
		wl = append(wl, d)
	}
	seen := map[string]string{}
	for _, d := range selectDocs(wl, Config{Budget: 1 << 30, Seed: 7}, map[string]int{"bank": 2}) {
		for _, b := range d.blocks {
			if prev, ok := seen[b.ref]; ok {
				t.Errorf("synset %s under %s and %s", b.ref, prev, d.key)
			}
			seen[b.ref] = d.key
		}
		if d.key == "depository financial institution" {
			t.Error("depository financial institution kept though its only sense is under bank")
		}
	}
}

func TestSplitRules(t *testing.T) {
	cfg := Config{Seed: 3, Valid: 0.05, Test: 0.05}
	// keyed voices: the split is a function of the group only
	var a, b []*document
	for i := 0; i < 2000; i++ {
		g := "key:w" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		a = append(a, &document{voice: "webster", group: g, words: 10})
		if i%3 == 0 {
			b = append(b, &document{voice: "devil", group: g, words: 99})
		}
	}
	assignSplits(a, cfg)
	assignSplits(b, cfg)
	split := map[string]string{}
	count := map[string]int{}
	for _, d := range a {
		split[d.group] = d.split
		count[d.split]++
	}
	for _, d := range b {
		if split[d.group] != d.split {
			t.Fatalf("group %s: %s in webster, %s in devil", d.group, split[d.group], d.split)
		}
	}
	if count["test"] < 60 || count["test"] > 140 || count["valid"] < 60 || count["valid"] > 140 {
		t.Errorf("shares %v of 2000", count)
	}
	// other voices: test and valid each get about their share of the words, at least one document
	var c []*document
	for i := 0; i < 12; i++ {
		c = append(c, &document{voice: "sotu", id: string(rune('A' + i)), group: "doc:" + string(rune('A'+i)), words: 1000 + 100*i})
	}
	assignSplits(c, cfg)
	n := map[string]int{}
	for _, d := range c {
		n[d.split]++
	}
	if n["test"] != 1 || n["valid"] != 1 || n["train"] != 10 {
		t.Errorf("sotu splits %v", n)
	}
}

// copySources copies the test slices so one file can be spoilt.
func copySources(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(testSources, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(testSources, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, r), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, r), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestBadSources(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(dir string)
		want  []string
	}{
		{"missing kjv", func(d string) { os.Remove(filepath.Join(d, "kjv/bible.txt")) }, []string{"bible-kjv-text", "kjv/bible.txt", "not found", "install-voices.sh"}},
		{"corrupt jargon", func(d string) {
			os.WriteFile(filepath.Join(d, "jargon/jargon.txt.gz"), []byte("not gzip at all"), 0o644)
		},
			[]string{"jargon-text", "jargon.txt.gz", "gzip"}},
		{"bad verse line", func(d string) {
			os.WriteFile(filepath.Join(d, "kjv/bible.txt"), []byte("Ge1:1 In the beginning.\nthis is no verse\n"), 0o644)
		}, []string{"bible-kjv-text", "bible.txt", "line 2"}},
		{"dict offset past the end", func(d string) {
			os.WriteFile(filepath.Join(d, "devil/devil.index"), []byte("abasement\tA\t////\n"), 0o644)
		}, []string{"dict-devil", "devil.index", "line 1"}},
		{"wordnet synset missing", func(d string) { os.WriteFile(filepath.Join(d, "wordnet/data.adv"), []byte("  licence\n"), 0o644) },
			[]string{"wordnet-base", "data.adv"}},
		{"not a mod2imp dump", func(d string) { os.WriteFile(filepath.Join(d, "web/engWEB.imp"), []byte("hello\n"), 0o644) },
			[]string{"sword-text-web", "engWEB.imp", "mod2imp"}},
		{"no wesnoth", func(d string) { os.RemoveAll(filepath.Join(d, "wesnoth")) }, []string{"wesnoth-1.16-data", "campaigns"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := copySources(t)
			c.spoil(src)
			out := filepath.Join(t.TempDir(), "out")
			_, err := Run(context.Background(), Config{Out: out, Sources: src, System: t.TempDir()})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(out); serr == nil {
				t.Errorf("output written despite the error")
			}
		})
	}
	if _, err := Run(context.Background(), Config{Out: t.TempDir(), Valid: 0.6, Test: 0.5}); err == nil {
		t.Error("valid+test >= 1 accepted")
	}
	if _, err := Run(context.Background(), Config{Out: t.TempDir(), Voices: []string{"klingon"}}); err == nil || !strings.Contains(err.Error(), "klingon") {
		t.Errorf("unknown voice: %v", err)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Run(ctx, Config{Out: out, Sources: testSources, System: t.TempDir()}); err == nil {
		t.Fatal("cancelled run succeeded")
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("cancelled run wrote output")
	}
}

func sameTurn(m chattemplate.Message, role, content string) bool {
	return m.Role == role && m.Content == content && m.Fields == nil
}
