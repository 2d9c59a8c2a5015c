package grammar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/internal/builtin"
)

// TestSampledOutputValid samples a few hundred documents at temperature 1
// from the built-in stories260K model under the NPC schema and under
// json_object, and checks that every one parses and (for the schema)
// validates, by encoding/json and a validator written independently of
// the recogniser.
func TestSampledOutputValid(t *testing.T) {
	ck, err := checkpoint.Open(builtin.Stories, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok := generate.FromTokenizer(ck.Tokenizer)
	prime := ck.Tokenizer.Encode("a", false)
	texts, usable := TokenTexts(tok, ck.Model.Config.Vocab, prime[len(prime)-1], ck.Tokenizer.IsSpecial)
	v := NewVocab(texts, usable)
	tv, err := TokenizerVocab(ck.Tokenizer, ck.Model.Config.Vocab)
	if err != nil || !slices.EqualFunc(tv.text, v.text, bytes.Equal) {
		t.Fatalf("TokenizerVocab differs from TokenTexts after a plain letter (%v)", err)
	}
	npc, err := Compile([]byte(npcSchema))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(npcSchema), &schema); err != nil {
		t.Fatal(err)
	}
	prompt := ck.Tokenizer.Encode("Once upon a time, the data was", true)
	pyd, err := Compile([]byte(pydanticSchema))
	if err != nil {
		t.Fatal(err)
	}
	var pydMap map[string]any
	json.Unmarshal([]byte(pydanticSchema), &pydMap)
	runs := []struct {
		name   string
		s      *Schema
		schema map[string]any
		n      int
	}{
		{"schema", npc, schema, 200},
		{"pydantic anyOf and $ref", pyd, pydMap, 50},
		{"json_object", JSONObject(), nil, 30},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			stopped := 0
			for i := 0; i < r.n; i++ {
				o := generate.Options{Temperature: 1, Seed: uint64(i), MaxTokens: 400, Constraint: r.s.Constraint(v), SkipSpecial: true}
				res, err := generate.Generate(context.Background(), ck.Model, tok, prompt, o, nil)
				if err != nil {
					t.Fatalf("seed %d: %v", i, err)
				}
				if res.FinishReason != generate.FinishStop {
					// Cut by max_tokens: a prefix of a document.
					if !prefixOK(r.s, res.Text) {
						t.Errorf("seed %d: cut output %q is not a prefix of a document", i, res.Text)
					}
					continue
				}
				stopped++
				var doc any
				if err := json.Unmarshal([]byte(res.Text), &doc); err != nil {
					t.Errorf("seed %d: %q does not parse: %v", i, res.Text, err)
					continue
				}
				if r.schema != nil {
					if err := validate(doc, r.schema, "#"); err != nil {
						t.Errorf("seed %d: %q: %v", i, res.Text, err)
					}
				} else if _, ok := doc.(map[string]any); !ok {
					t.Errorf("seed %d: %q is not an object", i, res.Text)
				}
				if i < 3 {
					t.Logf("seed %d: %s", i, res.Text)
				}
			}
			t.Logf("%d of %d documents complete within 400 tokens", stopped, r.n)
			if r.schema != nil && stopped < r.n*9/10 {
				t.Errorf("only %d of %d documents complete", stopped, r.n)
			}
		})
	}
}

// pydanticSchema is what pydantic writes for an answer with an optional
// nested model and a union.
const pydanticSchema = `{"$defs": {"Item": {"properties": {"name": {"title": "Name", "type": "string", "maxLength": 10}}, "required": ["name"], "title": "Item", "type": "object", "additionalProperties": false}},
	"properties": {"item": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}]}, "n": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 5}]}},
	"required": ["item", "n"], "title": "Answer", "type": "object", "additionalProperties": false}`

// validate checks doc against the schema keywords the tests use, without
// the recogniser.
func validate(doc any, s map[string]any, path string) error {
	return validateIn(doc, s, path, s)
}

func validateIn(doc any, s map[string]any, path string, root map[string]any) error {
	if ref, ok := s["$ref"].(string); ok {
		name := ref[len("#/$defs/"):]
		return validateIn(doc, root["$defs"].(map[string]any)[name].(map[string]any), path, root)
	}
	if alts, ok := s["anyOf"].([]any); ok {
		var errs []error
		for _, a := range alts {
			err := validateIn(doc, a.(map[string]any), path, root)
			if err == nil {
				return nil
			}
			errs = append(errs, err)
		}
		return fmt.Errorf("%s: no alternative matches: %v", path, errs)
	}
	if e, ok := s["enum"].([]any); ok {
		for _, x := range e {
			if x == doc {
				return nil
			}
		}
		return fmt.Errorf("%s: %v not in %v", path, doc, e)
	}
	types := []any{s["type"]}
	if l, ok := s["type"].([]any); ok {
		types = l
	}
	var errs []error
	for _, ty := range types {
		err := validateType(doc, ty.(string), s, path, root)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%v", errs)
}

func validateType(doc any, ty string, s map[string]any, path string, root map[string]any) error {
	num := func(k string) int {
		if x, ok := s[k].(float64); ok {
			return int(x)
		}
		return -1
	}
	switch ty {
	case "object":
		m, ok := doc.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: not an object", path)
		}
		props, _ := s["properties"].(map[string]any)
		for k, x := range m {
			ps, ok := props[k].(map[string]any)
			if !ok {
				return fmt.Errorf("%s: unexpected key %q", path, k)
			}
			if err := validateIn(x, ps, path+"/"+k, root); err != nil {
				return err
			}
		}
		req, _ := s["required"].([]any)
		for _, k := range req {
			if _, ok := m[k.(string)]; !ok {
				return fmt.Errorf("%s: missing %q", path, k)
			}
		}
	case "array":
		a, ok := doc.([]any)
		if !ok {
			return fmt.Errorf("%s: not an array", path)
		}
		if mx := num("maxItems"); mx >= 0 && len(a) > mx {
			return fmt.Errorf("%s: %d items", path, len(a))
		}
		for i, x := range a {
			if err := validateIn(x, s["items"].(map[string]any), fmt.Sprintf("%s/%d", path, i), root); err != nil {
				return err
			}
		}
	case "string":
		str, ok := doc.(string)
		if !ok {
			return fmt.Errorf("%s: not a string", path)
		}
		if mx := num("maxLength"); mx >= 0 && len([]rune(str)) > mx {
			return fmt.Errorf("%s: %d characters", path, len([]rune(str)))
		}
	case "integer":
		f, ok := doc.(float64)
		if !ok || f != math.Trunc(f) {
			return fmt.Errorf("%s: not an integer", path)
		}
	case "number":
		if _, ok := doc.(float64); !ok {
			return fmt.Errorf("%s: not a number", path)
		}
	case "boolean":
		if _, ok := doc.(bool); !ok {
			return fmt.Errorf("%s: not a boolean", path)
		}
	case "null":
		if doc != nil {
			return fmt.Errorf("%s: not null", path)
		}
	default:
		return fmt.Errorf("%s: type %s", path, ty)
	}
	return nil
}
