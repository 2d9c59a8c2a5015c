package voices

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/internal/atomicfile"
)

// Row is one line of a split file (keys in the order CORPUS.md gives).
type Row struct {
	ID       string                 `json:"id"`
	Voice    string                 `json:"voice"`
	Doc      string                 `json:"doc"`
	Key      string                 `json:"key"`
	Prompt   string                 `json:"prompt"`
	Text     string                 `json:"text"`
	Messages []chattemplate.Message `json:"messages"`
}

// Manifest is MANIFEST.json.
type Manifest struct {
	Format   string            `json:"format"`
	Seed     int64             `json:"seed"`
	Budget   int               `json:"budget"`
	MaxWords int               `json:"max_passage_words"`
	Valid    float64           `json:"valid"`
	Test     float64           `json:"test"`
	Packages map[string]string `json:"packages"`
	Voices   []VoiceStats      `json:"voices"`
	Sources  []sourceFile      `json:"sources"`
	Outputs  []outputFile      `json:"outputs"`
}

type outputFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Bytes  int    `json:"bytes"`
}

func marshal(v any, indent bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// write renders every file in memory, then writes them (MANIFEST.json last).
func write(cfg Config, src *sources, res *Result, docs map[string][]*document) error {
	type file struct {
		rel  string
		data []byte
	}
	var files []file
	var ps []Persona
	for _, v := range cfg.Voices {
		ps = append(ps, *personaOf(v))
	}
	data, err := marshal(struct {
		Voices []Persona `json:"voices"`
	}{ps}, true)
	if err != nil {
		return err
	}
	files = append(files, file{"personas.json", data})
	for _, v := range cfg.Voices {
		persona := personaOf(v).Persona
		bufs := map[string]*bytes.Buffer{}
		for _, s := range Splits {
			bufs[s] = &bytes.Buffer{}
		}
		for _, d := range docs[v] {
			for _, p := range d.passage {
				r := Row{ID: fmt.Sprintf("%s/%s/%04d", v, d.slug, p.num), Voice: v, Doc: v + ":" + d.id, Key: p.key,
					Prompt: p.prompt, Text: p.text, Messages: []chattemplate.Message{{Role: "system", Content: persona}, {Role: "user", Content: p.prompt}, {Role: "assistant", Content: p.text}}}
				line, err := marshal(r, false)
				if err != nil {
					return err
				}
				bufs[d.split].Write(line)
			}
		}
		for _, s := range Splits {
			files = append(files, file{v + "/" + s + ".jsonl", bufs[s].Bytes()})
		}
	}
	man := Manifest{Format: "masque voices corpus v1", Seed: cfg.Seed, Budget: cfg.Budget, MaxWords: cfg.MaxWords,
		Valid: cfg.Valid, Test: cfg.Test, Packages: src.versions(cfg.Voices), Voices: res.Voices, Sources: src.files}
	sort.SliceStable(man.Sources, func(i, j int) bool { return man.Sources[i].Path < man.Sources[j].Path })
	for _, f := range files {
		sum := sha256.Sum256(f.data)
		man.Outputs = append(man.Outputs, outputFile{f.rel, hex.EncodeToString(sum[:]), len(f.data)})
	}
	mdata, err := marshal(man, true)
	if err != nil {
		return err
	}
	files = append(files, file{"MANIFEST.json", mdata})
	for _, f := range files {
		p := filepath.Join(cfg.Out, filepath.FromSlash(f.rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(p, f.data); err != nil {
			return fmt.Errorf("voices: writing %s: %w", p, err)
		}
	}
	return nil
}
