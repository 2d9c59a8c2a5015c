// Package tokenizer implements the text tokenizers used by masque: the Hugging Face
// `tokenizers` format (tokenizer.json, with an optional tokenizer_config.json) for
// byte-level BPE models (GPT-2 style: Llama 3, Qwen2/2.5/3, SmolLM) and
// SentencePiece-style BPE models (Llama 2, Mistral, TinyLlama), and the llama2.c
// tokenizer.bin format.
//
// The goal is to reproduce Hugging Face exactly: Encode gives the ids of
// `tokenizer.encode(text, add_special_tokens)`, Tokens gives `tokenizer.tokenize(text)`
// and Decode gives `tokenizer.decode(ids, skip_special_tokens)` (including the
// transformers-level `clean_up_tokenization_spaces`). A StreamDecoder turns generated ids
// into text incrementally; the concatenation of its output always equals Decode.
//
// Where implementations disagree, this package follows the Rust `tokenizers` core that
// Python transformers uses for fast tokenizers (plus transformers'
// clean_up_tokenization_spaces), not transformers.js. The differences are edge cases:
// a run of byte-fallback tokens that is not valid UTF-8 decodes to one U+FFFD per byte;
// the Metaspace decoder drops every replacement character of the first token, not just
// one leading space; added tokens go through the ByteLevel decoder like other tokens.
// Token ids of added tokens are taken from tokenizer.json as written.
//
// A Tokenizer is safe for concurrent use by multiple goroutines. A StreamDecoder is not.
package tokenizer

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"unicode/utf8"
)

// Tokenizer encodes text to token ids and decodes ids back to text.
// Create one with Load, FromJSON or LoadLlama2C.
type Tokenizer struct {
	idToTok []string       // id -> token string ("" when the id has no token)
	special []bool         // id -> special (skipped by Decode with skipSpecial)
	isAdded []bool         // id -> is an added token
	tokToID map[string]int // token string -> id (model vocab and added tokens)

	added     []addedToken
	rawTrie   *trie // added tokens with normalized=false, matched on the raw text
	normTrie  *trie // added tokens with normalized=true, matched on normalized text
	normalize normalizer
	pretok    preTokenizer
	bpe       *bpeModel
	prefix    []int // ids added before the text when addSpecial
	suffix    []int // ids added after the text when addSpecial
	decoder   []decoderSpec
	noDecoder bool // no decoder: tokens are joined with " "
	cleanup   bool // clean_up_tokenization_spaces

	bos, eos       int
	bosTok, eosTok string

	l2c *llama2c // non-nil for a llama2.c tokenizer

	cacheMu sync.Mutex
	cache   map[string][]int
}

// cacheLimit bounds the pre-token cache; when it is full it is cleared.
const cacheLimit = 20000

// Load reads a tokenizer. path is a tokenizer.json file (optionally gzip-compressed,
// e.g. tokenizer.json.gz) or a model folder that contains tokenizer.json (or
// tokenizer.json.gz). A tokenizer_config.json in the same folder, when present, decides
// add_bos_token/add_eos_token, the BOS/EOS tokens and clean_up_tokenization_spaces.
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	file := path
	dir := filepath.Dir(path)
	if st.IsDir() {
		dir = path
		file = filepath.Join(path, "tokenizer.json")
		if _, err := os.Stat(file); err != nil {
			gz := file + ".gz"
			if _, err2 := os.Stat(gz); err2 != nil {
				return nil, fmt.Errorf("tokenizer: %s: no tokenizer.json or tokenizer.json.gz in folder", path)
			}
			file = gz
		}
	}
	data, err := readMaybeGzip(file)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", file, err)
	}
	var cfg []byte
	cfgName := filepath.Join(dir, "tokenizer_config.json")
	if b, err := os.ReadFile(cfgName); err == nil {
		cfg = b
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %s: %w", cfgName, err)
	} else {
		cfgName = ""
	}
	return parseHF(data, cfg, file, cfgName)
}

// FromJSON builds a tokenizer from the bytes of a tokenizer.json (plain or gzip) and,
// optionally, of a tokenizer_config.json (configJSON may be nil).
func FromJSON(data []byte, configJSON []byte) (*Tokenizer, error) {
	if isGzip(data) {
		d, err := gunzip(data)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: %w", err)
		}
		data = d
	}
	cfgName := ""
	if configJSON != nil {
		cfgName = "tokenizer_config.json"
	}
	return parseHF(data, configJSON, "tokenizer.json", cfgName)
}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("bad gzip data: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("bad gzip data: %w", err)
	}
	return out, nil
}

