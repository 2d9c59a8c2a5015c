package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/masque-ai/masque/gguf"
)

// GGUF token types (llama.cpp's llama_token_type).
const (
	ggufNormal      = 1
	ggufUnknown     = 2
	ggufControl     = 3
	ggufUserDefined = 4
	ggufUnused      = 5
	ggufByte        = 6
)

// Pre-tokenizer regexes by llama.cpp "tokenizer.ggml.pre" name.
const (
	regexGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	regexLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func byteLevel(useRegex bool) map[string]any {
	return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": useRegex}
}

func splitThenBytes(regex string) map[string]any {
	return map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": regex}, "behavior": "Isolated", "invert": false},
		byteLevel(false),
	}}
}

// FromGGUF builds the tokenizer stored in a GGUF file's metadata
// (tokenizer.ggml.*): byte-level BPE ("gpt2", with the pre-tokenizer named
// by tokenizer.ggml.pre) or SentencePiece-style BPE ("llama", merges
// derived from the piece scores as Hugging Face's converter does).
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	errf := func(format string, a ...any) error {
		return fmt.Errorf("tokenizer: %s: %s", f.Path, fmt.Sprintf(format, a...))
	}
	kind, ok := f.String("tokenizer.ggml.model")
	if !ok {
		return nil, errf("no tokenizer.ggml.model in the metadata")
	}
	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) == 0 {
		return nil, errf("no tokenizer.ggml.tokens in the metadata")
	}
	types, _ := f.Int32s("tokenizer.ggml.token_type")
	if types != nil && len(types) != len(toks) {
		return nil, errf("tokenizer.ggml.token_type has %d entries for %d tokens", len(types), len(toks))
	}
	typ := func(i int) int32 {
		if types == nil {
			return ggufNormal
		}
		return types[i]
	}
	vocab := make(map[string]int, len(toks))
	var added []any
	for i, t := range toks {
		if _, dup := vocab[t]; !dup {
			vocab[t] = i
		}
		switch typ(i) {
		case ggufControl, ggufUserDefined, ggufUnknown:
			added = append(added, map[string]any{"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
				"normalized": typ(i) == ggufUserDefined, "special": typ(i) != ggufUserDefined})
		}
	}
	doc := map[string]any{"version": "1.0", "added_tokens": added, "truncation": nil, "padding": nil}
	model := map[string]any{"type": "BPE", "vocab": vocab, "dropout": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil}
	switch kind {
	case "gpt2":
		merges, _ := f.Strings("tokenizer.ggml.merges")
		model["merges"] = merges
		model["unk_token"] = nil
		model["fuse_unk"] = false
		model["byte_fallback"] = false
		pre, _ := f.String("tokenizer.ggml.pre")
		switch pre {
		case "llama3", "llama-bpe", "llama-v3":
			doc["pre_tokenizer"] = splitThenBytes(regexLlama3)
			model["ignore_merges"] = true
		case "qwen2", "deepseek-r1-qwen":
			doc["pre_tokenizer"] = splitThenBytes(regexQwen2)
			doc["normalizer"] = map[string]any{"type": "NFC"}
		case "smollm":
			doc["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Digits", "individual_digits": true}, byteLevel(true)}}
		case "", "default", "gpt2", "gpt-2":
			doc["pre_tokenizer"] = byteLevel(true)
		default:
			return nil, errf("pre-tokenizer %q is not supported (llama-bpe, qwen2, smollm and gpt2 are)", pre)
		}
		doc["decoder"] = byteLevel(true)
	case "llama":
		scores, ok := f.Float32s("tokenizer.ggml.scores")
		if !ok || len(scores) != len(toks) {
			return nil, errf("a SentencePiece tokenizer needs tokenizer.ggml.scores for every token")
		}
		model["merges"] = spmMerges(toks, scores, types)
		unk := "<unk>"
		if id, ok := f.Uint("tokenizer.ggml.unknown_token_id"); ok && int(id) < len(toks) {
			unk = toks[id]
		}
		model["unk_token"] = unk
		model["fuse_unk"] = true
		model["byte_fallback"] = true
		doc["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}}}
		doc["pre_tokenizer"] = nil
		doc["decoder"] = map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0}}}
	default:
		return nil, errf("tokenizer model %q is not supported (gpt2 and llama are)", kind)
	}
	doc["model"] = model
	tj, err := json.Marshal(doc)
	if err != nil {
		return nil, errf("%v", err)
	}
	cfg := map[string]any{}
	if id, ok := f.Uint("tokenizer.ggml.bos_token_id"); ok && int(id) < len(toks) {
		cfg["bos_token"] = toks[id]
	}
	if id, ok := f.Uint("tokenizer.ggml.eos_token_id"); ok && int(id) < len(toks) {
		cfg["eos_token"] = toks[id]
	}
	addBOS, ok := f.Bool("tokenizer.ggml.add_bos_token")
	if !ok {
		addBOS = kind == "llama"
	}
	cfg["add_bos_token"] = addBOS && cfg["bos_token"] != nil
	if v, ok := f.Bool("tokenizer.ggml.add_eos_token"); ok {
		cfg["add_eos_token"] = v && cfg["eos_token"] != nil
	}
	cj, _ := json.Marshal(cfg)
	t, err := FromJSON(tj, cj)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", f.Path, err)
	}
	return t, nil
}

