package kernels

// Default returns the fastest Kernels implementation for this machine.
func Default() Kernels { return Portable{} }
