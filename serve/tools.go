package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/generate/grammar"
)

// Tool calling (tools and tool_choice in /v1/chat/completions).
//
// The tools go to the model's chat template as its `tools` variable (the
// OpenAI objects, unchanged, as transformers' apply_chat_template passes
// them); a template that does not render them cannot call tools, and such
// a request is a 400. Tool calls are read back from the output in one of
// two conventions, chosen from the template:
//   - Hermes/Qwen: <tool_call>{"name": …, "arguments": {…}}</tool_call>
//     blocks, any number, with text around them (templates that write
//     <tool_call>: Qwen2.5, Qwen3, Hermes);
//   - JSON: the whole reply is {"name": …, "parameters"|"arguments": {…}},
//     or several separated by ';' (Llama 3.1/3.2 custom tools), possibly
//     after <|python_tag|>.
//
// tool_choice "required" or a named function decode the call under a
// constraint (generate/grammar): for Hermes templates "<tool_call>\n" is
// put after the generation prompt and the reply is the call's JSON object,
// {"name": <one of the functions>, "arguments": <its parameters schema>};
// the reply always parses and its arguments always validate. "none" leaves
// the tools out of the prompt; "auto" (the default with tools) lets the
// model choose.

const (
	toolFormatHermes = iota // <tool_call>…</tool_call>
	toolFormatJSON          // a bare JSON object, Llama 3.x
)

// maxTools is the most tools a request may list; maxForcedTools the most
// that tool_choice "required" decodes (one constraint state each, every
// token).
const (
	maxTools       = 128
	maxForcedTools = 32
)

// toolFunction is a tool's function.
type toolFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
}

