package kernels

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/masque-ai/masque/quant"
)

// TestQuantTiles checks every level's integer tiles against the pure-Go
// ones on the same quantised activations. Both compute the same integer
// dot products; only the float32 summation order differs, so they must
// agree to 1e-5 of Σ|x·w| (computed from the decoded weights).
func TestQuantTiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	ref := levelGo.q
	for _, lv := range levels() {
		for _, dt := range []quant.DType{quant.Q8_0, quant.Q4_0, quant.Q4_1, quant.Q5_0, quant.Q5_1, quant.IQ4_NL, quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.IQ4_XS} {
			be := dt.BlockElems()
			if be == 32 {
				be = 32
			}
			for _, nblk := range []int{1, 2, 3, 8, 19} {
				k := nblk * be
				if dt.BlockElems() == 32 {
					k = nblk * 32
				}
				rows := 13
				w, dec := randMatrix(t, rng, dt, rows, k)
				for mr := 1; mr <= lv.q.qmr[dt]; mr++ {
					x := randVec(rng, mr*k, 1)
					ab := actRowBytes(dt, k)
					act := make([]byte, mr*ab)
					act2 := make([]byte, mr*ab)
					for i := 0; i < mr; i++ {
						if be == 256 {
							ref.act256(act[i*ab:(i+1)*ab], x[i*k:(i+1)*k])
							lv.q.act256(act2[i*ab:(i+1)*ab], x[i*k:(i+1)*k])
						} else {
							ref.act32(act[i*ab:(i+1)*ab], x[i*k:(i+1)*k])
							lv.q.act32(act2[i*ab:(i+1)*ab], x[i*k:(i+1)*k])
						}
					}
					if !bytes.Equal(act, act2) {
						t.Fatalf("%s %s: activation quantisation differs from the Go one", lv.name, dt)
					}
					want := make([]float32, mr*rows)
					got := make([]float32, mr*rows)
					ref.qdot[dt][mr](&want[0], rows*4, &act[0], ab, &w.Data[0], w.RowBytes(), k, rows)
					lv.q.qdot[dt][mr](&got[0], rows*4, &act[0], ab, &w.Data[0], w.RowBytes(), k, rows)
					for i := 0; i < mr; i++ {
						for r := 0; r < rows; r++ {
							var mag float64
							for c := 0; c < k; c++ {
								mag += math.Abs(float64(x[i*k+c] * dec[r*k+c]))
							}
							g, wv := got[i*rows+r], want[i*rows+r]
							if d := math.Abs(float64(g - wv)); !(d <= 1e-5*mag+1e-30) {
								t.Fatalf("%s %s k=%d mr=%d token %d row %d: got %g, Go tile %g", lv.name, dt, k, mr, i, r, g, wv)
							}
						}
					}
				}
			}
		}
	}
}

// TestActQuant checks the activation quantisers against their definition.
func TestActQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, lv := range levels() {
		for _, k := range []int{32, 64, 96, 256, 512, 4864} {
			x := randVec(rng, k, 2)
			x[0] = 0
			if k >= 64 {
				for i := 32; i < 64; i++ {
					x[i] = 0 // an all-zero block
				}
			}
			a := make([]byte, act32RowBytes(k))
			lv.q.act32(a, x)
			for b := 0; b < k/32; b++ {
				q := act32Quants(a, b)
				d := act32Scale(a, b)
				for j := 0; j < 32; j++ {
					if e := math.Abs(float64(x[32*b+j] - d*float32(q[j]))); e > float64(d)*0.5001+1e-30 {
						t.Fatalf("%s act32 k=%d block %d [%d]: x=%g, d=%g q=%d", lv.name, k, b, j, x[32*b+j], d, q[j])
					}
				}
			}
			if k%256 == 0 {
				a := make([]byte, act256RowBytes(k))
				lv.q.act256(a, x)
				for b := 0; b < k/256; b++ {
					q := act256Quants(a, b)
					d := act256Scale(a, b)
					for s := 0; s < 16; s++ {
						var sum int32
						for j := 16 * s; j < 16*s+16; j++ {
							sum += int32(q[j])
							if e := math.Abs(float64(x[256*b+j] - d*float32(q[j]))); e > float64(d)*0.5001+1e-30 {
								t.Fatalf("%s act256 k=%d [%d]: x=%g, d=%g q=%d", lv.name, k, j, x[256*b+j], d, q[j])
							}
						}
						if got := act256Sum(a, b, s); got != sum {
							t.Fatalf("%s act256 sum %d = %d, want %d", lv.name, s, got, sum)
						}
					}
				}
			}
		}
	}
	_ = fmt.Sprint
	_ = unsafe.Pointer(nil)
}

// TestDecode checks every level's block decoders bit for bit against the
// reference decoders on random block bytes.
func TestDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, lv := range levels() {
		for _, dt := range []quant.DType{quant.Q8_0, quant.Q4_0, quant.Q4_1, quant.Q5_0, quant.Q5_1, quant.IQ4_NL, quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.IQ4_XS} {
			for _, nblk := range []int{1, 2, 7} {
				n := nblk * dt.BlockElems()
				data := make([]byte, nblk*dt.BlockBytes())
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				fixScales(dt, data)
				want := make([]float32, n)
				got := make([]float32, n)
				refDecode(dt, data, want)
				lv.q.decode[dt](got, data, n)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s %s block %d elem %d: got %g want %g", lv.name, dt, i/dt.BlockElems(), i%dt.BlockElems(), got[i], want[i])
					}
				}
			}
		}
	}
}

func TestNumTypes(t *testing.T) {
	for d := quant.DType(0); d.Valid(); d++ {
		if int(d) >= numTypes {
			t.Fatalf("quant.%s (%d) does not fit the kernels' per-type tables of %d", d, d, numTypes)
		}
	}
}
