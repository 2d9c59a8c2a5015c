// Package checkpoint opens everything a model needs to talk: its weights
// (model.Model), its tokenizer and its chat template, from a Hugging Face
// folder, a GGUF file, a llama2.c checkpoint, or the built-in default.
package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/gguf"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/tokenizer"
)

// Checkpoint is an opened model with its tokenizer and chat template.
type Checkpoint struct {
	Path string // as given, or the built-in model's name (builtin.Voices, builtin.Stories)
	// Dir is the file or folder the weights were read from: Path itself,
	// the cache folder that builtin:voices was unpacked into, or "" for
	// builtin:stories260K (read from memory).
	Dir string
	// Ref opens the same model again wherever the current folder is: the
	// built-in name, the hub id as given (org/name[@rev][:QUANT]) or the
	// absolute path. Artifacts made on the model record it as their base
	// (the model's Origin is set to it).
	Ref       string
	Model     *model.Model
	Tokenizer *tokenizer.Tokenizer
	// Template renders conversations. When the checkpoint has no chat
	// template, it is the ChatML fallback and HasTemplate is false.
	Template    *chattemplate.Template
	HasTemplate bool
	// TemplateConfig is tokenizer_config.json (nil when there is none).
	TemplateConfig *chattemplate.Config

	tokErr         error  // why Tokenizer is nil
	templateSource string // the chat template's text, when it has one
}

func hasTokenizer(dir string) bool {
	for _, n := range []string{"tokenizer.json", "tokenizer.json.gz"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// NeedTokenizer returns the tokenizer, or an error saying why there is none
// (a weights-only folder can still compute logits from ids).
func (ck *Checkpoint) NeedTokenizer() (*tokenizer.Tokenizer, error) {
	if ck.Tokenizer == nil {
		if ck.tokErr != nil {
			return nil, ck.tokErr
		}
		return nil, fmt.Errorf("%s has no tokenizer", ck.Path)
	}
	return ck.Tokenizer, nil
}

// Options tune Open.
type Options struct {
	// Tokenizer overrides where the tokenizer is read from (required for a
	// llama2.c checkpoint without a tokenizer.bin beside it).
	Tokenizer string
}

// DefaultModelEnv names the environment variable that replaces the default
// model (what an empty path opens): a path or a built-in name.
const DefaultModelEnv = "MASQUE_MODEL"

// DefaultModel returns what an empty model path means: $MASQUE_MODEL when it
// is set, otherwise builtin:voices.
func DefaultModel() string {
	if m := os.Getenv(DefaultModelEnv); m != "" {
		return m
	}
	return builtin.Default
}

// Open loads the checkpoint at path. An empty path opens the default model
// (DefaultModel: builtin:voices unless $MASQUE_MODEL says otherwise);
// "builtin" and "builtin:voices" open builtin:voices, "builtin:stories260K"
// the built-in llama2.c model.
func Open(path string, o Options) (*Checkpoint, error) {
	if path == "" {
		path = DefaultModel()
	}
	var ck *Checkpoint
	var err error
	switch {
	case builtin.IsVoices(path):
		ck, err = openVoices(o)
	case path == builtin.Stories:
		ck, err = openStories()
	default:
		ck, err = openPath(path, o)
	}
	if err != nil {
		return nil, err
	}
	ck.Ref = refOf(path, ck.Path)
	ck.Model.SetOrigin(ck.Ref)
	return ck, nil
}

func openPath(given string, o Options) (*Checkpoint, error) {
	// org/name pulled from the Hugging Face hub: its snapshot in the cache.
	path, err := Resolve(given)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening model: %w", err)
	}
	ck := &Checkpoint{Path: path, Dir: path}
	switch {
	case st.IsDir():
		err = ck.openHF(path, o)
	case strings.EqualFold(filepath.Ext(path), ".bin"):
		err = ck.openLlama2C(path, o)
	case strings.EqualFold(filepath.Ext(path), ".gguf"):
		err = ck.openGGUF(path, o)
	default:
		err = fmt.Errorf("%s: not a model folder, .gguf file or llama2.c .bin checkpoint", path)
	}
	if err != nil {
		ck.Close()
		return nil, err
	}
	return ck, nil
}

func openStories() (*Checkpoint, error) {
	m, err := model.ParseLlama2C(builtin.Model, builtin.Stories)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.ParseLlama2C(builtin.Tokenizer, builtin.Stories+"/tok512.bin")
	if err != nil {
		return nil, err
	}
	return &Checkpoint{Path: builtin.Stories, Model: m, Tokenizer: tok, Template: chattemplate.ChatML()}, nil
}

// openVoices opens builtin:voices from its unpacked folder (an ordinary
// Hugging Face folder in the cache, see builtin.Unpack), named by its
// built-in name.
func openVoices(o Options) (*Checkpoint, error) {
	dir, err := builtin.VoicesDir()
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{Path: builtin.Voices, Dir: dir}
	if err := ck.openHF(dir, o); err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", builtin.Voices, err)
	}
	return ck, nil
}

