package tokenizer

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
)

// componentLine is a line of golden_components.jsonl (made with the Hugging Face
// tokenizers Rust core; see testdata/tokenizers/README.md).
type componentLine struct {
	Kind               string          `json:"kind"`
	Name               string          `json:"name"`
	Config             json.RawMessage `json:"config"`
	Input              json.RawMessage `json:"input"`
	Output             json.RawMessage `json:"output"`
	AddSpecialTokens   bool            `json:"add_special_tokens"`
	IDs                []int           `json:"ids"`
	Tokens             []string        `json:"tokens"`
	Decoded            string          `json:"decoded"`
	DecodedSkipSpecial string          `json:"decoded_skip_special"`
}

func perrTest(format string, a ...any) error { return fmt.Errorf(format, a...) }

// decodeTokens runs token strings through a decoder chain.
func decodeTokens(specs []decoderSpec, toks []string) string {
	t := &Tokenizer{decoder: specs, noDecoder: specs == nil}
	d := t.NewStreamDecoder(false)
	s := ""
	for _, tok := range toks {
		s += d.addToken(tok)
	}
	return s + d.Flush()
}

func TestGoldenComponents(t *testing.T) {
	lines := readJSONL[componentLine](t, filepath.Join(testdata, "tokenizers", "golden_components.jsonl"))
	counts := map[string]int{}
	toks := map[string]*Tokenizer{}
	for i, c := range lines {
		counts[c.Kind]++
		where := fmt.Sprintf("line %d %s %s input %s", i+1, c.Kind, c.Config, c.Input)
		switch c.Kind {
		case "pre":
			var in string
			var want []string
			mustJSON(t, c.Input, &in)
			mustJSON(t, c.Output, &want)
			pre, err := parsePreTokenizer(c.Config, perrTest)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			got := []string{}
			for _, p := range materialize(pre([]piece{{s: in, first: true}})) {
				got = append(got, p.s)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:\n got  %q\n want %q", where, got, want)
			}
		case "norm":
			var in, want string
			mustJSON(t, c.Input, &in)
			mustJSON(t, c.Output, &want)
			n, err := parseNormalizer(c.Config, perrTest)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if got := n(in); got != want {
				t.Errorf("%s:\n got  %q\n want %q", where, got, want)
			}
		case "dec":
			var in []string
			var want string
			mustJSON(t, c.Input, &in)
			mustJSON(t, c.Output, &want)
			specs, err := parseDecoder(c.Config, perrTest)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if got := decodeTokens(specs, in); got != want {
				t.Errorf("%s:\n got  %q\n want %q", where, got, want)
			}
		case "tokenizer":
			tk, err := FromJSON(c.Config, nil)
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			toks[c.Name] = tk
		case "tok":
			var in string
			mustJSON(t, c.Input, &in)
			tk := toks[c.Name]
			where = fmt.Sprintf("line %d tokenizer %s input %q add=%v", i+1, c.Name, in, c.AddSpecialTokens)
			if got := tk.Encode(in, c.AddSpecialTokens); !equalIDs(got, c.IDs) {
				t.Errorf("%s: ids\n got  %v\n want %v", where, got, c.IDs)
			}
			if !c.AddSpecialTokens {
				if got := tk.Tokens(in); !reflect.DeepEqual(got, c.Tokens) {
					t.Errorf("%s: tokens\n got  %q\n want %q", where, got, c.Tokens)
				}
			}
			if got := tk.Decode(c.IDs, false); got != c.Decoded {
				t.Errorf("%s: decoded\n got  %q\n want %q", where, got, c.Decoded)
			}
			if got := tk.Decode(c.IDs, true); got != c.DecodedSkipSpecial {
				t.Errorf("%s: decoded skip\n got  %q\n want %q", where, got, c.DecodedSkipSpecial)
			}
		default:
			t.Fatalf("line %d: unknown kind %q", i+1, c.Kind)
		}
	}
	t.Logf("component goldens: %v", counts)
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}
