package cli

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/style"
)

// embedderFlags choose the sentence embedder of the style commands: a
// masque model (--model) or an OpenAI-compatible endpoint (--embed-url).
type embedderFlags struct {
	model, tokenizer string
	url, name, key   string
	prefix           string
	ck               *checkpoint.Checkpoint
}

// embedKeyEnv holds the API key of --embed-url.
const embedKeyEnv = "MASQUE_EMBED_KEY"

func (f *embedderFlags) register(c *cobra.Command) {
	f.registerAs(c, "", "m")
}

// registerAs registers the flags with names prefixed (e.g. "style-" where
// the command has a --model of its own); short is --model's shorthand.
func (f *embedderFlags) registerAs(c *cobra.Command, prefix, short string) {
	fl := c.Flags()
	fl.StringVarP(&f.model, prefix+"model", short, "", `masque model whose mean-pooled last hidden state embeds sentences: a Hugging Face folder, .gguf or llama2.c .bin ("builtin": the built-in default model)`)
	fl.StringVar(&f.tokenizer, prefix+"tokenizer", "", "tokenizer file for --"+prefix+"model (llama2.c checkpoints)")
	fl.StringVar(&f.url, prefix+"embed-url", "", "OpenAI-compatible endpoint for embeddings instead of --"+prefix+"model (e.g. http://127.0.0.1:8080/v1)")
	fl.StringVar(&f.name, prefix+"embed-model", "", "model name at --"+prefix+"embed-url")
	fl.StringVar(&f.key, prefix+"embed-key", "", "API key of --"+prefix+"embed-url (default: $"+embedKeyEnv+")")
	f.prefix = prefix
}

// open returns the embedder, or nil when none was chosen. close releases it.
func (f *embedderFlags) open() (style.Embedder, error) {
	switch {
	case f.model != "" && f.url != "":
		return nil, usagef("give --%smodel or --%sembed-url, not both", f.prefix, f.prefix)
	case f.url != "":
		if f.name == "" {
			return nil, usagef("--%sembed-url needs --%sembed-model", f.prefix, f.prefix)
		}
		key := f.key
		if key == "" {
			key = os.Getenv(embedKeyEnv)
		}
		return &style.OpenAIEmbedder{BaseURL: f.url, Model: f.name, APIKey: key}, nil
	case f.model != "":
		path := f.model
		if path == "builtin" {
			path = ""
		}
		ck, err := checkpoint.Open(path, checkpoint.Options{Tokenizer: f.tokenizer})
		if err != nil {
			return nil, err
		}
		tok, err := ck.NeedTokenizer()
		if err != nil {
			ck.Close()
			return nil, err
		}
		f.ck = ck
		return &style.ModelEmbedder{Model: ck.Model, Tokenizer: tok, Name: ck.Path}, nil
	}
	return nil, nil
}

func (f *embedderFlags) close() {
	if f.ck != nil {
		f.ck.Close()
		f.ck = nil
	}
}

func (e *env) embedCmd() *cobra.Command {
	var texts []string
	var input string
	var mf modelFlags
	c := &cobra.Command{
		Use:   "embed (--text TEXT ... | --input FILE) [--model M]",
		Short: "Print sentence embeddings (mean-pooled last hidden state) as OpenAI's embeddings response",
		Long: `Embed texts with a masque model: the mean, over each text's tokens (BOS left
out), of the last hidden state (the final norm's output), scaled to unit length.
The output is OpenAI's embeddings response, {"object":"list","data":[{"object":
"embedding","index":0,"embedding":[...]}],"model":...,"usage":{...}}: the same
numbers masque serve answers on POST /v1/embeddings.`,
		Example: `  masque embed --text "Hello there." --text "Good evening."
  masque embed --model ./voices-base --input lines.txt > embeddings.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if input != "" {
				lines, err := style.ReadLines(input)
				if err != nil {
					return err
				}
				if len(lines) == 0 {
					return errors.New(input + ": no lines to embed")
				}
				texts = append(texts, lines...)
			}
			if len(texts) == 0 {
				return usagef("give --text or --input")
			}
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			tok, err := ck.NeedTokenizer()
			if err != nil {
				return err
			}
			emb := &style.ModelEmbedder{Model: ck.Model, Tokenizer: tok, Name: ck.Path}
			resp := openaiclient.EmbeddingResponse{Object: "list", Model: ck.Path}
			for i, t := range texts {
				ids, _, err := emb.Tokens(t)
				if err != nil {
					return usagef("text %d: %v", i+1, err)
				}
				resp.Usage.PromptTokens += len(ids)
			}
			resp.Usage.TotalTokens = resp.Usage.PromptTokens
			vs, err := emb.Embed(cmd.Context(), texts)
			if err != nil {
				return err
			}
			for i, v := range vs {
				resp.Data = append(resp.Data, openaiclient.EmbeddingData{Object: "embedding", Index: i, Embedding: v})
			}
			return writeJSON(e.stdout, resp)
		},
	}
	mf.register(c)
	c.Flags().StringArrayVar(&texts, "text", nil, "a text to embed (repeatable)")
	c.Flags().StringVar(&input, "input", "", "file of texts to embed, one per line (or a .jsonl file's text fields)")
	return c
}
