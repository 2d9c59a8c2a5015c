package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The worker pool runs the tasks of one parallel region on persistent
// goroutines: threads-1 helpers plus the calling goroutine. Helpers spin for a
// short while after each region (so the next matrix product of a decode step
// starts without a wake-up delay) and then park on a condition variable.
// Regions do not nest or overlap: a region started while another one runs
// (from another goroutine, or from inside a task) runs on its caller alone.

// spinFor is how long an idle helper polls for new work before parking.
const spinFor = 200 * time.Microsecond

type poolJob struct {
	fn   func(task int)
	n    int32
	next atomic.Int32 // next task index to hand out
	done atomic.Int32 // tasks finished
}

type pool struct {
	threads int
	busy    sync.Mutex // held by the goroutine running a region
	gen     atomic.Uint64
	job     atomic.Pointer[poolJob]
	quit    atomic.Bool

	mu       sync.Mutex
	cond     sync.Cond
	sleepers int
}

var (
	poolMu  sync.Mutex
	curPool atomic.Pointer[pool]
)

func init() { SetThreads(0) }

// SetThreads sets the number of threads matrix products use (n ≤ 0: one per
// CPU the Go runtime may use, runtime.GOMAXPROCS(0)). It may be called at any
// time; regions already running finish on the old pool.
func SetThreads(n int) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	poolMu.Lock()
	defer poolMu.Unlock()
	if old := curPool.Load(); old != nil {
		if old.threads == n {
			return
		}
		old.stop()
	}
	p := &pool{threads: n}
	p.cond.L = &p.mu
	for i := 1; i < n; i++ {
		go p.worker()
	}
	curPool.Store(p)
}

// Threads returns the number of threads matrix products use.
func Threads() int { return curPool.Load().threads }

func (p *pool) stop() {
	p.quit.Store(true)
	p.mu.Lock()
	p.gen.Add(1)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// parallel runs fn(0) … fn(n-1), spread over the pool's threads, and returns
// when all have finished. Tasks are handed out dynamically in index order.
func parallel(n int, fn func(task int)) {
	if n <= 0 {
		return
	}
	p := curPool.Load()
	if n == 1 || p.threads == 1 || !p.busy.TryLock() {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	defer p.busy.Unlock()
	j := &poolJob{fn: fn, n: int32(n)}
	p.job.Store(j)
	p.gen.Add(1)
	p.mu.Lock()
	if p.sleepers > 0 {
		p.cond.Broadcast()
	}
	p.mu.Unlock()
	j.run()
	for spins := 0; j.done.Load() < j.n; spins++ {
		if spins > 64 {
			runtime.Gosched()
		}
	}
}

// run executes tasks of j until none are left.
func (j *poolJob) run() {
	for {
		t := j.next.Add(1) - 1
		if t >= j.n {
			return
		}
		j.fn(int(t))
		j.done.Add(1)
	}
}

func (p *pool) worker() {
	seen := p.gen.Load()
	for {
		g := p.gen.Load()
		if g == seen {
			// Spin, then park.
			start := time.Now()
			for i := 1; ; i++ {
				if g = p.gen.Load(); g != seen {
					break
				}
				if i%256 == 0 {
					if time.Since(start) > spinFor {
						p.mu.Lock()
						for g = p.gen.Load(); g == seen; g = p.gen.Load() {
							p.sleepers++
							p.cond.Wait()
							p.sleepers--
						}
						p.mu.Unlock()
						break
					}
					runtime.Gosched()
				}
			}
		}
		seen = g
		if p.quit.Load() {
			return
		}
		if j := p.job.Load(); j != nil {
			j.run()
		}
	}
}
