package tokenizer

import (
	"slices"
	"strings"
	"testing"
)

func TestParseIDs(t *testing.T) {
	ids, err := ParseIDs("1,2, 3\n4\t5\r\n")
	if err != nil || !slices.Equal(ids, []int{1, 2, 3, 4, 5}) {
		t.Errorf("%v %v", ids, err)
	}
	if ids, err := ParseIDs(" , "); err != nil || ids == nil || len(ids) != 0 {
		t.Errorf("empty: %v %v", ids, err)
	}
	if _, err := ParseIDs("1,x"); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("bad id: %v", err)
	}
}
