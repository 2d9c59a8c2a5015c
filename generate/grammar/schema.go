// Package grammar constrains generation to JSON: any JSON object (OpenAI's
// response_format json_object) or a value matching a JSON schema (the
// subset OpenAI's strict structured outputs use). A Schema is recognised
// character by character by a pushdown automaton; over a model's
// vocabulary (a Vocab: every token's text, in a trie) it becomes a
// generate.Constraint that allows, at every step, exactly the tokens whose
// text keeps the output a prefix of a valid document, and the end of
// generation only when the document is complete.
//
// Supported schema keywords: type (one type or a list of them), properties,
// required, additionalProperties, items, enum, const, minLength, maxLength,
// minItems, maxItems, anyOf (the output matches one alternative) and local
// $ref (#/$defs/..., #/definitions/..., recursive schemas included);
// annotations (title, description, default, examples, $schema,
// $id, $comment) are ignored. Any other keyword is an error naming
// it. Objects with properties are generated closed (no other keys), which
// satisfies the schema whatever additionalProperties says. Strings are
// generated without escapes other than \" \\ \/ \b \f \n \r \t and \uXXXX,
// and numbers in JSON's syntax (at most 18 digits in each part), so that
// every output parses.
package grammar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Kinds of schema nodes.
const (
	kindAny     = iota // any JSON value
	kindObject         // an object (closed when it has properties)
	kindArray          // an array
	kindString         // a string
	kindNumber         // a number
	kindInteger        // an integer
	kindBool           // true or false
	kindNull           // null
	kindLiteral        // one of a set of literal JSON texts (enum, const)
	kindUnion          // one of several types, told apart by their first character
)

// node is a compiled schema.
type node struct {
	kind int
	// object
	props    []*node  // by property index
	keys     []string // JSON-encoded property names, sorted
	keyProp  []int    // property index of keys[i]
	required uint64   // bit i: property i is required
	free     bool     // no properties: any keys, values of any type
	// array
	items              *node
	minItems, maxItems int // maxItems < 0: no limit
	// string
	minLen, maxLen int // maxLen < 0: no limit
	// literal: JSON texts, sorted
	lits []string
	// union: the alternatives
	alts []*node
}

// Schema is a compiled JSON schema (or the JSON-object grammar).
type Schema struct {
	root *node
}

// maxProps is the most properties an object schema may have.
const maxProps = 64

// JSONObject returns the grammar of response_format json_object: any JSON
// object.
func JSONObject() *Schema {
	return &Schema{root: &node{kind: kindObject, free: true, maxItems: -1, maxLen: -1}}
}

// JSONValue returns the grammar of any JSON value.
func JSONValue() *Schema {
	return &Schema{root: anyNode}
}

var anyNode = &node{kind: kindAny, maxItems: -1, maxLen: -1}

// ignored lists the annotation keywords that do not constrain values.
var ignored = map[string]bool{"title": true, "description": true, "default": true, "examples": true, "$schema": true, "$id": true, "$comment": true}

// Compile compiles a JSON schema (a JSON object).
func Compile(schema []byte) (*Schema, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(schema))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	root, _ := v.(map[string]any)
	n, err := (&compiler{root: root}).compile(v, "#", 0)
	if err != nil {
		return nil, err
	}
	return &Schema{root: n}, nil
}

const maxSchemaDepth = 32

// compiler holds the schema's root, for $ref.
type compiler struct {
	root map[string]any
	refs map[string]*node // compiled $refs
}

