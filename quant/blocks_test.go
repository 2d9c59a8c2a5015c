package quant

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

var blockTypes = []DType{Q8_0, Q4_0, Q4_K, Q6_K}

// dataGen fills x with one kind of test data.
type dataGen struct {
	name string
	fill func(r *rand.Rand, x []float32)
}

var dataGens = []dataGen{
	{"normal", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
	}},
	{"uniform", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(2*r.Float64() - 1)
		}
	}},
	{"laplace", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(r.ExpFloat64() * float64(1-2*r.IntN(2)))
		}
	}},
	{"outliers", func(r *rand.Rand, x []float32) { // 1% of values 30× larger
		for i := range x {
			v := r.NormFloat64()
			if r.IntN(100) == 0 {
				v *= 30
			}
			x[i] = float32(v)
		}
	}},
	{"positive", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(1 + r.Float64())
		}
	}},
	{"sine", func(_ *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(math.Sin(float64(i) * 0.05))
		}
	}},
	{"ramp", func(_ *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(i%256)/128 - 1
		}
	}},
}

// maxRelRMS bounds sqrt(Σ(x−y)²/Σx²) for a quantise→dequantise round trip
// over 16384 values of each kind. The bounds are about 10% above what the
// GGML algorithms achieve (the results are byte-identical to llama.cpp's, see
// gguf's cross-check test); 4-bit formats on Gaussian data are inherently
// near 7–9%.
var maxRelRMS = map[string]map[DType]float64{
	"normal":   {Q8_0: 0.0060, Q4_0: 0.095, Q4_K: 0.079, Q6_K: 0.020},
	"uniform":  {Q8_0: 0.0042, Q4_0: 0.072, Q4_K: 0.061, Q6_K: 0.015},
	"laplace":  {Q8_0: 0.0075, Q4_0: 0.119, Q4_K: 0.094, Q6_K: 0.024},
	"outliers": {Q8_0: 0.0130, Q4_0: 0.137, Q4_K: 0.103, Q6_K: 0.037},
	"positive": {Q8_0: 0.0032, Q4_0: 0.051, Q4_K: 0.025, Q6_K: 0.011},
	"sine":     {Q8_0: 0.0033, Q4_0: 0.051, Q4_K: 0.030, Q6_K: 0.011},
	"ramp":     {Q8_0: 0.0022, Q4_0: 0.048, Q4_K: 0.018, Q6_K: 0.011},
}

func roundTrip(t *testing.T, ty DType, x []float32) ([]byte, []float32) {
	t.Helper()
	n, err := ty.RowBytes(len(x))
	if err != nil {
		t.Fatal(err)
	}
	q := make([]byte, n)
	if err := QuantizeRow(ty, x, q); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, len(x))
	if err := DequantizeRow(ty, q, y); err != nil {
		t.Fatal(err)
	}
	return q, y
}

func relRMS(x, y []float32) float64 {
	var se, sx float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		se += d * d
		sx += float64(x[i]) * float64(x[i])
	}
	return math.Sqrt(se / sx)
}

func TestRoundTripError(t *testing.T) {
	for gi, g := range dataGens {
		for _, ty := range blockTypes {
			t.Run(g.name+"/"+ty.String(), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(gi), 42))
				x := make([]float32, 1<<14)
				g.fill(r, x)
				_, y := roundTrip(t, ty, x)
				got := relRMS(x, y)
				t.Logf("relative RMS error %.4f%%", 100*got)
				if bound := maxRelRMS[g.name][ty]; !(got < bound) {
					t.Errorf("relative RMS error %.4f%%, want < %.4f%%", 100*got, 100*bound)
				}
				// Power-of-two scaling commutes with every rounding step
				// while the float16 scales stay normal, so such blocks must
				// decode to exactly scaled values.
				q, _ := roundTrip(t, ty, x)
				for _, k := range []float32{8, 0.5} {
					xs := make([]float32, len(x))
					for i := range x {
						xs[i] = x[i] * k
					}
					qs, ys := roundTrip(t, ty, xs)
					be, bb := ty.BlockElems(), ty.BlockBytes()
					checked := 0
					for b := 0; b < len(x)/be; b++ {
						if !scalesNormal(ty, q[b*bb:]) || !scalesNormal(ty, qs[b*bb:]) {
							continue
						}
						checked++
						for i := b * be; i < (b+1)*be; i++ {
							if ys[i] != y[i]*k {
								t.Fatalf("×%g: element %d decodes to %g, want %g", k, i, ys[i], y[i]*k)
							}
						}
					}
					if checked < len(x)/be/2 {
						t.Errorf("×%g: only %d blocks have normal float16 scales", k, checked)
					}
				}
			})
		}
	}
}

