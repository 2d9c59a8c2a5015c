package chattemplate

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestParseContent(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []ContentPart
		err  error
	}{
		{"", nil, nil},
		{"null", nil, nil},
		{`"hi"`, []ContentPart{{Type: "text", Text: "hi"}}, nil},
		{`[{"type":"text","text":"a"},{"type":"image_url"}]`, []ContentPart{{"text", "a"}, {"image_url", ""}}, nil},
		{`42`, nil, ErrContentType},
		{`{"text":"a"}`, nil, ErrContentType},
	} {
		got, err := ParseContent(json.RawMessage(tc.raw))
		if !errors.Is(err, tc.err) || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseContent(%s) = %v, %v; want %v, %v", tc.raw, got, err, tc.want, tc.err)
		}
	}
}