func (cp *compiler) compile(v any, path string, depth int) (*node, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("json schema: %s: nested more than %d levels", path, maxSchemaDepth)
	}
	if b, ok := v.(bool); ok {
		if b {
			return anyNode, nil
		}
		return nil, fmt.Errorf("json schema: %s: the schema false allows nothing", path)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("json schema: %s: a schema must be an object", path)
	}
	known := map[string]bool{"type": true, "properties": true, "required": true, "additionalProperties": true, "items": true,
		"enum": true, "const": true, "minLength": true, "maxLength": true, "minItems": true, "maxItems": true,
		"anyOf": true, "$ref": true, "$defs": true, "definitions": true}
	var bad []string
	for k := range m {
		if !known[k] && !ignored[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("json schema: %s: unsupported keyword %s (supported: type, properties, required, additionalProperties, items, enum, const, minLength, maxLength, minItems, maxItems)", path, strings.Join(bad, ", "))
	}
	if r, ok := m["$ref"]; ok {
		if len(m) > 1 && !onlyAnnotations(m, "$ref", "$defs", "definitions") {
			return nil, fmt.Errorf("json schema: %s: $ref beside other keywords is not supported", path)
		}
		ref, _ := r.(string)
		if n, ok := cp.refs[ref]; ok {
			return n, nil // compiled or being compiled: a recursive schema is a cycle of nodes
		}
		target, err := cp.resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("json schema: %s/$ref: %v", path, err)
		}
		ph := &node{}
		if cp.refs == nil {
			cp.refs = map[string]*node{}
		}
		cp.refs[ref] = ph
		n, err := cp.compile(target, ref, depth+1)
		if err != nil {
			return nil, err
		}
		*ph = *n
		return ph, nil
	}
	if a, ok := m["anyOf"]; ok {
		// One alternative is generated: the first that can start with the
		// next character, so the output always matches one of them.
		list, ok := a.([]any)
		if !ok || len(list) == 0 {
			return nil, fmt.Errorf("json schema: %s/anyOf: must be a non-empty list", path)
		}
		if !onlyAnnotations(m, "anyOf", "$defs", "definitions") {
			return nil, fmt.Errorf("json schema: %s: anyOf beside other keywords is not supported", path)
		}
		u := &node{kind: kindUnion}
		for i, x := range list {
			c, err := cp.compile(x, fmt.Sprintf("%s/anyOf/%d", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			u.alts = append(u.alts, c)
		}
		if len(u.alts) == 1 {
			return u.alts[0], nil
		}
		return u, nil
	}
	if e, ok := m["enum"]; ok {
		list, ok := e.([]any)
		if !ok || len(list) == 0 {
			return nil, fmt.Errorf("json schema: %s: enum must be a non-empty list", path)
		}
		return literal(list, path+"/enum")
	}
	if c, ok := m["const"]; ok {
		return literal([]any{c}, path+"/const")
	}
	var types []string
	switch t := m["type"].(type) {
	case nil:
		if _, ok := m["properties"]; ok {
			types = []string{"object"}
		} else if _, ok := m["items"]; ok {
			types = []string{"array"}
		} else {
			return anyNode, nil
		}
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("json schema: %s/type: a list of type names", path)
			}
			types = append(types, s)
		}
	default:
		return nil, fmt.Errorf("json schema: %s/type: a type name or a list of them", path)
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("json schema: %s/type: empty", path)
	}
	var alts []*node
	seen := map[int]bool{}
	for _, t := range types {
		n := &node{maxItems: -1, maxLen: -1}
		switch t {
		case "object":
			n.kind = kindObject
			if err := cp.compileObject(n, m, path, depth); err != nil {
				return nil, err
			}
		case "array":
			n.kind = kindArray
			n.items = anyNode
			if it, ok := m["items"]; ok {
				var err error
				if n.items, err = cp.compile(it, path+"/items", depth+1); err != nil {
					return nil, err
				}
			}
			var err error
			if n.minItems, err = count(m, "minItems", 0, path); err != nil {
				return nil, err
			}
			if n.maxItems, err = count(m, "maxItems", -1, path); err != nil {
				return nil, err
			}
			if n.maxItems >= 0 && n.maxItems < n.minItems {
				return nil, fmt.Errorf("json schema: %s: maxItems below minItems", path)
			}
		case "string":
			n.kind = kindString
			var err error
			if n.minLen, err = count(m, "minLength", 0, path); err != nil {
				return nil, err
			}
			if n.maxLen, err = count(m, "maxLength", -1, path); err != nil {
				return nil, err
			}
			if n.maxLen >= 0 && n.maxLen < n.minLen {
				return nil, fmt.Errorf("json schema: %s: maxLength below minLength", path)
			}
		case "number":
			n.kind = kindNumber
		case "integer":
			n.kind = kindInteger
		case "boolean":
			n.kind = kindBool
		case "null":
			n.kind = kindNull
		default:
			return nil, fmt.Errorf("json schema: %s/type: unknown type %q", path, t)
		}
		if seen[n.kind] {
			continue
		}
		seen[n.kind] = true
		alts = append(alts, n)
	}
	if seen[kindNumber] && seen[kindInteger] {
		// Every integer is a number: keep the number.
		alts = slices.DeleteFunc(alts, func(n *node) bool { return n.kind == kindInteger })
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return &node{kind: kindUnion, alts: alts}, nil
}