// spmMerges derives BPE merges from SentencePiece scores: every way of
// splitting a piece into two pieces of the vocabulary is a merge, ranked by
// the merged piece's score (higher first), then by the parts' ids.
func spmMerges(toks []string, scores []float32, types []int32) []string {
	id := make(map[string]int, len(toks))
	for i, t := range toks {
		if types == nil || types[i] == ggufNormal {
			if _, dup := id[t]; !dup {
				id[t] = i
			}
		}
	}
	type merge struct {
		a, b  string
		score float32
		ia    int
		ib    int
	}
	var ms []merge
	for t, i := range id {
		for k := 1; k < len(t); k++ {
			a, b := t[:k], t[k:]
			ia, oka := id[a]
			ib, okb := id[b]
			if oka && okb {
				ms = append(ms, merge{a, b, scores[i], ia, ib})
			}
		}
	}
	sort.Slice(ms, func(x, y int) bool {
		if ms[x].score != ms[y].score {
			return ms[x].score > ms[y].score
		}
		if ms[x].ia != ms[y].ia {
			return ms[x].ia < ms[y].ia
		}
		return ms[x].ib < ms[y].ib
	})
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.a + " " + m.b
	}
	return out
}

// GGUFMetadata converts a Hugging Face tokenizer.json (and optional
// tokenizer_config.json) into GGUF tokenizer metadata: tokenizer.ggml.model,
// pre, tokens, token_type, merges (or scores), special token ids and
// add_bos/add_eos. name is used in errors.
func GGUFMetadata(tokenizerJSON, configJSON []byte, name string) ([]gguf.KV, error) {
	t, err := FromJSON(tokenizerJSON, configJSON)
	if err != nil {
		return nil, err
	}
	if isGzip(tokenizerJSON) {
		if tokenizerJSON, err = gunzip(tokenizerJSON); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %v", name, err)
		}
	}
	var doc tokJSON
	if err := json.Unmarshal(tokenizerJSON, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", name, err)
	}
	var mj modelJSON
	if err := json.Unmarshal(doc.Model, &mj); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: model: %v", name, err)
	}
	merges, err := parseMerges(mj.Merges)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", name, err)
	}
	n := t.VocabSize()
	toks := make([]string, n)
	types := make([]int32, n)
	for i := 0; i < n; i++ {
		toks[i] = t.Token(i)
		types[i] = ggufNormal
		switch {
		case toks[i] == "":
			toks[i] = fmt.Sprintf("[PAD%d]", i)
			types[i] = ggufUnused
		case t.isAdded[i] && t.special[i]:
			types[i] = ggufControl
		case t.isAdded[i]:
			types[i] = ggufUserDefined
		}
	}
	var kv []gguf.KV
	if mj.ByteFallback {
		// SentencePiece style: scores from merge ranks, byte tokens marked.
		scores := make([]float32, n)
		for i := range scores {
			scores[i] = -1e6
		}
		for r, m := range merges {
			if id, ok := t.TokenID(m[0] + m[1]); ok {
				scores[id] = max(scores[id], -float32(r))
			}
		}
		for i, s := range toks {
			if len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
				types[i] = ggufByte
				scores[i] = 0
			} else if mj.UnkToken != nil && s == *mj.UnkToken {
				types[i] = ggufUnknown
				scores[i] = 0
			} else if types[i] == ggufNormal && len([]rune(s)) == 1 {
				scores[i] = 0
			}
		}
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.model", Value: "llama"}, gguf.KV{Key: "tokenizer.ggml.pre", Value: "default"},
			gguf.KV{Key: "tokenizer.ggml.tokens", Value: toks}, gguf.KV{Key: "tokenizer.ggml.scores", Value: scores},
			gguf.KV{Key: "tokenizer.ggml.token_type", Value: types})
		if mj.UnkToken != nil {
			if id, ok := t.TokenID(*mj.UnkToken); ok {
				kv = append(kv, gguf.KV{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(id)})
			}
		}
	} else {
		ms := make([]string, len(merges))
		for i, m := range merges {
			ms[i] = m[0] + " " + m[1]
		}
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.model", Value: "gpt2"}, gguf.KV{Key: "tokenizer.ggml.pre", Value: preName(string(doc.PreTokenizer))},
			gguf.KV{Key: "tokenizer.ggml.tokens", Value: toks}, gguf.KV{Key: "tokenizer.ggml.token_type", Value: types},
			gguf.KV{Key: "tokenizer.ggml.merges", Value: ms})
	}
	if id, ok := t.BOS(); ok {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.bos_token_id", Value: uint32(id)})
	}
	if id, ok := t.EOS(); ok {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.eos_token_id", Value: uint32(id)})
	}
	kv = append(kv, gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: len(t.prefix) > 0},
		gguf.KV{Key: "tokenizer.ggml.add_eos_token", Value: len(t.suffix) > 0})
	return kv, nil
}

