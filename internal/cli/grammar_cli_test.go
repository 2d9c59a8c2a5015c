package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestGenerateGrammar: --json-schema and --grammar constrain generate's
// output (sampled at temperature 1) to documents that parse and match.
func TestGenerateGrammar(t *testing.T) {
	dir := t.TempDir()
	schema := filepath.Join(dir, "npc.json")
	os.WriteFile(schema, []byte(`{"type": "object", "properties": {"mood": {"enum": ["calm", "angry"]}, "hp": {"type": "integer"},
		"line": {"type": "string", "maxLength": 16}}, "required": ["mood", "hp", "line"], "additionalProperties": false}`), 0o644)
	complete := 0
	for seed := 0; seed < 8; seed++ {
		code, out, errs := run(t, "", "generate", "--prompt", "Once upon a time", "--temperature", "1", "--seed", strconv.Itoa(seed),
			"--max-tokens", "300", "--json-schema", schema, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var res struct {
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if res.FinishReason != "stop" {
			continue
		}
		complete++
		var v struct {
			Mood string `json:"mood"`
			HP   *int   `json:"hp"`
			Line *string
		}
		dec := json.NewDecoder(strings.NewReader(res.Text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil || (v.Mood != "calm" && v.Mood != "angry") || v.HP == nil || v.Line == nil || len([]rune(*v.Line)) > 16 {
			t.Errorf("seed %d: %q does not match the schema (%v)", seed, res.Text, err)
		}
	}
	if complete < 6 {
		t.Errorf("%d of 8 documents complete", complete)
	}
	code, out, errs := run(t, "", "generate", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "200", "--grammar", "json-object")
	if code != 0 || !strings.HasPrefix(out, "{") {
		t.Errorf("--grammar json-object: exit %d, %q %s", code, out, errs)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--grammar", "xml"}, "xml"},
		{[]string{"--grammar", "json", "--json-schema", schema}, "not both"},
		{[]string{"--json-schema", filepath.Join(dir, "missing.json")}, "missing.json"},
	} {
		code, _, errs := run(t, "", append([]string{"generate", "--prompt", "x"}, bad.args...)...)
		if code == 0 || !strings.Contains(errs, bad.want) {
			t.Errorf("%v: exit %d, %q; want an error naming %s", bad.args, code, errs, bad.want)
		}
	}
	os.WriteFile(schema, []byte(`{"type": "string", "format": "email"}`), 0o644)
	if code, _, errs := run(t, "", "generate", "--prompt", "x", "--json-schema", schema); code == 0 || !strings.Contains(errs, "format") {
		t.Errorf("unsupported keyword: exit %d, %q", code, errs)
	}
}
