package subnet

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
)

// SparseGPTOptions tune SparseGPTMatrix.
type SparseGPTOptions struct {
	// Sparsity ρ: every row keeps k = floor(cols·(1−ρ)) entries (ignored for N:M).
	Sparsity float64
	// N and M select N:M sparsity when M > 0.
	N, M int
	// Damp is the relative dampening λ: H += λ·mean(diag H)·I (0: 0.01).
	Damp float64
	// BlockSize is the number of columns per lazy-update block (0: 128).
	BlockSize int
	// WholeBlock selects the pruned entries of each block with one
	// saliency threshold over the whole rows × BlockSize block, as in the
	// paper (rows then prune different counts; the matrix still prunes the
	// same total), instead of the same count in every row. Not with N:M.
	WholeBlock bool
	// Workers is the number of goroutines (≤ 0: GOMAXPROCS).
	Workers int
}

// SparseGPTMatrix prunes the rows×cols matrix w (row-major) with SparseGPT,
// given H = XᵀX (cols×cols, row-major, float64) over the calibration inputs
// X. It returns the updated weights (pruned entries exactly 0) and the keep
// mask; w and H are not modified.
//
// The algorithm is that of Frantar & Alistarh (2023): columns whose diagonal
// entry of H is 0 are dead (their weights are zeroed); H is dampened by
// λ·mean(diag H); U is the upper Cholesky factor of H⁻¹; columns are
// processed left to right in blocks of BlockSize: the mask of a block is
// chosen from the saliency w²/U_jj² of the current (already updated) weights,
// each pruned weight's error e = w_j/U_jj is spread over the remaining
// columns of the block (w −= e·U_j,·), and the block's errors are applied to
// all later columns at once (lazy batch update). Mask selection is per row:
// row r prunes exactly cols−k entries, spread over the blocks in proportion
// to their width (or M−N of every M for N:M), so the result has the same
// pattern as the Wanda and magnitude masks. With WholeBlock the block's
// pruned entries are instead the rows·q of lowest saliency over the whole
// block (the paper's adaptive mask selection), q being the per-row count
// above: the same total, unevenly spread over the rows. Should the Cholesky
// factorisation fail, the dampening is increased tenfold, up to four times.
func SparseGPTMatrix(w []float32, rows, cols int, H []float64, o SparseGPTOptions) ([]float32, *mask.Bits, error) {
	if len(w) != rows*cols || len(H) != cols*cols {
		return nil, nil, fmt.Errorf("sparsegpt: %d weights and %d Hessian entries for a %d×%d matrix", len(w), len(H), rows, cols)
	}
	damp := o.Damp
	if damp == 0 {
		damp = 0.01
	}
	bs := o.BlockSize
	if bs <= 0 {
		bs = 128
	}
	if o.M > 0 {
		if o.WholeBlock {
			return nil, nil, fmt.Errorf("sparsegpt: the whole-block threshold does not apply to %d:%d sparsity", o.N, o.M)
		}
		if cols%o.M != 0 || o.N <= 0 || o.N > o.M {
			return nil, nil, fmt.Errorf("sparsegpt: %d:%d does not fit %d columns", o.N, o.M, cols)
		}
		bs = max(o.M, bs-bs%o.M)
	}
	workers := o.Workers
	if workers <= 0 {
		workers = (&Options{}).workers()
	}
	dead := make([]bool, cols)
	var meanDiag float64
	for i := 0; i < cols; i++ {
		d := H[i*cols+i]
		if d == 0 {
			dead[i] = true
			d = 1
		}
		meanDiag += d
	}
	meanDiag /= float64(cols)
	var U []float64
	var err error
	for try := 0; try < 5; try++ {
		U, err = upperCholInverse(H, cols, dead, damp*meanDiag, workers)
		if err == nil {
			break
		}
		damp *= 10
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sparsegpt: the dampened Hessian is not positive definite: %v", err)
	}
	keepN := keepCount(cols, o.Sparsity)
	prune := cols - keepN
	// Every row's weights in float64, updated block by block. Rows are
	// independent except for the whole-block threshold, so each block is
	// processed for all rows (in parallel) before the next: a row sees the
	// same operations in the same order in both selection modes.
	W := make([]float64, rows*cols)
	for i, v := range w {
		if !dead[i%cols] {
			W[i] = float64(v)
		}
	}
	keepAll := make([]bool, rows*cols)
	for i := range keepAll {
		keepAll[i] = true
	}
	var salAll []float64 // whole-block mode: the block's saliencies, rows × width
	var idxAll []int
	for i1 := 0; i1 < cols; i1 += bs {
		i2 := min(i1+bs, cols)
		width := i2 - i1
		q := prune*i2/cols - prune*i1/cols // entries each row prunes in this block (row mode)
		if o.WholeBlock && o.M <= 0 && q > 0 {
			// The paper's selection: one threshold over the whole block, so
			// rows prune different counts (rows·q in all).
			salAll = grow64(salAll, rows*width)
			parallelRows(rows, workers, func(r0, r1 int) {
				for r := r0; r < r1; r++ {
					for j := i1; j < i2; j++ {
						d, x := U[j*cols+j], W[r*cols+j]
						salAll[r*width+j-i1] = x * x / (d * d)
					}
				}
			})
			if cap(idxAll) < rows*width {
				idxAll = make([]int, rows*width)
			}
			kb := make([]bool, rows*width)
			rk := ranker{p: salAll[:rows*width]}
			rk.keepRanks(kb, idxAll, 0, rows*width-rows*q)
			for r := 0; r < rows; r++ {
				copy(keepAll[r*cols+i1:r*cols+i2], kb[r*width:(r+1)*width])
			}
		}
		parallelRows(rows, workers, func(r0, r1 int) {
			sal := make([]float64, width)
			idx := make([]int, width)
			errs := make([]float64, width)
			for r := r0; r < r1; r++ {
				wr := W[r*cols : (r+1)*cols]
				keep := keepAll[r*cols : (r+1)*cols]
				if o.M <= 0 && !o.WholeBlock && q > 0 {
					for j := i1; j < i2; j++ {
						d := U[j*cols+j]
						sal[j-i1] = wr[j] * wr[j] / (d * d)
					}
					rk := ranker{p: sal}
					rk.keepRanks(keep[i1:i2], idx, 0, width-q)
				}
				for j := i1; j < i2; j++ {
					if o.M > 0 && (j-i1)%o.M == 0 {
						for t := j; t < j+o.M; t++ {
							d := U[t*cols+t]
							sal[t-i1] = wr[t] * wr[t] / (d * d)
						}
						rk := ranker{p: sal[j-i1 : j-i1+o.M]}
						rk.keepNM(keep[j:j+o.M], 0, o.N, o.M)
					}
					e := 0.0
					if !keep[j] {
						uj := U[j*cols : (j+1)*cols]
						e = wr[j] / uj[j]
						for t := j + 1; t < i2; t++ {
							wr[t] -= e * uj[t]
						}
						wr[j] = 0
					}
					errs[j-i1] = e
				}
				if i2 < cols {
					rest := wr[i2:]
					for j := i1; j < i2; j++ {
						e := errs[j-i1]
						if e == 0 {
							continue
						}
						uj := U[j*cols+i2 : (j+1)*cols]
						uj = uj[:len(rest)]
						for t, u := range uj {
							rest[t] -= e * u
						}
					}
				}
			}
		})
	}
	out := make([]float32, rows*cols)
	bits := mask.NewBits(rows, cols)
	for r := 0; r < rows; r++ {
		keep := keepAll[r*cols : (r+1)*cols]
		for j, v := range W[r*cols : (r+1)*cols] {
			if keep[j] {
				out[r*cols+j] = float32(v)
			}
		}
		bits.SetRow(r, keep)
	}
	return out, bits, nil
}

