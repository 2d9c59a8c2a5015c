package cputime

import (
	"runtime"
	"testing"
)

// TestUsedGrows: busy work adds CPU time (on systems that measure it).
func TestUsedGrows(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("not measured here")
	}
	a := Used()
	x := 0.0
	for i := 0; i < 50_000_000; i++ {
		x += float64(i % 7)
	}
	if b := Used(); b <= a || x == 0 {
		t.Errorf("CPU time %v then %v after busy work", a, b)
	}
}
