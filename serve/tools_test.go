package serve

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
)

// toolTemplate is a real chat template that renders tools, with the text
// that ends an assistant turn in it.
type toolTemplate struct {
	name, source, endTurn, bos string
	format                     int
	argKey                     string
	multi                      bool // renders several calls in one turn
}

func toolTemplates(t *testing.T) []toolTemplate {
	t.Helper()
	var out []toolTemplate
	for _, name := range []string{"qwen2.5", "qwen3"} {
		c, err := chattemplate.LoadConfig(filepath.Join("..", "testdata", "tokenizers", name, "tokenizer_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, toolTemplate{name: name, source: c.ChatTemplates["default"], endTurn: "<|im_end|>\n", format: toolFormatHermes, argKey: "arguments", multi: true})
	}
	src, err := os.ReadFile(filepath.Join("testdata", "llama3.2-tools.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, toolTemplate{name: "llama3.2", source: string(src), endTurn: "<|eot_id|>", format: toolFormatJSON, argKey: "parameters", bos: "<|begin_of_text|>"})
	for _, tt := range out {
		if tt.source == "" {
			t.Fatalf("%s: no chat template", tt.name)
		}
	}
	return out
}

var weatherTools = []json.RawMessage{
	json.RawMessage(`{"type":"function","function":{"name":"get_weather","description":"Current weather in a city.","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}}`),
	json.RawMessage(`{"type":"function","function":{"name":"set_quest_flag","description":"Set a quest flag.","parameters":{"type":"object","properties":{"flag":{"type":"string"},"value":{"type":"boolean"}},"required":["flag","value"]}}}`),
}

// toolConversation is an OpenAI conversation where the assistant calls
// tools (calls of the turn at index 2) and gets their results.
func toolConversation(multi bool) []chatMessage {
	calls := `[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}`
	if multi {
		calls += `,{"id":"call_2","type":"function","function":{"name":"set_quest_flag","arguments":"{\"flag\": \"asked_weather\", \"value\": true}"}}`
	}
	calls += `]`
	msgs := []chatMessage{
		{Role: "system", Content: json.RawMessage(`"You are Mira, a ship's navigator."`)},
		{Role: "user", Content: json.RawMessage(`"What is the weather in Paris?"`)},
		{Role: "assistant", Content: json.RawMessage(`null`), ToolCalls: json.RawMessage(calls)},
		{Role: "tool", ToolCallID: "call_1", Content: json.RawMessage(`"{\"temperature\": 21, \"sky\": \"clear\"}"`)},
	}
	if multi {
		msgs = append(msgs, chatMessage{Role: "tool", ToolCallID: "call_2", Content: json.RawMessage(`"ok"`)})
	}
	return append(msgs, chatMessage{Role: "assistant", Content: json.RawMessage(`"Clear skies and 21 degrees in Paris."`)})
}

func templateMessages(t *testing.T, in []chatMessage) []chattemplate.Message {
	t.Helper()
	var out []chattemplate.Message
	for i, m := range in {
		text, e := messageText(m.Content, "content")
		if e != nil {
			t.Fatal(e)
		}
		msg := chattemplate.Message{Role: m.Role, Content: text}
		if e := messageTools(&msg, m, "messages"); e != nil {
			t.Fatalf("message %d: %v", i, e)
		}
		out = append(out, msg)
	}
	return out
}

func toolVars(tt toolTemplate) map[string]any {
	list := make([]any, len(weatherTools))
	for i, r := range weatherTools {
		list[i] = r
	}
	return map[string]any{"tools": list, "date_string": "07 Dec 2026"}
}

// readAll runs a reply through a toolReader, whole or one byte at a time,
// and returns the content, the calls and the deltas.
func readAll(ts *toolSetup, reply string, byByte bool) (string, []toolCall, []toolCallDelta) {
	r := newToolReader(ts)
	var content strings.Builder
	var deltas []toolCallDelta
	pieces := []string{reply}
	if byByte {
		pieces = strings.Split(reply, "")
	}
	for _, p := range pieces {
		c, d := r.feed(p)
		content.WriteString(c)
		deltas = append(deltas, d...)
	}
	c, d := r.finish()
	content.WriteString(c)
	return content.String(), r.calls, append(deltas, d...)
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// TestToolCallsFromTemplateRenderings renders an assistant turn with tool
// calls through real chat templates (Qwen2.5, Qwen3: <tool_call> blocks;
// Llama 3.2: a bare JSON object) and reads it back as the model's reply:
// the calls, names and arguments, come back as they went in, whole and
// streamed a byte at a time, and the streamed deltas add up to them.
func TestToolCallsFromTemplateRenderings(t *testing.T) {
	for _, tt := range toolTemplates(t) {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := chattemplate.NewNamed(tt.name, tt.source)
			if err != nil {
				t.Fatal(err)
			}
			conv := toolConversation(tt.multi)
			msgs := templateMessages(t, conv)
			opt := chattemplate.Options{BOSToken: tt.bos, Vars: toolVars(tt)}
			opt.AddGenerationPrompt = true
			head, err := tpl.Render(msgs[:2], opt)
			if err != nil {
				t.Fatal(err)
			}
			opt.AddGenerationPrompt = false
			full, err := tpl.Render(msgs[:3], opt)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(full, head) || !strings.HasSuffix(full, tt.endTurn) {
				t.Fatalf("the rendering with the call does not extend the prompt:\nhead %q\nfull %q", head, full)
			}
			reply := strings.TrimSuffix(full[len(head):], tt.endTurn)
			t.Logf("reply as the template writes it: %q", reply)
			ts := &toolSetup{names: map[string]bool{"get_weather": true, "set_quest_flag": true}, format: tt.format, argKey: tt.argKey}
			var want []inCall
			json.Unmarshal(conv[2].ToolCalls, &want)
			for _, byByte := range []bool{false, true} {
				content, calls, deltas := readAll(ts, reply, byByte)
				if strings.TrimSpace(strings.Replace(content, "<think>\n\n</think>", "", 1)) != "" {
					t.Errorf("byByte %v: content %q beside the calls", byByte, content)
				}
				if len(calls) != len(want) {
					t.Fatalf("byByte %v: %d calls, want %d: %+v", byByte, len(calls), len(want), calls)
				}
				for i, c := range calls {
					var args string
					json.Unmarshal(want[i].Function.Arguments, &args)
					if c.Name != want[i].Function.Name || !jsonEqual(c.Arguments, args) || !strings.HasPrefix(c.ID, "call_") {
						t.Errorf("byByte %v: call %d = %+v, want %s(%s)", byByte, i, c, want[i].Function.Name, args)
					}
				}
				// The deltas: a header with id, type and name, then arguments.
				got := map[int]*toolCall{}
				for _, d := range deltas {
					if d.ID != "" {
						if got[d.Index] != nil || d.Type != "function" || d.Function.Name == "" || d.Function.Arguments != "" {
							t.Errorf("byByte %v: bad header delta %+v", byByte, d)
						}
						got[d.Index] = &toolCall{ID: d.ID, Name: d.Function.Name}
						continue
					}
					if got[d.Index] == nil || d.Function.Name != "" {
						t.Fatalf("byByte %v: arguments delta %+v before its header", byByte, d)
					}
					got[d.Index].Arguments += d.Function.Arguments
				}
				for i, c := range calls {
					if g := got[i]; g == nil || *g != c {
						t.Errorf("byByte %v: deltas add up to %+v, want %+v", byByte, g, c)
					}
				}
				if byByte && len(deltas) <= 2*len(calls) {
					t.Errorf("streamed a byte at a time, the arguments came in %d deltas for %d calls: not streamed as written", len(deltas), len(calls))
				}
			}
		})
	}
}

// TestToolReaderText: text that only looks like a call stays text.
func TestToolReaderText(t *testing.T) {
	hermes := &toolSetup{names: map[string]bool{"get_weather": true}, format: toolFormatHermes, argKey: "arguments"}
	jsonFmt := &toolSetup{names: map[string]bool{"get_weather": true}, format: toolFormatJSON, argKey: "parameters"}
	cases := []struct {
		ts          *toolSetup
		reply, text string
		calls       int
	}{
		{hermes, "Use <tool to fix it.", "Use <tool to fix it.", 0},
		{hermes, "Ends with <tool_", "Ends with <tool_", 0},
		{hermes, "x <tool_call>\n{\"name\": \"unknown\", \"arguments\": {}}\n</tool_call> y", "x <tool_call>\n{\"name\": \"unknown\", \"arguments\": {}}\n</tool_call> y", 0},
		{hermes, "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>", "Let me check.\n", 1},
		{hermes, "<tool_call>\n{\"arguments\": {\"city\": \"Oslo\"}, \"name\": \"get_weather\"}\n</tool_call>", "", 1},
		{hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}", "", 1}, // unclosed at the end
		{hermes, "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Os", "", 1},         // cut by max_tokens
		{jsonFmt, "  {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", "", 1},
		{jsonFmt, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}", "", 2},
		{jsonFmt, "{not json at all", "{not json at all", 0},
		{jsonFmt, "Hello {there}", "Hello {there}", 0},
		{jsonFmt, "   ", "   ", 0},
	}
	single := &toolSetup{names: map[string]bool{"get_weather": true}, format: toolFormatHermes, argKey: "arguments", single: true}
	singleJSON := &toolSetup{names: map[string]bool{"get_weather": true}, format: toolFormatJSON, argKey: "parameters", single: true}
	two := "A\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>"
	cases = append(cases,
		struct {
			ts          *toolSetup
			reply, text string
			calls       int
		}{hermes, two, "A\n", 2},
		struct {
			ts          *toolSetup
			reply, text string
			calls       int
		}{single, two, "A\n", 1}, // parallel_tool_calls false
		struct {
			ts          *toolSetup
			reply, text string
			calls       int
		}{singleJSON, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; {\"name\": \"get_weather\", \"parameters\": {}}", "", 1})
	for i, c := range cases {
		for _, byByte := range []bool{false, true} {
			text, calls, _ := readAll(c.ts, c.reply, byByte)
			if text != c.text || len(calls) != c.calls {
				t.Errorf("case %d byByte %v: text %q, %d calls %+v; want %q, %d", i, byByte, text, len(calls), calls, c.text, c.calls)
			}
		}
	}
}

// TestToolTemplatesAgainstJinjaJS renders the tool conversations with
// @huggingface/jinja, the template engine of transformers.js, and compares
// with masque's renderings. It skips where node or the package is missing
// (.ci/install-transformers-js.sh installs it).
func TestToolTemplatesAgainstJinjaJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	dir := os.Getenv("MASQUE_TRANSFORMERS_JS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Skip("no cache folder for transformers.js")
		}
		dir = filepath.Join(cache, "masque", "transformers-js")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@huggingface", "jinja", "package.json")); err != nil {
		t.Skipf("@huggingface/jinja (with transformers.js) is not installed in %s (run .ci/install-transformers-js.sh)", dir)
	}
	const script = `
import { Template } from '@huggingface/jinja';
import fs from 'fs';
const cases = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
const out = cases.map(c => new Template(c.source).render(c.vars));
process.stdout.write(JSON.stringify(out));
`
	type jsCase struct {
		Source string         `json:"source"`
		Vars   map[string]any `json:"vars"`
	}
	var cases []jsCase
	var want []string
	for _, tt := range toolTemplates(t) {
		tpl, err := chattemplate.NewNamed(tt.name, tt.source)
		if err != nil {
			t.Fatal(err)
		}
		conv := toolConversation(tt.multi)
		msgs := templateMessages(t, conv)
		for _, n := range []int{2, len(msgs) - 1, len(msgs)} {
			opt := chattemplate.Options{BOSToken: tt.bos, Vars: toolVars(tt), AddGenerationPrompt: n != len(msgs), Now: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
			s, err := tpl.Render(msgs[:n], opt)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			want = append(want, s)
			// The same messages as JSON, as a client sends them after
			// transformers' conversion (arguments as objects).
			var jm []any
			for _, m := range msgs[:n] {
				d := map[string]any{"role": m.Role, "content": m.Content}
				for k, v := range m.Fields {
					b, _ := json.Marshal(v) // keeps the order of raw JSON
					d[k] = json.RawMessage(b)
				}
				jm = append(jm, d)
			}
			var tools []any
			for _, r := range weatherTools {
				tools = append(tools, r)
			}
			vars := map[string]any{"messages": jm, "tools": tools, "add_generation_prompt": n != len(msgs), "date_string": "07 Dec 2026"}
			if tt.bos != "" {
				vars["bos_token"] = tt.bos
			}
			cases = append(cases, jsCase{Source: tt.source, Vars: vars})
		}
	}
	in := filepath.Join(t.TempDir(), "cases.json")
	data, _ := json.Marshal(cases)
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--input-type=module", "-e", script, in)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outData, err := cmd.Output()
	if err != nil {
		t.Fatalf("@huggingface/jinja: %v\n%s", err, stderr.String())
	}
	var got []string
	if err := json.Unmarshal(outData, &got); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("case %d: masque renders\n%q\n@huggingface/jinja renders\n%q", i, want[i], got[i])
		}
	}
}

// TestToolPromptAgainstTransformersJS: transformers.js's
// apply_chat_template, given the same tools and conversation (calls and
// results included), renders and tokenizes Qwen2.5's prompt as masque
// does. It skips where node or transformers.js is missing
// (.ci/install-transformers-js.sh installs it).
func TestToolPromptAgainstTransformersJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	modDir := os.Getenv("MASQUE_TRANSFORMERS_JS")
	if modDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Skip("no cache folder for transformers.js")
		}
		modDir = filepath.Join(cache, "masque", "transformers-js")
	}
	if _, err := os.Stat(filepath.Join(modDir, "node_modules", "@huggingface", "transformers", "package.json")); err != nil {
		t.Skipf("@huggingface/transformers is not installed in %s (run .ci/install-transformers-js.sh)", modDir)
	}
	dir := tinyQwen(t)
	ck, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	const script = `
import { AutoTokenizer, env } from '@huggingface/transformers';
import fs from 'fs';
import path from 'path';
const [dir, input] = process.argv.slice(1);
env.allowRemoteModels = false;
env.localModelPath = path.dirname(dir) + '/';
const tok = await AutoTokenizer.from_pretrained(path.basename(dir));
const cases = JSON.parse(fs.readFileSync(input, 'utf8'));
const out = cases.map(c => {
  const opt = { tools: c.tools, add_generation_prompt: c.gen, return_tensor: false };
  const text = tok.apply_chat_template(c.messages, { ...opt, tokenize: false });
  const ids = tok.apply_chat_template(c.messages, { ...opt, tokenize: true });
  return { text, ids: Array.from(ids.input_ids ?? ids) };
});
process.stdout.write(JSON.stringify(out));
`
	var tools []any
	for _, r := range weatherTools {
		tools = append(tools, r)
	}
	type jsCase struct {
		Messages []any `json:"messages"`
		Tools    []any `json:"tools"`
		Gen      bool  `json:"gen"`
	}
	var cases []jsCase
	type result struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	}
	var want []result
	conv := toolConversation(true)
	msgs := templateMessages(t, conv)
	for _, n := range []int{2, len(msgs) - 1, len(msgs)} {
		gen := n != len(msgs)
		vars := map[string]any{"tools": tools}
		text, err := ck.RenderChat(msgs[:n], gen, vars)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := ck.EncodeChat(msgs[:n], gen, vars)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, result{text, ids})
		var jm []any
		for _, m := range msgs[:n] {
			d := map[string]any{"role": m.Role, "content": m.Content}
			for k, v := range m.Fields {
				b, _ := json.Marshal(v)
				d[k] = json.RawMessage(b)
			}
			jm = append(jm, d)
		}
		cases = append(cases, jsCase{Messages: jm, Tools: tools, Gen: gen})
	}
	in := filepath.Join(t.TempDir(), "cases.json")
	data, _ := json.Marshal(cases)
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--input-type=module", "-e", script, "--", dir, in)
	cmd.Dir = modDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outData, err := cmd.Output()
	if err != nil {
		t.Fatalf("transformers.js: %v\n%s", err, stderr.String())
	}
	var got []result
	if err := json.Unmarshal(outData, &got); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i].Text != want[i].Text {
			t.Errorf("case %d: masque renders\n%q\ntransformers.js renders\n%q", i, want[i].Text, got[i].Text)
		}
		if !reflect.DeepEqual(got[i].IDs, want[i].IDs) {
			t.Errorf("case %d: masque encodes %d ids, transformers.js %d; they differ", i, len(want[i].IDs), len(got[i].IDs))
		}
	}
	t.Logf("%d tool prompts agree with transformers.js (text and %d, %d, %d ids)", len(want), len(want[0].IDs), len(want[1].IDs), len(want[2].IDs))
}
