package chattemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Config is what a Hugging Face tokenizer folder says about chat
// formatting.
type Config struct {
	// ChatTemplate is the default chat template; empty if the model has
	// none.
	ChatTemplate string
	// ChatTemplates holds every named template (including "default" when
	// the model names its templates, e.g. "tool_use" or "rag").
	ChatTemplates map[string]string
	// TemplateSource names where ChatTemplate was read from (a file path),
	// used in error messages.
	TemplateSource string
	// BOSToken, EOSToken, PadToken and UnkToken are the special tokens;
	// empty when not set.
	BOSToken, EOSToken, PadToken, UnkToken string
	// AddBOSToken and AddEOSToken are the add_bos_token/add_eos_token
	// settings, nil when absent.
	AddBOSToken, AddEOSToken *bool
	// Raw is the whole decoded tokenizer_config.json (nil if there was
	// none).
	Raw map[string]any
}

const (
	tokenizerConfigName = "tokenizer_config.json"
	jinjaTemplateName   = "chat_template.jinja"
	jsonTemplateName    = "chat_template.json"
	additionalDirName   = "additional_chat_templates"
)

// LoadConfig reads a tokenizer_config.json file, or a folder holding one.
// chat_template may be a string or a list of {name, template} (the one
// named "default" becomes ChatTemplate); special tokens may be strings or
// {"content": ...} objects. In a folder, a chat_template.jinja file (or
// else a chat_template.json file) overrides the template of
// tokenizer_config.json, as in newer transformers releases, and
// additional_chat_templates/*.jinja add named templates.
func LoadConfig(path string) (*Config, error) {
	fail := func(p string, err error) error { return fmt.Errorf("chattemplate: %s: %w", p, err) }
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("chattemplate: %w", err)
	}
	dir, cfgPath := path, filepath.Join(path, tokenizerConfigName)
	if !info.IsDir() {
		dir, cfgPath = filepath.Dir(path), path
	}
	c := &Config{ChatTemplates: map[string]string{}}

	data, err := os.ReadFile(cfgPath)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &c.Raw); err != nil {
			return nil, fail(cfgPath, fmt.Errorf("invalid JSON: %w", err))
		}
		if err := c.setTemplates(c.Raw["chat_template"], cfgPath); err != nil {
			return nil, fail(cfgPath, err)
		}
		for key, dst := range map[string]*string{"bos_token": &c.BOSToken, "eos_token": &c.EOSToken, "pad_token": &c.PadToken, "unk_token": &c.UnkToken} {
			s, err := tokenString(c.Raw[key])
			if err != nil {
				return nil, fail(cfgPath, fmt.Errorf("%s: %w", key, err))
			}
			*dst = s
		}
		for key, dst := range map[string]**bool{"add_bos_token": &c.AddBOSToken, "add_eos_token": &c.AddEOSToken} {
			switch v := c.Raw[key].(type) {
			case nil:
			case bool:
				*dst = &v
			default:
				return nil, fail(cfgPath, fmt.Errorf("%s must be a boolean, not %T", key, v))
			}
		}
	case errors.Is(err, fs.ErrNotExist) && info.IsDir():
		// A folder may hold only chat_template.jinja.
	default:
		return nil, fmt.Errorf("chattemplate: %w", err)
	}

	if p := filepath.Join(dir, jsonTemplateName); fileExists(p) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("chattemplate: %w", err)
		}
		var v struct {
			ChatTemplate any `json:"chat_template"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fail(p, fmt.Errorf("invalid JSON: %w", err))
		}
		if err := c.setTemplates(v.ChatTemplate, p); err != nil {
			return nil, fail(p, err)
		}
	}
	if p := filepath.Join(dir, jinjaTemplateName); fileExists(p) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("chattemplate: %w", err)
		}
		c.ChatTemplate, c.TemplateSource = string(b), p
		c.ChatTemplates["default"] = string(b)
	}
	extra, _ := filepath.Glob(filepath.Join(dir, additionalDirName, "*.jinja"))
	sort.Strings(extra)
	for _, p := range extra {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("chattemplate: %w", err)
		}
		c.ChatTemplates[strings.TrimSuffix(filepath.Base(p), ".jinja")] = string(b)
	}
	if c.Raw == nil && c.ChatTemplate == "" && len(c.ChatTemplates) == 0 {
		return nil, fmt.Errorf("chattemplate: %s: no %s or chat template file", dir, tokenizerConfigName)
	}
	return c, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// setTemplates takes a chat_template value: a string, or a list of
// {"name": ..., "template": ...}.
func (c *Config) setTemplates(v any, source string) error {
	switch t := v.(type) {
	case nil:
		return nil
	case string:
		c.ChatTemplate, c.TemplateSource = t, source
		c.ChatTemplates["default"] = t
		return nil
	case []any:
		named := map[string]string{}
		for i, item := range t {
			m, ok := item.(map[string]any)
			if !ok {
				return fmt.Errorf("chat_template[%d] is not an object", i)
			}
			name, ok1 := m["name"].(string)
			tpl, ok2 := m["template"].(string)
			if !ok1 || !ok2 {
				return fmt.Errorf("chat_template[%d] needs string fields name and template", i)
			}
			named[name] = tpl
		}
		for k, v := range named {
			c.ChatTemplates[k] = v
		}
		if d, ok := named["default"]; ok {
			c.ChatTemplate, c.TemplateSource = d, source
		}
		return nil
	}
	return fmt.Errorf("chat_template must be a string or a list of {name, template}, not %T", v)
}

// tokenString reads a special token given as a string or as an AddedToken
// object {"content": ...}.
func tokenString(v any) (string, error) {
	switch t := v.(type) {
	case nil:
		return "", nil
	case string:
		return t, nil
	case map[string]any:
		s, ok := t["content"].(string)
		if !ok {
			return "", fmt.Errorf("token object has no string content")
		}
		return s, nil
	}
	return "", fmt.Errorf("must be a string or {\"content\": ...}, not %T", v)
}

// Template parses the default chat template, naming its source file in
// errors. A config without a chat template gets the ChatML template.
func (c *Config) Template() (*Template, error) {
	if c.ChatTemplate == "" {
		return ChatML(), nil
	}
	return NewNamed(c.TemplateSource, c.ChatTemplate)
}

// NamedTemplate parses the chat template with the given name (e.g.
// "tool_use").
func (c *Config) NamedTemplate(name string) (*Template, error) {
	src, ok := c.ChatTemplates[name]
	if !ok {
		return nil, fmt.Errorf("chattemplate: %s: no chat template named %q", c.TemplateSource, name)
	}
	return NewNamed(c.TemplateSource+"#"+name, src)
}

// Options returns rendering options carrying the special tokens the way
// transformers passes them to templates: bos_token and eos_token, plus
// pad_token, unk_token and the other special tokens of tokenizer_config.json
// as variables.
func (c *Config) Options(addGenerationPrompt bool) Options {
	opt := Options{AddGenerationPrompt: addGenerationPrompt, BOSToken: c.BOSToken, EOSToken: c.EOSToken, Vars: map[string]any{}}
	if c.PadToken != "" {
		opt.Vars["pad_token"] = c.PadToken
	}
	if c.UnkToken != "" {
		opt.Vars["unk_token"] = c.UnkToken
	}
	for _, key := range []string{"sep_token", "cls_token", "mask_token"} {
		if s, err := tokenString(c.Raw[key]); err == nil && s != "" {
			opt.Vars[key] = s
		}
	}
	if list, ok := c.Raw["additional_special_tokens"].([]any); ok {
		var toks []any
		for _, t := range list {
			if s, err := tokenString(t); err == nil && s != "" {
				toks = append(toks, s)
			}
		}
		if len(toks) > 0 {
			opt.Vars["additional_special_tokens"] = toks
		}
	}
	return opt
}
