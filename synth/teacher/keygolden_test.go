package teacher

import (
	"testing"

	"github.com/masque-ai/masque/chattemplate"
)

// TestKeyGolden pins the cache key format: these keys were computed by the
// code that wrote existing caches and batch files, so a change to how a
// request is hashed (field order, names, omitted zero values) fails here
// instead of silently missing every cached response.
func TestKeyGolden(t *testing.T) {
	seed := int64(42)
	msgs := []chattemplate.Message{{Role: "system", Content: "You are terse."}, {Role: "user", Content: "Say \"hi\" <ok> & go\n"}}
	cases := []struct {
		req  Request
		want string
	}{
		{Request{}, "b790f3577e95e2685f65100cff65fc16"},
		{Request{Model: "gpt-4o-mini", Messages: msgs}, "127186a9a18b9f38143e2476ce6d0082"},
		{Request{Model: "m", Messages: msgs, MaxTokens: 256, Temperature: 0.7, TopP: 0.9, Seed: &seed, Stop: []string{"\n\n", "END"}}, "5a03fecf486b8efe2c58904606382bbd"},
		{Request{Model: "m", Messages: msgs[1:], Temperature: 1}, "494760828555c18099edec81c41fc2d9"},
		{Request{Model: "m", Messages: msgs, MaxTokens: -1}, "2b6218f147fb5c17654c51fe3e898052"},
	}
	for i, c := range cases {
		if got := Key(c.req); got != c.want {
			t.Errorf("case %d: key %s, want %s", i, got, c.want)
		}
	}
}