// toolSpec is one entry of tools.
type toolSpec struct {
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

// toolChoiceObject is tool_choice naming a function.
type toolChoiceObject struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

var toolNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// toolSetup is what a request's tools and tool_choice ask for.
type toolSetup struct {
	raw    []json.RawMessage // the tools as sent, for the template
	names  map[string]bool
	choice string // "auto", "required" or "function"
	named  string // the function tool_choice names
	format int
	argKey string // "arguments" or "parameters", what the template writes
	// prefill is put after the generation prompt ("<tool_call>\n" when a
	// call is forced in the Hermes format).
	prefill string
	// single: parallel_tool_calls false, at most one call; what follows
	// it is dropped.
	single bool
	// seed is the start of the call's JSON that prefill ends with (a
	// named function's name): the reply goes on from there.
	seed string
	// constraint forces a call ("required" or a named function).
	constraint generate.Constraint
}

// vars are the template variables that render the tools.
func (ts *toolSetup) vars() map[string]any {
	if ts == nil {
		return nil
	}
	list := make([]any, len(ts.raw))
	for i, r := range ts.raw {
		list[i] = r
	}
	return map[string]any{"tools": list}
}

// parseTools reads tools and tool_choice. It returns nil when no tool may
// be called (no tools, or tool_choice "none").
func (s *Server) parseTools(p *loaded, toolsRaw, choiceRaw json.RawMessage) (*toolSetup, *apiError) {
	toolsRaw, choiceRaw = bytes.TrimSpace(toolsRaw), bytes.TrimSpace(choiceRaw)
	var raws []json.RawMessage
	if len(toolsRaw) > 0 && string(toolsRaw) != "null" {
		if err := json.Unmarshal(toolsRaw, &raws); err != nil {
			return nil, badRequest("tools", "invalid_type", "'tools' must be a list of {\"type\": \"function\", \"function\": {...}}")
		}
	}
	if len(raws) > maxTools {
		return nil, badRequest("tools", "array_above_max_length", "at most %d tools", maxTools)
	}
	choice, named := "auto", ""
	if len(choiceRaw) > 0 && string(choiceRaw) != "null" {
		var str string
		if err := json.Unmarshal(choiceRaw, &str); err == nil {
			switch str {
			case "none", "auto", "required":
				choice = str
			default:
				return nil, badRequest("tool_choice", "invalid_value", "tool_choice %q is not one of none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}", str)
			}
		} else {
			var obj toolChoiceObject
			if err := json.Unmarshal(choiceRaw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
				return nil, badRequest("tool_choice", "invalid_value", "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}")
			}
			choice, named = "function", obj.Function.Name
		}
		if len(raws) == 0 && choice != "none" {
			return nil, badRequest("tool_choice", "invalid_value", "tool_choice %s needs tools: the request lists none", map[bool]string{true: "'" + named + "'", false: "'" + choice + "'"}[named != ""])
		}
	}
	if len(raws) == 0 || choice == "none" {
		return nil, nil
	}
	ts := &toolSetup{raw: raws, names: map[string]bool{}, choice: choice, named: named}
	var specs []toolSpec
	for i, r := range raws {
		var t toolSpec
		dec := json.NewDecoder(bytes.NewReader(r))
		if err := dec.Decode(&t); err != nil {
			return nil, badRequest(fmt.Sprintf("tools[%d]", i), "invalid_type", "tools[%d] must be {\"type\": \"function\", \"function\": {\"name\", \"description\", \"parameters\"}}: %s", i, jsonErrText(err, fmt.Sprintf("tools[%d]", i)))
		}
		if t.Type != "function" {
			return nil, badRequest(fmt.Sprintf("tools[%d].type", i), "invalid_value", "tools[%d].type is %q: only \"function\" tools are supported", i, t.Type)
		}
		if !toolNameRE.MatchString(t.Function.Name) {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "invalid_value", "tools[%d].function.name %q must be 1 to 64 letters, digits, '_' or '-'", i, t.Function.Name)
		}
		if ts.names[t.Function.Name] {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "invalid_value", "two tools are named %q", t.Function.Name)
		}
		if pr := bytes.TrimSpace(t.Function.Parameters); len(pr) > 0 && string(pr) != "null" && pr[0] != '{' {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.parameters", i), "invalid_type", "tools[%d].function.parameters must be a JSON schema object", i)
		}
		ts.names[t.Function.Name] = true
		specs = append(specs, t)
	}
	if named != "" && !ts.names[named] {
		return nil, badRequest("tool_choice", "invalid_value", "tool_choice names the function %q, which is not among the tools", named)
	}
	// Does the template render tools? A probe tool's name must show up.
	if !p.base.ck.HasTemplate {
		return nil, badRequest("tools", "unsupported_value", "this model has no chat template of its own (masque falls back to ChatML, which has no tool support): tools cannot be used with model %q", p.spec.Name)
	}
	const probe = "masque_probe_tool_4f1c"
	probeTool := json.RawMessage(`{"type":"function","function":{"name":"` + probe + `","description":"probe","parameters":{"type":"object","properties":{}}}}`)
	text, err := p.base.ck.RenderChat([]chattemplate.Message{{Role: "user", Content: "hi"}}, true, map[string]any{"tools": []any{probeTool}})
	if err != nil || !strings.Contains(text, probe) {
		return nil, badRequest("tools", "unsupported_value", "the chat template of model %q does not support tools (it does not render the 'tools' it is given): use a model whose template does, such as Qwen2.5, Qwen3 or Llama 3.1+", p.spec.Name)
	}
	src := p.base.ck.Template.Source()
	ts.format, ts.argKey = toolFormatJSON, "arguments"
	if strings.Contains(src, "<tool_call>") {
		ts.format = toolFormatHermes
	} else if strings.Contains(src, `"parameters": `) {
		ts.argKey = "parameters"
	}
	if choice == "auto" {
		return ts, nil
	}
	// A forced call: a constraint over the call's JSON object, one
	// alternative per function that may be called.
	if choice == "required" && len(specs) > maxForcedTools {
		return nil, badRequest("tool_choice", "invalid_value", "tool_choice \"required\" decodes the call under every tool's schema at once, at most %d tools (the request lists %d): name one function, or use \"auto\"", maxForcedTools, len(specs))
	}
	tt := p.base.tokenTexts()
	if tt.vocab == nil {
		return nil, badRequest("tool_choice", "unsupported_value", "this model has no tokenizer to constrain its output with, so tool_choice %q cannot be honoured", choice)
	}
	// A named function's call starts in the prompt, up to its arguments,
	// which are decoded under the parameters schema alone (and stream as
	// they come). "required" decodes the whole call object, one
	// alternative per function.
	var alts []generate.Constraint
	for i, t := range specs {
		if named != "" && t.Function.Name != named {
			continue
		}
		params := bytes.TrimSpace(t.Function.Parameters)
		if len(params) == 0 || string(params) == "null" {
			params = []byte(`{"type": "object", "properties": {}}`)
		}
		schema := fmt.Sprintf(`{"type": "object", "properties": {"name": {"const": %s}, %q: %s}, "required": ["name", %q]}`,
			mustJSON(t.Function.Name), ts.argKey, params, ts.argKey)
		if named != "" {
			schema = string(params)
			ts.seed = fmt.Sprintf(`{"name": %s, %q: `, mustJSON(named), ts.argKey)
		}
		sch, err := grammar.Compile([]byte(schema))
		if err != nil {
			msg := strings.ReplaceAll(err.Error(), "#/properties/"+ts.argKey, "#")
			return nil, badRequest(fmt.Sprintf("tools[%d].function.parameters", i), "invalid_value", "tool_choice %q decodes the call under the function's parameters schema, which masque cannot use: %s", choice, msg)
		}
		alts = append(alts, sch.Constraint(tt.vocab))
	}
	ts.constraint = alts[0]
	if len(alts) > 1 {
		ts.constraint = anyConstraint(alts)
	}
	if ts.format == toolFormatHermes {
		ts.prefill = "<tool_call>\n"
	}
	ts.prefill += ts.seed
	return ts, nil
}

