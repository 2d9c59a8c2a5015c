package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// llcBytes is the size of the highest-level CPU cache of cpu0 as sysfs
// reports it, or 0.
func llcBytes() int64 {
	dirs, _ := filepath.Glob("/sys/devices/system/cpu/cpu0/cache/index*")
	level, size := 0, int64(0)
	for _, d := range dirs {
		lb, err1 := os.ReadFile(filepath.Join(d, "level"))
		sb, err2 := os.ReadFile(filepath.Join(d, "size"))
		if err1 != nil || err2 != nil {
			continue
		}
		l, err := strconv.Atoi(strings.TrimSpace(string(lb)))
		s := strings.TrimSpace(string(sb))
		mult := int64(1)
		switch {
		case strings.HasSuffix(s, "K"):
			mult, s = 1<<10, strings.TrimSuffix(s, "K")
		case strings.HasSuffix(s, "M"):
			mult, s = 1<<20, strings.TrimSuffix(s, "M")
		}
		v, err2 := strconv.ParseInt(s, 10, 64)
		if err != nil || err2 != nil {
			continue
		}
		if l > level || l == level && v*mult > size {
			level, size = l, v*mult
		}
	}
	return size
}