func grow64(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

// upperCholInverse returns U (n×n, row-major, upper triangular) with
// (H' + damp·I)⁻¹ = UᵀU, where H' is H with the diagonal entries of dead
// columns set to 1. It uses H' + damp·I = V·Vᵀ with V upper triangular (the
// Cholesky factorisation with rows and columns in reverse order), so that
// U = V⁻¹. Memory: two n×n float64 buffers besides H.
func upperCholInverse(H []float64, n int, dead []bool, damp float64, workers int) ([]float64, error) {
	// L = chol(P H' P), lower, with P the order reversal.
	L := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			L[i*n+j] = H[(n-1-i)*n+(n-1-j)]
		}
		if dead != nil && dead[n-1-i] {
			L[i*n+i] = 1
		}
		L[i*n+i] += damp
	}
	if err := cholesky(L, n, workers); err != nil {
		return nil, err
	}
	X := invLower(L, n, workers)
	// U = P X P, written over L.
	U := L
	clear(U)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			U[(n-1-i)*n+(n-1-j)] = X[i*n+j]
		}
	}
	return U, nil
}

// cholesky factors the symmetric positive definite matrix whose lower
// triangle is in A (row-major) into L·Lᵀ, in place (lower triangle).
func cholesky(A []float64, n, workers int) error {
	for j := 0; j < n; j++ {
		rj := A[j*n : j*n+j]
		s := A[j*n+j] - dot64(rj, rj)
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("pivot %d is %g", j, s)
		}
		d := math.Sqrt(s)
		A[j*n+j] = d
		rows := n - j - 1
		do := func(i0, i1 int) {
			for i := i0; i < i1; i++ {
				ri := A[i*n : i*n+j]
				A[i*n+j] = (A[i*n+j] - dot64(ri, rj)) / d
			}
		}
		if workers > 1 && rows*j > 1<<15 {
			parallelRows(rows, workers, func(a, b int) { do(j+1+a, j+1+b) })
		} else {
			do(j+1, n)
		}
	}
	for i := 0; i < n; i++ {
		clear(A[i*n+i+1 : (i+1)*n])
	}
	return nil
}

