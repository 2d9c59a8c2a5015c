//go:build !linux

package bench

func llcBytes() int64 { return 0 }
