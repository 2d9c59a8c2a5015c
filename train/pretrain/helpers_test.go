package pretrain

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/randmodel"
)

// chatML is the ChatML template of the voices tokenizer.
const chatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// writeTokenizer writes a byte-level BPE tokenizer of 512 ids (randmodel's
// synthetic one) plus the three special tokens of the voices tokenizer
// (ids 512–514) and a tokenizer_config.json with the ChatML template.
func writeTokenizer(t testing.TB, dir string) {
	t.Helper()
	tj, err := randmodel.TokenizerJSON(512)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(tj, &doc); err != nil {
		t.Fatal(err)
	}
	specials := []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
	var added []any
	dec := map[string]any{}
	for i, s := range specials {
		a := map[string]any{"id": 512 + i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
		added = append(added, a)
		dec[fmt.Sprint(512+i)] = a
	}
	doc["added_tokens"] = added
	must(t, os.MkdirAll(dir, 0o755))
	writeJSONFile(t, filepath.Join(dir, "tokenizer.json"), doc)
	writeJSONFile(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{
		"chat_template": chatML, "eos_token": "<|im_end|>", "bos_token": nil, "pad_token": "<|endoftext|>",
		"added_tokens_decoder": dec, "tokenizer_class": "PreTrainedTokenizerFast",
	})
}

func writeJSONFile(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(path, b, 0o644))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testVoices are two made-up voices with distinct, learnable styles.
var testVoices = map[string][]string{
	"plain": {"the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "to", "it"},
	"olde":  {"thou", "hast", "seen", "ye", "lord", "and", "unto", "thee", "shall", "be", "given", "verily"},
}

// writeCorpus writes a small voices corpus (CORPUS.md layout) with rows
// per voice in train and valid.
func writeCorpus(t testing.TB, dir string, rows int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(9, 9))
	var personas []map[string]string
	for _, v := range []string{"plain", "olde"} {
		personas = append(personas, map[string]string{"name": v, "persona": "You speak " + v + "."})
		must(t, os.MkdirAll(filepath.Join(dir, v), 0o755))
		for _, split := range []string{"train", "valid", "test"} {
			n := rows
			if split != "train" {
				n = max(2, rows/5)
			}
			var b strings.Builder
			for i := 0; i < n; i++ {
				words := testVoices[v]
				k := 5 + rng.IntN(20)
				var sent []string
				for j := 0; j < k; j++ {
					sent = append(sent, words[(i+j*j+rng.IntN(2))%len(words)])
				}
				text := strings.Join(sent, " ") + "."
				prompt := "Say something about " + words[i%len(words)] + "."
				row := map[string]any{"id": fmt.Sprintf("%s/%s/%d", v, split, i), "voice": v, "doc": fmt.Sprint(i), "key": "",
					"prompt": prompt, "text": text,
					"messages": []map[string]string{{"role": "system", "content": "You speak " + v + "."}, {"role": "user", "content": prompt}, {"role": "assistant", "content": text}}}
				js, _ := json.Marshal(row)
				b.Write(js)
				b.WriteByte('\n')
			}
			must(t, os.WriteFile(filepath.Join(dir, v, split+".jsonl"), []byte(b.String()), 0o644))
		}
	}
	writeJSONFile(t, filepath.Join(dir, "personas.json"), map[string]any{"voices": personas})
}

// fixture is a corpus and a tokenizer in a temporary folder.
type fixture struct{ corpus, tok, root string }

func newFixture(t testing.TB, rows int) fixture {
	t.Helper()
	root := t.TempDir()
	f := fixture{corpus: filepath.Join(root, "corpus"), tok: filepath.Join(root, "tok"), root: root}
	writeTokenizer(t, f.tok)
	writeCorpus(t, f.corpus, rows)
	return f
}

// tinyConfig is a fast run on the fixture.
func (f fixture) tinyConfig(out string) Config {
	return Config{CorpusDir: f.corpus, TokenizerDir: f.tok, Preset: "voices-tiny", OutDir: filepath.Join(f.root, out),
		SeqLen: 64, BatchTokens: 256, Steps: 8, LR: 3e-3, Warmup: 2, ChatRatio: 0.5, EvalEvery: 4, CheckpointEvery: 2,
		Seed: 3, Threads: 2, PeakFLOPS: 1e9, DType: "f32"}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
