package kernels

// AddGram adds XᵀX of the rows×d matrix x (row-major, float64 holding
// float32 values) to rows [lo, hi) of the upper triangle of the d×d matrix
// g: g[i·d+j] += Σ_t x[t·d+i]·x[t·d+j] for lo ≤ i < hi, i ≤ j < d. Each
// product is added to g in the order of t, one at a time, as a plain loop
// would: the products of float32 values are exact in float64, so a fused
// multiply-add rounds the same, and every level computes the same bits
// (the calibration statistics and SparseGPT's Hessians do not depend on
// the CPU). Entries below the diagonal are not touched. Rows of the
// triangle can be split between goroutines (lo, hi).
func AddGram(k Kernels, g, x []float64, rows, d, lo, hi int) {
	if lo < 0 || hi > d || lo > hi || len(g) < d*d || len(x) < rows*d {
		panic("kernels.AddGram: bad arguments")
	}
	var tile gramFn
	if f, ok := k.(fast); ok {
		tile = f.l.gram
	}
	i := lo
	if tile != nil {
		for ; i+gramRows <= hi; i += gramRows {
			// The triangle's part inside the 4×4 diagonal block in Go,
			// then whole tiles of 4 rows × 8 columns, then the ragged end.
			addGramGo(g, x, rows, d, i, i+gramRows, i, i+gramRows)
			j := i + gramRows
			for ; j+gramCols <= d; j += gramCols {
				tile(&g[i*d+j], d, &x[i], &x[j], d, rows)
			}
			addGramGo(g, x, rows, d, i, i+gramRows, j, d)
		}
	}
	for ; i < hi; i++ {
		addGramGo(g, x, rows, d, i, i+1, i, d)
	}
}

// gramRows × gramCols is the tile of the assembly kernels.
const gramRows, gramCols = 4, 8

// gramFn adds Σ_t a[t·ld+r]·b[t·ld+c] to g[r·ldg+c] for r < 4, c < 8, t <
// n, in the order of t.
type gramFn func(g *float64, ldg int, a, b *float64, ld, n int)

// addGramGo is AddGram's reference over rows [i0, i1) and columns [j0, j1)
// (only j ≥ i).
func addGramGo(g, x []float64, rows, d, i0, i1, j0, j1 int) {
	for i := i0; i < i1; i++ {
		js := max(j0, i)
		if js >= j1 {
			continue
		}
		gi := g[i*d+js : i*d+j1]
		for t := 0; t < rows; t++ {
			a := x[t*d+i]
			xs := x[t*d+js : t*d+j1]
			for j, v := range xs {
				gi[j] += a * v
			}
		}
	}
}
