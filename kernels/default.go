package kernels

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

// EnvKernels is the environment variable that forces a kernel level:
//
//	MASQUE_KERNELS=avx512    AVX-512 (F, BW, VL, VNNI) assembly; needs such a CPU
//	MASQUE_KERNELS=avx2      AVX2 + FMA + F16C assembly
//	MASQUE_KERNELS=portable  the multi-threaded pure-Go kernels (alias: go)
//	MASQUE_KERNELS=reference the single-threaded Portable reference
//
// Unset (or "auto") picks the best level the CPU supports. A level the CPU
// cannot run falls back to the best supported one, with a warning on stderr.
const EnvKernels = "MASQUE_KERNELS"

// EnvBF16 is the environment variable that sets how Default multiplies by
// BF16 weights: MASQUE_BF16=exact keeps the activations float32 (see
// ExactBF16); unset or "round" rounds them to bf16.
const EnvBF16 = "MASQUE_BF16"

var (
	defaultOnce sync.Once
	defaultK    Kernels
)

// Default returns the fastest Kernels implementation for this machine, chosen
// once at first use from the CPU's features (AVX-512 → AVX2+FMA → pure Go) or
// forced with the MASQUE_KERNELS environment variable (see EnvKernels).
// Matrix products run on the package's worker pool (see SetThreads).
func Default() Kernels {
	defaultOnce.Do(func() {
		name := strings.ToLower(strings.TrimSpace(os.Getenv(EnvKernels)))
		k, err := ForLevel(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "masque: %s=%s: %v; using %s\n", EnvKernels, name, err, Levels()[0])
			k, _ = ForLevel("")
		}
		switch mode := strings.ToLower(strings.TrimSpace(os.Getenv(EnvBF16))); mode {
		case "", "round":
		case "exact":
			k = ExactBF16(k)
		default:
			fmt.Fprintf(os.Stderr, "masque: %s=%s: want exact or round; using round\n", EnvBF16, mode)
		}
		defaultK = k
	})
	return defaultK
}

// ExactBF16 returns k changed to keep activations in float32 when it
// multiplies by BF16 weights (the weights widen to float32 exactly), or k
// itself for an implementation it does not know.
//
// By default every implementation rounds the activations of a BF16 product
// to bf16 (nearest even) and sums the exact products in float32: the
// arithmetic of the AVX-512 BF16 instruction VDPBF16PS, of llama.cpp and of
// PyTorch's bf16 matrix products, and about twice as fast where the CPU has
// it. It costs about three significant digits in each product's inputs
// (relative error ≲ 2⁻⁹), far below what bf16 weights already carry, but
// enough to tell apart from a float64 reference: tests against such
// references and anything that wants float32 accuracy use ExactBF16.
func ExactBF16(k Kernels) Kernels {
	switch k := k.(type) {
	case fast:
		k.exactBF16 = true
		return k
	case Portable:
		k.ExactBF16 = true
		return k
	}
	return k
}

// Levels lists the kernel levels this machine can run, fastest first
// (for example ["avx512" "avx2" "go"]).
func Levels() []string {
	var out []string
	for _, l := range levels() {
		out = append(out, l.name)
	}
	return out
}

// ForLevel returns the kernels of one level by name: "avx512", "avx2", "go"
// (alias "portable"), "reference" (the Portable type), or "" / "auto" for the
// best one this CPU supports. It fails for unknown names and for levels this
// CPU cannot run.
func ForLevel(name string) (Kernels, error) {
	switch name {
	case "", "auto":
		return fast{l: levels()[0]}, nil
	case "reference", "ref":
		return Portable{}, nil
	case "portable":
		name = "go"
	}
	for _, l := range levels() {
		if l.name == name {
			return fast{l: l}, nil
		}
	}
	for _, known := range []string{"avx512", "avx2", "go"} {
		if name == known {
			return nil, fmt.Errorf("this CPU does not support the %s kernels", name)
		}
	}
	return nil, fmt.Errorf("unknown kernel level %q (want avx512, avx2, portable or reference)", name)
}