func readMaybeGzip(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if isGzip(b) {
		return gunzip(b)
	}
	return b, nil
}

// VocabSize returns the number of ids: one more than the largest id of the model
// vocabulary and the added tokens.
func (t *Tokenizer) VocabSize() int { return len(t.idToTok) }

// TokenID returns the id of a token string (a model vocabulary entry or an added token).
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	id, ok := t.tokToID[tok]
	return id, ok
}

// Token returns the token string of id ("" when id is out of range or unused).
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.idToTok) {
		return ""
	}
	return t.idToTok[id]
}

// IsSpecial reports whether id is a special token (dropped by Decode with skipSpecial).
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// BOS returns the beginning-of-sequence token id, if the tokenizer has one.
func (t *Tokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// EOS returns the end-of-sequence token id, if the tokenizer has one.
func (t *Tokenizer) EOS() (int, bool) { return t.eos, t.eos >= 0 }

// BOSToken returns the beginning-of-sequence token string ("" when there is none),
// as chat templates use it.
func (t *Tokenizer) BOSToken() string { return t.bosTok }

// EOSToken returns the end-of-sequence token string ("" when there is none),
// as chat templates use it.
func (t *Tokenizer) EOSToken() string { return t.eosTok }

// Encode converts text to token ids. With addSpecial, the special tokens of the
// tokenizer's post-processor (as adjusted by tokenizer_config.json add_bos_token /
// add_eos_token) are added, e.g. BOS for Llama 2. Added tokens written in the text
// (such as "<|im_start|>") are recognised in both modes. Invalid UTF-8 in text is
// treated as U+FFFD. A tokenizer pattern that exceeds its match timeout
// (RegexTimeout) gives no ids: use EncodeChecked for untrusted text, to get
// the error.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	ids, _ := t.EncodeChecked(text, addSpecial)
	return ids
}

// EncodeChecked is Encode, with the error of a tokenizer pattern that
// exceeded its match timeout (a *RegexTimeoutError).
func (t *Tokenizer) EncodeChecked(text string, addSpecial bool) (ids []int, err error) {
	defer recoverTimeout(&err)
	return t.encode(text, addSpecial), nil
}

// recoverTimeout turns the panic of a regex match timeout (see regex.find)
// into *err; other panics go on.
func recoverTimeout(err *error) {
	if v := recover(); v != nil {
		te, ok := v.(*RegexTimeoutError)
		if !ok {
			panic(v)
		}
		*err = te
	}
}

func (t *Tokenizer) encode(text string, addSpecial bool) []int {
	if t.l2c != nil {
		return t.l2c.encode(text, addSpecial)
	}
	ids := t.encodeText(text, nil)
	if addSpecial && (len(t.prefix) > 0 || len(t.suffix) > 0) {
		out := make([]int, 0, len(t.prefix)+len(ids)+len(t.suffix))
		out = append(out, t.prefix...)
		out = append(out, ids...)
		out = append(out, t.suffix...)
		return out
	}
	return ids
}

// Tokens returns the token strings of text without special tokens, like Hugging Face
// tokenize() (byte-level tokenizers give strings in the byte-level alphabet, e.g. "Ġworld").
// An added token is given as the text it matched (which includes the whitespace
// consumed by lstrip/rstrip), as Hugging Face does.
// A pattern that exceeds its match timeout gives no tokens.
func (t *Tokenizer) Tokens(text string) (out []string) {
	var err error
	defer func() {
		if err != nil {
			out = nil
		}
	}()
	defer recoverTimeout(&err)
	if t.l2c != nil {
		ids := t.l2c.encode(text, false)
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = t.Token(id)
		}
		return out
	}
	out = []string{}
	t.encodeText(text, &out)
	return out
}

// Decode converts ids to text. With skipSpecial, special tokens are dropped. Ids that
// have no token are ignored. Incomplete or invalid UTF-8 produced by byte tokens is
// replaced by U+FFFD.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	d := t.NewStreamDecoder(skipSpecial)
	if t.l2c == nil {
		return d.decodeAll(ids)
	}
	var sb []byte
	for _, id := range ids {
		sb = append(sb, d.Add(id)...)
	}
	sb = append(sb, d.Flush()...)
	return string(sb)
}

// validUTF8 replaces invalid UTF-8 with U+FFFD (one per maximal invalid subpart).
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out, _ := lossyUTF8(nil, []byte(s), true)
	return string(out)
}