// scalesNormal reports whether the float16 scale fields of a block are all
// zero or normal numbers.
func scalesNormal(ty DType, b []byte) bool {
	offs := map[DType][]int{Q8_0: {0}, Q4_0: {0}, Q4_K: {0, 2}, Q6_K: {208}}[ty]
	for _, o := range offs {
		h := binary.LittleEndian.Uint16(b[o:])
		if e := h >> 10 & 0x1f; e == 0 && h&0x3ff != 0 || e == 0x1f {
			return false
		}
	}
	return true
}

func f16b(v float32) []byte { return binary.LittleEndian.AppendUint16(nil, F32ToF16(v)) }

func decode(t *testing.T, ty DType, b []byte) []float32 {
	t.Helper()
	y := make([]float32, ty.BlockElems()*len(b)/ty.BlockBytes())
	if err := DequantizeRow(ty, b, y); err != nil {
		t.Fatal(err)
	}
	return y
}

func TestHandBuiltBlocks(t *testing.T) {
	t.Run("q8_0", func(t *testing.T) {
		b := f16b(0.5)
		for j := range 32 {
			b = append(b, byte(int8(j*8-128))) // -128, -120, …, 120
		}
		for j, v := range decode(t, Q8_0, b) {
			if want := float32(j*8-128) * 0.5; v != want {
				t.Errorf("element %d = %g, want %g", j, v, want)
			}
		}
	})
	t.Run("q4_0", func(t *testing.T) {
		b := f16b(-2)
		for j := range 16 {
			b = append(b, byte(j)|byte(15-j)<<4) // low nibble j, high 15-j
		}
		y := decode(t, Q4_0, b)
		for j := range 16 {
			if want := float32(j-8) * -2; y[j] != want {
				t.Errorf("element %d = %g, want %g", j, y[j], want)
			}
			if want := float32(15-j-8) * -2; y[j+16] != want {
				t.Errorf("element %d = %g, want %g", j+16, y[j+16], want)
			}
		}
	})
	t.Run("q4_k", func(t *testing.T) {
		// Sub-block scales and mins, several above 15 to use the high bits.
		sc := [8]uint8{1, 2, 63, 17, 33, 48, 5, 62}
		mn := [8]uint8{0, 63, 7, 31, 16, 60, 3, 47}
		b := append(f16b(0.25), f16b(0.5)...)
		var s [12]byte
		for j := range 4 {
			s[j] = sc[j] | (sc[j+4]>>4)<<6
			s[j+4] = mn[j] | (mn[j+4]>>4)<<6
			s[j+8] = sc[j+4]&15 | (mn[j+4]&15)<<4
		}
		b = append(b, s[:]...)
		var q [256]uint8
		for i := range q {
			q[i] = uint8((i*7 + i/32) % 16)
		}
		for c := range 4 { // chunk c: low nibbles 64c..64c+31, high nibbles the next 32
			for l := range 32 {
				b = append(b, q[64*c+l]|q[64*c+32+l]<<4)
			}
		}
		for i, v := range decode(t, Q4_K, b) {
			j := i / 32
			want := 0.25*float32(sc[j])*float32(q[i]) - 0.5*float32(mn[j])
			if v != want {
				t.Fatalf("element %d = %g, want %g", i, v, want)
			}
		}
	})
	t.Run("q6_k", func(t *testing.T) {
		var q [256]uint8 // 6-bit quants, stored offset by 32
		for i := range q {
			q[i] = uint8((i*37 + 11) % 64)
		}
		var ql [128]byte
		var qh [64]byte
		for i, v := range q {
			h, r := i/128, i%128
			l, g := r%32, r/32 // g: which of the four 32-element groups
			lowAt := 64*h + l
			if g == 1 || g == 3 {
				lowAt += 32
			}
			if g < 2 {
				ql[lowAt] |= v & 15
			} else {
				ql[lowAt] |= (v & 15) << 4
			}
			qh[32*h+l] |= (v >> 4) << (2 * g)
		}
		scales := [16]int8{-128, -64, -8, -1, 0, 1, 2, 3, 7, 15, 31, 63, 100, 127, -100, -3}
		b := append(ql[:], qh[:]...)
		for _, s := range scales {
			b = append(b, byte(s))
		}
		b = append(b, f16b(0.25)...)
		for i, v := range decode(t, Q6_K, b) {
			want := 0.25 * float32(scales[i/16]) * float32(int(q[i])-32)
			if v != want {
				t.Fatalf("element %d = %g, want %g", i, v, want)
			}
		}
	})
}

