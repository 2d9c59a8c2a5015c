package persona

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"pirate", true},
		{"Captain_Mira-2.1", true},
		{"a", true},
		{strings.Repeat("x", MaxNameLen), true},
		{strings.Repeat("x", MaxNameLen+1), false},
		{"", false},
		{"..", false},
		{"../etc/passwd", false},
		{"a..b", false},
		{".hidden", false},
		{"-flag", false},
		{"a/b", false},
		{`a\b`, false},
		{"space name", false},
		{"naïve", false},
		{"nul\x00", false},
	} {
		if err := ValidName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Captain Mira!", "captain-mira"},
		{"  Dr. Who  ", "dr-who"},
		{"../../etc", "etc"},
		{"Zoë the Great", "zo-the-great"},
		{"!!!", "persona"},
		{"snake_case", "snake_case"},
		{strings.Repeat("ab ", 40), strings.TrimRight(strings.Repeat("ab-", 22)[:MaxNameLen], "-")},
	} {
		got := Slug(tc.in)
		if got != tc.want {
			t.Errorf("Slug(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if err := ValidName(got); err != nil {
			t.Errorf("Slug(%q) = %q is not a valid name: %v", tc.in, got, err)
		}
	}
}

func TestSpecKindAndValidate(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		spec Spec
		kind string
		ok   bool
	}{
		{Spec{Name: "a"}, KindBase, true},
		{Spec{Name: "a", Mask: "m"}, KindMask, true},
		{Spec{Name: "a", LoRA: "l"}, KindLoRA, true},
		{Spec{Name: "a", Mask: "m", LoRA: "l"}, KindMaskLoRA, true},
		{Spec{Name: "a", Model: "dir"}, KindModel, true},
		{Spec{Name: "a", Model: "dir", Mask: "m"}, KindMask, true}, // a mask over the model dir
		{Spec{Name: "a", Model: "dir", LoRA: "l"}, KindLoRA, true},
		{Spec{Name: "a", Model: "dir", Mask: "m", LoRA: "l"}, KindMaskLoRA, true},
		{Spec{Name: "a/b"}, KindBase, false},
		{Spec{Name: "a", Temperature: f(2.5)}, KindBase, false},
		{Spec{Name: "a", TopP: f(-0.1)}, KindBase, false},
		{Spec{Name: "a", MaxTokens: -1}, KindBase, false},
		{Spec{Name: "a", Description: strings.Repeat("x", MaxPromptLen+1)}, KindBase, false},
	} {
		if k := tc.spec.Kind(); k != tc.kind {
			t.Errorf("%+v: kind %s, want %s", tc.spec, k, tc.kind)
		}
		if err := tc.spec.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", tc.spec, err, tc.ok)
		}
	}
	s := Spec{Name: "a", Description: "desc"}
	if s.Prompt() != "desc" {
		t.Errorf("prompt from description: %q", s.Prompt())
	}
	s.SystemPrompt = "sys"
	if s.Prompt() != "sys" {
		t.Errorf("explicit system prompt: %q", s.Prompt())
	}
}

const v2Card = `{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Captain Mira","description":"A {{char}} who sails with {{user}}.","personality":"gruff, loyal","scenario":"On deck.","first_mes":"Ahoy, {{user}}!","mes_example":"","system_prompt":"{{original}} Stay in character.","tags":["pirate"],"extensions":{}}}`

func tinyPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParseCard(t *testing.T) {
	withPNG := func(js string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			out, err := EmbedCardPNG(tinyPNG(t), []byte(js))
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	raw := func(s string) func(*testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }
	for _, tc := range []struct {
		name     string
		data     func(t *testing.T) []byte
		spec     string
		persona  string
		prompt   string
		greeting string
		err      string
	}{
		{"v2 json", raw(v2Card), "chara_card_v2", "captain-mira",
			"You are Captain Mira. A Captain Mira who sails with User.\nCaptain Mira's personality: gruff, loyal\nScenario: On deck. Stay in character.", "Ahoy, User!", ""},
		{"v2 png", withPNG(v2Card), "chara_card_v2", "captain-mira", "", "Ahoy, User!", ""},
		{"v3 json", raw(`{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"Bo","description":"d"}}`), "chara_card_v3", "bo", "You are Bo. d", "", ""},
		{"v1 json", raw(`{"name":"Old Timer","description":"old","personality":"slow","first_mes":"hm"}`), "chara_card_v1", "old-timer", "You are Old Timer. old\nOld Timer's personality: slow", "hm", ""},
		{"malformed json", raw(`{"spec":`), "", "", "", "", "malformed JSON"},
		{"unknown spec", raw(`{"spec":"chara_card_v9","data":{}}`), "", "", "", "", "unknown spec"},
		{"no data", raw(`{"spec":"chara_card_v2"}`), "", "", "", "", "without \"data\""},
		{"no name", raw(`{"spec":"chara_card_v2","data":{"description":"x"}}`), "", "", "", "", "no name"},
		{"png without card", func(t *testing.T) []byte { return tinyPNG(t) }, "", "", "", "", "no \"chara\""},
		{"png bad crc", func(t *testing.T) []byte {
			b := withPNG(v2Card)(t)
			i := bytes.Index(b, []byte("chara\x00"))
			b[i+8] ^= 1
			return b
		}, "", "", "", "", "bad CRC"},
		{"png truncated", func(t *testing.T) []byte { b := withPNG(v2Card)(t); return b[:len(b)-30] }, "", "", "", "", "overruns"},
		{"png not base64", withPNG("%%%"), "", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCard(tc.data(t))
			if tc.name == "png not base64" {
				// EmbedCardPNG base64-encodes whatever it is given: the JSON is then bad.
				if err == nil {
					t.Fatal("a card with invalid JSON was accepted")
				}
				return
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.SpecName != tc.spec {
				t.Errorf("spec %s, want %s", c.SpecName, tc.spec)
			}
			s, err := c.Spec()
			if err != nil {
				t.Fatal(err)
			}
			// The spec keeps {{char}} and {{user}}; they are expanded when it is used.
			if s.Name != tc.persona || (tc.prompt != "" && s.Prompt() != tc.prompt) || s.Expand(s.Greeting) != tc.greeting {
				t.Errorf("spec %+v\nwant name %q prompt %q greeting %q", s, tc.persona, tc.prompt, tc.greeting)
			}
			if err := s.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestEmbedCardReplaces(t *testing.T) {
	a, err := EmbedCardPNG(tinyPNG(t), []byte(`{"name":"A"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := EmbedCardPNG(a, []byte(`{"name":"B"}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCard(b)
	if err != nil || c.Name != "B" {
		t.Fatalf("card %+v, %v", c, err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Errorf("the PNG no longer decodes: %v", err)
	}
	if _, err := EmbedCardPNG([]byte("GIF89a"), nil); err == nil {
		t.Error("a non-PNG was accepted")
	}
}

func TestLoadRegistry(t *testing.T) {
	dir := t.TempDir()
	cardPNG, err := EmbedCardPNG(tinyPNG(t), []byte(v2Card))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "mira.png"), cardPNG, 0o644)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	specJSON, _ := json.Marshal(map[string]any{"personas": []map[string]any{{"name": "a", "mask": "m/a.safetensors", "temperature": 0.5}}})
	for _, tc := range []struct {
		name, file, body string
		names            []string
		err              string
	}{
		{"yaml", "r.yaml", `
personas:
  - name: pirate
    description: A gruff pirate.
    mask: masks/pirate.safetensors
  - name: sage
    system_prompt: You are a sage.
    lora: /abs/adapter
  - card: mira.png
  - card: mira.png
    name: mira2
    greeting: Hello.
`, []string{"pirate", "sage", "captain-mira", "mira2"}, ""},
		{"bare list", "l.yml", "- name: x\n- name: y\n  model: pruned\n", []string{"x", "y"}, ""},
		{"json", "r.json", string(specJSON), []string{"a"}, ""},
		{"json list", "l.json", `[{"name":"j"}]`, []string{"j"}, ""},
		{"empty", "e.yaml", "", nil, ""},
		{"unknown field", "u.yaml", "personas:\n  - name: x\n    colour: red\n", nil, "colour"},
		{"unknown json field", "u.json", `{"personas":[{"name":"x","colour":"red"}]}`, nil, "colour"},
		{"duplicate", "d.yaml", "- name: x\n- name: x\n", nil, "twice"},
		{"bad name", "b.yaml", "- name: ../x\n", nil, "entry 1"},
		{"missing card", "c.yaml", "- card: nope.png\n", nil, "nope.png"},
		{"mask over another model", "mm.yaml", "- {name: x, model: a, mask: b}\n", []string{"x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			specs, err := LoadRegistry(write(tc.file, tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range specs {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.names, ",") {
				t.Errorf("names %v, want %v", names, tc.names)
			}
			for _, s := range specs {
				for _, p := range []string{s.Mask, s.LoRA, s.Model} {
					if p != "" && !filepath.IsAbs(p) {
						t.Errorf("%s: path %q was not resolved", s.Name, p)
					}
				}
			}
			if tc.name == "yaml" {
				if specs[0].Mask != filepath.Join(dir, "masks/pirate.safetensors") || specs[1].LoRA != "/abs/adapter" {
					t.Errorf("paths: %q, %q", specs[0].Mask, specs[1].LoRA)
				}
				if specs[2].Expand(specs[2].Greeting) != "Ahoy, User!" || specs[2].Greeting != "Ahoy, {{user}}!" || specs[3].Greeting != "Hello." || specs[3].Prompt() == "" {
					t.Errorf("card import: %+v / %+v", specs[2], specs[3])
				}
			}
		})
	}
}

// TestSaveRegistry: what SaveRegistry writes, LoadRegistry reads back as
// the same specs, in YAML and JSON; paths inside the file's folder become
// relative, others stay as they are.
func TestSaveRegistry(t *testing.T) {
	dir := t.TempDir()
	temp := 0.3
	specs := []Spec{
		{Name: "pirate", Description: "A gruff pirate.", Mask: filepath.Join(dir, "masks", "pirate.safetensors"), Temperature: &temp, Tags: []string{"sea"}},
		{Name: "sage", SystemPrompt: "You are a sage.\nSpeak slowly.", LoRA: "/elsewhere/adapter", Greeting: "Hm."},
		{Name: "pruned", Model: filepath.Join(dir, "pruned"), MaxTokens: 64},
	}
	for _, file := range []string{"r.yaml", "r.json"} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join(dir, file)
			if err := SaveRegistry(path, specs); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			if !strings.Contains(string(raw), filepath.Join("masks", "pirate.safetensors")) || strings.Contains(string(raw), dir) {
				t.Errorf("paths inside the folder should be relative:\n%s", raw)
			}
			got, err := LoadRegistry(path)
			if err != nil {
				t.Fatalf("%v\n%s", err, raw)
			}
			if !reflect.DeepEqual(got, specs) {
				t.Errorf("read back %+v\nwant %+v", got, specs)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp") {
					t.Errorf("temporary file left behind: %s", e.Name())
				}
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		path := filepath.Join(dir, "e.yaml")
		if err := SaveRegistry(path, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := LoadRegistry(path); err != nil || len(got) != 0 {
			t.Errorf("read back %v, %v", got, err)
		}
	})
	t.Run("missing folder", func(t *testing.T) {
		path := filepath.Join(dir, "no", "such", "r.yaml")
		if err := SaveRegistry(path, specs); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v should name %s", err, path)
		}
	})
}
