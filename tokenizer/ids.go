package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseIDs parses a list of token ids separated by commas and white space
// ("1,2, 3" or one per line).
func ParseIDs(s string) ([]int, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' })
	ids := make([]int, 0, len(f))
	for _, x := range f {
		id, err := strconv.Atoi(x)
		if err != nil {
			return nil, fmt.Errorf("bad token id %q", x)
		}
		ids = append(ids, id)
	}
	return ids, nil
}