func TestEdgeCases(t *testing.T) {
	fill := func(v float32) func(i int) float32 { return func(int) float32 { return v } }
	cases := []struct {
		name   string
		x      func(i int) float32
		maxRel float64 // max |x−y| / max|x| allowed; 0 means the output must be exact
	}{
		{"zeros", fill(0), 0},
		{"negative zeros", fill(float32(math.Copysign(0, -1))), 0},
		{"constant", fill(0.75), 0.002},
		{"negative constant", fill(-3.5), 0.002},
		{"one spike", func(i int) float32 {
			if i == 77 {
				return 5
			}
			return 0
		}, 0.002},
		{"tiny", func(i int) float32 { return float32(i%7-3) * 1e-30 }, 1},
		{"subnormal", func(i int) float32 { return float32(i%5-2) * 1e-40 }, 1},
		{"huge within f16 scale", func(i int) float32 { return float32(i%9-4) * 1e4 }, 0.2},
		{"beyond f16 scale", func(i int) float32 { return float32(i%9-4) * 1e30 }, math.Inf(1)},
		{"max float32", func(i int) float32 { return float32(1-2*(i%2)) * math.MaxFloat32 }, math.Inf(1)},
		// Q4_0 maps −max to 16, clamped to 15: −1 decodes as −0.875.
		{"alternating", func(i int) float32 { return float32(1 - 2*(i%2)) }, 0.13},
	}
	for _, c := range cases {
		for _, ty := range blockTypes {
			t.Run(c.name+"/"+ty.String(), func(t *testing.T) {
				x := make([]float32, 512)
				var amax float64
				for i := range x {
					x[i] = c.x(i)
					amax = max(amax, math.Abs(float64(x[i])))
				}
				q, y := roundTrip(t, ty, x)
				for i, v := range y {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("element %d decodes to %g from finite input %g", i, v, x[i])
					}
					d := math.Abs(float64(v) - float64(x[i]))
					if c.maxRel == 0 && d != 0 || d > c.maxRel*amax {
						t.Fatalf("element %d: %g decodes to %g", i, x[i], v)
					}
				}
				if c.name == "zeros" {
					want := make([]byte, len(q))
					if ty == Q4_0 { // d = 0/−8 = −0 and every nibble 8, as in GGML
						for b := 0; b < len(want); b += 18 {
							want[b+1] = 0x80
							copy(want[b+2:b+18], bytes.Repeat([]byte{0x88}, 16))
						}
					}
					if !bytes.Equal(q, want) {
						t.Errorf("all-zero input encodes as %x", q[:ty.BlockBytes()])
					}
				}
			})
		}
	}
}

// TestNonFiniteInput only checks that NaN and ±Inf inputs neither panic nor
// corrupt the neighbouring blocks.
func TestNonFiniteInput(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		for _, ty := range blockTypes {
			x := make([]float32, 512)
			for i := range x {
				x[i] = float32(i%13) - 6
			}
			x[3] = bad // first block only
			_, y := roundTrip(t, ty, x)
			for i := 256; i < 512; i++ {
				if math.Abs(float64(y[i]-x[i])) > 1 {
					t.Errorf("%s with %g in block 0: element %d = %g, want ≈ %g", ty, bad, i, y[i], x[i])
					break
				}
			}
		}
	}
}

// TestSaturatedScale checks the one deliberate difference from GGML: a
// block whose scale exceeds float16 stores 65504 instead of infinity.
func TestSaturatedScale(t *testing.T) {
	for _, ty := range blockTypes {
		x := make([]float32, 256)
		for i := range x {
			x[i] = float32(i%3-1) * 1e12
		}
		q, y := roundTrip(t, ty, x)
		for i, v := range y {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: element %d = %g", ty, i, v)
			}
		}
		var d uint16
		switch ty {
		case Q8_0, Q4_0, Q4_K:
			d = binary.LittleEndian.Uint16(q)
		case Q6_K:
			d = binary.LittleEndian.Uint16(q[208:])
		}
		if d&0x7fff != maxF16Bits {
			t.Errorf("%s: scale %#04x, want ±65504 (%#04x)", ty, d, maxF16Bits)
		}
	}
}

