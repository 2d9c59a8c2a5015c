//go:build !unix

// Package cputime measures the CPU time the process has used, for the
// pretraining MFU and the tests that report their cost.
package cputime

import "time"

// Used is not measured on this system: it returns 0.
func Used() time.Duration { return 0 }
