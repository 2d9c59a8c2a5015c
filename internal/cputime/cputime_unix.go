//go:build unix

// Package cputime measures the CPU time the process has used, for the
// pretraining MFU and the tests that report their cost.
package cputime

import (
	"syscall"
	"time"
)

// Used returns the CPU time (user + system) this process has used, all
// threads together; 0 when it cannot be read.
func Used() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
