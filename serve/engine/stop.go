package engine

import "strings"

// stopFilter holds back generated text that could still become a stop
// string and finds the first complete one, so that neither a stop string
// nor what follows it is ever released (the behaviour of generate's stop
// strings).
type stopFilter struct {
	stops   []string
	pending string
	done    bool
}

// add appends text and returns what can be released. found reports a
// complete stop string; out is then the text before it.
func (f *stopFilter) add(text string) (out string, found bool) {
	f.pending += text
	if len(f.stops) == 0 {
		out, f.pending = f.pending, ""
		return out, false
	}
	first := -1
	for _, s := range f.stops {
		if i := strings.Index(f.pending, s); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		out, f.pending, f.done = f.pending[:first], "", true
		return out, true
	}
	keep := 0
	for _, s := range f.stops {
		// The longest suffix of pending that starts s.
		for n := min(len(s)-1, len(f.pending)); n > keep; n-- {
			if strings.HasSuffix(f.pending, s[:n]) {
				keep = n
				break
			}
		}
	}
	cut := len(f.pending) - keep
	out, f.pending = f.pending[:cut], f.pending[cut:]
	return out, false
}

// flush releases what is held back: nothing more will come.
func (f *stopFilter) flush() string {
	out := f.pending
	f.pending = ""
	return out
}
