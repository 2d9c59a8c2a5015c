//go:build amd64

package kernels

// gram4x8_avx2 is AddGram's 4×8 tile (gramFn), in gram_amd64.s.
//
//go:noescape
func gram4x8_avx2(dst *float64, ldg int, a, b *float64, ld, n int)
