package bpetrain

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/tokenizer"
)

// trainedDir trains a tokenizer on the test corpus (the KJV excerpt and the train
// split of the corpus folder) with the given pattern once per test binary.
var (
	trainedMu   sync.Mutex
	trainedDirs = map[string]string{}
)

func trainedDir(t *testing.T, pattern string) string {
	t.Helper()
	trainedMu.Lock()
	defer trainedMu.Unlock()
	if d, ok := trainedDirs[pattern]; ok {
		return d
	}
	dir, err := os.MkdirTemp("", "bpetrain-"+pattern+"-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tok-"+pattern)
	_, err = Run(context.Background(), Config{
		Data:      []string{filepath.Join("testdata", "kjv-genesis-1-3.txt"), filepath.Join("testdata", "corpus")},
		Out:       out,
		VocabSize: 1024,
		Pattern:   pattern,
	})
	if err != nil {
		t.Fatal(err)
	}
	trainedDirs[pattern] = out
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range trainedDirs {
		os.RemoveAll(filepath.Dir(d))
	}
	os.Exit(code)
}

// edgeCases are strings that stress pre-tokenization and byte-level coding.
var edgeCases = []string{
	"", " ", "  ", "\t", "\n", "\n\n", "\r\n", " \n ", "a\r\nb\r\n\r\nc", "trailing newline\n", "  leading spaces",
	" Hello", "  Hello  world  ", "Hello     world", "\tindented with tab", "line1\nline2", "para1\n\n\npara2",
	"windows\r\nline endings\r\n", "non\u00a0breaking\u00a0space", "zero\u200bwidth", "\u2028line\u2029sep", "\u0085next",
	"1234567", "12345678901234567890", " 2024", "3.14159", "The year 2024 had 366 days.", "007 and 0.5%", "١٢٣٤ ٥٦",
	"I'm here", "you'll see", "DON'T", "It's", "I'VE", "rock 'n' roll", "'tis", "o'er the hills",
	"def f(x):\n    return x * 2\n", `{"key": [1, 2, 3], "b": null}`, `<div class="x">hi</div>`,
	"https://example.com/path?q=1&r=2", "user@example.com", "--- *** ... !!! ???", "$$$ €100 £5 ¥3",
	"😀", "Hello 👋 world 🌍!", "👨\u200d👩\u200d👧\u200d👦", "🇫🇷🇯🇵", "👍🏽", "❤️", "\U0001F9FF\U0001FAE0",
	"中文", "你好，世界！", "日本語のテキストです。", "한국어 텍스트", "مرحبا بالعالم", "Привет, мир!", "Γειά σου Κόσμε",
	"नमस्ते दुनिया", "สวัสดีชาวโลก", "שלום עולם", "café naïve résumé", "e\u0301 combining", "a\u0308\u0304 stacked",
	"ﬁ ligature ＦＵＬＬ", "∑ x² ≤ ∞ √2 π", "Ω≈ç√∫˜µ≤≥÷", "\U0010FFFF", "\uFEFFbom", "\x00nul\x01",
	"Ġ", "Ċ", "ĠĠ", "▁word",
	"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
	"text<|endoftext|>more", "<|im_end|><|im_end|>", "<|im_start", "im_end|>", "< |im_end| >", " <|im_end|> ",
	"And God said, Let there be light: and there was light.", "AND GOD SAID", "and god said",
	strings.Repeat("a", 300), strings.Repeat("ab ", 50), strings.Repeat("\n", 20), strings.Repeat(" ", 33) + "x",
	strings.Repeat("9", 31), "supercalifragilisticexpialidocious",
}

// corpusStrings are lines and rows of the test corpus, the test split included.
func corpusStrings(t *testing.T) ([]string, [][]chattemplate.Message) {
	t.Helper()
	var texts []string
	data, err := os.ReadFile(filepath.Join("testdata", "kjv-genesis-1-3.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if l != "" {
			texts = append(texts, l)
		}
	}
	var chats [][]chattemplate.Message
	for _, voice := range []string{"kjv", "devil"} {
		for _, split := range []string{"train", "test"} {
			f, err := os.Open(filepath.Join("testdata", "corpus", voice, split+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var row struct {
					Text     string                 `json:"text"`
					Messages []chattemplate.Message `json:"messages"`
				}
				if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
					t.Fatal(err)
				}
				texts = append(texts, row.Text, row.Messages[0].Content)
				chats = append(chats, row.Messages)
			}
			f.Close()
		}
	}
	return texts, chats
}

