//go:build amd64

package kernels

func avx512QuantKernels() quantKernels { return goQuantKernels() }

func avx2QuantKernels() quantKernels { return goQuantKernels() }
