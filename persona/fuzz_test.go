package persona

import (
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
)

// FuzzParseCard feeds arbitrary bytes (uploads are untrusted) through the
// whole path a card takes in the server: ParseCard, Spec (the macro
// expansions), Validate, and rendering the persona's prompt and greeting
// with a chat template. Each step must return a result or an error, never
// panic, and stay within the size limits: a card it accepts must give a
// valid persona spec whose rendered conversation is bounded by the card's
// limits.
func FuzzParseCard(f *testing.F) {
	f.Add([]byte(v2Card))
	f.Add([]byte(`{"name":"x","description":"y"}`))
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x00IEND\xaeB`\x82"))
	f.Add([]byte(`{"spec":"chara_card_v2","data":{"name":"{{char}}{{char}}","description":"{{original}}{{char}}<BOT>","system_prompt":"{{original}}{{original}}{{original}}","first_mes":"{{user}}{{char}}"}}`))
	f.Add([]byte(`{"name":"` + strings.Repeat("n", 250) + `","description":"` + strings.Repeat("{{char}}", 300) + `","system_prompt":"` + strings.Repeat("{{original}}", 200) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCard(data)
		if err != nil {
			return
		}
		s, err := c.Spec()
		if err != nil {
			if !strings.Contains(err.Error(), "limit") {
				t.Fatalf("Spec error %q does not state a limit", err)
			}
			return
		}
		if len(s.Description) > MaxPromptLen || len(s.SystemPrompt) > MaxPromptLen || len(s.Greeting) > MaxPromptLen {
			t.Fatalf("Spec gave %d/%d/%d bytes, over the limit %d", len(s.Description), len(s.SystemPrompt), len(s.Greeting), MaxPromptLen)
		}
		if err := ValidName(s.Name); err != nil {
			t.Fatalf("card %q gives the invalid name %q: %v", c.Name, s.Name, err)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("card %q gives an invalid spec: %v", c.Name, err)
		}
		msgs := []chattemplate.Message{{Role: "user", Content: "hello"}}
		if p := s.Prompt(); p != "" {
			msgs = append([]chattemplate.Message{{Role: "system", Content: p}}, msgs...)
		}
		if s.Greeting != "" {
			msgs = append(msgs, chattemplate.Message{Role: "assistant", Content: s.Greeting}, chattemplate.Message{Role: "user", Content: "go on"})
		}
		out, err := chattemplate.ChatML().Render(msgs, chattemplate.Options{AddGenerationPrompt: true})
		if err != nil {
			t.Fatalf("rendering card %q: %v", c.Name, err)
		}
		if len(out) > 3*MaxPromptLen+1024 {
			t.Fatalf("rendered conversation is %d bytes", len(out))
		}
	})
}
