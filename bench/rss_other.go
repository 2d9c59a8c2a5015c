//go:build !linux

package bench

// rss is not measured on this platform.
func rss() (peak, cur int64) { return 0, 0 }
