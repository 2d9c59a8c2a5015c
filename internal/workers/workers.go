// Package workers runs index-addressed work on a bounded number of
// goroutines: the one worker pool of the packages above the kernels (which
// keep their own persistent pool for inner loops). It imports nothing of
// masque.
package workers

import (
	"context"
	"runtime"
	"sync"
)

// Count returns how many workers to start for tasks pieces of work when w
// are asked for (w ≤ 0: one per CPU): at least 1, at most tasks.
func Count(w, tasks int) int {
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	return max(1, min(w, tasks))
}

// Ranges splits [0, n) into Count(w, n) contiguous ranges of nearly equal
// size and runs f on each in its own goroutine (in the caller's when there
// is one); it returns when all are done.
func Ranges(n, w int, f func(lo, hi int)) {
	if n <= 0 {
		return
	}
	w = Count(w, n)
	if w == 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for k := 0; k < w; k++ {
		lo, hi := n*k/w, n*(k+1)/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// Each calls f(i) for every i in [0, n) on Count(w, n) goroutines, handing
// out indices in order. The first error returned by f, or ctx's error,
// stops handing out work; Each waits for the calls under way and returns
// that error.
func Each(ctx context.Context, n, w int, f func(i int) error) error {
	if n <= 0 {
		return ctx.Err()
	}
	w = Count(w, n)
	next := make(chan int)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					fail(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			fail(err)
		}
		if failed() {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
