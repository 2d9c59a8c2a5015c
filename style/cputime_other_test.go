//go:build !unix

package style

// cpuSeconds is unknown here: the benchmark reports wall-time words/s only.
func cpuSeconds() float64 { return 0 }