// anyConstraint allows what any of its constraints allows: its state
// follows every alternative that the output so far still fits.
type anyConstraint []generate.Constraint

// Start implements generate.Constraint.
func (a anyConstraint) Start() generate.ConstraintState {
	st := &anyState{}
	for _, c := range a {
		st.live = append(st.live, anyAlt{state: c.Start()})
	}
	return st
}

type anyAlt struct {
	state   generate.ConstraintState
	allowed []bool // what the state allowed at the last Allowed
}

type anyState struct {
	live []anyAlt
}

// Allowed implements generate.ConstraintState.
func (s *anyState) Allowed(allowed []bool) bool {
	clear(allowed)
	complete := false
	for i := range s.live {
		a := &s.live[i]
		if len(a.allowed) != len(allowed) {
			a.allowed = make([]bool, len(allowed))
		} else {
			clear(a.allowed)
		}
		if a.state.Allowed(a.allowed) {
			complete = true
		}
		for id, ok := range a.allowed {
			if ok {
				allowed[id] = true
			}
		}
	}
	return complete
}

// Accept implements generate.ConstraintState: the alternatives that did
// not allow id are dropped.
func (s *anyState) Accept(id int) error {
	kept := s.live[:0]
	var firstErr error
	for _, a := range s.live {
		if id < 0 || id >= len(a.allowed) || !a.allowed[id] {
			continue
		}
		if err := a.state.Accept(id); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		kept = append(kept, a)
	}
	s.live = kept
	if len(kept) == 0 {
		if firstErr != nil {
			return firstErr
		}
		return fmt.Errorf("token %d fits none of the tool calls", id)
	}
	return nil
}

// toolCall is a call read from the output.
type toolCall struct {
	ID        string
	Name      string
	Arguments string // JSON text
}

// parseCallJSON reads one call object, {"name": …, "arguments" or
// "parameters": {…}}, whose name is one of names. Arguments given as a
// JSON string are taken as the string's content.
func parseCallJSON(s string, names map[string]bool) (toolCall, bool) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&obj); err != nil || dec.More() {
		return toolCall{}, false
	}
	var name string
	if err := json.Unmarshal(obj["name"], &name); err != nil || !names[name] {
		return toolCall{}, false
	}
	args, ok := obj["arguments"]
	if !ok {
		args, ok = obj["parameters"]
	}
	if !ok {
		args = json.RawMessage("{}")
	}
	args = bytes.TrimSpace(args)
	var str string
	if len(args) > 0 && args[0] == '"' && json.Unmarshal(args, &str) == nil && json.Valid([]byte(str)) {
		args = json.RawMessage(str)
	}
	if len(args) == 0 || args[0] != '{' {
		return toolCall{}, false
	}
	return toolCall{Name: name, Arguments: string(args)}, true
}

// toolCallDelta is a streamed piece of a tool call.
type toolCallDelta struct {
	Index    int               `json:"index"`
	ID       string            `json:"id,omitempty"`
	Type     string            `json:"type,omitempty"`
	Function toolFunctionDelta `json:"function"`
}

type toolFunctionDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// messageToolCall is a tool call of an assistant message.
type messageToolCall struct {
	ID       string              `json:"id"`
	Type     string              `json:"type"`
	Function messageToolFunction `json:"function"`
}

type messageToolFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

const (
	callOpen  = "<tool_call>"
	callClose = "</tool_call>"
)

