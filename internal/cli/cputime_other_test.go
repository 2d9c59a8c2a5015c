//go:build !unix

package cli

import "time"

// cpuTime is unavailable here; TestDocExamples then logs 0.
func cpuTime() time.Duration { return 0 }
