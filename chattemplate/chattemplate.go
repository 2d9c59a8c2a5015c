// Package chattemplate renders Hugging Face chat templates (the Jinja2
// `chat_template` of tokenizer_config.json) the way transformers'
// `apply_chat_template` does.
//
// Templates run on the gonja Jinja engine (github.com/nikolalohinski/gonja/v2)
// configured like transformers' ImmutableSandboxedEnvironment: trim_blocks and
// lstrip_blocks on, the loopcontrols extension ({% break %}, {% continue %}),
// a {% generation %} block, `tojson` with Python json.dumps output
// (ensure_ascii=False by default), `raise_exception(msg)` and
// `strftime_now(fmt)`. Where gonja differs from Python Jinja2 in ways chat
// templates rely on, this package patches it through gonja's public extension
// points (filters, tests, methods, globals, control structures and a rewrite
// of the parsed tree); see compat_test.go for the behaviours checked against
// Python Jinja2.
//
// Rendering is bounded: loops, recursion depth, output size and string/list
// growth are limited so that a hostile template returns an error instead of
// hanging or exhausting memory, and engine panics are turned into errors.
//
// Templates see messages and variables as Python-like values: strings,
// bools, ints, floats, lists and ordered dicts. Go maps are seen with their
// keys sorted; pass json.RawMessage, or any value whose MarshalJSON keeps key
// order, to keep insertion order (it matters for tojson and items()).
//
// Known differences from Python Jinja2: Python's None and Undefined are both
// represented as Go nil, so `x is defined` is false and `{{ x }}` prints
// nothing when x is None, and an attribute of an undefined value is
// undefined rather than an error; loop.depth counts nested loops, not only
// recursive ones; {% include %}, {% import %} and {% extends %} always fail,
// as there are no other templates to load.
package chattemplate

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// Message is one chat turn: masque's one chat message type, used by the
// templates, the calibration and fine-tuning data, the judges and the
// teachers. In JSON it is {"role":…,"content":…} (OpenAI's layout).
type Message struct {
	// Role is the speaker, e.g. "system", "user", "assistant" or "tool".
	Role string `json:"role"`
	// Content is the text of the turn.
	Content string `json:"content"`
	// Fields holds extra keys such as reasoning_content, tool_calls, name or
	// tool_call_id. They are merged into the dict the template sees as a
	// message; a "role" or "content" key here replaces Role or Content (use
	// it for a None content, or a list of content parts). They are for the
	// template only and are not part of the message's JSON.
	Fields map[string]any `json:"-"`
}

// Options controls one rendering.
type Options struct {
	// AddGenerationPrompt is the template variable add_generation_prompt:
	// templates then end with the header that opens an assistant turn.
	AddGenerationPrompt bool
	// BOSToken and EOSToken become the template variables bos_token and
	// eos_token. Empty means undefined.
	BOSToken, EOSToken string
	// Vars are extra template variables, such as enable_thinking, tools,
	// documents, pad_token or date_string. They override BOSToken and
	// EOSToken but not messages or add_generation_prompt.
	Vars map[string]any
	// Now is the time strftime_now reports; the zero value means time.Now().
	Now time.Time
}

// Span is a byte range [Start, End) of a rendering that holds the content of
// the message at index Message.
type Span struct{ Message, Start, End int }

// Template is a parsed chat template. It is safe for concurrent use.
type Template struct {
	name   string
	source string
	tpl    *exec.Template
}

// Error is the error type returned when parsing or rendering a template fails.
type Error struct {
	// Source names the template: the file it was loaded from, or
	// "chat_template" when it was given as a string.
	Source string
	// Line is the 1-based template line the problem was found on, or 0 if
	// unknown.
	Line int
	// Msg describes the problem.
	Msg string
	// Raised is true when the template itself aborted by calling
	// raise_exception; Msg is then the template's message.
	Raised bool
}

// Error implements the error interface.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("chattemplate: ")
	b.WriteString(e.Source)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Raised {
		b.WriteString("template raised exception: ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

const defaultSourceName = "chat_template"

// New parses a chat template. Syntax errors come back as *Error naming the
// line where the parser found the problem.
func New(source string) (*Template, error) {
	return newNamed(defaultSourceName, source)
}

// NewNamed is like New but names the template in errors, e.g. with the file
// it came from.
func NewNamed(name, source string) (*Template, error) {
	if name == "" {
		name = defaultSourceName
	}
	return newNamed(name, source)
}

const rootID = "/chat_template"

func newNamed(name, source string) (t *Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, &Error{Source: name, Msg: fmt.Sprintf("template parser panicked: %v", r)}
		}
	}()
	tpl, perr := parseTemplate(source)
	if perr != nil {
		return nil, parseError(name, source, perr)
	}
	if err := harden(tpl.Root()); err != nil {
		return nil, &Error{Source: name, Msg: err.Error()}
	}
	return &Template{name: name, source: source, tpl: tpl}, nil
}

var lineRE = regexp.MustCompile(`(?i)\(?line[:= ]\s*(\d+)`)

