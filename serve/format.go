package serve

import (
	"bytes"
	"encoding/json"

	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/generate/grammar"
)

// outputFormat is a request's response_format other than plain text: a
// constraint that keeps the output valid JSON (of a schema).
type outputFormat struct {
	constraint generate.Constraint
}

// responseFormatRequest is the response_format field.
type responseFormatRequest struct {
	Type       string          `json:"type"`
	JSONSchema *jsonSchemaSpec `json:"json_schema"`
}

// jsonSchemaSpec is response_format.json_schema.
type jsonSchemaSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Strict      *bool           `json:"strict"`
}

// responseFormat reads response_format: absent or {"type": "text"} is plain
// text (nil); {"type": "json_object"} any JSON object; {"type":
// "json_schema", "json_schema": {"name", "schema", "strict"}} a value of
// the schema (the subset generate/grammar supports; other keywords are a
// 400 naming them). Either way the output is decoded under a constraint
// over the persona's vocabulary, so that it always parses; strict or not,
// the schema is enforced.
func (s *Server) responseFormat(p *loaded, raw json.RawMessage) (*outputFormat, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rf responseFormatRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		return nil, badRequest("response_format", "invalid_value", "response_format must be {\"type\": \"text\" | \"json_object\" | \"json_schema\", \"json_schema\": {...}}: %s", jsonErrText(err, "response_format"))
	}
	var sch *grammar.Schema
	switch rf.Type {
	case "text":
		return nil, nil
	case "json_object":
		sch = grammar.JSONObject()
	case "json_schema":
		if rf.JSONSchema == nil || len(bytes.TrimSpace(rf.JSONSchema.Schema)) == 0 {
			return nil, badRequest("response_format.json_schema.schema", "missing_required_parameter", "response_format json_schema needs json_schema.schema")
		}
		var err error
		if sch, err = grammar.Compile(rf.JSONSchema.Schema); err != nil {
			return nil, badRequest("response_format.json_schema.schema", "invalid_value", "%v", err)
		}
	default:
		return nil, badRequest("response_format.type", "invalid_value", "response_format type %q is not one of text, json_object, json_schema", rf.Type)
	}
	tt := p.base.tokenTexts()
	if tt.vocab == nil {
		return nil, badRequest("response_format", "unsupported_value", "this model has no tokenizer to constrain its output with")
	}
	return &outputFormat{constraint: sch.Constraint(tt.vocab)}, nil
}
