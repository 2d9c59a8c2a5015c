package chattemplate

import (
	"encoding/json"
	"fmt"
)

// ParseMessages reads a conversation as JSON: a list of messages, or an
// object with a "messages" list. Each message needs a string "role" and a
// string (or null) "content"; its other keys (reasoning_content,
// tool_calls, name, …) go to Fields.
func ParseMessages(data []byte) ([]Message, error) {
	var raw []map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		var obj struct {
			Messages []map[string]any `json:"messages"`
		}
		if err2 := json.Unmarshal(data, &obj); err2 != nil || obj.Messages == nil {
			return nil, fmt.Errorf("want a JSON list of {\"role\",\"content\"} messages: %v", err)
		}
		raw = obj.Messages
	}
	msgs := make([]Message, 0, len(raw))
	for i, r := range raw {
		role, ok1 := r["role"].(string)
		content, ok2 := r["content"].(string)
		if !ok1 || (!ok2 && r["content"] != nil) {
			return nil, fmt.Errorf("message %d needs string \"role\" and \"content\"", i)
		}
		m := Message{Role: role, Content: content}
		for k, v := range r {
			if k != "role" && k != "content" {
				if m.Fields == nil {
					m.Fields = map[string]any{}
				}
				m.Fields[k] = v
			}
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}
