package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
)

// parseError is the error returned for a malformed tokenizer file; it names the file.
type parseError struct {
	file string
	msg  string
}

func (e *parseError) Error() string { return "tokenizer: " + e.file + ": " + e.msg }

type tokJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         json.RawMessage  `json:"model"`
}

type addedTokenJSON struct {
	ID         *int    `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
}

type configJSON struct {
	BOS        json.RawMessage           `json:"bos_token"`
	EOS        json.RawMessage           `json:"eos_token"`
	UNK        json.RawMessage           `json:"unk_token"`
	PAD        json.RawMessage           `json:"pad_token"`
	AddBOS     *bool                     `json:"add_bos_token"`
	AddEOS     *bool                     `json:"add_eos_token"`
	Cleanup    *bool                     `json:"clean_up_tokenization_spaces"`
	Additional []json.RawMessage         `json:"additional_special_tokens"`
	Decoder    map[string]addedTokenJSON `json:"added_tokens_decoder"`
}

// typed is the common "type" field of normalizers, pre-tokenizers, decoders and
// post-processors.
type typed struct {
	Type string `json:"type"`
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// maxIDFor bounds token ids relative to the number of entries, so that a malformed file
// cannot make us allocate huge tables.
func maxIDFor(n int) int { return 2*n + 1024 }

func parseHF(data, cfgData []byte, file, cfgFile string) (tok *Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tok = nil
			if te, ok := r.(*RegexTimeoutError); ok {
				err = te // a normalizer regex that timed out on an added token
				return
			}
			err = &parseError{file, fmt.Sprintf("internal error while parsing: %v", r)}
		}
	}()
	perr := func(format string, a ...any) error { return &parseError{file, fmt.Sprintf(format, a...)} }

	var tj tokJSON
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, perr("bad JSON: %v", err)
	}
	if isNull(tj.Model) {
		return nil, perr("no \"model\" section")
	}
	var mj modelJSON
	if err := json.Unmarshal(tj.Model, &mj); err != nil {
		return nil, perr("bad \"model\": %v", err)
	}
	if mj.Type == "" && !isNull(mj.Merges) {
		mj.Type = "BPE"
	}
	if mj.Type != "BPE" {
		if mj.Type == "" {
			return nil, perr("model has no \"type\"")
		}
		return nil, perr("unsupported model type %q (only BPE is supported)", mj.Type)
	}
	var vocab map[string]int
	if isNull(mj.Vocab) {
		return nil, perr("model has no \"vocab\"")
	}
	if v, ok := fastVocab(mj.Vocab); ok {
		vocab = v
	} else if err := json.Unmarshal(mj.Vocab, &vocab); err != nil {
		return nil, perr("bad model vocab (want an object of token: id): %v", err)
	}
	limit := maxIDFor(len(vocab) + len(tj.AddedTokens))
	maxID := -1
	for s, id := range vocab {
		if id < 0 || id > limit {
			return nil, perr("vocab token %q has out-of-range id %d", s, id)
		}
		maxID = max(maxID, id)
	}

	t := &Tokenizer{tokToID: maps.Clone(vocab), bos: -1, eos: -1}

	// Added tokens.
	for i, a := range tj.AddedTokens {
		if a.ID == nil || a.Content == nil {
			return nil, perr("added_tokens[%d]: missing id or content", i)
		}
		if *a.ID < 0 || *a.ID > limit {
			return nil, perr("added_tokens[%d] %q: out-of-range id %d", i, *a.Content, *a.ID)
		}
		if *a.Content == "" {
			return nil, perr("added_tokens[%d]: empty content", i)
		}
		maxID = max(maxID, *a.ID)
	}
	var cfg configJSON
	perrCfg := func(format string, a ...any) error { return &parseError{cfgFile, fmt.Sprintf(format, a...)} }
	if cfgData != nil {
		if err := json.Unmarshal(cfgData, &cfg); err != nil {
			return nil, perrCfg("bad JSON: %v", err)
		}
	}

	t.idToTok = make([]string, maxID+1)
	t.special = make([]bool, maxID+1)
	t.isAdded = make([]bool, maxID+1)
	for s, id := range vocab {
		if t.idToTok[id] == "" || s < t.idToTok[id] {
			// Duplicate ids are malformed; keep a deterministic choice.
			t.idToTok[id] = s
		}
	}
	for _, a := range tj.AddedTokens {
		t.addAdded(a)
	}
	// Tokens listed only in tokenizer_config.json's added_tokens_decoder.
	if len(cfg.Decoder) > 0 {
		keys := make([]string, 0, len(cfg.Decoder))
		for k := range cfg.Decoder {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			a := cfg.Decoder[k]
			id, err := strconv.Atoi(k)
			if err != nil || a.Content == nil || *a.Content == "" || id < 0 || id >= len(t.idToTok) {
				continue // ids beyond the tokenizer.json vocabulary are ignored
			}
			if t.isAdded[id] || t.idToTok[id] != "" {
				continue
			}
			if _, ok := t.tokToID[*a.Content]; ok {
				continue
			}
			a.ID = &id
			t.addAdded(a)
		}
	}

	// Model.
	bpe, err := newBPE(&mj, vocab, t, perr)
	if err != nil {
		return nil, err
	}
	t.bpe = bpe

	// Normalizer, pre-tokenizer, decoder, post-processor.
	if t.normalize, err = parseNormalizer(tj.Normalizer, perr); err != nil {
		return nil, err
	}
	if t.pretok, err = parsePreTokenizer(tj.PreTokenizer, perr); err != nil {
		return nil, err
	}
	if isNull(tj.Decoder) {
		t.noDecoder = true
	} else if t.decoder, err = parseDecoder(tj.Decoder, perr); err != nil {
		return nil, err
	}
	if t.prefix, t.suffix, err = parsePostProcessor(tj.PostProcessor, t, perr); err != nil {
		return nil, err
	}

	// Added-token matchers (built after the normalizer is known).
	t.buildTries()

	// tokenizer_config.json.
	if cfgData != nil {
		if err := t.applyConfig(&cfg, perrCfg); err != nil {
			return nil, err
		}
	} else {
		// Without a config, take BOS/EOS from the post-processor template.
		if len(t.prefix) > 0 {
			t.bos = t.prefix[0]
			t.bosTok = t.Token(t.bos)
		}
		if len(t.suffix) > 0 {
			t.eos = t.suffix[len(t.suffix)-1]
			t.eosTok = t.Token(t.eos)
		}
	}
	t.cache = make(map[string][]int)
	return t, nil
}

func (t *Tokenizer) addAdded(a addedTokenJSON) {
	id, content := *a.ID, *a.Content
	normalized := !a.Special
	if a.Normalized != nil {
		normalized = *a.Normalized
	}
	t.added = append(t.added, addedToken{
		id: id, content: content, special: a.Special, singleWord: a.SingleWord,
		lstrip: a.LStrip, rstrip: a.RStrip, normalized: normalized,
	})
	t.idToTok[id] = content
	t.tokToID[content] = id
	t.isAdded[id] = true
	if a.Special {
		t.special[id] = true
	}
}

// tokenString reads a config token entry: a string, an object with "content", or null.
func tokenString(raw json.RawMessage) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", false, fmt.Errorf("want a string or an object with \"content\", got %s", truncate(string(raw), 80))
	}
	return *obj.Content, true, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (t *Tokenizer) applyConfig(cfg *configJSON, perr func(string, ...any) error) error {
	markSpecial := func(name string, raw json.RawMessage) (string, int, error) {
		s, ok, err := tokenString(raw)
		if err != nil {
			return "", -1, perr("%s: %v", name, err)
		}
		if !ok {
			return "", -1, nil
		}
		id, found := t.tokToID[s]
		if !found {
			return s, -1, nil
		}
		t.special[id] = true
		return s, id, nil
	}
	var err error
	if t.bosTok, t.bos, err = markSpecial("bos_token", cfg.BOS); err != nil {
		return err
	}
	if t.eosTok, t.eos, err = markSpecial("eos_token", cfg.EOS); err != nil {
		return err
	}
	if _, _, err = markSpecial("unk_token", cfg.UNK); err != nil {
		return err
	}
	if _, _, err = markSpecial("pad_token", cfg.PAD); err != nil {
		return err
	}
	for i, raw := range cfg.Additional {
		if _, _, err = markSpecial(fmt.Sprintf("additional_special_tokens[%d]", i), raw); err != nil {
			return err
		}
	}
	if cfg.Cleanup != nil {
		t.cleanup = *cfg.Cleanup
	}
	// add_bos_token / add_eos_token adjust the post-processor's template, as
	// transformers does for Llama-style tokenizers.
	if cfg.AddBOS != nil && t.bos >= 0 {
		has := len(t.prefix) > 0 && t.prefix[0] == t.bos
		if *cfg.AddBOS && !has {
			t.prefix = append([]int{t.bos}, t.prefix...)
		} else if !*cfg.AddBOS && has {
			t.prefix = t.prefix[1:]
		}
	}
	if cfg.AddEOS != nil && t.eos >= 0 {
		has := len(t.suffix) > 0 && t.suffix[len(t.suffix)-1] == t.eos
		if *cfg.AddEOS && !has {
			t.suffix = append(append([]int{}, t.suffix...), t.eos)
		} else if !*cfg.AddEOS && has {
			t.suffix = t.suffix[:len(t.suffix)-1]
		}
	}
	return nil
}

// ---- post-processors ----

type postJSON struct {
	Type          string            `json:"type"`
	Single        []json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		ID  string `json:"id"`
		IDs []int  `json:"ids"`
	} `json:"special_tokens"`
	Sep        []json.RawMessage `json:"sep"`
	Cls        []json.RawMessage `json:"cls"`
	Processors []json.RawMessage `json:"processors"`
}

func parsePostProcessor(raw json.RawMessage, t *Tokenizer, perr func(string, ...any) error) (prefix, suffix []int, err error) {
	return parsePost(raw, t, perr, 0)
}

func parsePost(raw json.RawMessage, t *Tokenizer, perr func(string, ...any) error, depth int) (prefix, suffix []int, err error) {
	if isNull(raw) {
		return nil, nil, nil
	}
	if depth > 32 {
		return nil, nil, perr("post_processor nested too deeply")
	}
	var p postJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, nil, perr("bad post_processor: %v", err)
	}
	switch p.Type {
	case "ByteLevel":
		return nil, nil, nil
	case "TemplateProcessing":
		seenA := false
		for i, item := range p.Single {
			isSeq, name, err := templateItem(item)
			if err != nil {
				return nil, nil, perr("post_processor TemplateProcessing single[%d]: %v", i, err)
			}
			if isSeq {
				if name == "A" {
					seenA = true
				}
				continue
			}
			st, ok := p.SpecialTokens[name]
			var ids []int
			if ok {
				ids = st.IDs
			} else if id, found := t.tokToID[name]; found {
				ids = []int{id}
			} else {
				return nil, nil, perr("post_processor TemplateProcessing: special token %q is not defined", name)
			}
			for _, id := range ids {
				if id < 0 || id >= len(t.idToTok) {
					return nil, nil, perr("post_processor TemplateProcessing: special token %q has out-of-range id %d", name, id)
				}
			}
			if seenA {
				suffix = append(suffix, ids...)
			} else {
				prefix = append(prefix, ids...)
			}
		}
		return prefix, suffix, nil
	case "RobertaProcessing", "BertProcessing":
		cls, err := pairID(p.Cls, t)
		if err != nil {
			return nil, nil, perr("post_processor %s cls: %v", p.Type, err)
		}
		sep, err := pairID(p.Sep, t)
		if err != nil {
			return nil, nil, perr("post_processor %s sep: %v", p.Type, err)
		}
		return []int{cls}, []int{sep}, nil
	case "Sequence":
		for _, sub := range p.Processors {
			pre, suf, err := parsePost(sub, t, perr, depth+1)
			if err != nil {
				return nil, nil, err
			}
			prefix = append(append([]int{}, pre...), prefix...)
			suffix = append(suffix, suf...)
		}
		return prefix, suffix, nil
	case "":
		return nil, nil, perr("post_processor has no \"type\"")
	default:
		return nil, nil, perr("unsupported post_processor type %q", p.Type)
	}
}

// templateItem parses one TemplateProcessing item: {"SpecialToken": {"id": ...}},
// {"Sequence": {"id": "A"}}, or the string forms "$A" / "<s>" / "<s>:1".
func templateItem(raw json.RawMessage) (isSeq bool, name string, err error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if strings.HasPrefix(s, "$") {
			n := strings.TrimPrefix(s, "$")
			if i := strings.IndexByte(n, ':'); i >= 0 {
				n = n[:i]
			}
			if n == "" || n == "0" {
				n = "A"
			} else if n == "1" {
				n = "B"
			}
			return true, n, nil
		}
		if i := strings.LastIndexByte(s, ':'); i > 0 {
			if _, err := strconv.Atoi(s[i+1:]); err == nil {
				s = s[:i]
			}
		}
		return false, s, nil
	}
	var obj struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return false, "", err
	}
	switch {
	case obj.Sequence != nil:
		return true, obj.Sequence.ID, nil
	case obj.SpecialToken != nil:
		return false, obj.SpecialToken.ID, nil
	}
	return false, "", fmt.Errorf("want SpecialToken or Sequence, got %s", truncate(string(raw), 80))
}

func pairID(p []json.RawMessage, t *Tokenizer) (int, error) {
	if len(p) != 2 {
		return 0, fmt.Errorf("want [token, id]")
	}
	var id int
	if err := json.Unmarshal(p[1], &id); err != nil {
		return 0, fmt.Errorf("bad id: %v", err)
	}
	if id < 0 || id >= len(t.idToTok) {
		return 0, fmt.Errorf("out-of-range id %d", id)
	}
	return id, nil
}
