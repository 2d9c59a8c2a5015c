package roleplay

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/data/evalset"
)

func checkShipped(t *testing.T, s *Set) {
	t.Helper()
	if len(s.Personas) < 10 {
		t.Fatalf("%d personas, want ≥ 10", len(s.Personas))
	}
	if s.Name != "masque-roleplay-v1" || s.Kind != "personas" {
		t.Fatalf("set %q kind %q", s.Name, s.Kind)
	}
	seen := map[string]string{}
	for _, p := range s.Personas {
		n := map[string]int{}
		for _, q := range p.Questions {
			n[q.Kind]++
			if q.Kind == KindSpecific {
				if other, dup := seen[q.Text]; dup {
					t.Errorf("%s repeats a specific question of %s: %q", p.ID, other, q.Text)
				}
				seen[q.Text] = p.ID
			}
		}
		if n[KindSpecific] != 20 || n[KindGeneral] != 20 {
			t.Errorf("%s: %d specific and %d general questions, want 20 and 20", p.ID, n[KindSpecific], n[KindGeneral])
		}
		if !strings.HasPrefix(p.Description, "Name: ") || len(p.Description) < 200 {
			t.Errorf("%s: thin description %q", p.ID, p.Description)
		}
		custom := p.ID == "starship-ai"
		if custom == (p.System == fmt.Sprintf(DefaultSystemTemplate, p.Description)) {
			t.Errorf("%s: system prompt %q", p.ID, p.System)
		}
	}
}

func TestShippedSet(t *testing.T) {
	emb, err := LoadSetFS(evalset.FS, evalset.Name)
	if err != nil {
		t.Fatal(err)
	}
	checkShipped(t, emb)
	dir, err := LoadSet(filepath.Join("..", "..", "data", "evalset"))
	if err != nil {
		t.Fatal(err)
	}
	checkShipped(t, dir)
	if emb.Count() != dir.Count() || emb.Count() != 40*len(emb.Personas) {
		t.Fatalf("embedded %d questions, folder %d", emb.Count(), dir.Count())
	}
	f, err := emb.Filter([]string{"pirate-captain", "food-critic"}, 3)
	if err != nil || len(f.Personas) != 2 || f.Count() != 12 {
		t.Fatalf("filter: %v %+v", err, f)
	}
	if _, err := emb.Filter([]string{"nobody"}, 0); err == nil || !strings.Contains(err.Error(), `no persona "nobody"`) {
		t.Fatalf("unknown persona: %v", err)
	}
}

func TestLoadSetErrors(t *testing.T) {
	good := map[string]string{
		"general.txt":       "# shared\nWhat time is it?\n\nWhy?\n",
		"a/description.txt": "A cheerful robot.",
		"a/specific.txt":    "Do you dream?\n",
		"_drafts/notes.txt": "ignored",
		".hidden/stuff.txt": "ignored",
		"b/description.txt": "A grumpy cat.",
		"b/specific.txt":    "Why knock things off tables?",
		"b/general.txt":     "Only for the cat?",
		"b/system.txt":      "You are a cat.",
		"set.json":          `{"name":"tiny","version":"3"}`,
		"README.md":         "not a persona",
	}
	tests := []struct {
		name   string
		edit   func(files map[string]string)
		errHas string
	}{
		{"good", func(map[string]string) {}, ""},
		{"missing description", func(f map[string]string) { delete(f, "a/description.txt") }, "a/description.txt is missing"},
		{"empty description", func(f map[string]string) { f["a/description.txt"] = "  \n" }, "a/description.txt is empty"},
		{"missing specific", func(f map[string]string) { delete(f, "b/specific.txt") }, "b/specific.txt is missing"},
		{"only comments", func(f map[string]string) { f["a/specific.txt"] = "# nothing\n\n" }, "a/specific.txt holds no questions"},
		{"no general anywhere", func(f map[string]string) { delete(f, "general.txt") }, "persona a has no general questions"},
		{"malformed set.json", func(f map[string]string) { f["set.json"] = "{name:" }, "set.json: malformed JSON"},
		{"no personas", func(f map[string]string) {
			for k := range f {
				if strings.Contains(k, "/") {
					delete(f, k)
				}
			}
		}, "no persona folders"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range good {
				files[k] = v
			}
			tc.edit(files)
			dir := t.TempDir()
			for k, v := range files {
				p := filepath.Join(dir, k)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(v), 0o644)
			}
			s, err := LoadSet(dir)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != "tiny" || s.Version != "3" || len(s.Personas) != 2 {
				t.Fatalf("%+v", s)
			}
			a, b := s.Personas[0], s.Personas[1]
			if len(a.Questions) != 3 || a.Questions[1].Text != "What time is it?" || a.Questions[2].Index != 1 {
				t.Fatalf("a: %+v", a.Questions)
			}
			if len(b.Questions) != 2 || b.Questions[1].Text != "Only for the cat?" || b.System != "You are a cat." {
				t.Fatalf("b: %+v", b)
			}
		})
	}
	if _, err := LoadSet(filepath.Join(t.TempDir(), "absent")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("absent folder: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file.txt")
	os.WriteFile(f, []byte("x"), 0o644)
	if _, err := LoadSet(f); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Fatalf("file: %v", err)
	}
}