// toolReader reads one choice's output as it streams, separating text
// from tool calls. feed takes the next piece of text and returns the text
// that is content for certain and the calls' deltas; finish flushes what
// it held back. A call's deltas are its header (index, id, type, name,
// empty arguments), then its arguments: in fragments as they are written
// when the model writes the name first, as a whole otherwise.
type toolReader struct {
	ts    *toolSetup
	buf   string // text held back
	blank string // blank text after a call, held back
	state int
	calls []toolCall
	// the call being read
	header  bool // its header was sent
	argSent int  // how much of buf was sent as arguments
	argDone bool
	scan    jsonScan
}

const (
	readContent = iota // plain text, watching for a call
	readCall           // inside <tool_call>, or a JSON reply
	readText           // JSON format: the reply is text, no call
	readDone           // one call read and parallel_tool_calls false: the rest is dropped
)

func newToolReader(ts *toolSetup) *toolReader {
	r := &toolReader{ts: ts}
	if ts.constraint != nil {
		r.state = readCall // the prompt opened the call
		r.buf = ts.seed
	}
	return r
}

// headerRE matches the start of a call object up to its arguments.
var headerRE = regexp.MustCompile(`^\s*\{\s*"name"\s*:\s*"([A-Za-z0-9_-]{1,64})"\s*,\s*"(?:arguments|parameters)"\s*:\s*`)

// emit adds text to content. Once a call was made, blank text (the new
// lines between and after calls, and the blanks that end any text) is
// held back until text that is not blank follows; what is held at the end
// of the reply is dropped. So the content does not depend on how the
// reply was cut into pieces.
func (r *toolReader) emit(content *strings.Builder, text string) {
	if len(r.calls) == 0 {
		content.WriteString(text)
		return
	}
	text = r.blank + text
	body := strings.TrimRight(text, " \t\r\n")
	r.blank = text[len(body):]
	content.WriteString(body)
}

func (r *toolReader) feed(text string) (string, []toolCallDelta) {
	r.buf += text
	var content strings.Builder
	var deltas []toolCallDelta
	for {
		s := r.buf
		switch r.state {
		case readDone:
			r.buf = ""
			return content.String(), deltas
		case readText:
			r.buf = ""
			r.emit(&content, s)
			return content.String(), deltas
		case readContent:
			if r.ts.format == toolFormatJSON {
				t := strings.TrimLeft(s, " \t\r\n")
				t = strings.TrimPrefix(t, "<|python_tag|>")
				switch {
				case t == "" || strings.HasPrefix("<|python_tag|>", t):
					return content.String(), deltas // wait for the first character
				case t[0] == '{':
					r.state = readCall
					r.startRead(t)
				default:
					r.state = readText
				}
				continue
			}
			if i := strings.Index(s, callOpen); i >= 0 {
				r.emit(&content, s[:i])
				r.state = readCall
				r.startRead(s[i+len(callOpen):])
				continue
			}
			keep := partialSuffix(s, callOpen)
			r.emit(&content, s[:len(s)-keep])
			r.buf = s[len(s)-keep:]
			return content.String(), deltas
		case readCall:
			d, text, more := r.callStep()
			deltas = append(deltas, d...)
			r.emit(&content, text)
			if !more {
				return content.String(), deltas
			}
		}
	}
}

// startRead starts reading a call whose text begins with s.
func (r *toolReader) startRead(s string) {
	r.buf, r.header, r.argSent, r.argDone, r.scan = s, false, 0, false, jsonScan{}
}

// startCall records a new call named name and returns its header delta.
func (r *toolReader) startCall(name string) toolCallDelta {
	id := newID("call_")
	r.calls = append(r.calls, toolCall{ID: id, Name: name})
	return toolCallDelta{Index: len(r.calls) - 1, ID: id, Type: "function", Function: toolFunctionDelta{Name: name}}
}

