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
	src := ck.Dir
	st, err := os.Stat(src)
	switch {
	case src == "" || (err == nil && !st.IsDir() && strings.EqualFold(filepath.Ext(src), ".bin")):
		return ck.Tokenizer.Llama2CGGUFMetadata()
	case err == nil && st.IsDir():
		tj, err := readFirst(src, "tokenizer.json", "tokenizer.json.gz")
		if err != nil {
			return nil, err
		}
		cj, _ := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
		return tokenizer.GGUFMetadata(tj, cj, filepath.Join(src, "tokenizer.json"))
	case err == nil:
		f, err := gguf.Open(src)
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