// preName names a byte-level pre-tokenizer the way llama.cpp does.
func preName(pre string) string {
	switch {
	case strings.Contains(pre, `\\p{N}{1,3}`):
		return "llama-bpe"
	case strings.Contains(pre, `[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|`):
		return "qwen2"
	case strings.Contains(pre, `"Digits"`) && strings.Contains(pre, `"individual_digits":true`):
		return "smollm"
	}
	return "gpt2"
}

// Llama2CGGUFMetadata returns GGUF tokenizer metadata for a llama2.c
// tokenizer: a SentencePiece ("llama") vocabulary with its scores, spaces
// written as ▁, ids 0/1/2 as unknown/BOS/EOS and 3..258 as byte tokens.
func (t *Tokenizer) Llama2CGGUFMetadata() ([]gguf.KV, error) {
	if t.l2c == nil {
		return nil, fmt.Errorf("tokenizer: not a llama2.c tokenizer")
	}
	n := len(t.l2c.pieces)
	toks := make([]string, n)
	types := make([]int32, n)
	for i, p := range t.l2c.pieces {
		switch {
		case i == l2cUnk:
			toks[i], types[i] = "<unk>", ggufUnknown
		case i == l2cBOS:
			toks[i], types[i] = "<s>", ggufControl
		case i == l2cEOS:
			toks[i], types[i] = "</s>", ggufControl
		case i >= 3 && i < 259:
			toks[i], types[i] = fmt.Sprintf("<0x%02X>", i-3), ggufByte
		default:
			toks[i], types[i] = strings.ReplaceAll(p, " ", "▁"), ggufNormal
		}
	}
	return []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "llama"}, {Key: "tokenizer.ggml.pre", Value: "default"},
		{Key: "tokenizer.ggml.tokens", Value: toks}, {Key: "tokenizer.ggml.scores", Value: append([]float32(nil), t.l2c.scores...)},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(l2cUnk)}, {Key: "tokenizer.ggml.bos_token_id", Value: uint32(l2cBOS)},
		{Key: "tokenizer.ggml.eos_token_id", Value: uint32(l2cEOS)}, {Key: "tokenizer.ggml.add_bos_token", Value: true},
		{Key: "tokenizer.ggml.add_eos_token", Value: false},
	}, nil
}