func (ck *Checkpoint) openHF(dir string, o Options) error {
	var err error
	if ck.Model, err = model.LoadHF(dir); err != nil {
		return err
	}
	tokPath := dir
	if o.Tokenizer != "" {
		tokPath = o.Tokenizer
	}
	l2cTok := filepath.Join(dir, "tokenizer.bin")
	if _, err := os.Stat(l2cTok); o.Tokenizer == "" && !hasTokenizer(dir) && err == nil {
		// A folder exported from a llama2.c checkpoint keeps its tokenizer.bin.
		if ck.Tokenizer, err = tokenizer.LoadLlama2C(l2cTok); err != nil {
			return err
		}
	} else if o.Tokenizer != "" || hasTokenizer(dir) {
		if strings.EqualFold(filepath.Ext(tokPath), ".bin") {
			ck.Tokenizer, err = tokenizer.LoadLlama2C(tokPath)
		} else {
			ck.Tokenizer, err = tokenizer.Load(tokPath)
		}
		if err != nil {
			return err
		}
	} else {
		ck.tokErr = fmt.Errorf("%s has no tokenizer.json: pass --tokenizer FILE", dir)
	}
	return ck.loadTemplate(dir)
}

func (ck *Checkpoint) loadTemplate(dir string) error {
	present := false
	for _, n := range []string{"tokenizer_config.json", "chat_template.jinja", "chat_template.json"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			present = true
		}
	}
	if !present {
		ck.Template = chattemplate.ChatML()
		return nil
	}
	cfg, err := chattemplate.LoadConfig(dir)
	if err != nil {
		return err
	}
	ck.TemplateConfig = cfg
	if cfg.ChatTemplate == "" {
		ck.Template = chattemplate.ChatML()
		return nil
	}
	if ck.Template, err = chattemplate.New(cfg.ChatTemplate); err != nil {
		return fmt.Errorf("%s: chat_template: %v", filepath.Join(dir, "tokenizer_config.json"), err)
	}
	ck.HasTemplate = true
	ck.templateSource = cfg.ChatTemplate
	return nil
}

func (ck *Checkpoint) openLlama2C(path string, o Options) error {
	var err error
	if ck.Model, err = model.LoadLlama2C(path); err != nil {
		return err
	}
	tokPath := o.Tokenizer
	if tokPath == "" {
		tokPath = filepath.Join(filepath.Dir(path), "tokenizer.bin")
		if _, err := os.Stat(tokPath); err != nil {
			return fmt.Errorf("%s: a llama2.c checkpoint needs its tokenizer: pass --tokenizer FILE (no tokenizer.bin beside it)", path)
		}
	}
	if ck.Tokenizer, err = tokenizer.LoadLlama2C(tokPath); err != nil {
		return err
	}
	ck.Template = chattemplate.ChatML()
	return nil
}

func (ck *Checkpoint) openGGUF(path string, o Options) error {
	var err error
	if ck.Model, err = model.LoadGGUF(path); err != nil {
		return err
	}
	f, err := gguf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if o.Tokenizer != "" {
		ck.Tokenizer, err = tokenizer.Load(o.Tokenizer)
	} else {
		ck.Tokenizer, err = tokenizer.FromGGUF(f)
	}
	if err != nil {
		return err
	}
	ck.Template = chattemplate.ChatML()
	if src, ok := f.String("tokenizer.chat_template"); ok && src != "" {
		if ck.Template, err = chattemplate.New(src); err != nil {
			return fmt.Errorf("%s: tokenizer.chat_template: %v", path, err)
		}
		ck.HasTemplate = true
		ck.templateSource = src
	}
	return nil
}

// Close releases the model's memory-mapped files.
func (ck *Checkpoint) Close() error {
	if ck.Model != nil {
		return ck.Model.Close()
	}
	return nil
}

// RenderChat renders a conversation with the checkpoint's chat template.
func (ck *Checkpoint) RenderChat(msgs []chattemplate.Message, addGenerationPrompt bool, vars map[string]any) (string, error) {
	opt := chattemplate.Options{AddGenerationPrompt: addGenerationPrompt, Vars: vars}
	if c := ck.TemplateConfig; c != nil {
		opt.BOSToken, opt.EOSToken = c.BOSToken, c.EOSToken
	} else if ck.Tokenizer != nil {
		opt.BOSToken, opt.EOSToken = ck.Tokenizer.BOSToken(), ck.Tokenizer.EOSToken()
	}
	return ck.Template.Render(msgs, opt)
}