// callStep advances over a call's text. It returns the deltas, any text
// that turned out not to be a call, and whether the call ended and
// reading goes on after it.
func (r *toolReader) callStep() ([]toolCallDelta, string, bool) {
	s := r.buf
	var deltas []toolCallDelta
	if !r.header {
		// Stream only arguments that are an object; wait for their '{'.
		if m := headerRE.FindStringSubmatchIndex(s); m != nil && r.ts.names[s[m[2]:m[3]]] && m[1] < len(s) && s[m[1]] == '{' {
			r.header, r.argSent = true, m[1]
			deltas = append(deltas, r.startCall(s[m[2]:m[3]]))
		}
	}
	if r.header && !r.argDone {
		// Send the arguments up to where their value ends (blanks before
		// the value are not part of it, however the text was cut).
		for !r.scan.started && r.argSent < len(s) && strings.IndexByte(" \t\r\n", s[r.argSent]) >= 0 {
			r.argSent++
		}
		end := r.argSent
		for end < len(s) && !r.scan.done {
			if r.scan.step(s[end]) {
				end++
			}
		}
		r.argDone = r.scan.done
		if end > r.argSent {
			frag := s[r.argSent:end]
			if r.argDone {
				frag = strings.TrimRight(frag, " \t\r\n")
			}
			deltas = append(deltas, toolCallDelta{Index: len(r.calls) - 1, Function: toolFunctionDelta{Arguments: frag}})
			r.calls[len(r.calls)-1].Arguments += frag
			r.argSent = end
		}
	}
	if r.ts.format == toolFormatJSON {
		// The call runs to the end of the reply, or to a ';' and the next
		// call.
		if r.argDone && r.ts.single {
			r.state, r.buf = readDone, ""
			return deltas, "", false
		}
		if r.argDone {
			if i := strings.IndexByte(s[r.argSent:], ';'); i >= 0 {
				r.startRead(s[r.argSent+i+1:])
				return deltas, "", true
			}
		}
		return deltas, "", false
	}
	i := strings.Index(s, callClose)
	if i < 0 {
		return deltas, "", false
	}
	rest := s[i+len(callClose):]
	r.state = readContent
	r.buf = rest
	if r.header {
		r.endCall()
		return deltas, "", true
	}
	// Not streamed: the whole block, if it is a call, else text.
	if c, ok := parseCallJSON(s[:i], r.ts.names); ok {
		deltas = append(deltas, r.startCall(c.Name), toolCallDelta{Index: len(r.calls) - 1, Function: toolFunctionDelta{Arguments: c.Arguments}})
		r.calls[len(r.calls)-1].Arguments = c.Arguments
		r.endCall()
		return deltas, "", true
	}
	return deltas, callOpen + s[:i+len(callClose)], true
}

// endCall ends a call: with parallel_tool_calls false, reading stops.
func (r *toolReader) endCall() {
	if r.ts.single {
		r.state, r.buf = readDone, ""
	}
}

// finish ends the reply: it returns the text held back and the last
// call's deltas.
func (r *toolReader) finish() (string, []toolCallDelta) {
	text, deltas := r.finishRaw()
	var content strings.Builder
	r.emit(&content, text)
	r.blank = ""
	return content.String(), deltas
}

func (r *toolReader) finishRaw() (string, []toolCallDelta) {
	s := r.buf
	r.buf = ""
	switch r.state {
	case readDone:
		return "", nil
	case readContent, readText:
		return s, nil // text, or (JSON format) only blanks
	}
	if r.header {
		return "", nil // a call cut short (by max_tokens) stays a call
	}
	if r.ts.format == toolFormatJSON {
		// One or more call objects, separated by ';'.
		var calls []toolCall
		for _, part := range strings.Split(strings.TrimSpace(s), ";") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			c, ok := parseCallJSON(part, r.ts.names)
			if !ok {
				return s, nil
			}
			calls = append(calls, c)
		}
		if r.ts.single && len(calls) > 1 {
			calls = calls[:1]
		}
		var deltas []toolCallDelta
		for _, c := range calls {
			deltas = append(deltas, r.startCall(c.Name), toolCallDelta{Index: len(r.calls) - 1, Function: toolFunctionDelta{Arguments: c.Arguments}})
			r.calls[len(r.calls)-1].Arguments = c.Arguments
		}
		return "", deltas
	}
	// An unclosed <tool_call>: a call if what follows is one.
	if c, ok := parseCallJSON(s, r.ts.names); ok {
		d := r.startCall(c.Name)
		r.calls[len(r.calls)-1].Arguments = c.Arguments
		return "", []toolCallDelta{d, {Index: len(r.calls) - 1, Function: toolFunctionDelta{Arguments: c.Arguments}}}
	}
	if r.ts.constraint != nil {
		return s, nil // the prompt's <tool_call> is not part of the reply
	}
	return callOpen + s, nil
}

