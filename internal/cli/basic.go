package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/textarg"
	"github.com/masque-ai/masque/tokenizer"
)

func (e *env) tokenizeCmd() *cobra.Command {
	var mf modelFlags
	var addSpecial, asJSON bool
	c := &cobra.Command{
		Use:   "tokenize [flags] TEXT",
		Short: "Print the token ids of TEXT",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ck, err := mf.openText()
			if err != nil {
				return err
			}
			defer ck.Close()
			tok, err := ck.NeedTokenizer()
			if err != nil {
				return err
			}
			ids := tok.Encode(args[0], addSpecial)
			if ids == nil {
				ids = []int{}
			}
			if asJSON {
				return writeJSON(e.stdout, map[string]any{"ids": ids})
			}
			for i, id := range ids {
				fmt.Fprintf(e.stdout, "%d\t%q\n", id, tok.Decode(ids[i:i+1], false))
			}
			return nil
		},
	}
	mf.register(c)
	c.Flags().BoolVar(&addSpecial, "add-special", false, "add the special tokens the tokenizer adds by default (e.g. BOS)")
	c.Flags().BoolVar(&asJSON, "json", false, `print {"ids":[...]}`)
	return c
}

// parseIDs parses --ids: token ids, or @FILE holding them.
func parseIDs(s string) ([]int, error) {
	s, err := textarg.Read(s)
	if err != nil {
		return nil, err
	}
	return tokenizer.ParseIDs(s)
}

func (e *env) logitsCmd() *cobra.Command {
	var mf modelFlags
	var idsFlag string
	var asJSON, last bool
	c := &cobra.Command{
		Use:   "logits --ids 1,2,3 [--json]",
		Short: "Print the logits of every position from one full-sequence pass",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(idsFlag)
			if err != nil {
				return usagef("--ids: %v", err)
			}
			if len(ids) == 0 {
				return usagef("--ids: no token ids given")
			}
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			m := ck.Model
			logits, err := m.Forward(m.NewCache(len(ids)), ids, !last)
			if err != nil {
				return err
			}
			rows := len(ids)
			if last {
				rows = 1
			}
			if asJSON {
				return writeJSON(e.stdout, map[string]any{"shape": []int{rows, m.Config.Vocab}, "logits": logits})
			}
			V := m.Config.Vocab
			for r := 0; r < rows; r++ {
				row := logits[r*V : (r+1)*V]
				best := 0
				for i, v := range row {
					if v > row[best] {
						best = i
					}
				}
				fmt.Fprintf(e.stdout, "position %d: argmax %d (%.4f)\n", r, best, row[best])
			}
			return nil
		},
	}
	mf.register(c)
	c.Flags().StringVar(&idsFlag, "ids", "", "comma-separated token ids, or @FILE")
	c.Flags().BoolVar(&asJSON, "json", false, `print {"shape":[T,V],"logits":[...row-major...]}`)
	c.Flags().BoolVar(&last, "last", false, "only the last position")
	return c
}

