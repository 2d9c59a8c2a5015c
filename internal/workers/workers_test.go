package workers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCount(t *testing.T) {
	for _, c := range [][3]int{{4, 10, 4}, {4, 2, 2}, {0, 1, 1}, {-1, 0, 1}, {3, 3, 3}} {
		if got := Count(c[0], c[1]); got != c[2] {
			t.Errorf("Count(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
	if Count(0, 1<<20) < 1 {
		t.Error("Count(0, many) < 1")
	}
}

func TestRanges(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100} {
		for _, w := range []int{0, 1, 3, 200} {
			seen := make([]int32, n)
			var calls atomic.Int32
			Ranges(n, w, func(lo, hi int) {
				calls.Add(1)
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&seen[i], 1)
				}
			})
			for i, v := range seen {
				if v != 1 {
					t.Fatalf("n=%d w=%d: index %d covered %d times", n, w, i, v)
				}
			}
			if n > 0 && int(calls.Load()) != Count(w, n) {
				t.Errorf("n=%d w=%d: %d ranges, want %d", n, w, calls.Load(), Count(w, n))
			}
		}
	}
}

func TestEach(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]bool{}
	if err := Each(context.Background(), 50, 4, func(i int) error {
		mu.Lock()
		seen[i] = true
		mu.Unlock()
		return nil
	}); err != nil || len(seen) != 50 {
		t.Fatalf("Each: %v, %d indices", err, len(seen))
	}
	// The first error stops handing out work.
	boom := errors.New("boom")
	var ran atomic.Int32
	err := Each(context.Background(), 1000, 2, func(i int) error {
		ran.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || ran.Load() > 10 {
		t.Errorf("after an error: %v, %d calls", err, ran.Load())
	}
	// A cancelled context hands out nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran.Store(0)
	if err := Each(ctx, 10, 2, func(int) error { ran.Add(1); return nil }); !errors.Is(err, context.Canceled) || ran.Load() != 0 {
		t.Errorf("cancelled: %v, %d calls", err, ran.Load())
	}
}
