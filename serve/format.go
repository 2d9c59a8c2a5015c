package serve

import (
	"bytes"
	"encoding/json"

	"github.com/masque-ai/masque/generate"
)

// outputFormat is a request's response_format other than plain text.
type outputFormat struct {
	constraint generate.Constraint
}

// responseFormatRequest is the response_format field.
type responseFormatRequest struct {
	Type       string          `json:"type"`
	JSONSchema json.RawMessage `json:"json_schema"`
}

// responseFormat reads response_format: absent or {"type": "text"} is plain
// text (nil).
func (s *Server) responseFormat(p *loaded, raw json.RawMessage) (*outputFormat, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rf responseFormatRequest
	if err := json.Unmarshal(raw, &rf); err != nil {
		return nil, badRequest("response_format", "invalid_type", "response_format must be an object with a type")
	}
	switch rf.Type {
	case "text":
		return nil, nil
	}
	return nil, badRequest("response_format.type", "unsupported_value", "response_format type %q is not supported (text)", rf.Type)
}