func (e *env) templateCmd() *cobra.Command {
	var mf modelFlags
	var messages string
	var addGen bool
	var vars string
	c := &cobra.Command{
		Use:   "template --messages FILE.json [--add-generation-prompt]",
		Short: "Render a conversation with the model's chat template",
		Long: `Render a conversation with the model's chat template and print it.
FILE.json holds a list of {"role","content"} messages (or {"messages":[...]}).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			msgs, err := readMessages(messages, e.stdin)
			if err != nil {
				return err
			}
			var kw map[string]any
			if vars != "" {
				if err := json.Unmarshal([]byte(vars), &kw); err != nil {
					return usagef("--vars: %v", err)
				}
			}
			ck, err := mf.openText()
			if err != nil {
				return err
			}
			defer ck.Close()
			s, err := ck.RenderChat(msgs, addGen, kw)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(e.stdout, s)
			return err
		},
	}
	mf.register(c)
	c.Flags().StringVar(&messages, "messages", "", "JSON file with the messages (- for standard input)")
	c.Flags().BoolVar(&addGen, "add-generation-prompt", false, "append the assistant header")
	c.Flags().StringVar(&vars, "vars", "", `extra template variables as JSON, e.g. '{"enable_thinking":false}'`)
	_ = c.MarkFlagRequired("messages")
	return c
}

// readMessages reads a JSON list of messages, or an object with "messages".
func readMessages(path string, stdin io.Reader) ([]chattemplate.Message, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading messages: %w", err)
	}
	msgs, err := chattemplate.ParseMessages(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return msgs, nil
}

func (e *env) inspectCmd() *cobra.Command {
	var mf modelFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect",
		Short: "Describe a model: architecture, shapes, parameters, dtype, vocabulary, template",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			m := ck.Model
			cfg := m.Config
			info := map[string]any{
				"path": ck.Path, "architecture": cfg.Arch, "hidden_size": cfg.Hidden, "intermediate_size": cfg.Intermediate,
				"num_hidden_layers": cfg.Layers, "num_attention_heads": cfg.Heads, "num_key_value_heads": cfg.KVHeads,
				"head_dim": cfg.HeadDim, "vocab_size": cfg.Vocab, "max_position_embeddings": cfg.MaxSeq,
				"parameters": m.NumParams(), "weight_dtype": m.Layers[0].Q.Type.String(), "embedding_dtype": m.Embed.Type.String(),
				"tied_embeddings": cfg.Tied, "rope_theta": cfg.RopeTheta, "rope_scaling": cfg.Rope.Type, "rms_norm_eps": cfg.NormEps,
				"qkv_bias": cfg.AttnQKVBias, "o_bias": cfg.AttnOBias, "mlp_bias": cfg.MLPBias, "qk_norm": cfg.QKNorm,
				"sliding_window": cfg.SlidingWindow, "bos_token_id": cfg.BOS, "eos_token_ids": cfg.EOS,
				"tokenizer_vocab": tokVocab(ck), "chat_template": ck.HasTemplate, "kernels": m.K.Name(),
			}
			if asJSON {
				return writeJSON(e.stdout, info)
			}
			fmt.Fprintf(e.stdout, "model        %s\n", ck.Path)
			fmt.Fprintf(e.stdout, "architecture %s\n", cfg.Arch)
			fmt.Fprintf(e.stdout, "parameters   %d (%.2fM)\n", m.NumParams(), float64(m.NumParams())/1e6)
			fmt.Fprintf(e.stdout, "layers       %d, hidden %d, ffn %d\n", cfg.Layers, cfg.Hidden, cfg.Intermediate)
			fmt.Fprintf(e.stdout, "attention    %d heads, %d KV heads, head_dim %d", cfg.Heads, cfg.KVHeads, cfg.HeadDim)
			if cfg.QKNorm {
				fmt.Fprint(e.stdout, ", q/k norm")
			}
			if cfg.AttnQKVBias {
				fmt.Fprint(e.stdout, ", qkv bias")
			}
			if cfg.SlidingWindow > 0 {
				fmt.Fprintf(e.stdout, ", sliding window %d", cfg.SlidingWindow)
			}
			fmt.Fprintln(e.stdout)
			rs := "none"
			if cfg.Rope.Type != "" {
				rs = fmt.Sprintf("%s ×%g", cfg.Rope.Type, cfg.Rope.Factor)
			}
			fmt.Fprintf(e.stdout, "rope         theta %g, scaling %s\n", cfg.RopeTheta, rs)
			fmt.Fprintf(e.stdout, "weights      %s (embeddings %s), tied head: %v\n", m.Layers[0].Q.Type, m.Embed.Type, cfg.Tied)
			fmt.Fprintf(e.stdout, "vocabulary   %d (tokenizer %d), BOS %d, EOS %v\n", cfg.Vocab, tokVocab(ck), cfg.BOS, cfg.EOS)
			fmt.Fprintf(e.stdout, "context      %d\n", cfg.MaxSeq)
			tmpl := "none (ChatML fallback)"
			if ck.HasTemplate {
				tmpl = "present"
			}
			fmt.Fprintf(e.stdout, "chat template %s\n", tmpl)
			fmt.Fprintf(e.stdout, "kernels      %s\n", m.K.Name())
			return nil
		},
	}
	mf.register(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func tokVocab(ck *checkpoint.Checkpoint) int {
	if ck.Tokenizer == nil {
		return 0
	}
	return ck.Tokenizer.VocabSize()
}
