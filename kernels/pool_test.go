package kernels

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/masque-ai/masque/quant"
)

func TestParallel(t *testing.T) {
	defer SetThreads(0)
	for _, th := range []int{1, 2, 5} {
		SetThreads(th)
		if Threads() != th {
			t.Fatalf("Threads() = %d, want %d", Threads(), th)
		}
		for _, n := range []int{0, 1, 2, 3, 17, 1000} {
			hits := make([]int32, n)
			parallel(n, func(i int) { atomic.AddInt32(&hits[i], 1) })
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("threads=%d n=%d: task %d ran %d times", th, n, i, h)
				}
			}
		}
		// Nested regions run inline.
		var total atomic.Int32
		parallel(4, func(int) { parallel(3, func(int) { total.Add(1) }) })
		if total.Load() != 12 {
			t.Fatalf("nested: %d tasks ran, want 12", total.Load())
		}
	}
}

// TestConcurrentCallers runs MatMul from several goroutines at once (only
// one gets the pool; the others run on their own goroutine) and checks
// every result.
func TestConcurrentCallers(t *testing.T) {
	defer SetThreads(0)
	SetThreads(2)
	rng := rand.New(rand.NewPCG(31, 32))
	w, dec := randMatrix(t, rng, quant.BF16, 200, 96)
	x := randVec(rng, 5*96, 1)
	want, mag := refMatMul(x, dec, 5, 200, 96)
	k := ExactBF16(Default())
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := 0; it < 50; it++ {
				dst := make([]float32, 5*200)
				k.MatMul(dst, x, w, 5)
				for i := range want {
					if d := float64(dst[i]) - want[i]; d > tolFloat*mag[i] || -d > tolFloat*mag[i] {
						errs <- "mismatch"
						return
					}
				}
				if it == 25 && g == 0 {
					SetThreads(3)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// TestEmpty checks degenerate sizes.
func TestEmpty(t *testing.T) {
	for _, k := range append([]Kernels{Portable{}}, testLevels(t)...) {
		w := FromF32(3, 0, nil)
		dst := []float32{1, 2, 3, 4, 5, 6}
		k.MatMul(dst, nil, w, 2)
		for i, v := range dst {
			if v != 0 {
				t.Fatalf("%s: K=0 MatMul left dst[%d]=%g", k.Name(), i, v)
			}
		}
		k.MatMul(nil, make([]float32, 12), FromF32(0, 4, nil), 3)
		k.MatMul(nil, nil, FromF32(2, 2, []float32{1, 2, 3, 4}), 0)
		k.MatMulBackInput(nil, nil, FromF32(2, 2, []float32{1, 2, 3, 4}), 0)
		dx := []float32{7, 7}
		k.MatMulBackInput(dx, nil, FromF32(0, 2, nil), 1)
		if dx[0] != 0 || dx[1] != 0 {
			t.Fatalf("%s: BackInput with no rows left %v", k.Name(), dx)
		}
		k.MatMulBackWeight(nil, nil, nil, 0, 0, 0)
		dw := []float32{1, 2}
		k.MatMulBackWeight(dw, nil, nil, 0, 1, 2)
		if dw[0] != 1 || dw[1] != 2 {
			t.Fatalf("%s: BackWeight with m=0 changed dw", k.Name())
		}
		k.Softmax(nil)
		k.SiLUMul(nil, nil, nil)
		k.RMSNorm(nil, nil, nil, 1e-6)
		k.Axpy(1, nil, nil)
		if k.Dot(nil, nil) != 0 {
			t.Fatalf("%s: Dot of nothing", k.Name())
		}
	}
}

func TestForLevel(t *testing.T) {
	for _, name := range []string{"", "auto", "portable", "go", "reference"} {
		if _, err := ForLevel(name); err != nil {
			t.Errorf("ForLevel(%q): %v", name, err)
		}
	}
	if _, err := ForLevel("sse9"); err == nil {
		t.Error("ForLevel(sse9) succeeded")
	}
	if k, _ := ForLevel("portable"); k.Name() != "go" {
		t.Errorf("ForLevel(portable) = %s", k.Name())
	}
	if Default().Name() != Levels()[0] && Default().Name() == "" {
		t.Error("no default")
	}
}
