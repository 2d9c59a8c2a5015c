//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

// CPU features the assembly levels need. x/sys/cpu also checks that the OS
// saves the wider registers (XGETBV).
var (
	hasAVX2   = cpu.X86.HasAVX && cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C
	hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
		cpu.X86.HasAVX512DQ
	// Without VNNI (Skylake-SP) the avx512 level keeps the AVX2 integer
	// kernels for block-quantised weights.
	hasVNNI = cpu.X86.HasAVX512VNNI
	// With AVX-512 BF16 (Cooper Lake, Sapphire Rapids, Zen 4 and later) the
	// avx512 level multiplies BF16 weights with VDPBF16PS.
	hasBF16 = hasAVX512 && cpu.X86.HasAVX512BF16
)

// levels returns the levels this CPU supports, fastest first; the last is
// always the pure-Go one.
func levels() []*level {
	var out []*level
	if hasAVX512 {
		out = append(out, levelAVX512)
	}
	if hasAVX2 {
		out = append(out, levelAVX2)
	}
	return append(out, levelGo)
}
