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
		defaultK = k
	})
	return defaultK
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
		return fast{levels()[0]}, nil
	case "reference", "ref":
		return Portable{}, nil
	case "portable":
		name = "go"
	}
	for _, l := range levels() {
		if l.name == name {
			return fast{l}, nil
		}
	}
	for _, known := range []string{"avx512", "avx2", "go"} {
		if name == known {
			return nil, fmt.Errorf("this CPU does not support the %s kernels", name)
		}
	}
	return nil, fmt.Errorf("unknown kernel level %q (want avx512, avx2, portable or reference)", name)
}
