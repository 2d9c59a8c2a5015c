//go:build !unix

package pretrain

import "time"

// cpuTime is not measured on this system (CPU-time MFU is reported as 0).
func cpuTime() time.Duration { return 0 }
