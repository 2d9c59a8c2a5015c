package generate

import "strings"

// StopFilter holds back generated text that might be the start of a stop
// string, and finds the first complete stop string, so that neither a stop
// string nor anything after it is ever released. Generate uses one; servers
// that stream text themselves can too.
type StopFilter struct {
	stops   []string
	pending string // decoded text not yet released
	done    bool   // a stop string was found
}

// NewStopFilter returns a filter for the given stop strings (empty strings
// are the caller's to drop).
func NewStopFilter(stops []string) *StopFilter { return &StopFilter{stops: stops} }

// Done reports whether a stop string was found.
func (f *StopFilter) Done() bool { return f.done }

// Add appends text and returns what can be released now. found reports
// that a stop string was completed; then out is the text before it and the
// filter must not be used again.
func (f *StopFilter) Add(text string) (out string, found bool) {
	f.pending += text
	if len(f.stops) == 0 {
		out, f.pending = f.pending, ""
		return out, false
	}
	at := -1
	for _, s := range f.stops {
		if i := strings.Index(f.pending, s); i >= 0 && (at < 0 || i < at) {
			at = i
		}
	}
	if at >= 0 {
		out, f.pending = f.pending[:at], ""
		f.done = true
		return out, true
	}
	hold := f.held()
	out = f.pending[:len(f.pending)-hold]
	f.pending = f.pending[len(f.pending)-hold:]
	return out, false
}

// held is the length of the longest suffix of pending that is a proper
// prefix of some stop string.
func (f *StopFilter) held() int {
	best := 0
	for _, s := range f.stops {
		for k := min(len(s)-1, len(f.pending)); k > best; k-- {
			if strings.HasSuffix(f.pending, s[:k]) {
				best = k
				break
			}
		}
	}
	return best
}

// Flush releases everything held back: generation is over, so it can no
// longer become a stop string.
func (f *StopFilter) Flush() string {
	out := f.pending
	f.pending = ""
	return out
}