// TestRoundTrip: the tokenizer package and checkpoint load the written tokenizer;
// decoding the ids of any text gives the text back, the ids are within the vocabulary,
// special tokens are single ids, and the chat template renders ChatML.
func TestRoundTrip(t *testing.T) {
	for _, pattern := range []string{"llama3", "gpt2"} {
		t.Run(pattern, func(t *testing.T) {
			dir := trainedDir(t, pattern)
			tok, err := tokenizer.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tok.VocabSize() != 1024 {
				t.Fatalf("vocabulary %d, want 1024", tok.VocabSize())
			}
			for i, s := range DefaultSpecialTokens {
				id, ok := tok.TokenID(s)
				if !ok || id != 1021+i || !tok.IsSpecial(id) {
					t.Fatalf("%s: id %d (found %v), special %v", s, id, ok, tok.IsSpecial(id))
				}
			}
			if eos, ok := tok.EOS(); !ok || eos != 1023 {
				t.Fatalf("EOS %d %v, want 1023 (<|im_end|>)", eos, ok)
			}
			if _, ok := tok.BOS(); ok {
				t.Fatal("a BOS token is set")
			}
			texts, chats := corpusStrings(t)
			texts = append(texts, edgeCases...)
			for _, s := range texts {
				ids := tok.Encode(s, true)
				for _, id := range ids {
					if id < 0 || id >= 1024 {
						t.Fatalf("%q: id %d out of range", s, id)
					}
				}
				if got := tok.Decode(ids, false); got != s {
					t.Fatalf("round trip of %q gave %q (ids %v)", s, got, ids)
				}
				if strings.Contains(s, "<|im_end|>") && !contains(tokensOf(tok, ids), "<|im_end|>") {
					t.Fatalf("%q: <|im_end|> is not one token", s)
				}
			}
			// Trained text compresses: fewer tokens than bytes by a good margin.
			var nb, nt int
			for _, s := range texts[:80] {
				nb += len(s)
				nt += len(tok.Encode(s, false))
			}
			if float64(nb)/float64(nt) < 3 {
				t.Fatalf("only %.2f bytes per token on the training text", float64(nb)/float64(nt))
			}

			ck, err := checkpoint.OpenText(dir, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			if !ck.HasTemplate {
				t.Fatal("checkpoint found no chat template")
			}
			msgs := chats[0]
			got, err := ck.RenderChat(msgs, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			for _, m := range msgs {
				want += "<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n"
			}
			want += "<|im_start|>assistant\n"
			if got != want {
				t.Fatalf("chat rendering\n got %q\nwant %q", got, want)
			}
			ids, err := ck.EncodeChat(msgs, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids, tok.Encode(want[:len(want)-len("<|im_start|>assistant\n")], false)) || ids[0] != 1022 {
				t.Fatalf("chat ids %v", ids)
			}
		})
	}
}

func tokensOf(tok *tokenizer.Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tok.Token(id)
	}
	return out
}

// transformersJS finds node and an installed @huggingface/transformers (see
// .ci/install-transformers-js.sh), or skips the test.
func transformersJS(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	dir = os.Getenv("MASQUE_TRANSFORMERS_JS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Skip("no cache folder for transformers.js")
		}
		dir = filepath.Join(cache, "masque", "transformers-js")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@huggingface", "transformers", "package.json")); err != nil {
		t.Skipf("@huggingface/transformers is not installed in %s (run .ci/install-transformers-js.sh)", dir)
	}
	return node, dir
}

// tjsScript encodes texts and chats with transformers.js. It runs in the folder that
// holds node_modules, so the package resolves from there.
const tjsScript = `
import { AutoTokenizer, env } from '@huggingface/transformers';
import fs from 'fs';
import path from 'path';
const [dir, input] = process.argv.slice(1);
env.allowRemoteModels = false;
env.localModelPath = path.dirname(dir) + '/';
const tok = await AutoTokenizer.from_pretrained(path.basename(dir));
const { texts, chats } = JSON.parse(fs.readFileSync(input, 'utf8'));
const out = { ids: [], decoded: [], chat_ids: [] };
for (const t of texts) {
  const ids = tok.encode(t, { add_special_tokens: true });
  out.ids.push(ids);
  out.decoded.push(ids.length ? tok.decode(ids, { skip_special_tokens: false }) : '');
}
for (const c of chats) {
  const r = tok.apply_chat_template(c, { tokenize: true, add_generation_prompt: true, return_tensor: false });
  out.chat_ids.push(Array.from(r.input_ids ?? r));
}
process.stdout.write(JSON.stringify(out));
`