// invLower returns the inverse of the lower triangular L (row-major).
func invLower(L []float64, n, workers int) []float64 {
	X := make([]float64, n*n)
	workers = max(1, min(workers, n))
	// Column j costs O((n−j)²): columns are dealt out round-robin.
	parallelRows(workers, workers, func(w0, w1 int) {
		x := make([]float64, n)
		for j := w0; j < n; j += workers { // column j of X solves L x = e_j
			clear(x)
			x[j] = 1 / L[j*n+j]
			for i := j + 1; i < n; i++ {
				x[i] = -dot64(L[i*n+j:i*n+i], x[j:i]) / L[i*n+i]
			}
			for i := j; i < n; i++ {
				X[i*n+j] = x[i]
			}
		}
	})
	return X
}

func dot64(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// sparseGPTKey prunes one projection given its Gram matrix and stores the
// result in res.
func sparseGPTKey(m *model.Model, k mask.Key, gram []float64, o *Options, res *Result) error {
	w := m.Layers[k.Layer].Weight(k.Proj)
	if len(gram) != w.Cols*w.Cols {
		return fmt.Errorf("subnet: Gram matrix of layer %d %s has %d entries, want %d²", k.Layer, k.Proj, len(gram), w.Cols)
	}
	upd, bits, err := SparseGPTMatrix(w.Float32s(), w.Rows, w.Cols, gram, SparseGPTOptions{
		Sparsity: o.SparsityOf(k.Layer), N: o.N, M: o.M, Damp: o.Damp, BlockSize: o.BlockSize, WholeBlock: o.WholeBlock, Workers: o.Workers})
	if err != nil {
		return fmt.Errorf("subnet: layer %d %s: %w", k.Layer, k.Proj, err)
	}
	if err := res.Mask.Set(k, bits); err != nil {
		return err
	}
	res.Weights[k] = upd
	return nil
}

// SparseGPTSequential runs SparseGPT layer by layer as in the original
// work: the Gram matrices of block l are collected from calibration inputs
// that went through blocks 0..l−1 already pruned and updated, so each block
// compensates for the errors of the blocks before it. The samples run a
// layer at a time (stats.Layerwise): block l is run once with its original
// weights to collect its Gram matrices, pruned, and run again with its new
// weights to give block l+1 its input, so the whole costs 2L−1 layer passes
// per sample (not the L(L+1)/2 of rerunning every sample from the
// embeddings). Only one block's Gram matrices are in memory at a time,
// besides the samples' residual streams. samples are token sequences
// (already truncated). progress, if set, is called after every sample of
// every layer pass (total = (2L−1) × samples).
func SparseGPTSequential(ctx context.Context, m *model.Model, samples [][]int, rec calib.Record, o Options, progress func(done, total int)) (*Result, error) {
	o.Method = SparseGPT
	if err := o.validate(&m.Config); err != nil {
		return nil, err
	}
	if o.Structured {
		return nil, errors.New("subnet: SparseGPT does not support structured FFN-channel pruning")
	}
	if len(samples) == 0 {
		return nil, errors.New("subnet: SparseGPT needs calibration samples")
	}
	var need [stats.NumInputs]bool
	any := false
	for p := model.Proj(0); p < model.NumProj; p++ {
		if o.Targets.Has(p) {
			need[stats.InputOf(p)] = true
			any = true
		}
	}
	mk := newMask(m, &o, SparseGPT)
	res := &Result{Mask: mk, Weights: mask.Weights{}}
	L := m.Config.Layers
	// work shares m's weights except for the layers pruned so far.
	work, err := model.New(m.Config, m.Embed, append([]model.Layer(nil), m.Layers...), m.Norm, m.LMHead)
	if err != nil {
		return nil, err
	}
	work.K = m.K
	lw, err := stats.NewLayerwise(work, samples)
	if err != nil {
		return nil, fmt.Errorf("subnet: %w", err)
	}
	passes, done := 2*L-1, 0
	step := func(d, n int) {
		if progress != nil {
			progress(done*n+d, passes*n)
		}
	}
	for l := 0; l < L && any; l++ {
		st, err := lw.Collect(ctx, stats.Options{Inputs: need, Workers: o.Workers, Gram: func(int, stats.Input) bool { return true }},
			stats.Manifest{Calibration: rec, ModelFingerprint: mk.Fingerprint}, step)
		if err != nil {
			return nil, fmt.Errorf("subnet: %w", err)
		}
		done++
		for p := model.Proj(0); p < model.NumProj; p++ {
			if !o.Targets.Has(p) {
				continue
			}
			k := mask.Key{Layer: l, Proj: p}
			if err := sparseGPTKey(m, k, st.Channel(l, p).Gram, &o, res); err != nil {
				return nil, err
			}
			work.Layers[l].SetWeight(p, kernels.FromF32(mk.Shapes[p][0], mk.Shapes[p][1], res.Weights[k]))
		}
		if l < L-1 {
			if err := lw.Advance(ctx, step); err != nil {
				return nil, fmt.Errorf("subnet: %w", err)
			}
			done++
		}
	}
	mk.Info.Calibration = fmt.Sprintf("%s (%d samples, %d tokens)", rec.Name, len(samples), lw.Tokens())
	if mk.Info.Extra == nil {
		mk.Info.Extra = map[string]string{}
	}
	mk.Info.Extra["sparsegpt"] = "sequential"
	return res, nil
}