func TestScaleMinK4Packing(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for range 1000 {
		var sc, mn [8]uint8
		s := make([]byte, 12)
		for j := range 8 {
			sc[j], mn[j] = uint8(r.IntN(64)), uint8(r.IntN(64))
			packScaleMinK4(j, s, sc[j], mn[j])
		}
		for j := range 8 {
			if a, b := scaleMinK4(j, s); a != sc[j] || b != mn[j] {
				t.Fatalf("sub-block %d: unpacked %d/%d, packed %d/%d", j, a, b, sc[j], mn[j])
			}
		}
	}
}

func TestNearestInt(t *testing.T) {
	cases := []struct {
		in   float32
		want int
	}{
		{0, 0}, {0.5, 0}, {1.5, 2}, {2.5, 2}, {-0.5, 0}, {-1.5, -2}, {-2.5, -2},
		{0.49999997, 0}, {14.500001, 15}, {-7.4, -7}, {4194303, 4194303},
		{1e9, 1 << 22}, {-1e9, -(1 << 22)}, {float32(math.NaN()), 0},
		{float32(math.Inf(1)), 1 << 22}, {float32(math.Inf(-1)), -(1 << 22)},
	}
	for _, c := range cases {
		if got := nearestInt(c.in); got != c.want {
			t.Errorf("nearestInt(%g) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestFMA32 checks the software fused multiply-add against exact rounding,
// with operands drawn to hit float32 ties and the subnormal range.
func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	check := func(a, b, c float32) {
		// a·b+c exactly: a·b is exact in float64 and the sum is then
		// rounded once by the correctly rounded math.FMA to float64; that
		// can only mislead float32 rounding at a tie, which big math avoids.
		want := exactFMA32(a, b, c)
		if got := fma32(a, b, c); math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", a, b, c, got, want)
		}
	}
	specials := []float32{0, 1, -1, 0.5, 1.5, 3, 1 << 23, 12582912, 1e-45, 1e-38, math.MaxFloat32, float32(math.Inf(1))}
	for _, a := range specials {
		for _, b := range specials {
			for _, c := range specials {
				check(a, b, c)
				check(-a, b, c)
			}
		}
	}
	for range 200000 {
		a := math.Float32frombits(r.Uint32())
		b := math.Float32frombits(r.Uint32())
		var c float32
		switch r.IntN(4) {
		case 0: // c chosen so that a·b+c is near a float32 tie
			c = -float32(float64(a) * float64(b))
			c = c + float32(r.NormFloat64())*1e-7*c
		case 1:
			a = float32(r.NormFloat64())
			b = float32(r.NormFloat64())
			c = float32(r.IntN(64)) + 0.5
		case 2:
			a, b = float32(r.NormFloat64())*1e-20, float32(r.NormFloat64())*1e-20 // subnormal products
			c = float32(r.NormFloat64()) * 1e-39
		default:
			c = math.Float32frombits(r.Uint32())
		}
		check(a, b, c)
	}
}

// exactFMA32 rounds a·b+c to float32 through math/big, independently of fma32.
func exactFMA32(a, b, c float32) float32 {
	if isNonFinite(a) || isNonFinite(b) || isNonFinite(c) {
		return float32(float64(a)*float64(b) + float64(c))
	}
	return bigFMA32(a, b, c)
}

func isNonFinite(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

// TestGoldenDigests pins the exact bytes of every quantiser on mixed data
// (Gaussian, uniform, heavy-tailed, one-signed, integer-valued, sparse, at
// scales from 1e-4 to 1e4). These outputs were checked block by block
// against llama.cpp's reference quantisers built with GCC -O3 -march=native
// (identical for all four types), so a change here is a change in agreement
// with llama.cpp.
func TestGoldenDigests(t *testing.T) {
	x := goldenData()
	want := map[DType]string{
		Q8_0: "37bc9585b8346250168637a0ad78bfebc67b883ac3e2bc06a6a97dcc33dd5386",
		Q4_0: "d3324613a7f270b9ddb52792faa8983feb5a887dcb4da97bced7b697aa72f258",
		Q4_K: "59dcaf78009ffde97a25f6c1574d29dee27792b4ae66b194a1fa2a09ecb5de61",
		Q6_K: "ecce6ac3784267ce4d4bd55bb8c7b4a4e09ec3bdf64f35ae24a166a9db06099a",
	}
	for _, ty := range blockTypes {
		q, _ := roundTrip(t, ty, x)
		sum := sha256.Sum256(q)
		if got := hex.EncodeToString(sum[:]); got != want[ty] {
			t.Errorf("%s: digest %s, want %s", ty, got, want[ty])
		}
	}
}

func goldenData() []float32 {
	r := rand.New(rand.NewPCG(2024, 11))
	x := make([]float32, 0, 192*256)
	for blk := range 192 {
		scale := float32(math.Pow(10, 8*r.Float64()-4))
		for i := range 256 {
			var v float64
			switch blk % 8 {
			case 0:
				v = r.NormFloat64()
			case 1:
				v = 2*r.Float64() - 1
			case 2:
				v = r.Float64()
			case 3:
				v = r.ExpFloat64() * float64(1-2*(i%2))
			case 4:
				v = r.NormFloat64()
				if r.IntN(50) == 0 {
					v *= 20
				}
			case 5:
				v = -r.Float64() - 0.5
			case 6:
				v = float64(r.IntN(17) - 8)
			case 7:
				v = r.NormFloat64()
				if i%32 < 5 {
					v = 0
				}
			}
			x = append(x, float32(v)*scale)
		}
	}
	return x
}

func BenchmarkQuantize(b *testing.B) {
	x := make([]float32, 4096)
	dataGens[0].fill(rand.New(rand.NewPCG(1, 1)), x)
	for _, ty := range blockTypes {
		b.Run(ty.String(), func(b *testing.B) {
			n, _ := ty.RowBytes(len(x))
			q := make([]byte, n)
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				QuantizeRow(ty, x, q)
			}
		})
	}
}

func BenchmarkDequantize(b *testing.B) {
	x := make([]float32, 4096)
	dataGens[0].fill(rand.New(rand.NewPCG(1, 1)), x)
	for _, ty := range blockTypes {
		b.Run(ty.String(), func(b *testing.B) {
			n, _ := ty.RowBytes(len(x))
			q := make([]byte, n)
			QuantizeRow(ty, x, q)
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				DequantizeRow(ty, q, x)
			}
		})
	}
}

func bigFMA32(a, b, c float32) float32 {
	const prec = 1200 // enough for any float32 a·b+c exactly
	x := new(big.Float).SetPrec(prec).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(prec).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(prec).SetFloat64(float64(c)))
	f, _ := x.Float32()
	if f == 0 && x.Sign() == 0 { // exact zero: IEEE sign rules
		return float32(float64(a)*float64(b) + float64(c))
	}
	return f
}