func TestLoadRoleBench(t *testing.T) {
	s, err := LoadRoleBench(filepath.Join("testdata", "rolebench", "test.jsonl"), filepath.Join("testdata", "rolebench", "desc.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != "rolebench" || len(s.Personas) != 2 || s.Count() != 4 {
		t.Fatalf("%+v", s)
	}
	q := s.Personas[0].Questions[0]
	if s.Personas[0].ID != "Captain Wren" || q.Kind != KindRoleBench || !strings.HasPrefix(q.Reference, "Calm water") {
		t.Fatalf("%+v", s.Personas[0])
	}
	if !strings.Contains(s.Personas[1].System, "Professor Quill: An absent-minded") {
		t.Fatalf("system %q", s.Personas[1].System)
	}

	desc := `{"R": "a role"}`
	tests := []struct {
		name, data, desc, errHas string
	}{
		{"malformed line", "{\"role\":\"R\",\"question\":\"q\",\"generated\":[\"a\"]}\n{oops\n", desc, "data.jsonl:2: malformed JSON"},
		{"only rows without a reference", "{\"role\":\"R\",\"question\":\"q\",\"generated\":[]}\n{\"role\":\"R\",\"question\":\"q2\",\"generated\":[\" \"]}", desc, "no usable rows: 2 source rows skipped (2 no reference answer (generated[0])): "},
		{"no question", `{"role":"R","generated":["x"]}`, desc, "data.jsonl:1: no question"},
		{"unknown role", `{"role":"S","question":"q","generated":["x"]}`, desc, `role "S" has no description`},
		{"malformed desc", `{"role":"R","question":"q","generated":["x"]}`, `["R"]`, "desc.json: malformed JSON"},
		{"empty file", "\n\n", desc, "no rows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dp, cp := filepath.Join(dir, "data.jsonl"), filepath.Join(dir, "desc.json")
			os.WriteFile(dp, []byte(tc.data), 0o644)
			os.WriteFile(cp, []byte(tc.desc), 0o644)
			_, err := LoadRoleBench(dp, cp)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %v, want %q", err, tc.errHas)
			}
		})
	}
	if _, err := LoadRoleBench("absent.jsonl", filepath.Join("testdata", "rolebench", "desc.json")); err == nil || !strings.Contains(err.Error(), "absent.jsonl") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestOpenSet: "" and "builtin" are the embedded set; anything else a folder.
func TestOpenSet(t *testing.T) {
	for _, name := range []string{"", evalset.Name} {
		s, err := OpenSet(name)
		if err != nil || s.Source != evalset.Name || len(s.Personas) == 0 {
			t.Errorf("%q: %v", name, err)
		}
	}
	if _, err := OpenSet(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing folder: %v", err)
	}
}