// EncodeChat renders a conversation and tokenizes it the way Hugging Face's
// apply_chat_template(tokenize=True) does: the template supplies any BOS, so
// no special tokens are added.
func (ck *Checkpoint) EncodeChat(msgs []chattemplate.Message, addGenerationPrompt bool, vars map[string]any) ([]int, error) {
	s, err := ck.RenderChat(msgs, addGenerationPrompt, vars)
	if err != nil {
		return nil, err
	}
	tok, err := ck.NeedTokenizer()
	if err != nil {
		return nil, err
	}
	return tok.EncodeChecked(s, false) // a tokenizer regex that times out is an error
}

// ChatEncoder returns EncodeChat without template variables, in the shape
// calibration sets and multiple-choice prompts take (calib.ChatFunc).
func (ck *Checkpoint) ChatEncoder() func(msgs []chattemplate.Message, addGenerationPrompt bool) ([]int, error) {
	return func(msgs []chattemplate.Message, gen bool) ([]int, error) { return ck.EncodeChat(msgs, gen, nil) }
}

// ExtraFiles returns the tokenizer to ship with a model written from memory,
// by file name: a llama2.c checkpoint and the built-in stories model have no
// folder to copy it from. tokenizer is the tokenizer file the checkpoint was
// opened with ("" for the one beside a llama2.c file). A Hugging Face folder
// or GGUF file needs none (nil); neither does a tokenizer that cannot be read.
func (ck *Checkpoint) ExtraFiles(tokenizer string) map[string][]byte {
	if ck.Path == builtin.Stories {
		return map[string][]byte{"tokenizer.bin": builtin.Tokenizer}
	}
	if st, err := os.Stat(ck.Path); err == nil && !st.IsDir() {
		if name, b, err := ck.Llama2CTokenizer(tokenizer); err == nil {
			return map[string][]byte{name: b}
		}
	}
	return nil
}

// Llama2CTokenizer returns the file name and bytes of a llama2.c model's
// tokenizer: the file tokenizer when given, the built-in one for
// builtin:stories260K, else tokenizer.bin beside the model file.
func (ck *Checkpoint) Llama2CTokenizer(tokenizer string) (name string, data []byte, err error) {
	switch {
	case tokenizer != "":
		data, err = os.ReadFile(tokenizer)
		return filepath.Base(tokenizer), data, err
	case ck.Path == builtin.Stories:
		return "tokenizer.bin", builtin.Tokenizer, nil
	}
	data, err = os.ReadFile(filepath.Join(filepath.Dir(ck.Path), "tokenizer.bin"))
	return "tokenizer.bin", data, err
}

// StopTokens returns the ids that end a reply: the model's EOS ids plus the
// tokenizer's EOS and, for chat templates, the end-of-turn tokens the
// template uses (<|im_end|>, <|eot_id|>, <|end|>, </s>) that exist in the vocabulary.
func (ck *Checkpoint) StopTokens() []int {
	seen := map[int]bool{}
	var out []int
	add := func(id int) {
		if id >= 0 && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range ck.Model.Config.EOS {
		add(id)
	}
	if ck.Tokenizer != nil {
		if id, ok := ck.Tokenizer.EOS(); ok {
			add(id)
		}
		for _, s := range []string{"<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<end_of_turn>"} {
			if id, ok := ck.Tokenizer.TokenID(s); ok && ck.Tokenizer.IsSpecial(id) {
				add(id)
			}
		}
	}
	return out
}

// OpenText opens only what text processing needs: the tokenizer and chat
// template. For a folder the weights are not loaded (Model is nil), so it
// also works on a folder that holds only tokenizer files; other paths are
// opened fully.
func OpenText(path string, o Options) (*Checkpoint, error) {
	if path == "" {
		path = DefaultModel()
	}
	// org/name pulled from the Hugging Face hub: its snapshot in the cache.
	path, err := Resolve(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return Open(path, o)
	}
	ck := &Checkpoint{Path: path, Dir: path}
	tokPath := path
	if o.Tokenizer != "" {
		tokPath = o.Tokenizer
	}
	if ck.Tokenizer, err = tokenizer.Load(tokPath); err != nil {
		return nil, err
	}
	if err := ck.loadTemplate(path); err != nil {
		return nil, err
	}
	return ck, nil
}