// TestTransformersJS: transformers.js, an independent implementation, loads the
// written tokenizer and gives the same ids (and decodes them to the same text) as
// masque on the corpus lines, the test split and the edge cases, and renders and
// encodes chats the same way.
func TestTransformersJS(t *testing.T) {
	node, modDir := transformersJS(t)
	for _, pattern := range []string{"llama3", "gpt2"} {
		t.Run(pattern, func(t *testing.T) {
			dir := trainedDir(t, pattern)
			texts, chats := corpusStrings(t)
			texts = append(texts, edgeCases...)
			compareTransformersJS(t, node, modDir, dir, texts, chats)
		})
	}
}

func compareTransformersJS(t *testing.T, node, modDir, dir string, texts []string, chats [][]chattemplate.Message) {
	t.Helper()
	in := filepath.Join(t.TempDir(), "in.json")
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	jchats := make([][]msg, len(chats))
	for i, c := range chats {
		for _, m := range c {
			jchats[i] = append(jchats[i], msg{m.Role, m.Content})
		}
	}
	data, _ := json.Marshal(map[string]any{"texts": texts, "chats": jchats})
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--input-type=module", "-e", tjsScript, "--", dir, in)
	cmd.Dir = modDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outData, err := cmd.Output()
	if err != nil {
		t.Fatalf("transformers.js: %v\n%s", err, stderr.String())
	}
	var got struct {
		IDs     [][]int  `json:"ids"`
		Decoded []string `json:"decoded"`
		ChatIDs [][]int  `json:"chat_ids"`
	}
	if err := json.Unmarshal(outData, &got); err != nil {
		t.Fatalf("transformers.js output: %v", err)
	}
	if len(got.IDs) != len(texts) || len(got.ChatIDs) != len(chats) {
		t.Fatalf("transformers.js gave %d/%d results for %d/%d inputs", len(got.IDs), len(got.ChatIDs), len(texts), len(chats))
	}
	ck, err := checkpoint.OpenText(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok := ck.Tokenizer
	bad := 0
	for i, s := range texts {
		ids := tok.Encode(s, true)
		if ids == nil {
			ids = []int{}
		}
		if got.IDs[i] == nil {
			got.IDs[i] = []int{}
		}
		if !reflect.DeepEqual(ids, got.IDs[i]) {
			t.Errorf("%q: masque %v, transformers.js %v", s, ids, got.IDs[i])
			bad++
		} else if d := tok.Decode(ids, false); d != got.Decoded[i] {
			t.Errorf("%q: masque decodes %q, transformers.js %q", s, d, got.Decoded[i])
			bad++
		}
		if bad > 10 {
			t.Fatal("too many differences")
		}
	}
	for i, c := range chats {
		ids, err := ck.EncodeChat(c, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids, got.ChatIDs[i]) {
			t.Errorf("chat %d: masque %v, transformers.js %v", i, ids, got.ChatIDs[i])
		}
	}
	t.Logf("%d texts and %d chats agree with transformers.js", len(texts), len(chats))
}

// TestTransformersJSCorpus compares masque and transformers.js on a trained
// tokenizer and a corpus's test split (the first 40 rows of every */test.jsonl: the
// text, each message, and the chat), when MASQUE_BPETRAIN_TOKENIZER and
// MASQUE_BPETRAIN_CORPUS name them, e.g. /work/corpus/tokenizer and
// /work/corpus/voices.
func TestTransformersJSCorpus(t *testing.T) {
	dir, corpus := os.Getenv("MASQUE_BPETRAIN_TOKENIZER"), os.Getenv("MASQUE_BPETRAIN_CORPUS")
	if dir == "" || corpus == "" {
		t.Skip("set MASQUE_BPETRAIN_TOKENIZER and MASQUE_BPETRAIN_CORPUS")
	}
	node, modDir := transformersJS(t)
	files, err := filepath.Glob(filepath.Join(corpus, "*", "test.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no */test.jsonl in %s", corpus)
	}
	var texts []string
	var chats [][]chattemplate.Message
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<24)
		for n := 0; n < 40 && sc.Scan(); n++ {
			var row struct {
				Text     string                 `json:"text"`
				Messages []chattemplate.Message `json:"messages"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			texts = append(texts, row.Text)
			for _, m := range row.Messages {
				texts = append(texts, m.Content)
			}
			chats = append(chats, row.Messages)
		}
		f.Close()
	}
	compareTransformersJS(t, node, modDir, dir, append(texts, edgeCases...), chats)
}
