package fileerr

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSON(t *testing.T) {
	var v struct {
		Rank int `json:"r"`
	}
	for _, tc := range []struct {
		in, want, not string
	}{
		{`password=hunter2`, "invalid JSON at byte 1", "'p'"},
		{`{"r": "secret"}`, `"r" is a JSON string where an integer is expected`, "Go struct"},
		{`{"r": 1`, "invalid JSON at byte 7", ""},
		{`[1, 2]`, "a JSON array where an object is expected", "struct"},
	} {
		got := JSON(json.Unmarshal([]byte(tc.in), &v))
		if !strings.Contains(got, tc.want) || (tc.not != "" && strings.Contains(got, tc.not)) || strings.Contains(got, "secret") || strings.Contains(got, "hunter") {
			t.Errorf("%s: %q, want %q", tc.in, got, tc.want)
		}
	}
}
