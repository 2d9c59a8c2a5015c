package bpetrain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/tokenizer"
)

// The ChatML tokens: a trained tokenizer that has them gets the ChatML chat template
// and <|im_end|> as its end-of-sequence token; <|endoftext|> is the padding token.
const (
	imStart   = "<|im_start|>"
	imEnd     = "<|im_end|>"
	endOfText = "<|endoftext|>"
)

// jsonString writes s as a JSON string without HTML escaping.
func jsonString(buf *bytes.Buffer, s string) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	buf.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// TokenizerJSON returns the Hugging Face tokenizer.json of the model: a BPE model in
// the byte-level alphabet (no unknown token, no byte fallback), the split regex then
// ByteLevel as pre-tokenizer (GPT-2's ByteLevel regex alone for "gpt2"), ByteLevel
// post-processor and decoder, no normalizer, and the special tokens as added tokens.
func (m *Model) TokenizerJSON() ([]byte, error) {
	pattern, ok := tokenizer.SplitPatterns[m.Pattern]
	if !ok {
		return nil, fmt.Errorf("bpetrain: unknown pattern %q", m.Pattern)
	}
	var b bytes.Buffer
	b.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	for i, s := range m.SpecialTokens {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    {\"id\": ")
		b.WriteString(strconv.Itoa(len(m.Tokens) + i))
		b.WriteString(", \"content\": ")
		jsonString(&b, s)
		b.WriteString(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}")
	}
	b.WriteString("\n  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": ")
	if m.Pattern == "gpt2" {
		b.WriteString(`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}`)
	} else {
		b.WriteString(`{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": `)
		jsonString(&b, pattern)
		b.WriteString(`}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}`)
	}
	b.WriteString(",\n  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}")
	b.WriteString(",\n  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}")
	b.WriteString(",\n  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n" +
		"    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n" +
		"    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {")
	for id, t := range m.Tokens {
		if id > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      ")
		jsonString(&b, tokenizer.ByteLevelString(t))
		b.WriteString(": ")
		b.WriteString(strconv.Itoa(id))
	}
	b.WriteString("\n    },\n    \"merges\": [")
	for i, mg := range m.Merges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      [")
		jsonString(&b, tokenizer.ByteLevelString(m.Tokens[mg[0]]))
		b.WriteString(", ")
		jsonString(&b, tokenizer.ByteLevelString(m.Tokens[mg[1]]))
		b.WriteByte(']')
	}
	b.WriteString("\n    ]\n  }\n}\n")
	return b.Bytes(), nil
}

// TokenizerConfigJSON returns the tokenizer_config.json: the special tokens as
// added_tokens_decoder, no BOS token, <|endoftext|> as padding token and, when the
// ChatML tokens are among the special tokens, <|im_end|> as end-of-sequence token and
// the ChatML chat template (chattemplate.ChatMLSource: every message as
// "<|im_start|>ROLE\nCONTENT<|im_end|>\n", then "<|im_start|>assistant\n" with
// add_generation_prompt). clean_up_tokenization_spaces is false, so decoding gives
// back the encoded text exactly.
func (m *Model) TokenizerConfigJSON() ([]byte, error) {
	has := func(s string) bool { return contains(m.SpecialTokens, s) }
	type addedDec struct {
		Content    string `json:"content"`
		LStrip     bool   `json:"lstrip"`
		Normalized bool   `json:"normalized"`
		RStrip     bool   `json:"rstrip"`
		SingleWord bool   `json:"single_word"`
		Special    bool   `json:"special"`
	}
	dec := map[string]addedDec{}
	for i, s := range m.SpecialTokens {
		dec[strconv.Itoa(len(m.Tokens)+i)] = addedDec{Content: s, Special: true}
	}
	cfg := map[string]any{
		"added_tokens_decoder":         dec,
		"bos_token":                    nil,
		"clean_up_tokenization_spaces": false,
		"eos_token":                    nil,
		"errors":                       "replace",
		"pad_token":                    nil,
		"split_special_tokens":         false,
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"unk_token":                    nil,
	}
	var extra []string
	for _, s := range m.SpecialTokens {
		if s != endOfText && s != imEnd {
			extra = append(extra, s)
		}
	}
	if len(extra) > 0 {
		cfg["additional_special_tokens"] = extra
	}
	if has(endOfText) {
		cfg["pad_token"] = endOfText
	}
	if has(imEnd) {
		cfg["eos_token"] = imEnd
		if has(imStart) {
			cfg["chat_template"] = chattemplate.ChatMLSource
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil { // map keys are written sorted
		return nil, fmt.Errorf("bpetrain: %w", err)
	}
	return b.Bytes(), nil
}

// Write writes tokenizer.json and tokenizer_config.json into dir (created if
// needed), each atomically.
func (m *Model) Write(dir string) error {
	tj, err := m.TokenizerJSON()
	if err != nil {
		return err
	}
	cj, err := m.TokenizerConfigJSON()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bpetrain: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"tokenizer.json", tj}, {"tokenizer_config.json", cj}} {
		p := filepath.Join(dir, f.name)
		err := atomicfile.WriteFile(p, func(w io.Writer) error {
			_, err := w.Write(f.data)
			return err
		})
		if err != nil {
			return fmt.Errorf("bpetrain: %s: %w", p, err)
		}
	}
	return nil
}
