// Package macro expands text macros ({{char}}, {{original}}, …) with the
// size of the result bounded before any memory is spent on it: a small
// input with many occurrences of a macro whose value is long can otherwise
// ask for gigabytes (a 2 MB character card asked for terabytes).
package macro

import (
	"fmt"
	"strings"
)

// TooLongError says that an expansion would exceed its limit.
type TooLongError struct {
	// What names the text being expanded ("the system prompt").
	What string
	// Size is an upper bound of the expanded size in bytes; Limit the
	// most allowed.
	Size, Limit int
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("%s would be up to %d bytes once its macros are expanded; the limit is %d bytes", e.What, e.Size, e.Limit)
}

// Bound returns an upper bound of the length of s once every old of the
// pairs oldnew (old1, new1, old2, new2, …; as strings.NewReplacer takes
// them) is replaced by its new, saturating at limit+1 so that it cannot
// overflow.
func Bound(s string, limit int, oldnew ...string) int {
	n := len(s)
	if n > limit {
		return limit + 1
	}
	for i := 0; i+1 < len(oldnew); i += 2 {
		old, nw := oldnew[i], oldnew[i+1]
		if old == "" || len(nw) <= len(old) {
			continue
		}
		k := strings.Count(s, old)
		if k == 0 {
			continue
		}
		grow := len(nw) - len(old)
		if k > (limit-n)/grow {
			return limit + 1
		}
		n += k * grow
	}
	return n
}

// Expand replaces every old of the pairs oldnew in s by its new (as
// strings.NewReplacer does), after checking that the result cannot be
// longer than limit bytes; what names s in the error.
func Expand(what, s string, limit int, oldnew ...string) (string, error) {
	if len(oldnew)%2 == 1 {
		return "", fmt.Errorf("macro.Expand: odd number of old/new strings")
	}
	if n := Bound(s, limit, oldnew...); n > limit {
		return "", &TooLongError{What: what, Size: boundSize(s, oldnew), Limit: limit}
	}
	if len(oldnew) == 0 {
		return s, nil
	}
	return strings.NewReplacer(oldnew...).Replace(s), nil
}

// boundSize is Bound without the limit, for the error message (in
// float64 so that it cannot overflow; capped at the largest int).
func boundSize(s string, oldnew []string) int {
	n := float64(len(s))
	for i := 0; i+1 < len(oldnew); i += 2 {
		if oldnew[i] != "" && len(oldnew[i+1]) > len(oldnew[i]) {
			n += float64(strings.Count(s, oldnew[i])) * float64(len(oldnew[i+1])-len(oldnew[i]))
		}
	}
	if n > float64(int(^uint(0)>>1)) {
		return int(^uint(0) >> 1)
	}
	return int(n)
}
