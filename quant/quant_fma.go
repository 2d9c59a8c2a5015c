package quant

import "math"

// Fused multiply-adds, and why they appear in the quantisers.
//
// GGML's reference quantisers are plain C, but the result depends on how the
// compiler evaluates a·b+c. llama.cpp is normally built with GCC at -O3 with
// -march=native, and on x86-64 CPUs with FMA GCC then contracts many a·b+c
// expressions into single-rounding fused multiply-adds (its default
// -ffp-contract=fast). That changes the last bit of some sums, and through
// near-ties in the scale searches it changes about 5% of Q4_K blocks and
// 0.4% of Q6_K blocks (and a handful of Q4_0 blocks in a million) compared
// with the same code built with -ffp-contract=off.
//
// masque reproduces the contracted build, which is what llama.cpp's quantize
// tool produces on such machines: every place the reference build fuses is
// written as fma32 or roundMulAdd, and every other product is rounded on its
// own (explicit float32 conversions keep the Go compiler from fusing anything
// else). The placement was established empirically, block by block: against
// llama.cpp's own quantize output (testdata/gguf/README.md), and against
// ggml's reference quantisers compiled as a black box both with
// -ffp-contract=fast and =off, on 16,384 super-blocks of varied data: all
// identical to the first, and with no fusing at all masque matches the second
// exactly. Builds by other compilers (clang contracts only within one
// expression, MSVC not at all) can legitimately differ from both in the same
// few percent of k-quant blocks. Results are the same on every GOARCH because
// fma32 is computed exactly in software.

// fma32 returns a·b+c rounded once to float32 (round to nearest even).
//
// a·b is exact in float64, so the float64 sum is a·b+c rounded once. Rounding
// that again to float32 gives the correctly rounded result unless the float64
// sum sits exactly on a float32 rounding boundary (a tie) or in the float32
// subnormal range; only then is the exact error of the sum needed, to round
// the float64 sum to odd first, which makes the second rounding correct.
func fma32(a, b, c float32) float32 {
	s := float64(a)*float64(b) + float64(c)
	bits := math.Float64bits(s)
	// Below float32's 23 fraction bits lie 29 more float64 bits; a tie has
	// them equal to 1000…0. Exponents under float32's normal range (1023-126)
	// round at a different bit and take the careful path too.
	if bits&(1<<29-1) != 1<<28 && (bits>>52)&0x7ff > 1023-126 {
		return float32(s)
	}
	return fma32Slow(a, b, c)
}

func fma32Slow(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact: 24+24 significant bits
	fc := float64(c)
	s := p + fc
	// Error of the addition (Knuth's TwoSum), exact.
	bv := s - p
	e := (p - (s - bv)) + (fc - bv)
	if e != 0 && !math.IsInf(s, 0) {
		bits := math.Float64bits(s)
		if bits&1 == 0 { // make the last bit sticky: round to odd
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
		}
		s = math.Float64frombits(bits)
	}
	return float32(s)
}

// roundMagic is 1.5·2²³: adding it to a float32 of magnitude below 2²² rounds
// the value to an integer (ties to even), GGML's nearest_int trick.
const roundMagic = 12582912

// roundMulAdd returns nearest_int(a·b) as the reference build evaluates it:
// the product fused into the rounding addition of roundMagic, so a·b is never
// rounded on its own. Results are clamped to ±2²², and NaN gives 0.
func roundMulAdd(a, b float32) int {
	return nearestInt(fma32(a, b, roundMagic) - roundMagic) // exact subtraction
}
