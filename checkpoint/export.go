package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/gguf"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/tokenizer"
)

// SaveGGUF writes the checkpoint (weights, tokenizer and chat template) as a
// GGUF file whose matrices are stored as t; llama.cpp and ollama load it.
// q4_k means llama.cpp's Q4_K_M recipe (see model.GGUFOptions).
func (ck *Checkpoint) SaveGGUF(path string, t quant.DType) error {
	return ck.SaveGGUFWith(path, model.GGUFOptions{Type: t})
}

// SaveGGUFWith is SaveGGUF with every option of model.SaveGGUF (a
// llama.cpp recipe name, the per-tensor plan); o's Name defaults to the
// checkpoint's, and the tokenizer and chat template are appended to Extra.
func (ck *Checkpoint) SaveGGUFWith(path string, o model.GGUFOptions) error {
	extra, err := ck.tokenizerGGUF()
	if err != nil {
		return err
	}
	if ck.templateSource != "" {
		extra = append(extra, gguf.KV{Key: "tokenizer.chat_template", Value: ck.templateSource})
	}
	if o.Name == "" {
		o.Name = strings.TrimSuffix(filepath.Base(ck.Path), filepath.Ext(ck.Path))
	}
	o.Extra = append(o.Extra, extra...)
	return model.SaveGGUF(path, ck.Model, o)
}

// tokenizerGGUF returns the tokenizer as GGUF metadata, from wherever the
// checkpoint's tokenizer came from.
func (ck *Checkpoint) tokenizerGGUF() ([]gguf.KV, error) {
	if _, err := ck.NeedTokenizer(); err != nil {
		return nil, err
	}
	st, err := os.Stat(ck.Path)
	switch {
	case ck.Path == "" || strings.HasPrefix(ck.Path, "builtin:") || (err == nil && !st.IsDir() && strings.EqualFold(filepath.Ext(ck.Path), ".bin")):
		return ck.Tokenizer.Llama2CGGUFMetadata()
	case err == nil && st.IsDir():
		tj, err := readFirst(ck.Path, "tokenizer.json", "tokenizer.json.gz")
		if err != nil {
			return nil, err
		}
		cj, _ := os.ReadFile(filepath.Join(ck.Path, "tokenizer_config.json"))
		return tokenizer.GGUFMetadata(tj, cj, filepath.Join(ck.Path, "tokenizer.json"))
	case err == nil:
		f, err := gguf.Open(ck.Path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var kv []gguf.KV
		for _, x := range f.KV {
			if strings.HasPrefix(x.Key, "tokenizer.") && x.Key != "tokenizer.chat_template" {
				kv = append(kv, x)
			}
		}
		return kv, nil
	}
	return nil, fmt.Errorf("%s: cannot find the tokenizer to export", ck.Path)
}

func readFirst(dir string, names ...string) ([]byte, error) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s: no %s", dir, strings.Join(names, " or "))
}
