//go:build !amd64

package kernels

// prefetchL2 is a no-op off amd64.
func prefetchL2(p *byte, n, stride, rows int) {}