// count reads a non-negative integer keyword (def when absent).
func count(m map[string]any, key string, def int, path string) (int, error) {
	v, ok := m[key]
	if !ok {
		return def, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("json schema: %s/%s: not a number", path, key)
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<30 {
		return 0, fmt.Errorf("json schema: %s/%s: %s is not a non-negative integer", path, key, n)
	}
	return int(i), nil
}

func (cp *compiler) compileObject(n *node, m map[string]any, path string, depth int) error {
	props, _ := m["properties"].(map[string]any)
	if p, ok := m["properties"]; ok && props == nil {
		return fmt.Errorf("json schema: %s/properties: must be an object, not %v", path, p)
	}
	if len(props) == 0 {
		n.free = true
		if ap, ok := m["additionalProperties"]; ok {
			if b, isBool := ap.(bool); isBool && !b {
				n.free = false // {} is the only instance: an object without keys
				return nil
			}
			if _, isBool := ap.(bool); !isBool {
				return fmt.Errorf("json schema: %s/additionalProperties: only true or false are supported", path)
			}
		}
		if r, ok := m["required"].([]any); ok && len(r) > 0 {
			return fmt.Errorf("json schema: %s/required: names properties that the schema does not define", path)
		}
		return nil
	}
	if len(props) > maxProps {
		return fmt.Errorf("json schema: %s/properties: %d properties, at most %d", path, len(props), maxProps)
	}
	if ap, ok := m["additionalProperties"]; ok {
		if _, isBool := ap.(bool); !isBool {
			return fmt.Errorf("json schema: %s/additionalProperties: only true or false are supported", path)
		}
	}
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	index := map[string]int{}
	for i, k := range names {
		c, err := cp.compile(props[k], path+"/properties/"+k, depth+1)
		if err != nil {
			return err
		}
		n.props = append(n.props, c)
		index[k] = i
		enc, _ := json.Marshal(k)
		n.keys = append(n.keys, string(enc))
		n.keyProp = append(n.keyProp, i)
	}
	// Sort the encoded keys, keeping their property indexes.
	order := make([]int, len(n.keys))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return n.keys[order[a]] < n.keys[order[b]] })
	keys, kp := make([]string, len(order)), make([]int, len(order))
	for i, o := range order {
		keys[i], kp[i] = n.keys[o], n.keyProp[o]
	}
	n.keys, n.keyProp = keys, kp
	if r, ok := m["required"]; ok {
		list, ok := r.([]any)
		if !ok {
			return fmt.Errorf("json schema: %s/required: must be a list of property names", path)
		}
		for _, x := range list {
			s, _ := x.(string)
			i, ok := index[s]
			if !ok {
				return fmt.Errorf("json schema: %s/required: %v is not a property", path, x)
			}
			n.required |= 1 << uint(i)
		}
	}
	return nil
}

// literal compiles a set of JSON values to their compact texts.
func literal(list []any, path string) (*node, error) {
	n := &node{kind: kindLiteral}
	for _, v := range list {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("json schema: %s: %w", path, err)
		}
		n.lits = append(n.lits, string(b))
	}
	sort.Strings(n.lits)
	n.lits = slices.Compact(n.lits)
	return n, nil
}

// onlyAnnotations reports whether m holds nothing but the keywords keep and
// annotations.
func onlyAnnotations(m map[string]any, keep ...string) bool {
	for k := range m {
		if !ignored[k] && !slices.Contains(keep, k) {
			return false
		}
	}
	return true
}

// resolve finds a local $ref: "#", "#/$defs/Name" or "#/definitions/Name"
// (JSON pointer, ~0 and ~1 escapes).
func (cp *compiler) resolve(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#") {
		return nil, fmt.Errorf("%q: only references inside the schema (#/...) are supported", ref)
	}
	var cur any = cp.root
	if ref == "#" {
		return cur, nil
	}
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("%q is not a JSON pointer", ref)
	}
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q does not lead to a schema", ref)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("%q: no %q", ref, part)
		}
	}
	return cur, nil
}
