package chattemplate

import (
	"encoding/json"
	"errors"
)

// ContentPart is one part of an OpenAI-style message content list:
// {"type": "text", "text": "..."}, or another type (image_url, …) whose
// text is empty.
type ContentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// ErrContentType is returned by ParseContent for a content that is neither
// a string nor a list of parts.
var ErrContentType = errors.New("content is neither a string nor a list of parts")

// ParseContent decodes an OpenAI-style message content: a JSON string (one
// part of type "text"), a list of parts, or null or nothing (no parts).
// What to do with parts that are not text is the caller's choice.
func ParseContent(raw json.RawMessage) ([]ContentPart, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []ContentPart{{Type: "text", Text: s}}, nil
	}
	var parts []ContentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, ErrContentType
	}
	return parts, nil
}
