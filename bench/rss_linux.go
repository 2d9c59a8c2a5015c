//go:build linux

package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// rss returns the peak (VmHWM) and current (VmRSS) resident set size.
func rss() (peak, cur int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			key string
			p   *int64
		}{{"VmHWM:", &peak}, {"VmRSS:", &cur}} {
			if strings.HasPrefix(line, k.key) {
				f := strings.Fields(line[len(k.key):])
				if len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					*k.p = n * 1024
				}
			}
		}
	}
	return peak, cur
}