// TestQ4_0FusedRounding: a block where GGML's q = (int8)(x·id + 8.5) depends
// on the product being fused into the addition (as GCC -O3 -march=native
// compiles it on FMA hardware). Expected bytes from llama.cpp's
// quantize_row_q4_0_ref built that way; rounding the product on its own
// would give 0xe6 instead of 0xd6 in byte 13.
func TestQ4_0FusedRounding(t *testing.T) {
	bits := []uint32{
		0xbf03bb24, 0xbe4a6c2a, 0x3ee2b7fd, 0xbfe6c4e0, 0xbeec9ec2, 0x3a7841b0, 0xbc3089f4, 0x3f4a949f,
		0x3f1ed5bd, 0x3ecc691a, 0x4006fc83, 0xbfe71d34, 0xbfed69e4, 0xbf48936c, 0xbfb63f24, 0x3fd3b8e3,
		0xbeb90cbd, 0x3ea5a636, 0xbc22d2bd, 0x3f18dfc7, 0x3da58ca9, 0xbfd6247b, 0x3f15aeff, 0x3fb29730,
		0xbe76282c, 0xbfb99b33, 0xbf9d07bc, 0xbeadeecd, 0xbf0b7150, 0x3f8c1c8a, 0xbfae2bbd, 0xbf57e481,
	}
	x := make([]float32, 32)
	for i, b := range bits {
		x[i] = math.Float32frombits(b)
	}
	want, _ := hex.DecodeString("38b49a79866f8ae8683596d6d09faf4bddb2")
	got := make([]byte, 18)
	if err := QuantizeRow(Q4_0, x, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got  %x\nwant %x", got, want)
	}
}