// parseError turns a gonja parse error into an *Error with the line number,
// dropping the template text gonja echoes in its message.
func parseError(name, source string, err error) *Error {
	msg := err.Error()
	msg = strings.Replace(msg, "failed to parse template '"+source+"': ", "", 1)
	e := &Error{Source: name, Msg: "syntax error: " + msg}
	if m := lineRE.FindAllStringSubmatch(msg, -1); len(m) > 0 {
		e.Line, _ = strconv.Atoi(m[len(m)-1][1])
	}
	return e
}

// Source returns the template text.
func (t *Template) Source() string { return t.source }

// Name returns the name used for the template in errors.
func (t *Template) Name() string { return t.name }

const chatMLSource = "{% for message in messages %}" +
	"{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
	"{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// ChatMLSource is the source of the ChatML template that ChatML compiles, for
// writing into a tokenizer_config.json (tokenizer/bpetrain does).
const ChatMLSource = chatMLSource

// ChatML returns the ChatML template, a fallback for models that ship no chat
// template: every message becomes "<|im_start|>{role}\n{content}<|im_end|>\n"
// and the generation prompt is "<|im_start|>assistant\n".
func ChatML() *Template {
	chatMLOnce.Do(func() {
		t, err := NewNamed("chatml", chatMLSource)
		if err != nil {
			panic(err) // the source is a constant
		}
		chatMLTemplate = t
	})
	return chatMLTemplate
}

var (
	chatMLOnce     sync.Once
	chatMLTemplate *Template
)

// Render renders the conversation msgs.
func (t *Template) Render(msgs []Message, opt Options) (string, error) {
	return t.render(msgs, nil, opt)
}

func (t *Template) render(msgs []Message, contentOverride map[int]any, opt Options) (string, error) {
	vars := make(map[string]any, len(opt.Vars)+4)
	if opt.BOSToken != "" {
		vars["bos_token"] = opt.BOSToken
	}
	if opt.EOSToken != "" {
		vars["eos_token"] = opt.EOSToken
	}
	for k, v := range opt.Vars {
		vars[k] = v
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		d := messageDict(m)
		if c, ok := contentOverride[i]; ok {
			setDictItem(d, "content", c)
		}
		list[i] = d
	}
	vars["messages"] = list
	vars["add_generation_prompt"] = opt.AddGenerationPrompt
	return t.execute(vars, opt.Now)
}

// Execute renders the template with exactly the given variables (converted
// as described in the package documentation), for callers that build the
// template context themselves.
func (t *Template) Execute(vars map[string]any) (string, error) {
	return t.execute(vars, time.Time{})
}

func (t *Template) execute(vars map[string]any, now time.Time) (out string, err error) {
	st := &renderState{now: now}
	if now.IsZero() {
		st.now = time.Now()
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = "", t.runtimeError(st, fmt.Errorf("template engine panicked: %v", r))
		}
	}()
	data := make(map[string]any, len(vars)+1)
	for k, v := range vars {
		c, cerr := convertValue(v, 0)
		if cerr != nil {
			return "", &Error{Source: t.name, Msg: fmt.Sprintf("variable %q: %v", k, cerr)}
		}
		data[k] = c
	}
	data[stateKey] = st
	w := &limitWriter{st: st}
	if xerr := t.tpl.Execute(w, exec.NewContext(data)); xerr != nil {
		return "", t.runtimeError(st, xerr)
	}
	if st.raised != nil {
		return "", t.runtimeError(st, errors.New(*st.raised))
	}
	return w.b.String(), nil
}

// runtimeError converts a rendering failure into an *Error, preferring the
// message of raise_exception or of a rendering limit over gonja's chain of
// wrapped messages.
var (
	noiseFilterRE  = regexp.MustCompile(`unable to evaluate filter &\{<Token\[[A-Za-z]+\] Val='.*?' Pos=\d+ Line=\d+ Col=\d+> (\S+) .*?\}: `)
	noiseInvalidRE = regexp.MustCompile(`invalid call to filter 'masque:[^']*': `)
	noiseBodyRE    = regexp.MustCompile(`Unable to execute controlStructure at line \d+: body: `)
)

// cleanMessage removes from gonja's error chain the traces of the hidden
// filters and block guards this package inserts.
func cleanMessage(msg string) string {
	msg = strings.TrimPrefix(msg, "unable to execute template: ")
	msg = noiseFilterRE.ReplaceAllStringFunc(msg, func(m string) string {
		name := noiseFilterRE.FindStringSubmatch(m)[1]
		if strings.HasPrefix(name, "masque:") {
			return ""
		}
		return "filter " + name + ": "
	})
	msg = noiseInvalidRE.ReplaceAllString(msg, "")
	msg = noiseBodyRE.ReplaceAllString(msg, "")
	return strings.ReplaceAll(msg, "filtered_expression", "")
}

func (t *Template) runtimeError(st *renderState, err error) *Error {
	msg := cleanMessage(err.Error())
	e := &Error{Source: t.name, Msg: msg}
	if m := lineRE.FindAllStringSubmatch(msg, -1); len(m) > 0 {
		e.Line, _ = strconv.Atoi(m[len(m)-1][1])
	}
	switch {
	case st.raised != nil:
		e.Msg, e.Raised = *st.raised, true
	case st.limit != nil:
		e.Msg = st.limit.Error()
	}
	return e
}
