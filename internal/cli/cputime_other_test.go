//go:build !unix

package cli

import "time"

// cpuTime is unavailable here; the benchmark then reports 0.
func cpuTime() time.Duration { return 0 }