// partialSuffix is the length of the longest suffix of s that is a proper
// prefix of marker (text that may yet become the marker).
func partialSuffix(s, marker string) int {
	for n := min(len(s), len(marker)-1); n > 0; n-- {
		if strings.HasSuffix(s, marker[:n]) {
			return n
		}
	}
	return 0
}

// jsonScan follows a JSON value byte by byte to tell where it ends.
type jsonScan struct {
	started, inString, escape, done bool
	depth                           int
}

// step reads the next byte and reports whether it belongs to the value
// (a byte that ends a bare number or literal does not; then done is set).
func (j *jsonScan) step(c byte) bool {
	if j.done {
		return false
	}
	if j.inString {
		switch {
		case j.escape:
			j.escape = false
		case c == '\\':
			j.escape = true
		case c == '"':
			j.inString = false
			if j.depth == 0 {
				j.done = true
			}
		}
		return true
	}
	switch c {
	case ' ', '\t', '\r', '\n', ',', '}', ']':
		if j.depth == 0 {
			if j.started || c == ',' || c == '}' || c == ']' {
				j.done = true
				return false
			}
			return true // blanks before the value
		}
		if c == '}' || c == ']' {
			j.depth--
			if j.depth == 0 {
				j.done = true
			}
		}
	case '{', '[':
		j.started = true
		j.depth++
	case '"':
		j.started = true
		j.inString = true
	default:
		j.started = true
	}
	return true
}

// inCall is one entry of an assistant message's tool_calls.
type inCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// messageTools adds a message's tool fields for the template: an
// assistant's tool_calls (arguments decoded from their JSON text into an
// object, as transformers' templates expect) and a tool message's
// tool_call_id.
func messageTools(msg *chattemplate.Message, m chatMessage, param string) *apiError {
	if m.ToolCallID != "" && m.Role != "tool" {
		return badRequest(param+".tool_call_id", "invalid_value", "tool_call_id belongs on messages of role \"tool\", not %q", m.Role)
	}
	if m.Role == "tool" {
		if m.ToolCallID == "" {
			return badRequest(param+".tool_call_id", "missing_required_parameter", "a message of role \"tool\" needs the tool_call_id of the call it answers")
		}
		msg.Fields = map[string]any{"tool_call_id": m.ToolCallID}
	}
	tc := bytes.TrimSpace(m.ToolCalls)
	if len(tc) == 0 || string(tc) == "null" {
		return nil
	}
	if m.Role != "assistant" {
		return badRequest(param+".tool_calls", "invalid_value", "tool_calls belong on assistant messages, not %q", m.Role)
	}
	var calls []inCall
	if err := json.Unmarshal(tc, &calls); err != nil {
		return badRequest(param+".tool_calls", "invalid_type", "tool_calls must be a list of {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}: %v", err)
	}
	if len(calls) == 0 {
		return nil
	}
	list := make([]any, len(calls))
	for i, c := range calls {
		cp := fmt.Sprintf("%s.tool_calls[%d]", param, i)
		if c.Type != "" && c.Type != "function" {
			return badRequest(cp+".type", "invalid_value", "tool call type %q: only \"function\" is supported", c.Type)
		}
		if c.Function.Name == "" {
			return badRequest(cp+".function.name", "missing_required_parameter", "the tool call has no function name")
		}
		args := bytes.TrimSpace(c.Function.Arguments)
		var str string
		if len(args) > 0 && args[0] == '"' {
			if err := json.Unmarshal(args, &str); err != nil {
				return badRequest(cp+".function.arguments", "invalid_value", "arguments: %v", err)
			}
			args = bytes.TrimSpace([]byte(str))
			if len(args) == 0 {
				args = []byte("{}")
			}
		}
		if len(args) == 0 || string(args) == "null" {
			args = []byte("{}")
		}
		if !json.Valid(args) {
			return badRequest(cp+".function.arguments", "invalid_value", "the arguments of the call to %q are not valid JSON", c.Function.Name)
		}
		typ := c.Type
		if typ == "" {
			typ = "function"
		}
		fn := fmt.Sprintf(`{"name":%s,"arguments":%s}`, mustJSON(c.Function.Name), args)
		list[i] = json.RawMessage(fmt.Sprintf(`{"id":%s,"type":%s,"function":%s}`, mustJSON(c.ID), mustJSON(typ), fn))
	}
	if msg.Fields == nil {
		msg.Fields = map[string]any{}
	}
	msg.Fields["tool_calls"] = list
	return nil
}
