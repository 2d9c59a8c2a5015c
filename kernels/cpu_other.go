//go:build !amd64

package kernels

// levels returns the levels this machine supports: only pure Go off amd64.
func levels() []*level { return []*level{levelGo} }
